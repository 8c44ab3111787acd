-- One database per service, created when the Postgres volume is first initialised.
CREATE DATABASE fafnir_auth;
CREATE DATABASE fafnir_security;
CREATE DATABASE fafnir_users;
-- The one-process profile (`fafnir serve`).
CREATE DATABASE fafnir;

//! The end-to-end tests of the servers: one test binary (one link, one harness), a module per
//! surface. Every test talks to real servers over real sockets, on SQLite and, when
//! `FAFNIR_TEST_DATABASE_URL` is set, on Postgres (tests named `…::postgres::…`).
//!
//! - [`http`]: the REST server;
//! - [`graphql`]: the GraphQL gateway, in `fafnir serve` and across four services;
//! - [`grpc`]: both gRPC services and their clients;
//! - [`admin`]: account deletion, administration and the audit log;
//! - [`email`]: verification, reset and change of address through a real SMTP conversation;
//! - [`oauth`]: social login against a real OpenID Provider (`oidc-provider` on Node.js);
//! - [`microservices`]: auth-service, security-service and user-service with three databases;
//! - [`resilience`]: faults the operator does not control.

#![allow(clippy::unwrap_used)] // a panic in a test is a failing test

mod admin;
mod common;
mod email;
mod graphql;
mod grpc;
mod http;
mod mfa;
mod microservices;
mod monitoring;
mod oauth;
mod passkey;
mod resilience;
mod scale;

import type { NextConfig } from "next";

// `/graphql` and `/auth/*` are proxied to Fafnir by route handlers (app/graphql, app/auth) that
// read FAFNIR_URL when a request comes in, so one build runs against any Fafnir.
const config: NextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
};

export default config;

import { defineConfig } from "@playwright/test";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

// The browser tests run against a real `fafnir serve` on a fresh SQLite database and the built
// app (`next build` first; `npm test` does both). Chromium is the system's (Debian's
// `chromium`): nothing is downloaded. Ports and paths can be moved with the variables below.
const appPort = Number(process.env.WEB_PORT ?? 3100);
const fafnirPort = Number(process.env.FAFNIR_TEST_PORT ?? 8180);
const appUrl = `http://localhost:${appPort}`;
const fafnirBin = resolve(process.env.FAFNIR_BIN ?? "../../target/debug/fafnir");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
// Made once by the runner; its workers load this file again and must find the same database.
process.env.FAFNIR_WEB_DATA ??= mkdtempSync(join(tmpdir(), "fafnir-web-"));
const dataDir = process.env.FAFNIR_WEB_DATA;

if (!existsSync(fafnirBin)) {
  throw new Error(`no Fafnir binary at ${fafnirBin}: run \`cargo build -p fafnir-cli\` at the repository root, or set FAFNIR_BIN`);
}
if (!existsSync(chromium)) {
  throw new Error(`no Chromium at ${chromium}: install Debian's \`chromium\` package, or set CHROMIUM`);
}

// The local OpenID Provider (tests/oidc-provider) and mail catcher (e2e/smtp-catcher.mjs).
const idpPort = Number(process.env.IDP_PORT ?? 4110);
const smtpPort = Number(process.env.SMTP_PORT ?? 2526);
export const mailbox = `http://127.0.0.1:${smtpPort + 1}/messages`;
export const idp = { issuer: `http://127.0.0.1:${idpPort}`, name: "Test IdP" };

export const fafnir = { url: `http://127.0.0.1:${fafnirPort}`, bin: fafnirBin, database: `sqlite://${dataDir}/web.db?mode=rwc` };

export default defineConfig({
  testDir: "./e2e",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 60_000,
  reporter: process.env.CI ? [["list"]] : [["list"], ["html", { open: "never" }]],
  use: {
    baseURL: appUrl,
    trace: "retain-on-failure",
    launchOptions: { executablePath: chromium },
  },
  webServer: [
    {
      command: `node e2e/smtp-catcher.mjs`,
      url: mailbox,
      reuseExistingServer: false,
      env: { SMTP_PORT: String(smtpPort), HTTP_PORT: String(smtpPort + 1) },
    },
    {
      command: "sh -c 'test -d node_modules || npm ci --no-audit --no-fund; exec node provider.mjs'",
      cwd: "../../tests/oidc-provider",
      url: `${idp.issuer}/.well-known/openid-configuration`,
      reuseExistingServer: false,
      timeout: 120_000,
      env: {
        PORT: String(idpPort),
        OIDC_CLIENTS: JSON.stringify([
          { client_id: "web", client_secret: "web-secret", redirect_uris: [`${appUrl}/auth/oauth/idp/callback`] },
        ]),
      },
    },
    {
      command: `${fafnirBin} serve`,
      url: `${fafnir.url}/readyz`,
      reuseExistingServer: false,
      timeout: 60_000,
      env: {
        FAFNIR_DATABASE_URL: fafnir.database,
        FAFNIR_HTTP_ADDR: `127.0.0.1:${fafnirPort}`,
        FAFNIR_GRPC_ADDR: `127.0.0.1:${fafnirPort + 1}`,
        // The browser's origin is the app's: mailed links, CSRF and passkeys are for it.
        FAFNIR_PUBLIC_URL: appUrl,
        FAFNIR_COOKIE_SECURE: "false",
        FAFNIR_LOG: "warn",
        FAFNIR_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
        FAFNIR_OAUTH_IDP_ISSUER: idp.issuer,
        FAFNIR_OAUTH_IDP_CLIENT_ID: "web",
        FAFNIR_OAUTH_IDP_CLIENT_SECRET: "web-secret",
        FAFNIR_OAUTH_IDP_DISPLAY_NAME: idp.name,
      },
    },
    {
      command: `npx next start -p ${appPort}`,
      url: appUrl,
      reuseExistingServer: false,
      timeout: 60_000,
      env: { FAFNIR_URL: `http://127.0.0.1:${fafnirPort}` },
    },
  ],
});

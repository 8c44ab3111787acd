import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";

import { expect, test, type APIRequestContext, type Page } from "@playwright/test";

import { fafnir, idp, mailbox } from "../playwright.config";

// Journeys through the real app in Chromium, against a real `fafnir serve` (playwright.config.ts).
// Each test uses its own account. The rate-limit journey runs last: the app's proxy reaches
// Fafnir from one address, so its lock would stand in the way of the others.

const PW = "correct horse battery staple";
const SHOTS = "../../docs/screenshots";
let serial = 0;

function address(tag: string): string {
  serial += 1;
  return `${tag}-${Date.now()}-${serial}@example.com`;
}

/** RFC 6238 (SHA-1, 6 digits, 30 s) from Node's HMAC: the tests' own, not Fafnir's. */
function totp(base32: string, step: number): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", key).update(msg).digest();
  const offset = mac[mac.length - 1]! & 0xf;
  const code = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return code.toString().padStart(6, "0");
}

/** The app's error alert (Next.js has a route announcer with role "alert" too). */
function errorAlert(page: Page) {
  return page.locator('[data-slot="alert"][role="alert"]');
}

/** The newest link to `path` mailed to `to` (quoted-printable soft breaks undone). */
async function mailedLink(request: APIRequestContext, to: string, path: string): Promise<string> {
  let link = "";
  const pattern = new RegExp(`http://localhost:\\d+${path}\\?token=[A-Za-z0-9_-]+`);
  await expect
    .poll(
      async () => {
        const messages = (await (await request.get(mailbox)).json()) as { to: string[]; data: string }[];
        for (const m of messages.filter((m) => m.to.includes(to))) {
          const found = m.data.replace(/=\r\n/g, "").replace(/=3D/g, "=").match(pattern);
          if (found) link = found[0];
        }
        return link;
      },
      { timeout: 20_000 },
    )
    .not.toBe("");
  return link;
}

async function signUp(page: Page, email: string) {
  await page.goto("/sign-up");
  await page.getByLabel("E-mail", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PW);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page).toHaveURL(/\/sign-in\?registered=1/);
}

async function signIn(page: Page, email: string, password = PW) {
  await page.getByLabel("E-mail", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
}

test("sign up, sign in, edit the profile, see the sessions, sign out", async ({ page }) => {
  const email = address("ada");
  await page.goto("/sign-up");
  await page.screenshot({ path: `${SHOTS}/sign-up.png`, fullPage: true });
  await signUp(page, email);
  await expect(page.getByText("Your account is ready")).toBeVisible();
  await expect(page.getByLabel("E-mail", { exact: true })).toHaveValue(email);
  await page.screenshot({ path: `${SHOTS}/sign-in.png`, fullPage: true });
  await signIn(page, email);

  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByRole("heading", { name: "Your account" })).toBeVisible();
  await expect(page.getByTestId("email")).toHaveText(email);

  await page.getByLabel("Display name").fill("Ada Lovelace");
  await page.getByRole("button", { name: "Save profile" }).click();
  await expect(page.getByText("Profile saved.")).toBeVisible();
  await page.reload();
  await expect(page.getByLabel("Display name")).toHaveValue("Ada Lovelace");

  const sessions = page.getByRole("list", { name: "Sessions" });
  await expect(sessions.getByText("(this session)")).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/account.png`, fullPage: true });

  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.goto("/account");
  await expect(page).toHaveURL(/\/sign-in\?next=\/account/);
});

test("a wrong password says so", async ({ page }) => {
  const email = address("bo");
  await signUp(page, email);
  await signIn(page, email, "not the password at all");
  await expect(errorAlert(page)).toHaveText("The e-mail address or password is wrong.");
  await expect(page).toHaveURL(/\/sign-in/);
});

test("an authenticator app: turned on, then asked for at sign-in", async ({ page }) => {
  const email = address("cy");
  await signUp(page, email);
  await signIn(page, email);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole("button", { name: "Set up an authenticator app" }).click();
  const secret = (await page.getByTestId("totp-secret").textContent()) ?? "";
  expect(secret).toMatch(/^[A-Z2-7]{32}$/);
  await expect(page.getByRole("img", { name: /QR code/ })).toBeVisible();
  const step = Math.floor(Date.now() / 1000 / 30);
  await page.getByLabel("Code from the app").fill(totp(secret, step));
  await page.getByRole("button", { name: "Turn on" }).click();
  await expect(page.getByTestId("recovery-codes").getByRole("listitem")).toHaveCount(10);
  await expect(page.getByTestId("totp-on")).toBeVisible();

  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  await signIn(page, email);
  await expect(page.getByRole("heading", { name: "Second step" })).toBeVisible();
  await page.screenshot({ path: `${SHOTS}/sign-in-second-step.png`, fullPage: true });
  await page.getByLabel("Authentication code").fill("000000");
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(errorAlert(page)).toContainText("code is wrong");
  // The code of the next step: the one above was used to turn the app on (each works once).
  await page.getByLabel("Authentication code").fill(totp(secret, step + 1));
  await page.getByRole("button", { name: "Verify" }).click();
  await expect(page).toHaveURL(/\/account$/);
});

test("a passkey: added on the account page, then signing in without an e-mail", async ({ page, context }) => {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const email = address("di");
  await signUp(page, email);
  await signIn(page, email);
  await expect(page).toHaveURL(/\/account$/);
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await expect(page.getByText("Passkey added.")).toBeVisible();
  await expect(page.getByTestId("recovery-codes").getByRole("listitem")).toHaveCount(10);
  await expect(page.getByRole("list", { name: "Passkeys" }).getByRole("listitem")).toHaveCount(1);

  await page.getByRole("button", { name: "Sign out", exact: true }).click();
  // The password alone is not enough any more.
  await signIn(page, email);
  await expect(page.getByRole("heading", { name: "Second step" })).toBeVisible();
  await page.goto("/sign-in");
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByTestId("email")).toHaveText(email);

  // The last second factor goes only with the password.
  await page.getByRole("list", { name: "Passkeys" }).getByRole("button", { name: "Remove" }).click();
  await page.getByLabel("Password", { exact: true }).fill("not the password at all");
  await page.getByRole("button", { name: "Remove passkey" }).click();
  await expect(errorAlert(page)).toHaveText("The e-mail address or password is wrong.");
  await page.getByLabel("Password", { exact: true }).fill(PW);
  await page.getByRole("button", { name: "Remove passkey" }).click();
  await expect(page.getByText("Passkey removed.")).toBeVisible();
  await expect(page.getByRole("list", { name: "Passkeys" }).getByRole("listitem")).toHaveCount(0);
});

test("signing in with the OpenID provider", async ({ page }) => {
  const email = address("oidc");
  await page.goto("/sign-in");
  await page.getByRole("link", { name: `Continue with ${idp.name}` }).click();
  // The provider's own pages (oidc-provider's development login and consent).
  await page.locator('input[name="login"]').fill(email);
  await page.locator('input[name="password"]').fill("anything");
  await page.locator('button[type="submit"]').click();
  await page.locator('button[type="submit"]').click();
  await expect(page).toHaveURL(/\/account$/);
  await expect(page.getByTestId("email")).toHaveText(email);
  const linked = page.getByRole("list", { name: "Linked providers" });
  await expect(linked.getByRole("listitem")).toHaveCount(1);
  // No password yet: the provider is the only way in, and cannot be unlinked.
  await linked.getByRole("button", { name: "Unlink" }).click();
  await expect(errorAlert(page)).toHaveText("This is your last way to sign in. Add another one first.");
});

test("a change of e-mail address, confirmed through the mailed link", async ({ page, request }) => {
  const email = address("gil");
  const next = address("gil-new");
  await signUp(page, email);
  await signIn(page, email);
  await page.getByLabel("New e-mail address").fill(next);
  await page.getByLabel("Current password").last().fill(PW);
  await page.getByRole("button", { name: "Change address" }).click();
  await expect(page.getByText(`We sent a link to ${next}.`)).toBeVisible();
  await page.goto(await mailedLink(request, next, "/confirm-email"));
  await expect(page.getByText("Your e-mail address is changed.")).toBeVisible();
  await page.goto("/account");
  await expect(page.getByTestId("email")).toHaveText(next);
});

test("a forgotten password, reset through the mailed link", async ({ page, request }) => {
  const email = address("fay");
  await signUp(page, email);
  await page.goto("/forgot-password");
  await page.getByLabel("E-mail", { exact: true }).fill(email);
  await page.getByRole("button", { name: "Send the link" }).click();
  await expect(page.getByText("If an account has this address, a link is on its way.")).toBeVisible();

  const link = await mailedLink(request, email, "/reset-password");
  await page.goto(link);
  await page.getByLabel("New password").fill("a brand new passphrase here");
  await page.getByRole("button", { name: "Set password" }).click();
  await expect(page.getByText("Your password is changed")).toBeVisible();
  await page.getByRole("link", { name: "Sign in", exact: true }).last().click();
  await signIn(page, email, "a brand new passphrase here");
  await expect(page).toHaveURL(/\/account$/);
  // The link works once.
  await page.goto(link);
  await page.getByLabel("New password").fill("yet another passphrase here");
  await page.getByRole("button", { name: "Set password" }).click();
  await expect(errorAlert(page)).toContainText("invalid, expired or already used");
});

test("an administrator grants a role, and the user sees the new permission", async ({ browser }) => {
  // The first administrator comes from the CLI, as in the README.
  const root = address("root");
  execFileSync(fafnir.bin, ["user", "create", "--email", root, "--password-stdin", "--role", "admin"], {
    input: PW,
    env: { ...process.env, FAFNIR_DATABASE_URL: fafnir.database, FAFNIR_LOG: "error" },
  });
  const member = await browser.newPage();
  const email = address("mo");
  await signUp(member, email);
  await signIn(member, email);
  await expect(member.getByTestId("permissions")).toHaveText("profile:read, profile:write");
  await expect(member.getByRole("link", { name: "Admin" })).toHaveCount(0);
  await member.goto("/admin");
  await expect(errorAlert(member)).toHaveText("This page needs the permission users:manage.");

  const admin = await browser.newPage();
  await admin.goto("/sign-in");
  await signIn(admin, root);
  await expect(admin).toHaveURL(/\/account$/);
  await admin.getByRole("link", { name: "Admin" }).click();
  await expect(admin.getByRole("heading", { name: "Administration" })).toBeVisible();
  await admin.getByLabel("E-mail", { exact: true }).fill(email.slice(0, 12));
  await admin.getByRole("button", { name: "Search" }).click();
  const users = admin.getByRole("list", { name: "Users" });
  await expect(users.getByRole("listitem")).toHaveCount(1);
  await admin.screenshot({ path: `${SHOTS}/admin.png`, fullPage: true });
  // A controlled checkbox: it shows the change once the server has made it.
  await admin.getByRole("checkbox", { name: `admin for ${email}` }).click();
  await expect(admin.getByText(`Granted admin to ${email}.`)).toBeVisible();
  await expect(admin.getByRole("checkbox", { name: `admin for ${email}` })).toBeChecked();

  // The member sees it on the next page load (within the cache's few seconds).
  await expect(async () => {
    await member.goto("/account");
    await expect(member.getByTestId("permissions")).toContainText("*:*", { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expect(member.getByRole("link", { name: "Admin" })).toBeVisible();

  // And revoking takes it away again.
  await admin.getByRole("checkbox", { name: `admin for ${email}` }).click();
  await expect(admin.getByText(`Revoked admin from ${email}.`)).toBeVisible();
});

test("light and dark, narrow screens, and the keyboard", async ({ browser }) => {
  const background = (page: Page) => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  const light = await browser.newPage({ colorScheme: "light" });
  await light.goto("/sign-in");
  const dark = await browser.newPage({ colorScheme: "dark" });
  await dark.goto("/sign-in");
  expect(await background(dark)).not.toEqual(await background(light));
  await dark.screenshot({ path: `${SHOTS}/sign-in-dark.png`, fullPage: true });

  // A phone's width: nothing wider than the screen.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
  const email = address("hal");
  await signUp(phone, email);
  await signIn(phone, email);
  await expect(phone).toHaveURL(/\/account$/);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await phone.screenshot({ path: `${SHOTS}/account-phone.png`, fullPage: true });

  // The keyboard: the skip link first, then the form in order, and Enter submits.
  await light.keyboard.press("Tab");
  await expect(light.getByRole("link", { name: "Skip to content" })).toBeFocused();
  await light.getByLabel("E-mail", { exact: true }).focus();
  await light.keyboard.type(email);
  await light.keyboard.press("Tab");
  await expect(light.getByLabel("Password", { exact: true })).toBeFocused();
  await light.keyboard.type(PW);
  await light.keyboard.press("Enter");
  await expect(light).toHaveURL(/\/account$/);
});

test("too many wrong passwords: the wait is shown", async ({ page }) => {
  const email = address("eve");
  await signUp(page, email);
  let message = "";
  for (let i = 0; i < 15; i++) {
    await signIn(page, email, `wrong password number ${i}`);
    const alert = errorAlert(page);
    await expect(alert).toBeVisible();
    message = (await alert.textContent()) ?? "";
    if (message.startsWith("Too many attempts")) break;
  }
  expect(message).toMatch(/^Too many attempts\. Try again in \d+ seconds?\.$/);
});

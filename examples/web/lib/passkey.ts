// The browser half of a passkey ceremony: Fafnir's options (binary fields in base64url) go to
// WebAuthn through the standard JSON helpers, and the answer comes back as JSON.

type Options = { publicKey: Record<string, unknown> };

export function passkeysSupported(): boolean {
  return (
    typeof window !== "undefined" &&
    typeof window.PublicKeyCredential !== "undefined" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

export async function getPasskey(options: unknown): Promise<unknown> {
  const o = options as Options;
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(
    o.publicKey as unknown as PublicKeyCredentialRequestOptionsJSON,
  );
  const cred = (await navigator.credentials.get({ publicKey })) as PublicKeyCredential | null;
  if (!cred) throw new Error("No passkey was chosen.");
  return cred.toJSON();
}

export async function createPasskey(options: unknown): Promise<unknown> {
  const o = options as Options;
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
    o.publicKey as unknown as PublicKeyCredentialCreationOptionsJSON,
  );
  const cred = (await navigator.credentials.create({ publicKey })) as PublicKeyCredential | null;
  if (!cred) throw new Error("No passkey was created.");
  return cred.toJSON();
}

// A real OpenID Provider on loopback for Fafnir's social login tests: oidc-provider with its
// development login and consent pages, driven by the tests' cookie-keeping HTTP client.
//
//   PORT=4010 OIDC_CLIENTS='[{"client_id":"…","client_secret":"…","redirect_uris":["…"]}]' node provider.mjs
//
// The login page takes any login: it is the subject, and the e-mail when it has an `@`
// (verified unless it starts with `unverified`). A test can make the provider misbehave, to
// check that Fafnir refuses what a broken or hostile provider sends:
//   POST /__test/mode  body: one of  ok | nonce | issuer | foreign-key | down
// `nonce`, `issuer`: ID tokens carry a wrong nonce / issuer, signed with the provider's real key;
// `foreign-key`: ID tokens are signed by another key under the real key's id; `down`: the token
// endpoint answers 503.
import Provider from 'oidc-provider';
import * as jose from 'jose';

const port = Number(process.env.PORT);
if (!port) throw new Error('PORT is required');
const issuer = `http://127.0.0.1:${port}`;
const clients = JSON.parse(process.env.OIDC_CLIENTS || '[]');

const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const signing = { ...(await jose.exportJWK(privateKey)), kid: 'test-key-1', alg: 'RS256', use: 'sig' };
const foreign = (await jose.generateKeyPair('RS256', { extractable: true })).privateKey;

const provider = new Provider(issuer, {
  clients: clients.map((c) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...c,
  })),
  jwks: { keys: [signing] },
  cookies: { keys: ['fafnir-test-only-cookie-key'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id };
        if (id.includes('@')) {
          claims.email = id;
          claims.email_verified = !id.startsWith('unverified');
        }
        return claims;
      },
    };
  },
});
provider.proxy = false;

let mode = 'ok';

async function resign(idToken) {
  const claims = jose.decodeJwt(idToken);
  if (mode === 'nonce') claims.nonce = 'not-the-nonce-fafnir-sent';
  if (mode === 'issuer') claims.iss = 'http://127.0.0.1:1';
  const key = mode === 'foreign-key' ? foreign : privateKey;
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signing.kid }).sign(key);
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/mode' && ctx.method === 'POST') {
    let body = '';
    for await (const chunk of ctx.req) body += chunk;
    mode = body.trim() || 'ok';
    ctx.body = { mode };
    return;
  }
  if (ctx.path === '/token' && mode === 'down') {
    ctx.status = 503;
    ctx.body = 'down for the test';
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.id_token && mode !== 'ok') {
    ctx.body = { ...ctx.body, id_token: await resign(ctx.body.id_token) };
  }
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ready at ${issuer}`);
});

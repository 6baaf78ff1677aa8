// A real OpenID provider (npm oidc-provider, a certified implementation) for Herald's OAuth2
// tests, started by tests/support/oidc.rs. It serves the authorization code flow with PKCE, the
// device authorization grant (RFC 8628), refresh-token rotation and RFC 7662 introspection
// (which Dovecot's oauth2 passdb calls). Only two things are ours: an interaction that signs the
// test user in and consents at once (or refuses, when told to), and a few /test/ endpoints the
// tests use to invalidate tokens and read how many tokens were issued.
//
// Environment: OIDC_ACCESS_TTL (seconds an access token lives, default 3600), OIDC_DEVICE_TTL
// (seconds a device code lives, default 600),
// OIDC_INTROSPECT_SECRET (the "dovecot" client's secret), OIDC_USER (the account signed in).
// Prints one line `{"port": N}` on stdout once it listens on 127.0.0.1.

import http from 'node:http';
import { Provider } from 'oidc-provider';

const accessTtl = Number(process.env.OIDC_ACCESS_TTL || 3600);
const deviceTtl = Number(process.env.OIDC_DEVICE_TTL || 600);
const introspectSecret = process.env.OIDC_INTROSPECT_SECRET || 'dovecot-secret';
const user = process.env.OIDC_USER || 'alice@example.test';

// Every stored object by model, so the tests can invalidate them (the shipped memory adapter
// is an LRU that cannot be enumerated).
const stores = new Map();
function store(model) {
  if (!stores.has(model)) stores.set(model, new Map());
  return stores.get(model);
}
const byUserCode = new Map();
const byUid = new Map();

class Adapter {
  constructor(model) { this.model = model; }
  async upsert(id, payload, expiresIn) {
    const expires = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
    store(this.model).set(id, { payload, expires });
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (payload.uid) byUid.set(payload.uid, id);
  }
  async find(id) {
    const found = store(this.model).get(id);
    if (!found || found.expires < Date.now()) return undefined;
    return found.payload;
  }
  async findByUserCode(userCode) { return this.find(byUserCode.get(userCode)); }
  async findByUid(uid) { return this.find(byUid.get(uid)); }
  async consume(id) {
    const found = store(this.model).get(id);
    if (found) found.payload.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { store(this.model).delete(id); }
  async revokeByGrantId(grantId) {
    for (const map of stores.values()) {
      for (const [id, { payload }] of map) if (payload.grantId === grantId) map.delete(id);
    }
  }
}

const issued = {};
let denyNext = false;
// The device grant's polls (RFC 8628 §3.4) as the provider answered them: when (ms) and the
// error code, or "issued". oidc-provider never answers slow_down itself; /test/slow-down-next
// makes the next poll get it (§3.5), as a provider that finds the client too eager would.
const devicePolls = [];
let slowDownNext = false;
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    adapter: Adapter,
    clients: [
      {
        client_id: 'herald-test',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/'],
        grant_types: [
          'authorization_code',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:device_code',
        ],
        response_types: ['code'],
      },
      {
        client_id: 'dovecot',
        client_secret: introspectSecret,
        grant_types: [],
        redirect_uris: [],
        response_types: [],
      },
    ],
    scopes: ['openid', 'offline_access', 'email', 'mail'],
    claims: { openid: ['sub'], email: ['email'] },
    features: {
      devInteractions: { enabled: false },
      deviceFlow: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
    },
    // Every grant of the test client gets a refresh token, rotated on each use.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    ttl: {
      AccessToken: accessTtl,
      AuthorizationCode: 120,
      DeviceCode: deviceTtl,
      Grant: 86400,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 86400,
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      claims: async () => ({ sub: id, email: id }),
    }),
    pkce: { required: () => true },
  });
  provider.proxy = false;

  provider.on('grant.success', (ctx) => {
    const type = ctx.oidc.params.grant_type;
    issued[type] = (issued[type] || 0) + 1;
  });

  provider.use(async (ctx, next) => {
    if (ctx.path.startsWith('/interaction/')) {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      let result;
      if (denyNext) {
        denyNext = false;
        result = { error: 'access_denied', error_description: 'The user said no' };
      } else if (details.prompt.name === 'login') {
        result = { login: { accountId: user } };
      } else {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
        const missing = details.prompt.details.missingOIDCScope;
        if (missing) grant.addOIDCScope(missing.join(' '));
        const claims = details.prompt.details.missingOIDCClaims;
        if (claims) grant.addOIDCClaims(claims);
        result = { consent: { grantId: await grant.save() } };
      }
      await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
      return;
    }
    if (ctx.path === '/token' && ctx.method === 'POST') {
      await next();
      const params = ctx.oidc && ctx.oidc.params;
      if (params && params.grant_type === DEVICE_GRANT) {
        let answer = ctx.status === 200 ? 'issued' : (ctx.body && ctx.body.error) || `HTTP ${ctx.status}`;
        if (slowDownNext && answer === 'authorization_pending') {
          slowDownNext = false;
          ctx.body = { error: 'slow_down', error_description: 'polling too fast' };
          answer = 'slow_down';
        }
        devicePolls.push({ at: Date.now(), answer });
      }
      return;
    }
    if (ctx.path.startsWith('/test/')) {
      ctx.type = 'application/json';
      if (ctx.path === '/test/issued') {
        ctx.body = JSON.stringify(issued);
      } else if (ctx.path === '/test/expire-access' && ctx.method === 'POST') {
        // Every access token stops being valid at once (what a provider's outage of keys, or a
        // user's "sign out everywhere", looks like to a mail server).
        const n = store('AccessToken').size;
        store('AccessToken').clear();
        ctx.body = JSON.stringify({ expired: n });
      } else if (ctx.path === '/test/revoke-grants' && ctx.method === 'POST') {
        // Consent withdrawn: refresh tokens, access tokens and grants are gone.
        for (const model of ['AccessToken', 'RefreshToken', 'Grant']) store(model).clear();
        ctx.body = JSON.stringify({ revoked: true });
      } else if (ctx.path === '/test/device-polls') {
        ctx.body = JSON.stringify(devicePolls);
      } else if (ctx.path === '/test/slow-down-next' && ctx.method === 'POST') {
        slowDownNext = true;
        ctx.body = JSON.stringify({ slowDown: true });
      } else if (ctx.path === '/test/deny-next' && ctx.method === 'POST') {
        denyNext = true;
        ctx.body = JSON.stringify({ deny: true });
      } else {
        ctx.status = 404;
      }
      return;
    }
    await next();
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

// A real OAuth 2.0 / OpenID server (node-oidc-provider) for Rotor's upstream
// end-to-end test. It seeds one client and one grant with a refresh token,
// prints {"port", "clientId", "clientSecret", "refreshToken"} as one JSON
// line, and serves until killed. Only 127.0.0.1.
import net from 'node:net';
import Provider from 'oidc-provider';

const clientId = 'rotor-e2e';
const clientSecret = 'e2e-secret-' + Math.random().toString(36).slice(2);

const port = await new Promise((resolve) => {
  const probe = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['authorization_code', 'refresh_token'],
    redirect_uris: ['https://rotor.test/callback'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
  features: {
    introspection: { enabled: true },
    devInteractions: { enabled: false },
  },
  scopes: ['openid', 'offline_access'],
  rotateRefreshToken: true,
  ttl: { AccessToken: 3600, RefreshToken: 86400, Grant: 86400, Session: 86400 },
});

const grant = new provider.Grant({ accountId: 'user-1', clientId });
grant.addOIDCScope('openid offline_access');
const grantId = await grant.save();
const client = await provider.Client.find(clientId);
const refresh = new provider.RefreshToken({
  accountId: 'user-1',
  client,
  grantId,
  scope: 'openid offline_access',
  gty: 'authorization_code',
  authTime: Math.floor(Date.now() / 1000),
  iiat: Math.floor(Date.now() / 1000),
  rotations: 0,
});
const refreshToken = await refresh.save();

provider.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ port, clientId, clientSecret, refreshToken }));
});

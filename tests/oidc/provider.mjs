// A real OpenID provider for keycard's interop tests: panva's oidc-provider
// (OpenID Certified), issuing RFC 9068 JWT access tokens through the
// client-credentials grant with resource indicators (RFC 8707).
//
//   node provider.mjs <port>
//
// Prints "ready <issuer> <kids>" once listening. Each resource (audience)
// signs with one algorithm: https://api.test/rs256, /ps256, /es256,
// /ed25519; https://api.test/short signs RS256 tokens living 2 s. The RSA
// key is published without "alg" (RFC 7517 §4.4) and serves RS256 and
// PS256, as real providers do. A line "rotate" on stdin restarts the
// provider on the same port with new keys first and the old ones kept for
// verification, then prints "ready" again.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;

const ALGS = { rs256: 'RS256', ps256: 'PS256', es256: 'ES256', ed25519: 'Ed25519', short: 'RS256' };

async function keyset(generation) {
  const out = [];
  for (const [alg, opts] of [['RS256', { modulusLength: 2048 }], ['ES256', {}], ['Ed25519', {}]]) {
    const { privateKey } = await generateKeyPair(alg, { ...opts, extractable: true });
    const jwk = await exportJWK(privateKey);
    jwk.kid = `${alg.toLowerCase()}-${generation}`;
    jwk.use = 'sig';
    // No "alg" on the RSA key: it serves RS256 and PS256.
    if (alg !== 'RS256') jwk.alg = alg;
    out.push(jwk);
  }
  return out;
}

function configuration(keys) {
  return {
    clients: [{
      client_id: 'interop',
      client_secret: 'interop-secret-0123456789',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          const name = resource.replace('https://api.test/', '');
          const alg = ALGS[name];
          if (!alg) throw new Error(`unknown resource ${resource}`);
          return {
            scope: 'orders:read orders:write',
            audience: resource,
            accessTokenFormat: 'jwt',
            accessTokenTTL: name === 'short' ? 2 : 300,
            jwt: { sign: { alg } },
          };
        },
      },
    },
    enabledJWA: {
      clientCredentialsSigningAlgValues: undefined,
    },
  };
}

let generation = 1;
let keys = await keyset(generation);
let server;

async function start() {
  const conf = configuration(keys);
  delete conf.enabledJWA;
  const provider = new Provider(issuer, conf);
  provider.proxy = false;
  server = createServer(provider.callback());
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  console.log(`ready ${issuer} ${keys.map((k) => k.kid).join(',')}`);
}

await start();

createInterface({ input: process.stdin }).on('line', async (line) => {
  if (line.trim() !== 'rotate') return;
  generation += 1;
  const fresh = await keyset(generation);
  // New keys first (they sign), the previous ones kept for verification.
  keys = [...fresh, ...keys.slice(0, 3)];
  await new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve); });
  await start();
});
process.stdin.on('end', () => process.exit(0));

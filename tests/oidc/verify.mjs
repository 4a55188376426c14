// An independent verifier (panva's jose) for keycard's tokens and JWKS.
//
//   node verify.mjs <jwks-url> <issuer> <audience> <token>
//
// Verifies the token strictly as an RFC 9068 access token (typ at+jwt and
// every required claim, client_id included) with the keys fetched from the
// JWKS URL, and prints the claims as JSON, or "refused: <reason>" with
// exit status 1.
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [jwksUrl, issuer, audience, token] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, {
    issuer,
    audience,
    typ: 'at+jwt',
    requiredClaims: ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'],
  });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (e) {
  console.log(`refused: ${e.code ?? ''} ${e.message}`);
  process.exit(1);
}

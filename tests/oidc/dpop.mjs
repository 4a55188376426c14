// DPoP proofs made by an independent JOSE library (panva's jose), for
// keycard's DPoP verifier.
//
//   node dpop.mjs keygen <alg>
//     prints {"private": <JWK>, "public": <JWK>, "jkt": <RFC 7638 thumbprint>}
//   node dpop.mjs proof <private-jwk-json> <alg> <htm> <htu> <ath> [nonce]
//     prints a DPoP proof (typ dpop+jwt, the public jwk in the header)
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK } from 'jose';
import { randomUUID } from 'node:crypto';

const [command, ...args] = process.argv.slice(2);
if (command === 'keygen') {
  const [alg] = args;
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const priv = await exportJWK(privateKey);
  const pub = await exportJWK(publicKey);
  console.log(JSON.stringify({ private: priv, public: pub, jkt: await calculateJwkThumbprint(pub) }));
} else if (command === 'proof') {
  const [privJson, alg, htm, htu, ath, nonce] = args;
  const priv = JSON.parse(privJson);
  const { d, p, q, dp, dq, qi, ...pub } = priv;
  const key = await importJWK(priv, alg);
  const claims = { htm, htu, ath };
  if (nonce) claims.nonce = nonce;
  const proof = await new SignJWT(claims)
    .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk: pub })
    .setIssuedAt()
    .setJti(randomUUID())
    .sign(key);
  console.log(proof);
} else {
  console.error('usage: dpop.mjs keygen <alg> | proof <jwk> <alg> <htm> <htu> <ath> [nonce]');
  process.exit(2);
}

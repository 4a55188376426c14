//! Tokens, keys and verifiers shared by the benches: the same token and key
//! for keycard and for raw `jsonwebtoken::decode`.
#![allow(dead_code, missing_debug_implementations)]

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keycard::{Key, SigningKey, TokenIssuer, TokenType, Verifier};

#[path = "support/floor.rs"]
pub(crate) mod floor;

pub(crate) const ISS: &str = "https://bench.test";
pub(crate) const AUD: &str = "api";

#[derive(serde::Deserialize)]
pub(crate) struct MyClaims {
    pub(crate) sub: String,
    pub(crate) roles: Vec<String>,
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    /// The ideal floor (HS256 only).
    pub(crate) floor: Option<floor::Floor>,
    pub(crate) token: String,
    pub(crate) headers: HeaderMap,
    pub(crate) verifier: Verifier,
    pub(crate) cached: Verifier,
    pub(crate) issuer: TokenIssuer,
    pub(crate) raw_key: DecodingKey,
    pub(crate) raw_validation: Validation,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub(crate) fn cases() -> Vec<Case> {
    let secret = b"benchmark-secret-benchmark-secret-0123";
    let defs: Vec<(&'static str, Algorithm, SigningKey, Key, DecodingKey)> = vec![
        (
            "HS256",
            Algorithm::HS256,
            SigningKey::hs256(secret).unwrap(),
            Key::hs256(secret).unwrap(),
            DecodingKey::from_secret(secret),
        ),
        (
            "RS256",
            Algorithm::RS256,
            SigningKey::from_pem(Algorithm::RS256, fixture("rsa2048.pem")).unwrap(),
            Key::from_pem(Algorithm::RS256, fixture("rsa2048.pub.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&fixture("rsa2048.pub.pem")).unwrap(),
        ),
        (
            "PS256",
            Algorithm::PS256,
            SigningKey::from_pem(Algorithm::PS256, fixture("rsa2048.pem")).unwrap(),
            Key::from_pem(Algorithm::PS256, fixture("rsa2048.pub.pem")).unwrap(),
            DecodingKey::from_rsa_pem(&fixture("rsa2048.pub.pem")).unwrap(),
        ),
        (
            "ES256",
            Algorithm::ES256,
            SigningKey::from_pem(Algorithm::ES256, fixture("p256.pem")).unwrap(),
            Key::from_pem(Algorithm::ES256, fixture("p256.pub.pem")).unwrap(),
            DecodingKey::from_ec_pem(&fixture("p256.pub.pem")).unwrap(),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            SigningKey::from_pem(Algorithm::EdDSA, fixture("ed25519.pem")).unwrap(),
            Key::from_pem(Algorithm::EdDSA, fixture("ed25519.pub.pem")).unwrap(),
            DecodingKey::from_ed_pem(&fixture("ed25519.pub.pem")).unwrap(),
        ),
    ];
    defs.into_iter()
        .map(|(name, alg, sk, pk, raw_key)| {
            let issuer = TokenIssuer::builder(sk)
                .issuer(ISS)
                .audience(AUD)
                .build()
                .unwrap();
            let token = issuer
                .issue(
                    TokenType::Access,
                    "alice",
                    None,
                    &serde_json::json!({"roles": ["user", "admin"]}),
                )
                .unwrap()
                .token;
            let mut headers = HeaderMap::new();
            headers.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
            let verifier = Verifier::builder()
                .key(pk.clone())
                .issuer(ISS)
                .audience(AUD)
                .build()
                .unwrap();
            let cached = Verifier::builder()
                .key(pk)
                .issuer(ISS)
                .audience(AUD)
                .cache_verified_tokens(10_000)
                .build()
                .unwrap();
            let mut raw_validation = Validation::new(alg);
            raw_validation.set_audience(&[AUD]);
            raw_validation.set_issuer(&[ISS]);
            Case {
                floor: (name == "HS256").then(|| floor::Floor::new(secret, ISS, AUD)),
                name,
                token,
                headers,
                verifier,
                cached,
                issuer,
                raw_key,
                raw_validation,
            }
        })
        .collect()
}

/// keycard's whole path: headers → verified token → the user's claims type.
pub(crate) fn keycard_verify(c: &Case) -> MyClaims {
    match c.verifier.authenticate_now("GET", &c.headers) {
        keycard::Attempt::Done(Ok(v)) => v.claims::<MyClaims>().unwrap(),
        _ => panic!("bench token did not verify"),
    }
}

/// keycard's whole path in typed mode: the user's claims type comes out of
/// the walk that checks the payload (what `JwtAuth::claims::<T>()` does).
pub(crate) fn keycard_verify_typed(c: &Case) -> MyClaims {
    match c
        .verifier
        .authenticate_now_typed::<MyClaims, _>("GET", None, &c.headers)
    {
        (keycard::Attempt::Done(Ok(_)), Some(claims)) => claims,
        _ => panic!("bench token did not verify in one walk"),
    }
}

/// keycard's path up to the verified token (without the user's type).
pub(crate) fn keycard_verified(c: &Case) -> keycard::Verified {
    match c.verifier.authenticate_now("GET", &c.headers) {
        keycard::Attempt::Done(Ok(v)) => v,
        _ => panic!("bench token did not verify"),
    }
}

/// The same with the verified-token cache on (the token repeats).
pub(crate) fn keycard_verify_cached(c: &Case) -> MyClaims {
    match c.cached.authenticate_now("GET", &c.headers) {
        keycard::Attempt::Done(Ok(v)) => v.claims::<MyClaims>().unwrap(),
        _ => panic!("bench token did not verify"),
    }
}

/// Raw `jsonwebtoken::decode` of the same token with a prepared key.
pub(crate) fn raw_decode(c: &Case) -> MyClaims {
    jsonwebtoken::decode::<MyClaims>(&c.token, &c.raw_key, &c.raw_validation)
        .unwrap()
        .claims
}

/// The ideal floor's whole path: the same headers, the handler's struct.
pub(crate) fn floor_verify(c: &Case) -> floor::FloorClaims {
    let floor = c.floor.as_ref().expect("the floor is HS256 only");
    let token = c.headers["authorization"]
        .to_str()
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap();
    floor.verify(token).expect("bench token did not verify")
}

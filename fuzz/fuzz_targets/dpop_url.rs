//! The URL a DPoP proof must name, on arbitrary bytes: the proof's `htu`,
//! the request's `Host` and `X-Forwarded-Host`, and its path, split from
//! the input at 0xFF bytes. The proof is signed by the token's own key, so
//! every input reaches the URL comparison. Never a panic; and a proof is
//! accepted only when its `htu` names the request's own host and path.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use jsonwebtoken::{EncodingKey, Header};
use keycard_core::dpop::{access_token_hash, thumbprint, DpopConfig, DpopPolicy};
use keycard_core::{Algorithm, Attempt, Key, SigningKey, TokenIssuer, Verifier};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

const SECRET: [u8; 32] = [9u8; 32];
const PEM: &[u8] = include_bytes!("../../tests/fixtures/p256.pem");

struct Setup {
    by_host: Verifier,
    forwarded: Verifier,
    token: String,
    encoding: EncodingKey,
    jwk: Map<String, Value>,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        keycard_core::ensure_crypto_backend().unwrap();
        let signing = SigningKey::from_pem(Algorithm::ES256, PEM).unwrap();
        let mut jwk = serde_json::to_value(signing.verification_key().to_public_jwk().unwrap())
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        for k in ["kid", "alg", "use", "key_ops"] {
            jwk.remove(k);
        }
        let build = |forwarded: bool| {
            let b = Verifier::builder()
                .key(Key::hs256(SECRET).unwrap())
                .audience("api");
            let b = if forwarded {
                b.trust_forwarded_origin()
            } else {
                b
            };
            b.dpop(DpopConfig::new(DpopPolicy::Allowed).replay_capacity(10_000_000, 10_000_000))
                .build()
                .unwrap()
        };
        let token = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
            .issue_bound("alice", None, &json!({}), &thumbprint(&jwk).unwrap())
            .unwrap()
            .token;
        Setup {
            by_host: build(false),
            forwarded: build(true),
            token,
            encoding: EncodingKey::from_ec_pem(PEM).unwrap(),
            jwk,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let mut parts = data.splitn(4, |b| *b == 0xFF);
    let htu = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let host = parts.next().unwrap_or_default();
    let forwarded_host = parts.next();
    let path = String::from_utf8_lossy(parts.next().unwrap_or(b"/")).into_owned();

    let mut h = Header::new(Algorithm::ES256);
    h.typ = Some("dpop+jwt".into());
    h.jwk = Some(serde_json::from_value(Value::Object(s.jwk.clone())).unwrap());
    let claims = json!({
        "jti": keycard_core::random_id(), "htm": "GET", "htu": htu,
        "iat": keycard_core::unix_now(), "ath": access_token_hash(&s.token),
    });
    let proof = jsonwebtoken::encode(&h, &claims, &s.encoding).unwrap();

    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("DPoP {}", s.token)).unwrap(),
    );
    headers.insert("dpop", HeaderValue::from_str(&proof).unwrap());
    let Ok(host_value) = HeaderValue::from_bytes(host) else {
        return;
    };
    headers.insert("host", host_value);
    let (verifier, named_host) = match forwarded_host.map(HeaderValue::from_bytes) {
        Some(Ok(v)) => {
            headers.insert("x-forwarded-host", v);
            (&s.forwarded, forwarded_host.unwrap_or_default())
        }
        _ => (&s.by_host, host),
    };
    if let Attempt::Done(Ok(_)) = verifier.authenticate_now_at("GET", Some(&path), &headers) {
        // Accepted: the host the URL was built from is a plain authority,
        // and the proof names it (case aside) and the path's first byte.
        // Leading and trailing whitespace is not part of a field value.
        let named = String::from_utf8_lossy(named_host)
            .trim_matches([' ', '\t'])
            .to_ascii_lowercase();
        assert!(
            !named.is_empty()
                && named
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~[]:".contains(&b)),
            "accepted with Host {named:?}"
        );
        let lower = htu.to_ascii_lowercase();
        let host_only = named
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with(']'))
            .map_or(named.as_str(), |(h, _)| h);
        assert!(lower.contains(host_only), "htu {htu:?} for Host {named:?}");
        assert!(path.starts_with('/'), "path {path:?}");
    }
});

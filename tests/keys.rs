//! Keys and algorithms: pinned algorithms, key strength at build time,
//! rotation by kid, algorithm confusion, and the RFC 7515 A.1 vector.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keycard::{AuthErrorKind, ConfigError, Key, SigningKey, TokenIssuer, TokenType, Verifier};
use serde_json::json;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn kind(v: &Verifier, token: &str) -> Result<(), AuthErrorKind> {
    block(v.verify(token)).map(|_| ()).map_err(|e| e.kind())
}

fn issuer_for(key: SigningKey) -> TokenIssuer {
    TokenIssuer::builder(key)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap()
}

#[test]
fn every_asymmetric_algorithm_round_trips_and_is_pinned() {
    let cases = [
        (Algorithm::RS256, "rsa2048"),
        (Algorithm::RS384, "rsa2048"),
        (Algorithm::RS512, "rsa2048"),
        (Algorithm::PS256, "rsa2048"),
        (Algorithm::PS384, "rsa2048"),
        (Algorithm::PS512, "rsa2048"),
        (Algorithm::ES256, "p256"),
        (Algorithm::ES384, "p384"),
        (Algorithm::EdDSA, "ed25519"),
    ];
    for (alg, file) in cases {
        let sk = SigningKey::from_pem(alg, fixture(&format!("{file}.pem"))).unwrap();
        let issuer = issuer_for(sk);
        let token = issuer
            .issue(TokenType::Access, "alice", None, &json!({}))
            .unwrap()
            .token;
        let pk = Key::from_pem(alg, fixture(&format!("{file}.pub.pem"))).unwrap();
        let v = Verifier::builder()
            .key(pk)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .unwrap();
        assert_eq!(kind(&v, &token), Ok(()), "{alg:?}");
        // The same key pinned to another algorithm of its family refuses it.
        let other = match alg {
            Algorithm::RS256 => Algorithm::PS256,
            Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA => continue,
            _ => Algorithm::RS256,
        };
        let pinned = Key::from_pem(other, fixture(&format!("{file}.pub.pem"))).unwrap();
        let v = Verifier::builder()
            .key(pinned)
            .issuer(ISS)
            .audience(AUD)
            .build()
            .unwrap();
        assert_eq!(
            kind(&v, &token),
            Err(AuthErrorKind::UnknownKey),
            "{alg:?} as {other:?}"
        );
    }
}

#[test]
fn weak_and_mismatched_keys_are_config_errors() {
    assert!(matches!(
        Key::from_pem(Algorithm::RS256, fixture("rsa1024.pub.pem")),
        Err(ConfigError::WeakRsaKey(1024))
    ));
    // aws-lc-rs refuses to even load a 1024-bit private key; either way it
    // is a configuration error, never a working signer.
    assert!(matches!(
        SigningKey::from_pem(Algorithm::RS256, fixture("rsa1024.pem")),
        Err(ConfigError::WeakRsaKey(1024) | ConfigError::InvalidKey(_))
    ));
    assert!(Key::from_pem(Algorithm::ES256, fixture("p384.pub.pem")).is_err());
    assert!(Key::from_pem(Algorithm::ES384, fixture("p256.pub.pem")).is_err());
    assert!(Key::from_pem(Algorithm::RS256, fixture("p256.pub.pem")).is_err());
    assert!(Key::from_pem(Algorithm::EdDSA, fixture("rsa2048.pub.pem")).is_err());
    assert!(matches!(
        Key::hs256(b"short"),
        Err(ConfigError::WeakSecret { .. })
    ));
    assert!(matches!(
        SigningKey::hs256(b"short"),
        Err(ConfigError::WeakSecret { .. })
    ));
    assert!(matches!(
        Verifier::builder().build(),
        Err(ConfigError::NoKey)
    ));
    assert!(Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .leeway(std::time::Duration::from_secs(3600))
        .build()
        .is_err());
}

#[test]
fn algorithm_confusion_rsa_public_key_as_hmac_secret() {
    // The classic attack: sign HS256 with the verifier's RSA public key.
    let pem = fixture("rsa2048.pub.pem");
    let v = Verifier::builder()
        .key(Key::from_pem(Algorithm::RS256, &pem).unwrap())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    let forged = jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(&pem)).unwrap();
    assert_eq!(kind(&v, &forged), Err(AuthErrorKind::UnknownKey));
}

#[test]
fn rotation_by_kid() {
    let old = SigningKey::from_pem(Algorithm::ES256, fixture("p256.pem"))
        .unwrap()
        .with_kid("2026-01");
    let new = SigningKey::from_pem(Algorithm::ES256, fixture("p256b.pem"))
        .unwrap()
        .with_kid("2026-02");
    let v = Verifier::builder()
        .key(old.verification_key())
        .key(new.verification_key())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let t_old = issuer_for(old.clone())
        .issue(TokenType::Access, "a", None, &json!({}))
        .unwrap()
        .token;
    let t_new = issuer_for(new)
        .issue(TokenType::Access, "a", None, &json!({}))
        .unwrap()
        .token;
    assert_eq!(kind(&v, &t_old), Ok(()));
    assert_eq!(kind(&v, &t_new), Ok(()));
    let verified = block(v.verify(&t_new)).unwrap();
    assert_eq!(verified.kid(), Some("2026-02"));
    // A kid nobody knows.
    let stranger = issuer_for(old.with_kid("2026-99"))
        .issue(TokenType::Access, "a", None, &json!({}))
        .unwrap()
        .token;
    assert_eq!(kind(&v, &stranger), Err(AuthErrorKind::UnknownKey));
}

#[test]
fn rfc7515_appendix_a1_is_refused_as_invalid_token() {
    // RFC 7515 A.1: HS256 JWS, exp 1300819380 (2011), typ "JWT".
    let k =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    let secret =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, k).unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // Even with every other check relaxed, the expired token is refused.
    let v = Verifier::builder()
        .key(Key::hs256(&secret).unwrap())
        .insecure_accept_any_token_type()
        .insecure_unlimited_lifetime()
        .build()
        .unwrap();
    let err = block(v.verify(token)).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Expired);
    assert_eq!(err.status(), 401);
    assert!(err
        .www_authenticate()
        .unwrap()
        .contains("error=\"invalid_token\""));
    // The signature itself is good: the same token with the wrong key fails
    // on the signature instead.
    let wrong = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .insecure_accept_any_token_type()
        .build()
        .unwrap();
    assert_eq!(kind(&wrong, token), Err(AuthErrorKind::BadSignature));
}

#[test]
fn leeway_applies_to_exp_and_nbf() {
    let n = now();
    let mut c = claims();
    c["exp"] = json!(n - 10);
    let v = verifier(); // default leeway 30 s
    assert_eq!(kind(&v, &at(&c)), Ok(()));
    c["exp"] = json!(n - 40);
    assert_eq!(kind(&v, &at(&c)), Err(AuthErrorKind::Expired));
    let strict = verifier_builder()
        .leeway(std::time::Duration::ZERO)
        .build()
        .unwrap();
    c["exp"] = json!(n - 2);
    assert_eq!(kind(&strict, &at(&c)), Err(AuthErrorKind::Expired));
}

#[test]
fn audience_present_but_not_configured_is_refused_unless_opted_out() {
    let no_aud = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        kind(&no_aud, &at(&claims())),
        Err(AuthErrorKind::WrongAudience)
    );
    let ignoring = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .insecure_ignore_audience()
        .build()
        .unwrap();
    assert_eq!(kind(&ignoring, &at(&claims())), Ok(()));
}

#[test]
fn claims_of_the_wrong_shape_are_invalid_token() {
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Mine {
        tenant: u32,
    }
    let v = verifier();
    let verified = block(v.verify(&at(&claims()))).unwrap();
    let err = verified.claims::<Mine>().unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidClaimType);
    assert_eq!(err.status(), 401);
}

#[test]
fn role_claims_at_nested_paths() {
    let v = verifier_builder()
        .role_claim("realm_access.roles")
        .build()
        .unwrap();
    let mut c = claims();
    c["realm_access"] = json!({"roles": ["ops"]});
    let verified = block(v.verify(&at(&c))).unwrap();
    assert!(verified.has_role("ops"));
    let scoped = verifier_builder().role_claim("scope").build().unwrap();
    c["scope"] = json!("read write");
    assert_eq!(
        block(scoped.verify(&at(&c))).unwrap().roles(),
        ["read", "write"]
    );
}

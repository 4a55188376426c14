//! Feature unification: keycard's aws-lc-rs backend next to jsonwebtoken's
//! `rust_crypto`. On 496403a, `Key::from_pem(RS256, ..)` panicked here with
//! "Could not automatically determine the process-level CryptoProvider".

use keycard_core::{Algorithm, Key, SigningKey, TokenIssuer, TokenType, Verifier};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

#[test]
fn both_backends_enabled_never_panic_and_verify() {
    // The first thing an application does: load a public key.
    let key = Key::from_pem(Algorithm::RS256, fixture("rsa2048.pub.pem")).unwrap();
    let signing = SigningKey::from_pem(Algorithm::RS256, fixture("rsa2048.pem")).unwrap();
    let token = TokenIssuer::builder(signing)
        .build()
        .unwrap()
        .issue(TokenType::Access, "alice", None, &serde_json::json!({}))
        .unwrap()
        .token;
    let verifier = Verifier::builder().key(key).build().unwrap();
    let rt = tokio_free_block_on(verifier.verify(&token));
    assert_eq!(rt.unwrap().subject(), Some("alice"));
    // jsonwebtoken used directly afterwards works too (the provider keycard
    // installed is process-wide).
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
        &jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    );
    assert!(hs.is_ok());
}

fn tokio_free_block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("verification with fixed keys never waits"),
    }
}

//! The verified-token cache keeps every safety check on a hit.

use std::sync::Arc;
use std::time::Duration;

use keycard_core::{
    Algorithm, AuthErrorKind, InMemoryRevocationStore, KeyRing, RevocationStore, SigningKey,
    TokenIssuer, TokenType, Verifier,
};
use serde_json::json;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");

fn key(file: &str, kid: &str) -> SigningKey {
    SigningKey::from_pem(
        Algorithm::ES256,
        std::fs::read(format!("{FIX}{file}")).unwrap(),
    )
    .unwrap()
    .with_kid(kid)
}

fn issuer(ring: Arc<KeyRing>, ttl: u64) -> TokenIssuer {
    TokenIssuer::builder_with_ring(ring)
        .audience("api")
        .access_ttl(Duration::from_secs(ttl))
        .build()
        .unwrap()
}

fn mint(i: &TokenIssuer, jti: &str) -> String {
    i.issue_with(
        TokenType::Access,
        "alice",
        Some("s1"),
        &json!({}),
        Some(jti),
        None,
    )
    .unwrap()
    .token
}

#[tokio::test]
async fn hits_still_check_expiry_revocation_and_exact_bytes() {
    let ring = Arc::new(KeyRing::new(key("p256.pem", "k1")));
    let store: Arc<InMemoryRevocationStore> = Arc::new(InMemoryRevocationStore::new());
    let v = Verifier::builder()
        .key_provider(ring.clone())
        .audience("api")
        .leeway(Duration::ZERO)
        .revocation(store.clone())
        .cache_verified_tokens(100)
        .build()
        .unwrap();
    let short = issuer(ring.clone(), 2);
    let a = mint(&short, "a");
    let b = mint(&short, "b");
    assert!(v.verify(&a).await.is_ok());
    assert!(v.verify(&b).await.is_ok());
    assert_eq!(v.cached_tokens(), 2);
    assert!(v.verify(&a).await.is_ok(), "a hit");

    // Revocation is checked on a hit.
    store
        .revoke_token("a", keycard_core::unix_now() + 60)
        .await
        .unwrap();
    assert_eq!(
        v.verify(&a).await.unwrap_err().kind(),
        AuthErrorKind::Revoked
    );

    // A token differing in one byte is never served from the cache.
    let mut t = b.clone().into_bytes();
    let last = t.len() - 2;
    t[last] = if t[last] == b'A' { b'B' } else { b'A' };
    assert!(v.verify(std::str::from_utf8(&t).unwrap()).await.is_err());

    // Expiry is checked on a hit.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        v.verify(&b).await.unwrap_err().kind(),
        AuthErrorKind::Expired
    );
}

#[tokio::test]
async fn entries_die_with_their_key_and_the_cache_is_bounded() {
    let ring = Arc::new(KeyRing::new(key("p256.pem", "k1")));
    let v = Verifier::builder()
        .key_provider(ring.clone())
        .audience("api")
        .cache_verified_tokens(10)
        .build()
        .unwrap();
    let i = issuer(ring.clone(), 600);
    let old = mint(&i, "old");
    assert!(v.verify(&old).await.is_ok());
    ring.rotate_immediately(key("p256b.pem", "k2")).unwrap();
    assert!(v.verify(&old).await.is_ok(), "retired keys verify on");
    assert!(ring.withdraw("k1"));
    assert_eq!(
        v.verify(&old).await.unwrap_err().kind(),
        AuthErrorKind::UnknownKey,
        "the key left the set"
    );

    for n in 0..50 {
        assert!(v.verify(&mint(&i, &format!("t{n}"))).await.is_ok());
    }
    assert!(v.cached_tokens() <= 10, "{} entries", v.cached_tokens());
}

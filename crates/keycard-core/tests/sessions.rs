//! Sessions: rotation, reuse detection, logout, absolute lifetime, and
//! fail-closed behaviour when a store cannot answer.

use std::sync::Arc;
use std::time::Duration;

use keycard_core::{
    AuthErrorKind, BoxFuture, InMemoryRefreshStore, RevocationStore, SessionError, Sessions,
    SigningKey, StoreError, TokenFacts, TokenIssuer,
};
use serde_json::json;

const SECRET: &[u8] = b"sessions-test-secret-0123456789abcdef!!";

fn issuer() -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .issuer("auth")
        .audience("api")
        .build()
        .unwrap()
}

fn sessions() -> Sessions {
    Sessions::in_memory(issuer()).unwrap()
}

#[tokio::test]
async fn rotation_then_reuse_revokes_the_family() {
    let s = sessions();
    let first = s.login("alice", &json!({"roles": ["user"]})).await.unwrap();
    let second = s.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(s.verifier().verify(&second.access_token).await.is_ok());
    // Claims carry over to the new access token.
    let v = s.verifier().verify(&second.access_token).await.unwrap();
    assert_eq!(v.roles(), ["user"]);

    // The first refresh token is spent: presenting it again is theft.
    assert!(matches!(
        s.refresh(&first.refresh_token).await,
        Err(SessionError::ReuseDetected)
    ));
    // The newest refresh token dies with the family...
    assert!(matches!(
        s.refresh(&second.refresh_token).await,
        Err(SessionError::InvalidGrant(_))
    ));
    // ...and so do the family's outstanding access tokens.
    let err = s.verifier().verify(&second.access_token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Revoked);
    assert_eq!(
        s.verifier()
            .verify(&first.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refreshes_with_one_token_yield_exactly_one_success() {
    let s = sessions();
    let pair = s.login("alice", &json!({})).await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let s = s.clone();
            let t = pair.refresh_token.clone();
            tokio::spawn(async move { s.refresh(&t).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn logout_ends_one_session_only() {
    let s = sessions();
    let laptop = s.login("alice", &json!({})).await.unwrap();
    let phone = s.login("alice", &json!({})).await.unwrap();
    let v = s.verifier().verify(&laptop.access_token).await.unwrap();
    s.logout(&v).await.unwrap();
    assert_eq!(
        s.verifier()
            .verify(&laptop.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
    assert!(s.refresh(&laptop.refresh_token).await.is_err());
    assert!(s.verifier().verify(&phone.access_token).await.is_ok());
    assert!(s.refresh(&phone.refresh_token).await.is_ok());
}

#[tokio::test]
async fn logout_everywhere_revokes_every_session_of_the_subject() {
    let s = sessions();
    let a = s.login("alice", &json!({})).await.unwrap();
    let b = s.login("bob", &json!({})).await.unwrap();
    s.logout_everywhere("alice").await.unwrap();
    assert!(s.verifier().verify(&a.access_token).await.is_err());
    assert!(s.refresh(&a.refresh_token).await.is_err());
    assert!(s.verifier().verify(&b.access_token).await.is_ok());
}

#[tokio::test]
async fn wrong_token_types_are_invalid_grants() {
    let s = sessions();
    let pair = s.login("alice", &json!({})).await.unwrap();
    assert!(matches!(
        s.refresh(&pair.access_token).await,
        Err(SessionError::InvalidGrant(_))
    ));
    assert!(matches!(
        s.refresh("garbage").await,
        Err(SessionError::InvalidGrant(_))
    ));
    // A refresh token is never an access token.
    assert_eq!(
        s.verifier()
            .verify(&pair.refresh_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::WrongTokenType
    );
}

#[tokio::test]
async fn the_absolute_session_lifetime_stops_refresh() {
    let issuer = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .audience("api")
        .session_ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let s = Sessions::in_memory(issuer).unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    assert!(
        pair.refresh_expires_in <= 1,
        "refresh token capped at the session end"
    );
    // A rotated refresh token keeps the cap: rotation never extends a session.
    let next = s.refresh(&pair.refresh_token).await.unwrap();
    assert!(
        next.refresh_expires_in <= 1,
        "rotation extended the session"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(matches!(
        s.refresh(&next.refresh_token).await,
        Err(SessionError::InvalidGrant(_))
    ));
}

/// A revocation store whose backend is down: every call fails.
#[derive(Debug)]
struct DownStore;

impl RevocationStore for DownStore {
    fn is_revoked(&self, _: &TokenFacts<'_>) -> Result<bool, StoreError> {
        Err(StoreError::Unavailable("down".into()))
    }
    fn revoke_token<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn revoke_session<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn revoke_subject<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
}

#[tokio::test]
async fn a_dead_store_fails_closed_and_never_acknowledges_a_logout() {
    let down: Arc<dyn RevocationStore> = Arc::new(DownStore);
    let s = Sessions::builder(issuer())
        .revocation_store(down.clone())
        .refresh_store(Arc::new(InMemoryRefreshStore::new()))
        .build()
        .unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    let err = s.verifier().verify(&pair.access_token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::StoreUnavailable);
    assert_eq!(err.status(), 503);
    assert!(matches!(
        s.refresh(&pair.refresh_token).await,
        Err(SessionError::Store(_))
    ));

    // Fail-open is an explicit opt-in.
    let open = issuer()
        .verifier()
        .revocation(down)
        .insecure_fail_open()
        .build()
        .unwrap();
    assert!(open.verify(&pair.access_token).await.is_ok());

    // A logout the store did not acknowledge is an error, not a success.
    let ok_sessions = sessions();
    let p = ok_sessions.login("alice", &json!({})).await.unwrap();
    let v = ok_sessions
        .verifier()
        .verify(&p.access_token)
        .await
        .unwrap();
    assert!(s.logout(&v).await.is_err());
}

#[cfg(feature = "aws-lc-rs")]
#[tokio::test]
async fn generated_keys_sign_and_verify() {
    for alg in [
        keycard_core::Algorithm::EdDSA,
        keycard_core::Algorithm::ES256,
        keycard_core::Algorithm::ES384,
    ] {
        let key = SigningKey::generate(alg).unwrap().with_kid("g");
        let issuer = TokenIssuer::builder(key.clone())
            .audience("api")
            .build()
            .unwrap();
        let t = issuer
            .issue(keycard_core::TokenType::Access, "a", None, &json!({}))
            .unwrap();
        assert!(
            issuer
                .verifier()
                .build()
                .unwrap()
                .verify(&t.token)
                .await
                .is_ok(),
            "{alg:?}"
        );
        let other = SigningKey::generate(alg).unwrap();
        assert_ne!(
            serde_json::to_string(&key.verification_key().to_public_jwk()).unwrap(),
            serde_json::to_string(&other.verification_key().to_public_jwk()).unwrap()
        );
    }
    assert!(SigningKey::generate(keycard_core::Algorithm::RS256).is_err());
}

//! One test per finding of the December audit that lives in the core (the
//! Redis, adapter and browser findings are tested next to those): each
//! failed on 496403a and passes now.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keycard_core::{
    AuthErrorKind, BoxFuture, Denylist, EntryKind, InMemoryRefreshStore, InMemoryRevocationStore,
    Key, KeySet, NewFamily, RefreshStore, RevocationEntry, RevocationStore, RotateRequest,
    Rotation, SessionError, Sessions, SigningKey, StoreError, TokenFacts, TokenIssuer, Verifier,
    REVOCATION_GRACE,
};
use serde_json::json;

const SECRET: &[u8] = b"hardening-test-secret-0123456789abcdef!";

fn issuer(access: u64, refresh: u64) -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .issuer("auth")
        .audience("api")
        .access_ttl(Duration::from_secs(access))
        .refresh_ttl(Duration::from_secs(refresh))
        .build()
        .unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../../tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn pem_key(alg: keycard_core::Algorithm, file: &str) -> SigningKey {
    SigningKey::from_pem(alg, fixture(file)).unwrap()
}

fn now() -> i64 {
    keycard_core::unix_now()
}

// ---- 2. A revoked token works again inside the leeway ----------------------

#[tokio::test]
async fn a_logged_out_token_is_refused_at_every_moment_up_to_exp_plus_leeway() {
    let leeway = 2;
    let s = Sessions::builder(issuer(3, 60))
        .configure_verifiers(move |b| b.leeway(Duration::from_secs(leeway)))
        .build()
        .unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    let v = s.verifier().verify(&pair.access_token).await.unwrap();
    let exp = v.registered().exp;
    s.logout(&v).await.unwrap();
    let mut checks = 0;
    while now() <= exp + leeway as i64 + 1 {
        let err = s.verifier().verify(&pair.access_token).await.unwrap_err();
        // Revoked while it could verify, expired after.
        if now() <= exp + leeway as i64 {
            assert_eq!(
                err.kind(),
                AuthErrorKind::Revoked,
                "at exp{:+}",
                now() - exp
            );
        }
        checks += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checks > 20);
}

#[test]
fn every_entry_outlives_the_largest_leeway() {
    let mut list = Denylist::new();
    let exp = 1_000;
    list.insert(&RevocationEntry::new(EntryKind::Token, "j", exp, 0));
    list.insert(&RevocationEntry::new(EntryKind::Session, "s", exp, 0));
    list.insert(&RevocationEntry::new(EntryKind::Subject, "u", exp, 900));
    let grace = REVOCATION_GRACE.as_secs() as i64;
    assert_eq!(grace, keycard_core::MAX_LEEWAY.as_secs() as i64);
    let facts = TokenFacts::new(exp).jti("j");
    let sid = TokenFacts::new(exp).sid("s");
    let sub = TokenFacts::new(exp).subject("u").iat(800);
    for at in [exp, exp + 1, exp + grace - 1, exp + grace] {
        assert!(
            list.contains(&facts, at) && list.contains(&sid, at) && list.contains(&sub, at),
            "at exp+{}",
            at - exp
        );
        assert!(!list.has_expired(at));
    }
    assert!(!list.contains(&facts, exp + grace + 1));
    assert!(list.has_expired(exp + grace + 1));
    list.prune(exp + grace + 1);
    assert!(list.is_empty());
}

#[tokio::test]
async fn logout_everywhere_holds_through_the_leeway_and_ends_every_family() {
    let leeway = 2;
    let shared_rev = Arc::new(InMemoryRevocationStore::new());
    let shared_refresh = Arc::new(InMemoryRefreshStore::new());
    let node = |skew: i64| {
        Sessions::builder(issuer(2, 3))
            .revocation_store(Arc::new(Skewed(shared_rev.clone(), skew)))
            .refresh_store(shared_refresh.clone())
            .configure_verifiers(move |b| b.leeway(Duration::from_secs(leeway)))
            .build()
            .unwrap()
    };
    // Node A's clock runs 2 s ahead: its tokens say iat = cutoff + 2.
    let (a, b) = (node(2), node(0));
    let ahead = a.login("alice", &json!({})).await.unwrap();
    let normal = b.login("alice", &json!({})).await.unwrap();
    b.logout_everywhere("alice").await.unwrap();
    // The families are gone, whatever their tokens' iat says.
    for pair in [&ahead, &normal] {
        assert!(matches!(
            b.refresh(&pair.refresh_token).await,
            Err(SessionError::InvalidGrant(_) | SessionError::ReuseDetected)
        ));
    }
    assert!(
        shared_refresh.is_empty(),
        "logout_everywhere left families behind"
    );
    // Their access tokens too, by session.
    assert_eq!(
        b.verifier()
            .verify(&ahead.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
    // The refresh token (3 s) stays refused through exp + leeway.
    let exp = b
        .refresh_verifier()
        .verify(&normal.refresh_token)
        .await
        .map_or_else(|_| now() + 3, |v| v.registered().exp);
    while now() <= exp + leeway as i64 + 1 {
        assert!(b.refresh(&normal.refresh_token).await.is_err());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A revocation store whose clock is off by `1` seconds (a node with a bad
/// clock sharing the real store).
#[derive(Debug)]
struct Skewed(Arc<InMemoryRevocationStore>, i64);

impl RevocationStore for Skewed {
    fn is_revoked(&self, t: &TokenFacts<'_>) -> Result<bool, StoreError> {
        self.0.is_revoked(t)
    }
    fn now(&self) -> i64 {
        now() + self.1
    }
    fn revoke_token<'a>(&'a self, j: &'a str, e: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.revoke_token(j, e)
    }
    fn revoke_session<'a>(&'a self, s: &'a str, e: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.revoke_session(s, e)
    }
    fn revoke_subject<'a>(
        &'a self,
        s: &'a str,
        c: i64,
        e: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.0.revoke_subject(s, c, e)
    }
}

// ---- 5. Reuse detection can lose its revocation ----------------------------

/// A revocation store whose session revocations fail while `failures` > 0
/// (READONLY, OOM, a full store).
#[derive(Debug)]
struct Flaky {
    inner: InMemoryRevocationStore,
    failures: AtomicUsize,
}

impl RevocationStore for Flaky {
    fn is_revoked(&self, t: &TokenFacts<'_>) -> Result<bool, StoreError> {
        self.inner.is_revoked(t)
    }
    fn revoke_token<'a>(&'a self, j: &'a str, e: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.revoke_token(j, e)
    }
    fn revoke_session<'a>(&'a self, s: &'a str, e: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(std::future::ready(Err(StoreError::Unavailable(
                "READONLY You can't write against a read only replica".into(),
            ))));
        }
        self.inner.revoke_session(s, e)
    }
    fn revoke_subject<'a>(
        &'a self,
        s: &'a str,
        c: i64,
        e: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.revoke_subject(s, c, e)
    }
}

#[tokio::test]
async fn a_reuse_whose_revocation_failed_is_finished_by_the_next_attempt() {
    let store = Arc::new(Flaky {
        inner: InMemoryRevocationStore::new(),
        failures: AtomicUsize::new(0),
    });
    let s = Sessions::builder(issuer(900, 3600))
        .revocation_store(store.clone())
        .build()
        .unwrap();
    let victim = s.login("alice", &json!({})).await.unwrap();
    // The thief rotates first.
    let thief = s.refresh(&victim.refresh_token).await.unwrap();
    // The victim's client presents the spent token: reuse. Revoking the
    // session fails once.
    store.failures.store(1, Ordering::SeqCst);
    let first = s.refresh(&victim.refresh_token).await;
    assert!(matches!(first, Err(SessionError::Store(_))), "{first:?}");
    // Every later attempt still reports the reuse and finishes the job.
    assert!(matches!(
        s.refresh(&victim.refresh_token).await,
        Err(SessionError::ReuseDetected)
    ));
    assert_eq!(
        s.verifier()
            .verify(&thief.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked,
        "the thief's access token outlived the reuse"
    );
    assert!(s.refresh(&thief.refresh_token).await.is_err());
}

// ---- 6. A lost rotate reply ends a legitimate session ----------------------

/// A refresh store whose first rotation commits but whose reply is lost.
#[derive(Debug, Default)]
struct LostReply {
    inner: InMemoryRefreshStore,
    lose: AtomicUsize,
}

impl RefreshStore for LostReply {
    fn start<'a>(&'a self, f: NewFamily<'a>) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.start(f)
    }
    fn rotate<'a>(&'a self, r: RotateRequest<'a>) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        Box::pin(async move {
            let committed = self.inner.rotate(r).await;
            if self
                .lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Unavailable(
                    "Redis did not answer in time".into(),
                ));
            }
            committed
        })
    }
    fn end<'a>(&'a self, sid: &'a str, until: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.end(sid, until)
    }
    fn end_subject<'a>(
        &'a self,
        sub: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.end_subject(sub, until)
    }
}

#[tokio::test]
async fn a_rotation_whose_reply_was_lost_is_never_reported_as_failed() {
    let store = Arc::new(LostReply::default());
    let s = Sessions::builder(issuer(900, 3600))
        .refresh_store(store.clone())
        .build()
        .unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    store.lose.store(1, Ordering::SeqCst);
    let next = s
        .refresh(&pair.refresh_token)
        .await
        .expect("the committed rotation");
    // The pair is the committed one: it works and rotates on.
    assert!(s.verifier().verify(&next.access_token).await.is_ok());
    let after = s.refresh(&next.refresh_token).await.unwrap();
    assert!(s.verifier().verify(&after.access_token).await.is_ok());
}

#[tokio::test]
async fn the_opt_in_grace_window_returns_the_same_successor() {
    let jti = |s: &Sessions, t: &str| {
        let v = futures_now(s.refresh_verifier().verify(t)).unwrap();
        v.registered().jti.clone().unwrap()
    };
    let on = Sessions::builder(issuer(900, 3600))
        .allow_refresh_token_reuse_within(Duration::from_secs(5))
        .build()
        .unwrap();
    let pair = on
        .login("alice", &json!({"roles": ["user"]}))
        .await
        .unwrap();
    let next = on.refresh(&pair.refresh_token).await.unwrap();
    // The client lost the answer and presents the old token again.
    let again = on
        .refresh(&pair.refresh_token)
        .await
        .expect("same successor");
    assert_eq!(
        jti(&on, &again.refresh_token),
        jti(&on, &next.refresh_token)
    );
    assert_eq!(
        again.refresh_token, next.refresh_token,
        "HS256 signs deterministically"
    );
    assert!(on.verifier().verify(&again.access_token).await.is_ok());
    // Once the successor itself rotated, the old token is plain reuse.
    let third = on.refresh(&next.refresh_token).await.unwrap();
    assert!(matches!(
        on.refresh(&pair.refresh_token).await,
        Err(SessionError::ReuseDetected)
    ));
    assert!(on.verifier().verify(&third.access_token).await.is_err());

    // Off (the default): presenting it again revokes, as before.
    let off = Sessions::in_memory(issuer(900, 3600)).unwrap();
    let pair = off.login("alice", &json!({})).await.unwrap();
    let next = off.refresh(&pair.refresh_token).await.unwrap();
    assert!(matches!(
        off.refresh(&pair.refresh_token).await,
        Err(SessionError::ReuseDetected)
    ));
    assert!(off.verifier().verify(&next.access_token).await.is_err());
    // The window is bounded.
    assert!(Sessions::builder(issuer(900, 3600))
        .allow_refresh_token_reuse_within(Duration::from_secs(61))
        .build()
        .is_err());
}

fn futures_now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("a local verification waited"),
    }
}

// ---- 7. In-memory stores: cheap to fill, expensive to write ---------------

#[tokio::test]
async fn full_stores_fail_closed_logout_frees_a_slot_and_one_account_cannot_fill_them() {
    let refresh = Arc::new(InMemoryRefreshStore::with_capacity(3));
    let s = Sessions::builder(issuer(900, 3600))
        .refresh_store(refresh.clone())
        .max_sessions_per_subject(2)
        .build()
        .unwrap();
    // One account logs in again and again: its oldest sessions end, the
    // store does not fill, and the ended sessions' tokens stop working.
    let first = s.login("mallory", &json!({})).await.unwrap();
    for _ in 0..5 {
        s.login("mallory", &json!({})).await.unwrap();
    }
    assert_eq!(refresh.len(), 2);
    assert_eq!(
        s.verifier()
            .verify(&first.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
    let alice = s.login("alice", &json!({})).await.unwrap();
    // Full: a clear failure (503), never a silently dropped session.
    let full = s.login("bob", &json!({})).await.unwrap_err();
    assert!(
        matches!(full, SessionError::Store(StoreError::Full(3))),
        "{full:?}"
    );
    assert_eq!(full.status(), 503);
    // Logout frees the slot at once.
    let v = s.verifier().verify(&alice.access_token).await.unwrap();
    s.logout(&v).await.unwrap();
    s.login("bob", &json!({})).await.unwrap();

    let rev = InMemoryRevocationStore::with_capacity(2);
    rev.revoke_token("a", now() + 60).await.unwrap();
    rev.revoke_token("b", now() + 60).await.unwrap();
    assert!(matches!(
        rev.revoke_token("c", now() + 60).await,
        Err(StoreError::Full(2))
    ));
    // Widening a known entry is not a new entry.
    rev.revoke_token("a", now() + 120).await.unwrap();
}

// ---- 8. Smaller findings -------------------------------------------------

#[tokio::test]
async fn debug_output_never_shows_a_token() {
    let s = Sessions::in_memory(issuer(900, 3600)).unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    let issued = s
        .issuer()
        .issue(keycard_core::TokenType::Access, "alice", None, &json!({}))
        .unwrap();
    let sig = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for (what, dbg, token) in [
        ("TokenPair", format!("{pair:?}"), pair.access_token.clone()),
        (
            "TokenPair",
            format!("{pair:#?}"),
            pair.refresh_token.clone(),
        ),
        ("IssuedToken", format!("{issued:?}"), issued.token.clone()),
    ] {
        assert!(!dbg.contains(&sig(&token)), "{what} shows a token: {dbg}");
        assert!(!dbg.contains(&token[..20]), "{what} shows a token: {dbg}");
    }
    // A verification waiting for keys holds the token: its Debug must not.
    #[cfg(feature = "jwks")]
    {
        let jwks = keycard_core::jwks::RemoteJwks::builder("https://keys.invalid/jwks.json")
            .build_lazy()
            .unwrap();
        let v = Verifier::builder()
            .key_provider(Arc::new(jwks))
            .build()
            .unwrap();
        let es = pem_key(keycard_core::Algorithm::ES256, "p256.pem").with_kid("k");
        let token = TokenIssuer::builder(es)
            .build()
            .unwrap()
            .issue(keycard_core::TokenType::Access, "alice", None, &json!({}))
            .unwrap()
            .token;
        let attempt = v.verify_now(&token);
        let dbg = format!("{attempt:?}");
        assert!(dbg.contains("Pending"), "{dbg}");
        assert!(
            !dbg.contains(&sig(&token)) && !dbg.contains(&token[..20]),
            "{dbg}"
        );
    }
}

#[tokio::test]
async fn a_token_without_kid_is_tried_only_against_keys_without_one() {
    let a = b"key-a-secret-0123456789abcdefghijkl";
    let b = b"key-b-secret-0123456789abcdefghijkl";
    let token_by = |secret: &[u8]| {
        TokenIssuer::builder(SigningKey::hs256(secret).unwrap())
            .build()
            .unwrap()
            .issue(keycard_core::TokenType::Access, "alice", None, &json!({}))
            .unwrap()
            .token
    };
    // Two keys with kids: a kid-less token matches neither.
    let named = Verifier::builder()
        .keys(
            KeySet::new()
                .with(Key::hs256(a).unwrap().with_kid("a"))
                .unwrap()
                .with(Key::hs256(b).unwrap().with_kid("b"))
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(
        named.verify(&token_by(a)).await.unwrap_err().kind(),
        AuthErrorKind::UnknownKey
    );
    // A kid-less key beside a named one: only the kid-less one is tried.
    let mixed = Verifier::builder()
        .key(Key::hs256(a).unwrap().with_kid("a"))
        .key(Key::hs256(b).unwrap())
        .build()
        .unwrap();
    assert!(mixed.verify(&token_by(a)).await.is_err());
    assert!(mixed.verify(&token_by(b)).await.is_ok());
    // The only key of a set serves kid-less tokens, kid or not.
    let single = Verifier::builder()
        .key(Key::hs256(a).unwrap().with_kid("a"))
        .build()
        .unwrap();
    assert!(single.verify(&token_by(a)).await.is_ok());
}

// ---- Rotation and sessions (second audit) ---------------------------------

/// A retired key kept verifying for the ring's grace (2 h) only, so every
/// refresh token it signed (7 days) died with it: rotation logged idle
/// users out. Now it verifies for the refresh lifetime plus the leeway.
#[tokio::test]
async fn rotation_never_logs_anyone_out() {
    let clock = Arc::new(keycard_core::ManualClock::new(now()));
    let first = pem_key(keycard_core::Algorithm::EdDSA, "ed25519.pem").with_kid("one");
    let ring = Arc::new(
        keycard_core::KeyRing::builder(first)
            .propagation_delay(Duration::from_secs(60))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    let issuer = TokenIssuer::builder_with_ring(ring.clone())
        .issuer("auth")
        .audience("api")
        .build()
        .unwrap();
    let s = Sessions::in_memory(issuer).unwrap();
    let idle = s.login("alice", &json!({})).await.unwrap();
    ring.rotate(pem_key(keycard_core::Algorithm::EdDSA, "ed25519b.pem").with_kid("two"))
        .unwrap();
    // The new key signs after the delay; hours pass.
    clock.advance(60 + 3 * 3600);
    assert_eq!(ring.active().kid(), Some("two"));
    let next = s
        .refresh(&idle.refresh_token)
        .await
        .expect("an idle session survives a rotation");
    let v = s.verifier().verify(&next.access_token).await.unwrap();
    assert_eq!(v.kid(), Some("two"));
    // Days later, still within the refresh lifetime: a second idle session
    // signed by the retired key refreshes too.
    clock.advance(6 * 86400);
    assert!(ring
        .verification_keys()
        .iter()
        .any(|k| k.kid() == Some("one")));
}

#[tokio::test]
async fn registered_claims_are_the_issuers_alone() {
    // No `.issuer()`: a caller-supplied iss used to survive.
    let issuer = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let hostile = json!({
        "iss": "https://evil.example", "aud": "other-api", "sub": "root",
        "exp": 4_000_000_000i64, "nbf": 0, "iat": 0, "jti": "fixed", "sid": "stolen",
        "sxp": 4_000_000_000i64, "client_id": "evil", "roles": ["user"],
    });
    let t = issuer
        .issue(keycard_core::TokenType::Access, "alice", None, &hostile)
        .unwrap();
    let v = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .build()
        .unwrap()
        .verify(&t.token)
        .await
        .unwrap();
    let c = v.claims_json();
    for name in ["iss", "aud", "sid", "sxp", "client_id"] {
        assert!(c.get(name).is_none(), "{name} survived: {c:?}");
    }
    assert_eq!(c["sub"], "alice");
    assert_ne!(c["jti"], "fixed");
    assert!(c["exp"].as_i64().unwrap() < 4_000_000_000);
    assert_eq!(c["roles"], json!(["user"]));
}

#[tokio::test]
async fn refresh_re_reads_who_the_user_is() {
    let roles = Arc::new(std::sync::Mutex::new(Some(vec!["admin"])));
    let current = roles.clone();
    let s = Sessions::builder(issuer(900, 3600))
        .on_refresh(move |_sub: String, _claims| {
            let now = current.lock().unwrap().clone();
            async move {
                Ok(match now {
                    Some(r) => keycard_core::UserStatus::Active(
                        json!({ "roles": r }).as_object().unwrap().clone(),
                    ),
                    None => keycard_core::UserStatus::Refused,
                })
            }
        })
        .build()
        .unwrap();
    let pair = s
        .login("alice", &json!({"roles": ["admin"]}))
        .await
        .unwrap();
    // Demoted: the next refresh carries the new roles.
    *roles.lock().unwrap() = Some(vec!["user"]);
    let next = s.refresh(&pair.refresh_token).await.unwrap();
    let v = s.verifier().verify(&next.access_token).await.unwrap();
    assert_eq!(v.roles(), ["user"]);
    // Disabled: the refresh is refused and the session ends.
    *roles.lock().unwrap() = None;
    assert!(matches!(
        s.refresh(&next.refresh_token).await,
        Err(SessionError::UserRefused)
    ));
    assert_eq!(
        s.verifier()
            .verify(&next.access_token)
            .await
            .unwrap_err()
            .kind(),
        AuthErrorKind::Revoked
    );
}

// ---- Findings of the auditor who attacked this round ----------------------

/// A refresh store whose `end` fails while `failures` > 0.
#[derive(Debug, Default)]
struct FlakyEnd {
    inner: InMemoryRefreshStore,
    failures: AtomicUsize,
}

impl RefreshStore for FlakyEnd {
    fn start<'a>(&'a self, f: NewFamily<'a>) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.start(f)
    }
    fn rotate<'a>(&'a self, r: RotateRequest<'a>) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        self.inner.rotate(r)
    }
    fn end<'a>(&'a self, sid: &'a str, until: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Box::pin(std::future::ready(Err(StoreError::Unavailable(
                "connection reset".into(),
            ))));
        }
        self.inner.end(sid, until)
    }
    fn end_subject<'a>(
        &'a self,
        sub: &'a str,
        until: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        self.inner.end_subject(sub, until)
    }
}

/// A logout that failed half way must be finishable by retrying with the
/// same credential, and must never report success while the refresh
/// family lives on (it came back once the session's revocation entry
/// expired).
#[tokio::test]
async fn a_logout_that_failed_half_way_is_finished_by_a_retry() {
    let store = Arc::new(FlakyEnd::default());
    let s = Sessions::builder(issuer(900, 3600))
        .refresh_store(store.clone())
        .build()
        .unwrap();
    let c = keycard_core::CookieSettings::new();
    // Bearer client.
    let pair = s.login("alice", &json!({})).await.unwrap();
    let bearer = format!("Bearer {}", pair.access_token);
    store.failures.store(1, Ordering::SeqCst);
    let first = s
        .logout_endpoint(&c, "POST", &[("authorization", bearer.as_str())][..])
        .await;
    assert_eq!(first.status, 503);
    let retry = s
        .logout_endpoint(&c, "POST", &[("authorization", bearer.as_str())][..])
        .await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert!(
        store.inner.is_empty(),
        "the family survived a successful logout"
    );
    assert!(s.refresh(&pair.refresh_token).await.is_err());
    // Cookie client whose refresh token is already revoked (a first logout
    // revoked the session, then ending the family failed).
    let pair = s.login("bob", &json!({})).await.unwrap();
    let sid = pair.sid.clone();
    s.revocation()
        .revoke_session(&sid, now() + 900)
        .await
        .unwrap();
    let cookie = format!("keycard_refresh={}", pair.refresh_token);
    let a = s
        .logout_endpoint(&c, "POST", &[("cookie", cookie.as_str())][..])
        .await;
    assert_eq!(a.status, 200);
    assert!(
        store.inner.is_empty(),
        "a revoked refresh token left its family alive"
    );
    // The answer's Debug never shows a token.
    let login = s.login_response(
        &c,
        "POST",
        &[][..],
        s.login("carol", &json!({})).await,
        false,
    );
    let dbg = format!("{login:?}");
    assert!(!dbg.contains("eyJ"), "{dbg}");
}

/// The store committed a rotation but stayed unreachable for every retry:
/// the client's own retry on this node repeats the same request and gets
/// the committed pair, instead of counting as reuse.
#[tokio::test]
async fn a_rotation_unanswered_through_every_retry_is_finished_by_the_clients_retry() {
    let store = Arc::new(LostReply::default());
    let s = Sessions::builder(issuer(900, 3600))
        .refresh_store(store.clone())
        .build()
        .unwrap();
    let pair = s.login("alice", &json!({})).await.unwrap();
    store.lose.store(3, Ordering::SeqCst);
    let first = s.refresh(&pair.refresh_token).await;
    assert!(matches!(first, Err(SessionError::Store(_))), "{first:?}");
    let retry = s
        .refresh(&pair.refresh_token)
        .await
        .expect("the committed pair");
    assert!(s.verifier().verify(&retry.access_token).await.is_ok());
    assert!(s.refresh(&retry.refresh_token).await.is_ok());
}

/// A verifier that shares a revocation store judges expiry by the store's
/// clock, the clock the store keeps and prunes its entries by.
#[tokio::test]
async fn a_verifier_with_a_shared_store_judges_expiry_by_its_clock() {
    let shared = Arc::new(InMemoryRevocationStore::new());
    let ahead = Arc::new(Skewed(shared, 600));
    let token = issuer(60, 3600)
        .issue(keycard_core::TokenType::Access, "alice", None, &json!({}))
        .unwrap()
        .token;
    let v = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .issuer("auth")
        .audience("api")
        .revocation(ahead)
        .build()
        .unwrap();
    assert_eq!(v.now(), now() + 600);
    assert_eq!(
        v.verify(&token).await.unwrap_err().kind(),
        AuthErrorKind::Expired
    );
}

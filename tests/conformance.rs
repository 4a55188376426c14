//! One table of requests, the same expected status and challenge from the
//! tower layer, the axum extractor stack and the actix-web middleware.

mod common;

use common::*;
use serde_json::json;

fn with(mut c: serde_json::Value, key: &str, value: serde_json::Value) -> serde_json::Value {
    c[key] = value;
    c
}

fn without(mut c: serde_json::Value, key: &str) -> serde_json::Value {
    c.as_object_mut().unwrap().remove(key);
    c
}

#[test]
fn the_same_answers_from_every_adapter() {
    let alice = access("alice", &["user"]);
    let admin = access("root", &["user", "admin"]);
    let n = now();
    let refresh = issuer()
        .issue(keycard::TokenType::Refresh, "alice", Some("s"), &json!({}))
        .unwrap()
        .token;
    let huge = at(&with(claims(), "pad", json!("x".repeat(9000))));

    let cases = vec![
        ("valid bearer", Call::get("/me").bearer(&alice), OK),
        (
            "scheme is case-insensitive",
            Call::get("/me").header("authorization", format!("bEaReR {alice}")),
            OK,
        ),
        ("valid cookie", Call::get("/me").cookie(&alice), OK),
        (
            "cookie among others",
            Call::get("/me").header("cookie", format!("a=1; keycard_access={alice}; b=2")),
            OK,
        ),
        ("no credentials", Call::get("/me"), MISSING),
        (
            "other scheme",
            Call::get("/me").header("authorization", "Basic YWxpY2U6cHc="),
            MISSING,
        ),
        (
            "token in query string is never read",
            Call::get("/me?access_token=abc.def.ghi"),
            MISSING,
        ),
        (
            "empty bearer",
            Call::get("/me").header("authorization", "Bearer "),
            INVALID_REQUEST,
        ),
        (
            "bare scheme",
            Call::get("/me").header("authorization", "Bearer"),
            INVALID_REQUEST,
        ),
        (
            "whitespace inside token",
            Call::get("/me").header("authorization", format!("Bearer {} x", alice)),
            INVALID_REQUEST,
        ),
        (
            "two authorization headers",
            Call::get("/me").bearer(&alice).bearer(&alice),
            INVALID_REQUEST,
        ),
        (
            "header and cookie",
            Call::get("/me").bearer(&alice).cookie(&alice),
            INVALID_REQUEST,
        ),
        (
            "duplicate cookies",
            Call::get("/me").header(
                "cookie",
                format!("keycard_access={alice}; keycard_access={alice}"),
            ),
            INVALID_REQUEST,
        ),
        (
            "bad header never falls back to cookie",
            Call::get("/me").bearer("garbage").cookie(&alice),
            INVALID_REQUEST,
        ),
        (
            "malformed token",
            Call::get("/me").bearer("not-a-jwt"),
            INVALID_TOKEN,
        ),
        (
            "four segments",
            Call::get("/me").bearer(&format!("{alice}.x")),
            INVALID_TOKEN,
        ),
        (
            "expired",
            Call::get("/me").bearer(&at(&with(claims(), "exp", json!(n - 120)))),
            INVALID_TOKEN,
        ),
        (
            "not yet valid",
            Call::get("/me").bearer(&at(&with(claims(), "nbf", json!(n + 600)))),
            INVALID_TOKEN,
        ),
        (
            "issued in the future",
            Call::get("/me").bearer(&at(&with(claims(), "iat", json!(n + 600)))),
            INVALID_TOKEN,
        ),
        (
            "lifetime too long",
            Call::get("/me").bearer(&at(&with(
                with(claims(), "iat", json!(n)),
                "exp",
                json!(n + 90 * 24 * 3600),
            ))),
            INVALID_TOKEN,
        ),
        (
            "missing exp",
            Call::get("/me").bearer(&at(&without(claims(), "exp"))),
            INVALID_TOKEN,
        ),
        (
            "exp as string",
            Call::get("/me").bearer(&at(&with(claims(), "exp", json!((n + 600).to_string())))),
            INVALID_TOKEN,
        ),
        (
            "wrong audience",
            Call::get("/me").bearer(&at(&with(claims(), "aud", json!("other")))),
            INVALID_TOKEN,
        ),
        (
            "audience array containing ours",
            Call::get("/me").bearer(&at(&with(claims(), "aud", json!(["x", AUD])))),
            OK,
        ),
        (
            "audience of wrong type",
            Call::get("/me").bearer(&at(&with(claims(), "aud", json!(123)))),
            INVALID_TOKEN,
        ),
        (
            "audience array of wrong type",
            Call::get("/me").bearer(&at(&with(claims(), "aud", json!([AUD, 1])))),
            INVALID_TOKEN,
        ),
        (
            "missing audience",
            Call::get("/me").bearer(&at(&without(claims(), "aud"))),
            INVALID_TOKEN,
        ),
        (
            "wrong issuer",
            Call::get("/me").bearer(&at(&with(claims(), "iss", json!("https://evil.test")))),
            INVALID_TOKEN,
        ),
        (
            "missing issuer",
            Call::get("/me").bearer(&at(&without(claims(), "iss"))),
            INVALID_TOKEN,
        ),
        (
            "sub of wrong type",
            Call::get("/me").bearer(&at(&with(claims(), "sub", json!(42)))),
            INVALID_TOKEN,
        ),
        (
            "signed with another secret",
            Call::get("/me").bearer(&hs256(&claims(), Some("at+jwt"), OTHER_SECRET)),
            INVALID_TOKEN,
        ),
        (
            "refresh token as access token",
            Call::get("/me").bearer(&refresh),
            INVALID_TOKEN,
        ),
        (
            "untyped token",
            Call::get("/me").bearer(&hs256(&claims(), Some("JWT"), SECRET)),
            INVALID_TOKEN,
        ),
        (
            "alg none",
            Call::get("/me").bearer(&format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64(claims().to_string().as_bytes())
            )),
            INVALID_TOKEN,
        ),
        (
            "alg none with signature",
            Call::get("/me").bearer(&format!(
                "{}.{}.c2ln",
                b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64(claims().to_string().as_bytes())
            )),
            INVALID_TOKEN,
        ),
        (
            "crit header",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"]}"#,
                &claims().to_string(),
            )),
            INVALID_TOKEN,
        ),
        (
            "duplicate claim",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt"}"#,
                &claims()
                    .to_string()
                    .replacen('{', r#"{"sub":"mallory","#, 1),
            )),
            INVALID_TOKEN,
        ),
        (
            "non-JSON payload",
            Call::get("/me").bearer(&raw_hs256(r#"{"alg":"HS256","typ":"at+jwt"}"#, "hello")),
            INVALID_TOKEN,
        ),
        (
            "oversized token",
            Call::get("/me").bearer(&huge),
            INVALID_TOKEN,
        ),
        (
            "role missing",
            Call::get("/admin").bearer(&alice),
            INSUFFICIENT,
        ),
        ("role present", Call::get("/admin").bearer(&admin), OK),
        ("role check needs a token", Call::get("/admin"), MISSING),
        (
            "cookie POST from another origin",
            Call::post("/me")
                .cookie(&alice)
                .header("origin", "http://evil.test")
                .header("host", "api.test"),
            FORBIDDEN,
        ),
        (
            "cookie POST, cross-site fetch",
            Call::post("/me")
                .cookie(&alice)
                .header("sec-fetch-site", "cross-site"),
            FORBIDDEN,
        ),
        (
            "cookie POST from own origin",
            Call::post("/me")
                .cookie(&alice)
                .header("origin", "https://api.test")
                .header("host", "api.test"),
            OK,
        ),
        (
            "cookie POST from the plain-http origin of the same host",
            Call::post("/me")
                .cookie(&alice)
                .header("origin", "http://api.test")
                .header("host", "api.test"),
            FORBIDDEN,
        ),
        (
            "cookie POST from the same host on another port",
            Call::post("/me")
                .cookie(&alice)
                .header("origin", "https://api.test:8443")
                .header("host", "api.test"),
            FORBIDDEN,
        ),
        (
            "bearer POST from any origin",
            Call::post("/me")
                .bearer(&alice)
                .header("origin", "http://evil.test")
                .header("host", "api.test"),
            OK,
        ),
    ];
    run_table(verifier_builder, &cases);
}

#[test]
fn insufficient_scope_names_the_role_and_bodies_never_echo_the_token() {
    let v = verifier();
    let alice = access("alice", &["user"]);
    for adapter in ADAPTERS {
        let a = call(adapter, &v, &Call::get("/admin").bearer(&alice));
        assert_eq!(a.status, 403, "{adapter:?}");
        assert!(
            a.challenge.as_deref().unwrap().contains("scope=\"admin\""),
            "{adapter:?}: {a:?}"
        );
        let bad = call(adapter, &v, &Call::get("/me").bearer(&format!("{alice}x")));
        assert_eq!(bad.status, 401);
        assert!(
            !bad.body.contains(&alice[..20]),
            "{adapter:?} echoed the token: {}",
            bad.body
        );
        assert!(
            !bad.body.contains("conformance-test-secret"),
            "{adapter:?} echoed the key"
        );
    }
}

#[test]
fn successful_requests_see_the_same_claims() {
    let v = verifier();
    let admin = access("root", &["user", "admin"]);
    let answers: Vec<_> = ADAPTERS
        .iter()
        .map(|a| call(*a, &v, &Call::get("/admin").bearer(&admin)).json())
        .collect();
    assert_eq!(
        answers[0],
        json!({"sub": "root", "roles": ["user", "admin"]})
    );
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[test]
fn typed_layers_hand_handlers_the_claims_of_their_own_verification() {
    use keycard::{Attempt, AuthMode};
    use std::sync::atomic::Ordering;
    let v = verifier();
    let alice = access("alice", &["user"]);
    // Through the tower layer: the handler took the prepared claims.
    let before = PREPARED.load(Ordering::Relaxed);
    let a = call_typed(Adapter::Tower, &v, &Call::get("/me").bearer(&alice));
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["sub"], "alice");
    assert!(
        PREPARED.load(Ordering::Relaxed) > before,
        "no prepared claims"
    );

    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {alice}").parse().unwrap());
    // Fresh: the claims come with the decision.
    let (attempt, claims) = v.authenticate_now_typed::<Seen, _>("GET", None, &headers);
    assert!(matches!(attempt, Attempt::Done(Ok(_))));
    assert_eq!(claims.unwrap().sub.as_deref(), Some("alice"));
    // From the verified-token cache: no walk, so no claims; the decision is the same.
    let cached = verifier_builder()
        .cache_verified_tokens(10)
        .build()
        .unwrap();
    let _ = cached.authenticate_now_typed::<Seen, _>("GET", None, &headers);
    let (attempt, claims) = cached.authenticate_now_typed::<Seen, _>("GET", None, &headers);
    assert!(matches!(attempt, Attempt::Done(Ok(ref v)) if v.from_cache()));
    assert!(claims.is_none());
    // Refused: nothing, whatever the payload held.
    let mut bad = headers.clone();
    bad.insert("authorization", format!("Bearer {alice}x").parse().unwrap());
    let (attempt, claims) = v.authenticate_now_typed::<Seen, _>("GET", None, &bad);
    assert!(matches!(attempt, Attempt::Done(Err(_))));
    assert!(claims.is_none());
    // A claims type the payload does not fit: the same decision, no claims,
    // and `Verified::claims` says why.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Unfit {
        tenant: String,
    }
    let (attempt, claims) = v.authenticate_now_typed::<Unfit, _>("GET", None, &headers);
    let Attempt::Done(Ok(verified)) = attempt else {
        panic!("the claims type changed the decision")
    };
    assert!(claims.is_none());
    let e = verified.claims::<Unfit>().unwrap_err();
    assert_eq!(e.kind(), keycard::AuthErrorKind::InvalidClaimType);
    // Prepared claims are bound to their own verification: another
    // verification of the same token does not get them.
    let (admission, prepared) =
        v.admit_request_typed::<Seen, _>(AuthMode::Required, "GET", None, &headers);
    let keycard::Admission::Done(Ok(keycard::Admitted::Verified(first))) = admission else {
        panic!("not admitted")
    };
    let Attempt::Done(Ok(second)) = v.authenticate_now("GET", &headers) else {
        panic!("not verified")
    };
    assert!(prepared.clone().unwrap().take_for(&second).is_none());
    assert_eq!(
        prepared.unwrap().take_for(&first).unwrap().sub.as_deref(),
        Some("alice")
    );
}

//! Property tests: tampering is always caught, issue→verify round-trips any
//! user claims, and the token-source parser never panics on any bytes.

mod common;

use common::*;
use http::{HeaderMap, HeaderValue};
use keycard::{Attempt, TokenType};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn verify_now(v: &keycard::Verifier, token: &str) -> Result<keycard::Verified, keycard::AuthError> {
    match v.verify_now(token) {
        Attempt::Done(r) => r,
        Attempt::Pending(_) => panic!("fixed keys never wait"),
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,20}".prop_map(Value::String),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const REGISTERED: [&str; 8] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_change_to_any_byte_is_refused(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let v = verifier();
        let token = access("alice", &["user"]);
        let mut bytes = token.clone().into_bytes();
        let i = index.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(verify_now(&v, &tampered).is_err(), "accepted a token changed at byte {}", i);
    }

    #[test]
    fn truncation_and_extension_are_refused(cut in 1usize..40, extra in "[A-Za-z0-9_.-]{1,8}") {
        let v = verifier();
        let token = access("alice", &[]);
        prop_assert!(verify_now(&v, &token[..token.len() - cut]).is_err());
        let longer = format!("{token}{extra}");
        prop_assert!(verify_now(&v, &longer).is_err());
    }

    #[test]
    fn issue_then_verify_round_trips_user_claims(claims in prop::collection::btree_map("[a-z_]{1,10}", json_value(), 0..6)) {
        let claims: Map<String, Value> = claims.into_iter().filter(|(k, _)| !REGISTERED.contains(&k.as_str())).collect();
        let token = issuer().issue(TokenType::Access, "alice", None, &claims).unwrap().token;
        let verified = verify_now(&verifier(), &token).unwrap();
        for (k, want) in &claims {
            prop_assert_eq!(verified.claims_json().get(k), Some(want));
        }
        prop_assert_eq!(verified.subject(), Some("alice"));
    }

    #[test]
    fn the_token_source_parser_never_panics(
        auth in prop::collection::vec(any::<u8>(), 0..300),
        cookie in prop::collection::vec(any::<u8>(), 0..300),
        second in prop::option::of(prop::collection::vec(any::<u8>(), 0..40)),
    ) {
        let v = verifier();
        let mut headers = HeaderMap::new();
        for (name, value) in [("authorization", &auth), ("cookie", &cookie)] {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.append(name, value);
            }
        }
        if let Some(Ok(extra)) = second.map(|s| HeaderValue::from_bytes(&s)) {
            headers.append("authorization", extra);
        }
        for method in ["GET", "POST"] {
            if let Attempt::Done(Err(e)) = v.authenticate_now(method, &headers) {
                prop_assert!(matches!(e.status(), 400 | 401 | 403));
            }
        }
        // The same bytes with a Bearer prefix.
        let mut prefixed = b"Bearer ".to_vec();
        prefixed.extend_from_slice(&auth);
        if let Ok(value) = HeaderValue::from_bytes(&prefixed) {
            let mut h = HeaderMap::new();
            h.insert("authorization", value);
            let _ = v.authenticate_now("GET", &h);
        }
    }
}

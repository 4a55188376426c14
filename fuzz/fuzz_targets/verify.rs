//! The full verification pipeline with a fixed key, on arbitrary tokens
//! (and on arbitrary header/payload JSON re-signed with the key, so the
//! fuzzer also reaches the claim checks).
#![no_main]

use std::sync::OnceLock;

use keycard_core::{Attempt, Key, Verifier};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [7u8; 32];

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
    })
}

fn b64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if let Attempt::Done(Ok(_)) = verifier().verify_now(token) {
            panic!("an arbitrary token verified");
        }
    }
    // Signed variant: header and payload from the input, a real signature.
    let mut halves = data.splitn(2, |b| *b == 0xFF);
    let (h, p) = (halves.next().unwrap_or(&[]), halves.next().unwrap_or(&[]));
    let input = format!("{}.{}", b64(h), b64(p));
    let key = jsonwebtoken::EncodingKey::from_secret(&SECRET);
    if let Ok(sig) =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
    {
        let token = format!("{input}.{sig}");
        let _ = verifier().verify_now(&token);
        typed_agrees(&token);
    }
});

/// The typed pass (one walk that also deserializes the claims type) gives
/// the same decision as the untyped one, and the claims serde_json gives.
fn typed_agrees(token: &str) {
    let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}")) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", value);
    let kind = |a: &Attempt| match a {
        Attempt::Done(Ok(_)) => Ok(()),
        Attempt::Done(Err(e)) => Err(Some(e.kind())),
        Attempt::Pending(_) => Err(None),
    };
    let plain = verifier().authenticate_now("GET", &headers);
    let (typed, claims) = verifier()
        .authenticate_now_typed::<std::collections::HashMap<String, serde_json::Value>, _>(
            "GET", None, &headers,
        );
    assert_eq!(
        kind(&plain),
        kind(&typed),
        "the typed pass changed the decision"
    );
    if let (Attempt::Done(Ok(v)), Some(claims)) = (&typed, claims) {
        let want: std::collections::HashMap<String, serde_json::Value> =
            serde_json::from_slice(v.payload_bytes()).expect("a verified payload parses");
        assert_eq!(claims, want, "the typed pass read other claims");
    }
}

//! The header/cookie token-source parser on arbitrary bytes: `Authorization`
//! and `Cookie` values split from the input at a 0xFF byte.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use keycard_core::{Key, Verifier};
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        Verifier::builder()
            .key(Key::hs256([7u8; 32]).unwrap())
            .build()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0xFF);
    let mut headers = HeaderMap::new();
    for name in ["authorization", "cookie", "authorization"] {
        if let Some(Ok(v)) = parts.next().map(HeaderValue::from_bytes) {
            headers.append(name, v);
        }
    }
    let _ = verifier().authenticate_now("POST", &headers);
});

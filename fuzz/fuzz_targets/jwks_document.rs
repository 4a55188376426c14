//! JWKS document parsing and key filtering on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = keycard_core::jwks::parse_document(data) {
        // 64 JWKs at most; one without `alg` serves each allowed algorithm of
        // its family (six for RSA).
        assert!(!keys.is_empty() && keys.len() <= 64 * 6);
    }
});

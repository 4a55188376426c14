//! DPoP proof checking on arbitrary proofs (and on arbitrary proof header
//! and payload JSON signed by a real ES256 key, so the fuzzer reaches the
//! claim checks): never a panic, never an accepted proof for a token bound
//! to another key.
#![no_main]

use std::sync::OnceLock;

use keycard_core::dpop::{DpopConfig, DpopPolicy};
use keycard_core::{Attempt, Key, SigningKey, TokenIssuer, Verifier};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [9u8; 32];

struct Setup {
    verifier: Verifier,
    token: String,
}

fn setup() -> &'static Setup {
    static S: OnceLock<Setup> = OnceLock::new();
    S.get_or_init(|| {
        let verifier = Verifier::builder()
            .key(Key::hs256(SECRET).unwrap())
            .audience("api")
            .dpop(DpopConfig::new(DpopPolicy::Required).public_origin("https://api.test"))
            .build()
            .unwrap();
        // Bound to a thumbprint no fuzzer-made key has.
        let token = TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
            .audience("api")
            .build()
            .unwrap()
            .issue_bound(
                "alice",
                None,
                &serde_json::json!({}),
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )
            .unwrap()
            .token;
        Setup { verifier, token }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let auth = format!("DPoP {}", s.token);
    let headers: &[(&str, &str)] = &[("authorization", auth.as_str()), ("dpop", proof)];
    if let Attempt::Done(Ok(_)) = s.verifier.authenticate_now_at("GET", Some("/r"), headers) {
        panic!("a proof by an unknown key was accepted");
    }
});

//! Import any bytes as a JWK through every constructor, with every
//! configured algorithm: never a panic, and the family rule always holds
//! (only an `oct` key ever becomes an HMAC key; never from a JWKS document).
#![no_main]

use keycard_core::jwk::{AlgorithmParameters, Jwk};
use keycard_core::jwks::ASYMMETRIC_ALGORITHMS;
use keycard_core::{Algorithm, Key};
use libfuzzer_sys::fuzz_target;

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

fn is_hmac(a: Algorithm) -> bool {
    HMAC.contains(&a)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data) {
        let oct = matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_));
        if let Ok(k) = Key::from_jwk(&jwk, None) {
            assert!(
                oct || !is_hmac(k.algorithm()),
                "{:?} from a non-oct JWK",
                k.algorithm()
            );
        }
        for alg in HMAC.into_iter().chain(ASYMMETRIC_ALGORITHMS) {
            if let Ok(k) = Key::from_jwk(&jwk, Some(alg)) {
                assert_eq!(k.algorithm(), alg);
                assert!(oct || !is_hmac(alg), "{alg:?} from a non-oct JWK");
            }
        }
    }
    // The same bytes as the single key of a JWKS document.
    let mut doc = b"{\"keys\":[".to_vec();
    doc.extend_from_slice(data);
    doc.extend_from_slice(b"]}");
    if let Ok(keys) = keycard_core::jwks::parse_document(&doc) {
        for k in keys {
            assert!(!is_hmac(k.algorithm()), "an HMAC key from a JWKS document");
        }
    }
});

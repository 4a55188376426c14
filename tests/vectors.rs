//! Standard vectors: RFC 7515 Appendix A.1–A.3, RFC 7520 §4.1/§4.3/§4.4,
//! the public jwt.io example, and Wycheproof signature vectors, all through
//! keycard's own verification path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keycard::jwk::Jwk;
use keycard::{Algorithm, AuthErrorKind, Key, Verifier};
use serde_json::{json, Value};

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn jwk(v: Value) -> Jwk {
    serde_json::from_value(v).unwrap()
}

/// A verifier that relaxes everything a 2011 example token cannot meet
/// except the signature and the expiry.
fn lenient(key: Key) -> Verifier {
    Verifier::builder()
        .key(key)
        .insecure_accept_any_token_type()
        .insecure_unlimited_lifetime()
        .build()
        .unwrap()
}

const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const RFC7515_RSA_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

/// The signature verifies (the pipeline reaches the claims), and the token
/// is refused as expired: `invalid_token`.
fn assert_good_signature_but_expired(v: &Verifier, token: &str) {
    let err = block(v.verify(token)).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::Expired, "{token}");
    assert!(err.www_authenticate().unwrap().contains("invalid_token"));
}

#[test]
fn rfc7515_a1_hs256() {
    let k = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let token = format!("eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.{RFC7515_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    assert_good_signature_but_expired(&lenient(Key::hs256(&k).unwrap()), &token);
}

#[test]
fn rfc7515_a2_rs256() {
    let key = Key::from_jwk(
        &jwk(json!({"kty": "RSA", "n": RFC7515_RSA_N, "e": "AQAB"})),
        Some(Algorithm::RS256),
    )
    .unwrap();
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw");
    assert_good_signature_but_expired(&lenient(key.clone()), &token);
    // Pinned to PS256, the same key refuses the RS256 token.
    let ps = Key::from_jwk(
        &jwk(json!({"kty": "RSA", "n": RFC7515_RSA_N, "e": "AQAB"})),
        Some(Algorithm::PS256),
    )
    .unwrap();
    assert_eq!(
        block(lenient(ps).verify(&token)).unwrap_err().kind(),
        AuthErrorKind::UnknownKey
    );
}

#[test]
fn rfc7515_a3_es256() {
    let key = Key::from_jwk(
        &jwk(json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})),
        Some(Algorithm::ES256),
    )
    .unwrap();
    let token = format!("eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q");
    assert_good_signature_but_expired(&lenient(key), &token);
}

const RFC7520_PAYLOAD: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";

/// A valid signature over a payload that is not a JSON object: the
/// signature checks out through `Key::verify_signature`, yet the token is
/// refused as malformed.
fn assert_valid_signature_non_json_refused(key: Key, header: &str, sig: &str) {
    let input = format!("{header}.{RFC7520_PAYLOAD}");
    assert!(
        key.verify_signature(input.as_bytes(), sig),
        "the RFC signature must verify"
    );
    let token = format!("{input}.{sig}");
    let err = block(lenient(key).verify(&token)).unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::MalformedToken);
    assert_eq!(err.status(), 401);
}

#[test]
fn rfc7520_4_1_rs256_over_a_non_json_payload() {
    let key = Key::from_jwk(
        &jwk(json!({"kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "e": "AQAB",
            "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw"})),
        Some(Algorithm::RS256),
    )
    .unwrap();
    assert_valid_signature_non_json_refused(
        key,
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
    );
}

#[test]
fn rfc7520_4_4_hs256_over_a_non_json_payload() {
    let k = URL_SAFE_NO_PAD
        .decode("hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg")
        .unwrap();
    assert_valid_signature_non_json_refused(
        Key::hs256(&k)
            .unwrap()
            .with_kid("018c0ae5-4d9b-471b-bfd6-eef314bc7037"),
        "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
        "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
    );
}

#[test]
fn rfc7520_4_3_es512_is_refused_cleanly() {
    // ES512 (P-521) is not supported: the key is a configuration error and
    // the token is an unknown key to any verifier, never a panic.
    let p521 = jwk(
        json!({"kty": "EC", "crv": "P-521", "kid": "bilbo.baggins@hobbiton.example",
        "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
        "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}),
    );
    assert!(Key::from_jwk(&p521, None).is_err());
    assert!(Key::from_jwk(&p521, Some(Algorithm::ES384)).is_err());
    let token = format!(
        "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.{RFC7520_PAYLOAD}.{}",
        "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2"
    );
    let v = lenient(Key::hs256([7u8; 32]).unwrap());
    let err = block(v.verify(&token)).unwrap_err();
    assert_eq!(err.status(), 401);
    assert!(
        matches!(
            err.kind(),
            AuthErrorKind::UnknownKey | AuthErrorKind::MalformedToken
        ),
        "{err:?}"
    );
}

#[test]
fn the_jwt_io_example_never_verifies() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    // Its secret is too short for any HMAC key keycard accepts...
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        assert!(Key::hmac(alg, b"your-256-bit-secret").is_err());
    }
    assert!(keycard::SigningKey::hs256(b"your-256-bit-secret").is_err());
    // ...and even padded to a legal length (a different key) or with every
    // relaxation, it has no exp and no at+jwt type.
    let mut padded = b"your-256-bit-secret".to_vec();
    padded.resize(32, 0);
    let v = lenient(Key::hs256(&padded).unwrap());
    assert!(block(v.verify(token)).is_err());
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Run one Wycheproof file; returns (tests run, groups skipped because
/// keycard refuses their key).
fn wycheproof(file: &str, alg: Algorithm) -> (usize, usize) {
    let path = format!(
        "{}/tests/vectors/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut run, mut skipped) = (0, 0);
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().unwrap() {
        let key = if alg == Algorithm::HS256 {
            if group["tagSize"] != 256 {
                continue;
            }
            None
        } else {
            let jwk_value = group
                .get("publicKeyJwk")
                .or_else(|| group.get("keyJwk"))
                .cloned();
            match jwk_value.and_then(|j| serde_json::from_value::<Jwk>(j).ok()) {
                Some(j) => match Key::from_jwk(&j, Some(alg)) {
                    Ok(k) => Some(k),
                    Err(_) => {
                        skipped += 1;
                        continue;
                    }
                },
                None => {
                    skipped += 1;
                    continue;
                }
            }
        };
        for t in group["tests"].as_array().unwrap() {
            let key = match &key {
                Some(k) => k.clone(),
                None => match Key::hs256(hex(t["key"].as_str().unwrap())) {
                    Ok(k) => k,
                    // Keys shorter than 32 bytes are refused at build time.
                    Err(_) => {
                        skipped += 1;
                        continue;
                    }
                },
            };
            let msg = hex(t["msg"].as_str().unwrap());
            let sig_hex = t
                .get("sig")
                .or_else(|| t.get("tag"))
                .unwrap()
                .as_str()
                .unwrap();
            let sig = URL_SAFE_NO_PAD.encode(hex(sig_hex));
            let ok = key.verify_signature(&msg, &sig);
            let reference = key.verify_signature_reference(&msg, &sig);
            let id = t["tcId"].as_u64().unwrap();
            if t["result"] != "acceptable" && ok != reference {
                failures.push(format!(
                    "{file} tcId {id}: fast path {ok}, jsonwebtoken {reference}"
                ));
            }
            match t["result"].as_str().unwrap() {
                "valid" if !ok => {
                    failures.push(format!("{file} tcId {id}: valid signature refused"))
                }
                "invalid" if ok => failures.push(format!(
                    "{file} tcId {id}: invalid signature accepted ({})",
                    t["comment"]
                )),
                _ => {}
            }
            run += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    (run, skipped)
}

#[test]
fn wycheproof_vectors_through_keycards_verification_path() {
    let cases = [
        (
            "ecdsa_secp256r1_sha256_p1363_test.json",
            Algorithm::ES256,
            200,
        ),
        (
            "ecdsa_secp384r1_sha384_p1363_test.json",
            Algorithm::ES384,
            200,
        ),
        ("ed25519_test.json", Algorithm::EdDSA, 100),
        ("rsa_signature_2048_sha256_test.json", Algorithm::RS256, 200),
        (
            "rsa_pss_2048_sha256_mgf1_32_test.json",
            Algorithm::PS256,
            100,
        ),
        ("hmac_sha256_test.json", Algorithm::HS256, 20),
    ];
    for (file, alg, at_least) in cases {
        let (run, skipped) = wycheproof(file, alg);
        println!("{file}: {run} tests, {skipped} refused keys");
        assert!(run >= at_least, "{file}: only {run} tests ran");
    }
}

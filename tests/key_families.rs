//! The family rule, run through every constructor: a key's type must fit
//! its algorithm's family wherever a key is made, so a public key can never
//! become an HMAC secret (the JWKS forgery of the December audit), and an
//! EC key never serves another curve's algorithm.
//!
//! Every (kty, crv, alg) combination goes through `Key::from_jwk` (alg in
//! the JWK, and alg configured), a JWKS document as a remote key cache
//! parses it, `KeySet`, `Key::from_pem` and `Key::from_der`; a property
//! test then throws random key material at the same constructors.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keycard::jwk::Jwk;
use keycard::{Algorithm, Key, KeySet};
use proptest::prelude::*;
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// The DER body of a PEM file.
fn der_of(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(pem.to_vec()).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// A key of one type, as a JWK without `alg`, plus its PEM/DER if any.
struct Material {
    name: &'static str,
    jwk: Value,
    pem: Option<Vec<u8>>,
    der: Option<Vec<u8>>,
}

fn rsa_jwk_n(jwk: &Jwk) -> String {
    serde_json::to_value(jwk).unwrap()["n"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn materials() -> Vec<Material> {
    let rsa_pem = fixture("rsa2048.pub.pem");
    let rsa_jwk = Key::from_pem(Algorithm::RS256, &rsa_pem)
        .unwrap()
        .to_public_jwk()
        .unwrap();
    let rsa = json!({"kty": "RSA", "n": rsa_jwk_n(&rsa_jwk), "e": "AQAB"});
    let ec = |file: &str, crv: &str, coord: usize| {
        let pem = fixture(file);
        let der = der_of(&pem);
        let point = &der[der.len() - (1 + 2 * coord)..];
        assert_eq!(point[0], 4, "uncompressed point");
        let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=coord]), "y": b64(&point[1 + coord..])});
        (jwk, pem, point.to_vec())
    };
    let (p256, p256_pem, p256_raw) = ec("p256.pub.pem", "P-256", 32);
    let (p384, p384_pem, p384_raw) = ec("p384.pub.pem", "P-384", 48);
    let (p521, p521_pem, p521_raw) = ec("p521.pub.pem", "P-521", 66);
    let okp = |file: &str, crv: &str| {
        let pem = fixture(file);
        let der = der_of(&pem);
        let x = der[der.len() - 32..].to_vec();
        (json!({"kty": "OKP", "crv": crv, "x": b64(&x)}), pem, x)
    };
    let (ed, ed_pem, ed_raw) = okp("ed25519.pub.pem", "Ed25519");
    let (x25519, x_pem, _) = okp("x25519.pub.pem", "X25519");
    let secret = b64(&[7u8; 64]);
    vec![
        Material {
            name: "oct",
            jwk: json!({"kty": "oct", "k": secret}),
            pem: None,
            der: None,
        },
        Material {
            name: "RSA",
            jwk: rsa,
            der: Some(der_of(&rsa_pem)),
            pem: Some(rsa_pem),
        },
        Material {
            name: "EC P-256",
            jwk: p256,
            pem: Some(p256_pem),
            der: Some(p256_raw),
        },
        Material {
            name: "EC P-384",
            jwk: p384,
            pem: Some(p384_pem),
            der: Some(p384_raw),
        },
        Material {
            name: "EC P-521",
            jwk: p521,
            pem: Some(p521_pem),
            der: Some(p521_raw),
        },
        Material {
            name: "EC secp256k1",
            jwk: json!({"kty": "EC", "crv": "secp256k1", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
            pem: None,
            der: None,
        },
        Material {
            name: "OKP Ed25519",
            jwk: ed,
            pem: Some(ed_pem),
            der: Some(ed_raw),
        },
        // Raw DER for Ed25519 is the bare 32-byte point, which carries no
        // key type: an X25519 key's bytes cannot be told apart there.
        Material {
            name: "OKP X25519",
            jwk: x25519,
            pem: Some(x_pem),
            der: None,
        },
    ]
}

/// Every algorithm name a JWK or a configuration could carry.
const ALGS: [&str; 17] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA", "Ed25519", "none", "RSA-OAEP", "ES256K",
];

/// The rule (RFC 7518 §3.1/§6, RFC 8037, RFC 9864): which key types may
/// serve which algorithms. `oct` keys are never taken from a remote JWKS.
fn allowed(material: &str, alg: &str, remote: bool) -> bool {
    match material {
        "oct" => !remote && matches!(alg, "HS256" | "HS384" | "HS512"),
        "RSA" => matches!(
            alg,
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512"
        ),
        "EC P-256" => alg == "ES256",
        "EC P-384" => alg == "ES384",
        "OKP Ed25519" => matches!(alg, "EdDSA" | "Ed25519"),
        // ES512 (P-521) has no backend support; the others fit nothing.
        _ => false,
    }
}

fn parsed_alg(alg: &str) -> Option<Algorithm> {
    alg.parse().ok()
}

/// One key through every constructor; returns (constructor, accepted).
fn through_every_constructor(
    m: &Material,
    alg: &str,
) -> Vec<(&'static str, bool, Option<Algorithm>)> {
    let mut out = Vec::new();
    let mut with_alg = m.jwk.clone();
    with_alg["alg"] = json!(alg);
    with_alg["kid"] = json!("k1");
    // 1. A JWK naming its algorithm.
    let r = serde_json::from_value::<Jwk>(with_alg.clone())
        .ok()
        .and_then(|jwk| Key::from_jwk(&jwk, None).ok());
    out.push((
        "from_jwk(alg in JWK)",
        r.is_some(),
        r.map(|k| k.algorithm()),
    ));
    // 2. A JWK without alg, the algorithm configured.
    let r = parsed_alg(alg).and_then(|a| {
        serde_json::from_value::<Jwk>(m.jwk.clone())
            .ok()
            .and_then(|jwk| Key::from_jwk(&jwk, Some(a)).ok())
    });
    out.push((
        "from_jwk(configured alg)",
        r.is_some(),
        r.map(|k| k.algorithm()),
    ));
    // 3. A remote JWKS document (what the JWKS cache and multi-issuer parse).
    let doc = json!({ "keys": [with_alg] }).to_string();
    let r = keycard::jwks::parse_document(doc.as_bytes()).ok();
    let accepted = r.as_ref().is_some_and(|k| !k.is_empty());
    out.push((
        "JWKS document",
        accepted,
        r.and_then(|k| {
            k.iter()
                .find(|k| keycard_alg_name(k.algorithm()) == alg || alg == "Ed25519")
                .map(Key::algorithm)
        }),
    ));
    // 4. A KeySet of whatever the JWK constructor accepted.
    let set = serde_json::from_value::<Jwk>(with_alg)
        .ok()
        .and_then(|jwk| Key::from_jwk(&jwk, None).ok())
        .and_then(|k| KeySet::new().with(k).ok());
    out.push(("KeySet", set.as_ref().is_some_and(|s| s.len() == 1), None));
    // 5. PEM and 6. DER with the algorithm configured.
    if let Some(a) = parsed_alg(alg) {
        if let Some(pem) = &m.pem {
            let r = Key::from_pem(a, pem).ok();
            out.push(("from_pem", r.is_some(), r.map(|k| k.algorithm())));
        }
        if let Some(der) = &m.der {
            let r = Key::from_der(a, der).ok();
            out.push(("from_der", r.is_some(), r.map(|k| k.algorithm())));
        }
    }
    out
}

fn keycard_alg_name(a: Algorithm) -> String {
    format!("{a:?}")
}

#[test]
fn every_key_type_and_algorithm_through_every_constructor() {
    let mut wrong = Vec::new();
    let mut accepted = 0;
    for m in materials() {
        for alg in ALGS {
            for (ctor, ok, got) in through_every_constructor(&m, alg) {
                // PEM/DER carry no `oct` and are local configuration.
                let remote = ctor == "JWKS document";
                let want = allowed(m.name, alg, remote);
                // RFC 9864's Ed25519 is an alias for EdDSA where keycard
                // parses the JSON itself; jsonwebtoken's Jwk type does not
                // know the name.
                let want = want && !(alg == "Ed25519" && ctor != "JWKS document");
                if ok != want {
                    wrong.push(format!(
                        "{ctor}: {} as {alg}: accepted={ok}, expected {want}",
                        m.name
                    ));
                }
                if let Some(got) = got {
                    let name = keycard_alg_name(got);
                    let same = name == alg || (alg == "Ed25519" && name == "EdDSA");
                    if !same {
                        wrong.push(format!("{ctor}: {} as {alg} became a {name} key", m.name));
                    }
                }
                accepted += usize::from(ok);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "the family rule was broken:\n{}",
        wrong.join("\n")
    );
    assert!(
        accepted > 40,
        "the test accepted almost nothing ({accepted})"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Random key material of every shape, labelled with every algorithm:
    /// nothing but an `oct` key ever becomes an HMAC key, and nothing from
    /// a JWKS document does.
    #[test]
    fn no_public_key_material_ever_becomes_an_hmac_secret(
        kty in prop_oneof![Just("EC"), Just("OKP"), Just("RSA"), Just("oct")],
        crv in prop_oneof![Just("P-256"), Just("P-384"), Just("P-521"), Just("Ed25519"), Just("X25519")],
        x in prop::collection::vec(any::<u8>(), 0..80),
        y in prop::collection::vec(any::<u8>(), 0..80),
        alg in prop::sample::select(ALGS.to_vec()),
    ) {
        let jwk = match kty {
            "EC" => json!({"kty": "EC", "crv": crv, "x": b64(&x), "y": b64(&y), "alg": alg}),
            "OKP" => json!({"kty": "OKP", "crv": crv, "x": b64(&x), "alg": alg}),
            "RSA" => json!({"kty": "RSA", "n": b64(&x), "e": b64(&y), "alg": alg}),
            _ => json!({"kty": "oct", "k": b64(&x), "alg": alg}),
        };
        if let Ok(parsed) = serde_json::from_value::<Jwk>(jwk.clone()) {
            if let Ok(key) = Key::from_jwk(&parsed, None) {
                let hmac = matches!(key.algorithm(), Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
                prop_assert!(!hmac || kty == "oct", "{kty} became {:?}", key.algorithm());
            }
        }
        let doc = json!({"keys": [jwk]}).to_string();
        if let Ok(keys) = keycard::jwks::parse_document(doc.as_bytes()) {
            for k in keys {
                let hmac = matches!(k.algorithm(), Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
                prop_assert!(!hmac, "a JWKS yielded an HMAC key from {kty}");
            }
        }
    }
}

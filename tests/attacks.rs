//! The attack matrix: every JWT attack class from RFC 8725, RFC 6750,
//! RFC 7515/7519, the OWASP JWT cheat sheet and known JWT-library CVEs, as
//! named hostile requests run against tower, axum and actix-web through one
//! helper with the same expected status and challenge. SECURITY.md maps each
//! row to its standard or CVE.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keycard::{Key, Verifier};
use serde_json::json;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

fn unsigned(header: &str, payload: &str, sig: &str) -> String {
    format!(
        "{}.{}.{sig}",
        b64(header.as_bytes()),
        b64(payload.as_bytes())
    )
}

fn sign_with(alg: Algorithm, header_extra: serde_json::Value, key: &EncodingKey) -> String {
    keycard::ensure_crypto_backend().unwrap();
    let mut h: serde_json::Value = json!({"alg": format!("{alg:?}"), "typ": "at+jwt"});
    for (k, v) in header_extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    let header = h.to_string();
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

/// Flip the unused low bits of the last base64url character: the same
/// signature bytes, in a non-canonical encoding.
fn non_canonical(token: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut t = token.as_bytes().to_vec();
    let last = t.len() - 1;
    let idx = A.iter().position(|c| *c == t[last]).unwrap();
    t[last] = A[idx ^ 1];
    String::from_utf8(t).unwrap()
}

#[test]
fn hmac_verifier_attack_matrix() {
    let c = claims().to_string();
    let good = at(&claims());
    let attacker_rsa = EncodingKey::from_rsa_pem(&fixture("rsa2048b.pem")).unwrap();
    let attacker_jwk = serde_json::to_value(
        keycard::SigningKey::from_pem(Algorithm::RS256, fixture("rsa2048b.pem"))
            .unwrap()
            .verification_key()
            .to_public_jwk()
            .unwrap(),
    )
    .unwrap();
    // A server that must never be contacted.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://{}/jwks.json", trap.local_addr().unwrap());
    let deep = format!(
        "{{\"exp\":{},\"a\":{}{}}}",
        now() + 60,
        "[".repeat(2000),
        "]".repeat(2000)
    );
    let hs384 = {
        let mut h = Header::new(Algorithm::HS384);
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(&h, &claims(), &EncodingKey::from_secret(SECRET)).unwrap()
    };

    let cases = vec![
        // alg none (CVE-2015-9235 class) in every spelling, with and without a signature.
        (
            "alg none",
            Call::get("/me").bearer(&unsigned(r#"{"alg":"none","typ":"at+jwt"}"#, &c, "")),
            INVALID_TOKEN,
        ),
        (
            "alg None",
            Call::get("/me").bearer(&unsigned(r#"{"alg":"None","typ":"at+jwt"}"#, &c, "")),
            INVALID_TOKEN,
        ),
        (
            "alg NONE with signature",
            Call::get("/me").bearer(&unsigned(r#"{"alg":"NONE","typ":"at+jwt"}"#, &c, "AAAA")),
            INVALID_TOKEN,
        ),
        (
            "alg nOnE with a real HMAC",
            Call::get("/me").bearer(&raw_hs256(r#"{"alg":"nOnE","typ":"at+jwt"}"#, &c)),
            INVALID_TOKEN,
        ),
        (
            "alg missing",
            Call::get("/me").bearer(&raw_hs256(r#"{"typ":"at+jwt"}"#, &c)),
            INVALID_TOKEN,
        ),
        (
            "alg not a string",
            Call::get("/me").bearer(&raw_hs256(r#"{"alg":256,"typ":"at+jwt"}"#, &c)),
            INVALID_TOKEN,
        ),
        (
            "alg swapped to HS384 with the same secret",
            Call::get("/me").bearer(&hs384),
            INVALID_TOKEN,
        ),
        // Keys named by the token (CVE-2018-0114 jwk; jku/x5u SSRF and key injection).
        (
            "embedded jwk header",
            Call::get("/me").bearer(&sign_with(
                Algorithm::RS256,
                json!({"jwk": attacker_jwk}),
                &attacker_rsa,
            )),
            INVALID_TOKEN,
        ),
        (
            "jku header",
            Call::get("/me").bearer(&sign_with(
                Algorithm::RS256,
                json!({"jku": trap_url}),
                &attacker_rsa,
            )),
            INVALID_TOKEN,
        ),
        (
            "x5u header",
            Call::get("/me").bearer(&sign_with(
                Algorithm::RS256,
                json!({"x5u": trap_url}),
                &attacker_rsa,
            )),
            INVALID_TOKEN,
        ),
        (
            "x5c header",
            Call::get("/me").bearer(&sign_with(
                Algorithm::RS256,
                json!({"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
                &attacker_rsa,
            )),
            INVALID_TOKEN,
        ),
        // kid injection (path traversal, SQL, command) never reaches a file, a query or a shell.
        (
            "kid path traversal",
            Call::get("/me").bearer(&sign_with(
                Algorithm::HS256,
                json!({"kid": "../../../../../../dev/null"}),
                &EncodingKey::from_secret(b""),
            )),
            INVALID_TOKEN,
        ),
        (
            "kid SQL injection",
            Call::get("/me").bearer(&sign_with(
                Algorithm::HS256,
                json!({"kid": "x' UNION SELECT 'secret"}),
                &EncodingKey::from_secret(b"secret"),
            )),
            INVALID_TOKEN,
        ),
        (
            "kid command injection",
            Call::get("/me").bearer(&sign_with(
                Algorithm::HS256,
                json!({"kid": "k|rm -rf /"}),
                &EncodingKey::from_secret(SECRET),
            )),
            INVALID_TOKEN,
        ),
        (
            "kid of the wrong type",
            Call::get("/me").bearer(&raw_hs256(r#"{"alg":"HS256","typ":"at+jwt","kid":7}"#, &c)),
            INVALID_TOKEN,
        ),
        // Extensions we do not understand (RFC 7515 §4.1.11) and non-JWS forms.
        (
            "crit",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","crit":["exp"],"exp":1}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        (
            "unencoded payload b64:false",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","b64":false,"crit":["b64"]}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        (
            "nested JWT cty",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","cty":"JWT"}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        (
            "JWE enc header",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","enc":"A256GCM"}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        (
            "zip header",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt","zip":"DEF"}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        (
            "five-part JWE",
            Call::get("/me").bearer("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"),
            INVALID_TOKEN,
        ),
        // Type confusion between tokens (RFC 8725 §3.11, RFC 9068).
        (
            "refresh token as access token",
            Call::get("/me").bearer(&hs256(&claims(), Some("refresh+jwt"), SECRET)),
            INVALID_TOKEN,
        ),
        (
            "ID-token style typ JWT",
            Call::get("/me").bearer(&hs256(&claims(), Some("JWT"), SECRET)),
            INVALID_TOKEN,
        ),
        (
            "no typ",
            Call::get("/me").bearer(&hs256(&claims(), None, SECRET)),
            INVALID_TOKEN,
        ),
        (
            "application/at+jwt is accepted",
            Call::get("/me").bearer(&hs256(&claims(), Some("application/at+jwt"), SECRET)),
            OK,
        ),
        // Duplicate members (RFC 7515 §5.2, RFC 8725 §3.4 parser differentials).
        (
            "duplicate exp claim",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"HS256","typ":"at+jwt"}"#,
                &format!(
                    r#"{{"exp":1,"exp":{},"iss":"{ISS}","aud":"{AUD}"}}"#,
                    now() + 60
                ),
            )),
            INVALID_TOKEN,
        ),
        (
            "duplicate alg header",
            Call::get("/me").bearer(&raw_hs256(
                r#"{"alg":"none","alg":"HS256","typ":"at+jwt"}"#,
                &c,
            )),
            INVALID_TOKEN,
        ),
        // Bounded input.
        (
            "oversized token",
            Call::get("/me").bearer(&at(
                &json!({"exp": now() + 60, "iss": ISS, "aud": AUD, "pad": "x".repeat(20_000)}),
            )),
            INVALID_TOKEN,
        ),
        (
            "deeply nested payload",
            Call::get("/me").bearer(&raw_hs256(r#"{"alg":"HS256","typ":"at+jwt"}"#, &deep)),
            INVALID_TOKEN,
        ),
        (
            "huge header value",
            Call::get("/me").header("authorization", format!("Bearer {}", "a".repeat(200_000))),
            INVALID_TOKEN,
        ),
        // Non-canonical encodings (one token, one encoding).
        (
            "non-canonical base64 signature",
            Call::get("/me").bearer(&non_canonical(&good)),
            INVALID_TOKEN,
        ),
        (
            "padded signature",
            Call::get("/me").bearer(&format!("{good}=")),
            INVALID_TOKEN,
        ),
        (
            "standard-alphabet base64",
            Call::get("/me").bearer(&format!(
                "{}+{}",
                &good[..good.rfind('.').unwrap() + 1],
                &good[good.rfind('.').unwrap() + 2..]
            )),
            INVALID_TOKEN,
        ),
        (
            "empty signature",
            Call::get("/me").bearer(&good[..good.rfind('.').unwrap() + 1]),
            INVALID_TOKEN,
        ),
        (
            "signature stripped to two parts",
            Call::get("/me").bearer(&good[..good.rfind('.').unwrap()]),
            INVALID_TOKEN,
        ),
        // Registered claims of the wrong type (libraries that coerce them).
        (
            "exp far in the future",
            Call::get("/me").bearer(&at(&json!({"exp": 1e300, "iss": ISS, "aud": AUD}))),
            INVALID_TOKEN,
        ),
        (
            "exp negative",
            Call::get("/me").bearer(&at(&json!({"exp": -1, "iss": ISS, "aud": AUD}))),
            INVALID_TOKEN,
        ),
        (
            "nbf as string",
            Call::get("/me").bearer(&at(
                &json!({"exp": now() + 60, "nbf": "0", "iss": ISS, "aud": AUD}),
            )),
            INVALID_TOKEN,
        ),
        (
            "iat as bool",
            Call::get("/me").bearer(&at(
                &json!({"exp": now() + 60, "iat": true, "iss": ISS, "aud": AUD}),
            )),
            INVALID_TOKEN,
        ),
        (
            "aud null",
            Call::get("/me").bearer(&at(&json!({"exp": now() + 60, "iss": ISS, "aud": null}))),
            INVALID_TOKEN,
        ),
        (
            "iss array",
            Call::get("/me").bearer(&at(&json!({"exp": now() + 60, "iss": [ISS], "aud": AUD}))),
            INVALID_TOKEN,
        ),
        // Transport (RFC 6750 §2).
        (
            "several Authorization headers",
            Call::get("/me").bearer(&good).bearer(&good),
            INVALID_REQUEST,
        ),
        (
            "header plus cookie",
            Call::get("/me").bearer(&good).cookie(&good),
            INVALID_REQUEST,
        ),
        (
            "duplicate cookies",
            Call::get("/me")
                .header("cookie", format!("keycard_access={good}"))
                .header("cookie", format!("keycard_access={good}")),
            INVALID_REQUEST,
        ),
        (
            "token in the query string",
            Call::get("/me?access_token=x.y.z"),
            MISSING,
        ),
        (
            "scheme casing",
            Call::get("/me").header("authorization", format!("BEARER {good}")),
            OK,
        ),
        (
            "whitespace inside the token",
            Call::get("/me").header(
                "authorization",
                format!("Bearer {}\t{}", &good[..10], &good[10..]),
            ),
            INVALID_REQUEST,
        ),
        (
            "newline inside the cookie",
            Call::get("/me").header("cookie", format!("keycard_access=\"{} x\"", &good[..10])),
            INVALID_REQUEST,
        ),
        (
            "cross-site cookie POST",
            Call::post("/me")
                .cookie(&good)
                .header("origin", "https://evil.test")
                .header("host", "api.test"),
            FORBIDDEN,
        ),
    ];
    run_table(verifier_builder, &cases);
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a URL named by a token was fetched"
    );
}

#[test]
fn rsa_verifier_refuses_algorithm_confusion() {
    let pem = fixture("rsa2048.pub.pem");
    let v = || {
        Verifier::builder()
            .key(Key::from_pem(Algorithm::RS256, &pem).unwrap())
            .issuer(ISS)
            .audience(AUD)
    };
    let der = Key::from_pem(Algorithm::RS256, &pem)
        .unwrap()
        .to_public_jwk()
        .unwrap();
    let n = match &der.algorithm {
        keycard::jwk::AlgorithmParameters::RSA(r) => r.n.clone(),
        _ => unreachable!(),
    };
    let good = keycard::TokenIssuer::builder(
        keycard::SigningKey::from_pem(Algorithm::RS256, fixture("rsa2048.pem")).unwrap(),
    )
    .issuer(ISS)
    .audience(AUD)
    .build()
    .unwrap()
    .issue(keycard::TokenType::Access, "alice", None, &json!({}))
    .unwrap()
    .token;
    let cases = vec![
        (
            "RS256 token signed by the key",
            Call::get("/me").bearer(&good),
            OK,
        ),
        (
            "HS256 signed with the PEM public key (CVE-2016-10555 class)",
            Call::get("/me").bearer(&sign_with(
                Algorithm::HS256,
                json!({}),
                &EncodingKey::from_secret(&pem),
            )),
            INVALID_TOKEN,
        ),
        (
            "HS256 signed with the modulus",
            Call::get("/me").bearer(&sign_with(
                Algorithm::HS256,
                json!({}),
                &EncodingKey::from_secret(n.as_bytes()),
            )),
            INVALID_TOKEN,
        ),
        (
            "PS256 header on the RS256 key",
            Call::get("/me").bearer(&sign_with(
                Algorithm::PS256,
                json!({}),
                &EncodingKey::from_rsa_pem(&fixture("rsa2048.pem")).unwrap(),
            )),
            INVALID_TOKEN,
        ),
        (
            "RS256 signed by another key",
            Call::get("/me").bearer(&sign_with(
                Algorithm::RS256,
                json!({}),
                &EncodingKey::from_rsa_pem(&fixture("rsa2048b.pem")).unwrap(),
            )),
            INVALID_TOKEN,
        ),
    ];
    run_table(v, &cases);
}

#[test]
fn ecdsa_and_eddsa_verifiers_refuse_psychic_and_forged_signatures() {
    let es = || {
        Verifier::builder()
            .key(Key::from_pem(Algorithm::ES256, fixture("p256.pub.pem")).unwrap())
            .issuer(ISS)
            .audience(AUD)
    };
    let header = r#"{"alg":"ES256","typ":"at+jwt"}"#;
    let c = claims().to_string();
    let zeros = b64(&[0u8; 64]);
    let mut r_n = vec![0u8; 32];
    // r = s = n (the P-256 group order): the other "psychic" pair.
    let order = "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551";
    for i in 0..32 {
        r_n[i] = u8::from_str_radix(&order[2 * i..2 * i + 2], 16).unwrap();
    }
    let rn_sn = b64(&[r_n.clone(), r_n].concat());
    let cases = vec![
        (
            "psychic signature r=s=0 (CVE-2022-21449)",
            Call::get("/me").bearer(&unsigned(header, &c, &zeros)),
            INVALID_TOKEN,
        ),
        (
            "psychic signature r=s=n",
            Call::get("/me").bearer(&unsigned(header, &c, &rn_sn)),
            INVALID_TOKEN,
        ),
        (
            "DER-encoded ECDSA signature",
            Call::get("/me").bearer(&unsigned(
                header,
                &c,
                &b64(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]),
            )),
            INVALID_TOKEN,
        ),
        (
            "ES256 token from another key",
            Call::get("/me").bearer(&sign_with(
                Algorithm::ES256,
                json!({}),
                &EncodingKey::from_ec_pem(&fixture("p256b.pem")).unwrap(),
            )),
            INVALID_TOKEN,
        ),
    ];
    run_table(es, &cases);

    let ed = || {
        Verifier::builder()
            .key(Key::from_pem(Algorithm::EdDSA, fixture("ed25519.pub.pem")).unwrap())
            .issuer(ISS)
            .audience(AUD)
    };
    let cases = vec![
        (
            "EdDSA all-zero signature",
            Call::get("/me").bearer(&unsigned(r#"{"alg":"EdDSA","typ":"at+jwt"}"#, &c, &zeros)),
            INVALID_TOKEN,
        ),
        (
            "EdDSA from another key",
            Call::get("/me").bearer(&sign_with(
                Algorithm::EdDSA,
                json!({}),
                &EncodingKey::from_ed_pem(&fixture("ed25519b.pem")).unwrap(),
            )),
            INVALID_TOKEN,
        ),
        (
            "ES256 header to an EdDSA key",
            Call::get("/me").bearer(&sign_with(
                Algorithm::ES256,
                json!({}),
                &EncodingKey::from_ec_pem(&fixture("p256.pem")).unwrap(),
            )),
            INVALID_TOKEN,
        ),
    ];
    run_table(ed, &cases);
}

/// RFC 8725 §3.1 and the OWASP cheat sheet: secrets and signatures are
/// compared in constant time. keycard leaves every comparison of secret
/// material to the crypto backends; this test keeps it that way by refusing
/// `==`/`!=` on names that hold secret material in keycard's own code.
#[test]
fn no_secret_material_is_compared_with_eq() {
    let suspicious = [
        "secret",
        "signature",
        "sig ",
        "mac",
        "tag",
        "password",
        "hmac",
        "key_bytes",
    ];
    let mut hits = Vec::new();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut stack = vec![
        std::path::PathBuf::from(root).join("crates"),
        std::path::PathBuf::from(root).join("src"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.to_string_lossy().contains("/tests/")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    // Enum variants such as `PublicKeyUse::Signature` are not secrets.
                    let code = line
                        .split("//")
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase()
                        .replace("publickeyuse::signature", "");

                    if (code.contains("==") || code.contains("!="))
                        && suspicious.iter().any(|s| code.contains(s))
                    {
                        hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        hits.is_empty(),
        "compare secret material in constant time:\n{}",
        hits.join("\n")
    );
}

/// A blocking HTTP server that answers every request with `body` (a JWKS),
/// on a loopback port, for as long as the test runs.
fn serve_forever(body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// December audit, critical: a JWKS publishes a public key labelled as an
/// HMAC algorithm. If it were imported, its public bytes (`0x04‖x‖y` for
/// EC, raw `x` for OKP) would become the HMAC secret, and anyone who can
/// read the JWKS could mint admin tokens. The whole class: EC and OKP keys
/// labelled HS256/HS384/HS512, and `oct` keys, through the remote JWKS
/// cache and through multi-issuer resolution, on all three adapters.
#[test]
fn a_public_key_in_a_jwks_never_becomes_an_hmac_secret() {
    let p256 = keycard::SigningKey::from_pem(Algorithm::ES256, fixture("p256.pem"))
        .unwrap()
        .with_kid("good");
    let ec_jwk = serde_json::to_value(p256.verification_key().to_public_jwk().unwrap()).unwrap();
    let ed = keycard::SigningKey::from_pem(Algorithm::EdDSA, fixture("ed25519.pem")).unwrap();
    let ed_jwk = serde_json::to_value(ed.verification_key().to_public_jwk().unwrap()).unwrap();
    let dec = |s: &serde_json::Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    // The secrets an attacker derives from what the JWKS publishes.
    let mut ec_point = vec![4u8];
    ec_point.extend(dec(&ec_jwk["x"]));
    ec_point.extend(dec(&ec_jwk["y"]));
    let ed_x = dec(&ed_jwk["x"]);
    let oct_secret = b"a-shared-secret-published-by-mistake-0123456789".to_vec();
    let mut keys = vec![ec_jwk.clone()];
    for (i, alg) in ["HS256", "HS384", "HS512"].iter().enumerate() {
        let mut ec = ec_jwk.clone();
        ec["alg"] = json!(alg);
        ec["kid"] = json!(format!("ec-{i}"));
        let mut okp = ed_jwk.clone();
        okp["alg"] = json!(alg);
        okp["kid"] = json!(format!("okp-{i}"));
        keys.push(ec);
        keys.push(okp);
    }
    use base64::Engine as _;
    keys.push(json!({"kty": "oct", "alg": "HS256", "kid": "oct",
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&oct_secret)}));
    let url = serve_forever(json!({ "keys": keys }).to_string());

    let admin_claims = {
        let mut c = claims();
        c["roles"] = json!(["admin"]);
        c
    };
    let forged = |alg: Algorithm, kid: &str, secret: &[u8]| {
        keycard::ensure_crypto_backend().unwrap();
        let header = json!({"alg": format!("{alg:?}"), "typ": "at+jwt", "kid": kid}).to_string();
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(admin_claims.to_string().as_bytes())
        );
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), alg)
                .unwrap();
        format!("{input}.{sig}")
    };
    let good = keycard::TokenIssuer::builder(p256)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap()
        .issue(
            keycard::TokenType::Access,
            "alice",
            None,
            &json!({"roles": ["admin"]}),
        )
        .unwrap()
        .token;
    let mut cases = vec![(
        "the genuine ES256 key still works".to_string(),
        Call::get("/admin").bearer(&good),
        OK,
    )];
    for (i, alg) in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
        .into_iter()
        .enumerate()
    {
        cases.push((
            format!("{alg:?} forged with the EC point of a JWKS key labelled {alg:?}"),
            Call::get("/admin").bearer(&forged(alg, &format!("ec-{i}"), &ec_point)),
            INVALID_TOKEN,
        ));
        cases.push((
            format!("{alg:?} forged with the Ed25519 x of a JWKS key labelled {alg:?}"),
            Call::get("/admin").bearer(&forged(alg, &format!("okp-{i}"), &ed_x)),
            INVALID_TOKEN,
        ));
    }
    cases.push((
        "HS256 with an oct key published in the JWKS".into(),
        Call::get("/admin").bearer(&forged(Algorithm::HS256, "oct", &oct_secret)),
        INVALID_TOKEN,
    ));
    let cases: Vec<(&str, Call, Expect)> = cases
        .iter()
        .map(|(n, c, e)| (n.as_str(), c.clone(), e.clone()))
        .collect();

    // Through the JWKS cache...
    let jwks = std::sync::Arc::new(
        keycard::jwks::RemoteJwks::builder(url.clone())
            .insecure_allow_http_loopback()
            .build_lazy()
            .unwrap(),
    );
    run_table(
        || {
            Verifier::builder()
                .key_provider(jwks.clone())
                .issuer(ISS)
                .audience(AUD)
        },
        &cases,
    );
    // ...and through multi-issuer resolution.
    let multi = std::sync::Arc::new(keycard::jwks::MultiIssuer::new().issuer(ISS, jwks.clone()));
    run_table(
        || {
            Verifier::builder()
                .key_provider(multi.clone())
                .issuer(ISS)
                .audience(AUD)
        },
        &cases,
    );
    // No key of the document became an HMAC key.
    for k in keycard::jwks::parse_document(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    {
        assert!(
            !matches!(
                k.algorithm(),
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ),
            "{k:?}"
        );
    }
}

/// Typed mode (`JwtAuth::claims::<T>()`) runs the caller's `Deserialize`
/// only on a token whose signature checked out (RFC 8725 §3.11: use claims
/// only after validation). A `Deserialize` that counts its calls and panics
/// on `sub: "boom"` sees no forged token: not with one key, not with keys
/// chosen by `iss`, not through the core, tower or actix-web. A genuine
/// token still reaches it.
mod typed_mode {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    static RAN: AtomicUsize = AtomicUsize::new(0);

    #[derive(Clone, Debug)]
    struct Watching {
        sub: String,
    }

    impl<'de> serde::Deserialize<'de> for Watching {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            #[derive(serde::Deserialize)]
            struct Raw {
                sub: String,
            }
            RAN.fetch_add(1, Ordering::SeqCst);
            let raw = Raw::deserialize(d)?;
            assert_ne!(
                raw.sub, "boom",
                "the caller's Deserialize ran on a forged token"
            );
            Ok(Watching { sub: raw.sub })
        }
    }

    fn verifiers() -> Vec<(&'static str, Verifier)> {
        let multi = keycard::keys::MultiIssuer::new().issuer(
            ISS,
            Arc::new(
                keycard::keys::KeySet::new()
                    .with(Key::hs256(SECRET).unwrap())
                    .unwrap(),
            ) as Arc<dyn keycard::keys::KeyProvider>,
        );
        vec![
            ("one key", verifier()),
            (
                "keys by iss",
                Verifier::builder()
                    .key_provider(Arc::new(multi))
                    .issuer(ISS)
                    .audience(AUD)
                    .build()
                    .unwrap(),
            ),
        ]
    }

    fn forged() -> Vec<String> {
        let mut c = claims();
        c["sub"] = json!("boom");
        vec![
            hs256(
                &c,
                Some("at+jwt"),
                b"not-the-verifier's-secret-0123456789abcdef",
            ),
            // A valid signature of other bytes, pasted on.
            {
                let good = at(&claims());
                let bad = at(&c);
                let (input, _) = bad.rsplit_once('.').unwrap();
                format!("{input}.{}", good.rsplit_once('.').unwrap().1)
            },
            // A payload the untyped pass refuses (a duplicate member),
            // under another token's valid signature: refused for the
            // payload in both modes, the signature checked once.
            {
                let good = at(&claims());
                let bad = unsigned(
                    r#"{"alg":"HS256","typ":"at+jwt"}"#,
                    r#"{"sub":"boom","exp":9999999999,"exp":1}"#,
                    "x",
                );
                let (input, _) = bad.rsplit_once('.').unwrap();
                format!("{input}.{}", good.rsplit_once('.').unwrap().1)
            },
        ]
    }

    #[test]
    fn the_callers_deserialize_never_sees_a_forged_token() {
        let genuine = at(&claims());
        for (what, v) in verifiers() {
            for token in forged() {
                let before = RAN.load(Ordering::SeqCst);
                let mut headers = http::HeaderMap::new();
                headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
                let (attempt, t) = v.authenticate_now_typed::<Watching, _>("GET", None, &headers);
                let keycard::adapter::Attempt::Done(Err(typed)) = attempt else {
                    panic!("{what}: a forged token passed typed")
                };
                assert!(t.is_none());
                // The same refusal as the untyped path gives.
                let keycard::adapter::Attempt::Done(Err(untyped)) =
                    v.authenticate_now_at("GET", None, &headers)
                else {
                    panic!("{what}: a forged token passed")
                };
                assert_eq!(typed.kind(), untyped.kind(), "{what}: {token}");
                // tower (and so axum) and actix-web, typed layers.
                let tower = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(tower_status(&v, &token));
                assert_eq!(tower, 401, "{what}: tower");
                let actix = actix_web::rt::System::new().block_on(actix_status(&v, &token));
                assert_eq!(actix, 401, "{what}: actix-web");
                assert_eq!(
                    RAN.load(Ordering::SeqCst),
                    before,
                    "{what}: Deserialize ran"
                );
            }
            let before = RAN.load(Ordering::SeqCst);
            let mut headers = http::HeaderMap::new();
            headers.insert(
                "authorization",
                format!("Bearer {genuine}").parse().unwrap(),
            );
            let (attempt, t) = v.authenticate_now_typed::<Watching, _>("GET", None, &headers);
            assert!(
                matches!(attempt, keycard::adapter::Attempt::Done(Ok(_))),
                "{what}"
            );
            assert_eq!(t.map(|t| t.sub).as_deref(), Some("alice"), "{what}");
            assert!(RAN.load(Ordering::SeqCst) > before, "{what}: genuine token");
            let tower = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(tower_status(&v, &genuine));
            assert_eq!(tower, 200, "{what}: tower, genuine");
            let actix = actix_web::rt::System::new().block_on(actix_status(&v, &genuine));
            assert_eq!(actix, 200, "{what}: actix-web, genuine");
        }
    }

    /// A provider keyed by issuer that does not say so (`needs_issuer`
    /// stays false) and answers a lookup without `iss` with every key: the
    /// typed mode, which looks the key up before the payload is read, must
    /// still decide as the untyped path (which passes `iss`) does. Issuer
    /// B's name on a token signed with issuer A's key is refused in both.
    #[test]
    fn a_provider_that_ignores_iss_wrongly_decides_as_the_untyped_path() {
        // Not `Watching`: its counter belongs to the test beside this one.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Sub {
            sub: String,
        }
        #[derive(Debug)]
        struct ByIssuer(Vec<(String, Arc<Key>)>);
        impl keycard::keys::KeyProvider for ByIssuer {
            fn lookup(
                &self,
                issuer: Option<&str>,
                _kid: Option<&str>,
                alg: &str,
            ) -> keycard::keys::KeyLookup {
                let keys: Vec<Arc<Key>> = self
                    .0
                    .iter()
                    .filter(|(i, k)| {
                        issuer.is_none_or(|want| want == i) && format!("{:?}", k.algorithm()) == alg
                    })
                    .map(|(_, k)| k.clone())
                    .collect();
                if keys.is_empty() {
                    keycard::keys::KeyLookup::NotFound
                } else {
                    keycard::keys::KeyLookup::Found(keys)
                }
            }
        }
        let secret_a = b"issuer-a-secret-0123456789abcdef0123456789";
        let secret_b = b"issuer-b-secret-0123456789abcdef0123456789";
        let v = Verifier::builder()
            .key_provider(Arc::new(ByIssuer(vec![
                (
                    "https://a.test".into(),
                    Arc::new(Key::hs256(secret_a).unwrap()),
                ),
                (
                    "https://b.test".into(),
                    Arc::new(Key::hs256(secret_b).unwrap()),
                ),
            ])))
            .issuer("https://a.test")
            .issuer("https://b.test")
            .audience(AUD)
            .build()
            .unwrap();
        let mut c = claims();
        c["iss"] = json!("https://b.test");
        let forged = hs256(&c, Some("at+jwt"), secret_a);
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {forged}").parse().unwrap());
        let untyped = v.authenticate_now_at("GET", None, &headers);
        assert!(
            matches!(untyped, keycard::adapter::Attempt::Done(Err(_))),
            "untyped"
        );
        let (typed, t) = v.authenticate_now_typed::<Sub, _>("GET", None, &headers);
        assert!(
            matches!(typed, keycard::adapter::Attempt::Done(Err(_))),
            "typed"
        );
        assert!(t.is_none());
        // B's own token passes both ways.
        let genuine = hs256(&c, Some("at+jwt"), secret_b);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "authorization",
            format!("Bearer {genuine}").parse().unwrap(),
        );
        let (typed, _) = v.authenticate_now_typed::<Sub, _>("GET", None, &headers);
        assert!(
            matches!(typed, keycard::adapter::Attempt::Done(Ok(_))),
            "genuine, typed"
        );
    }

    async fn tower_status(v: &Verifier, token: &str) -> u16 {
        use tower::{service_fn, Layer, ServiceExt};
        let handler = service_fn(|mut req: http::Request<String>| async move {
            let c = keycard::tower::take_claims::<Watching>(req.extensions_mut()).unwrap();
            Ok::<_, std::convert::Infallible>(http::Response::new(c.sub))
        });
        let svc = keycard::tower::JwtAuth::new(v.clone())
            .claims::<Watching>()
            .layer(handler);
        let req = http::Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        svc.oneshot(req).await.unwrap().status().as_u16()
    }

    async fn actix_status(v: &Verifier, token: &str) -> u16 {
        use actix_web::{test, web, App, HttpResponse};
        async fn me(c: keycard_actix::Claims<Watching>) -> HttpResponse {
            HttpResponse::Ok().body(c.sub.clone())
        }
        let app = test::init_service(
            App::new()
                .wrap(keycard_actix::JwtAuth::new(v.clone()).claims::<Watching>())
                .route("/me", web::get().to(me)),
        )
        .await;
        let req = test::TestRequest::get()
            .uri("/me")
            .insert_header(("authorization", format!("Bearer {token}")))
            .to_request();
        test::call_service(&app, req).await.status().as_u16()
    }
}

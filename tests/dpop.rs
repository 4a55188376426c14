//! DPoP (RFC 9449) on every adapter: the attack matrix (a stolen token
//! without the key, proof replay, wrong htm/htu, a proof for another token,
//! `none` and HMAC proofs, a private key inside the proof's jwk), the three
//! policies, nonces, and the challenges.

mod common;

use common::*;
use jsonwebtoken::{EncodingKey, Header};
use keycard::dpop::{access_token_hash, thumbprint, DpopConfig, DpopPolicy};
use keycard::{Algorithm, Key, SigningKey, TokenIssuer, Verifier};
use serde_json::{json, Map, Value};

const ORIGIN: &str = "https://api.test";
const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

/// A client key pair: the signing key for proofs, its public JWK.
struct Client {
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Map<String, Value>,
}

impl Client {
    fn from_fixture(alg: Algorithm, private: &str) -> Self {
        keycard::ensure_crypto_backend().unwrap();
        let pem = std::fs::read(format!("{FIX}{private}")).unwrap();
        let signing = SigningKey::from_pem(alg, &pem).unwrap();
        let jwk =
            serde_json::to_value(signing.verification_key().to_public_jwk().unwrap()).unwrap();
        let mut jwk = jwk.as_object().unwrap().clone();
        for k in ["kid", "alg", "use", "key_ops"] {
            jwk.remove(k);
        }
        let encoding = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
            _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
        };
        Self { alg, encoding, jwk }
    }

    fn jkt(&self) -> String {
        thumbprint(&self.jwk).unwrap()
    }

    /// A proof with these claims, signed by this client.
    fn proof_with(&self, header_jwk: Value, claims: Value) -> String {
        let mut h = Header::new(self.alg);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(header_jwk).unwrap());
        jsonwebtoken::encode(&h, &claims, &self.encoding).unwrap()
    }

    /// A proof from raw header JSON (members jsonwebtoken's types would
    /// drop, like a private `d`, survive).
    fn raw_proof(&self, header: Value, claims: Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{input}.{sig}")
    }

    fn proof(&self, htm: &str, path: &str, token: &str) -> String {
        self.proof_with(
            Value::Object(self.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": htm, "htu": format!("{ORIGIN}{path}"),
                "iat": now(), "ath": access_token_hash(token),
            }),
        )
    }
}

fn alice() -> Client {
    Client::from_fixture(Algorithm::ES256, "p256.pem")
}

fn mallory() -> Client {
    Client::from_fixture(Algorithm::ES256, "p256b.pem")
}

fn bound_token(jkt: &str) -> String {
    issuer()
        .issue_bound("alice", None, &json!({"roles": ["user"]}), jkt)
        .unwrap()
        .token
}

fn dpop_verifier(cfg: DpopConfig) -> Verifier {
    verifier_builder()
        .dpop(cfg.public_origin(ORIGIN))
        .build()
        .unwrap()
}

fn dpop_call(token: &str, proof: &str) -> Call {
    Call::get("/me")
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof.to_owned())
}

fn expect(answer: &Answer, status: u16, code: Option<&str>, what: &str) {
    assert_eq!(answer.status, status, "{what}: {answer:?}");
    if let Some(code) = code {
        let c = answer.challenge.as_deref().unwrap_or("");
        assert!(c.contains(&format!("error=\"{code}\"")), "{what}: {c}");
    }
}

#[test]
fn the_dpop_attack_matrix_on_every_adapter() {
    let v = dpop_verifier(DpopConfig::new(DpopPolicy::Allowed));
    let alice = alice();
    let mallory = mallory();
    let token = bound_token(&alice.jkt());
    for adapter in ADAPTERS {
        let run = |c: &Call| call(adapter, &v, c);
        let what = |s: &str| format!("{adapter:?}: {s}");

        // The genuine request.
        let ok = run(&dpop_call(&token, &alice.proof("GET", "/me", &token)));
        expect(&ok, 200, None, &what("valid proof"));
        assert!(ok.body.contains("alice"));

        // A stolen token without the key: as Bearer, or with the thief's
        // own proof.
        let bearer = run(&Call::get("/me").bearer(&token));
        expect(
            &bearer,
            401,
            Some("invalid_token"),
            &what("bound token as bearer"),
        );
        let thief = run(&dpop_call(&token, &mallory.proof("GET", "/me", &token)));
        expect(
            &thief,
            401,
            Some("invalid_token"),
            &what("proof by another key"),
        );

        // Replay: the same proof twice.
        let proof = alice.proof("GET", "/me", &token);
        expect(
            &run(&dpop_call(&token, &proof)),
            200,
            None,
            &what("first use"),
        );
        let replay = run(&dpop_call(&token, &proof));
        expect(
            &replay,
            401,
            Some("invalid_dpop_proof"),
            &what("replayed proof"),
        );

        // Wrong method, wrong URL, a proof made for another token.
        let post = alice.proof("POST", "/me", &token);
        expect(
            &run(&dpop_call(&token, &post)),
            401,
            Some("invalid_dpop_proof"),
            &what("htm"),
        );
        let elsewhere = alice.proof("GET", "/admin", &token);
        expect(
            &run(&dpop_call(&token, &elsewhere)),
            401,
            Some("invalid_dpop_proof"),
            &what("htu"),
        );
        let other_token = bound_token(&alice.jkt());
        let for_other = alice.proof("GET", "/me", &other_token);
        expect(
            &run(&dpop_call(&token, &for_other)),
            401,
            Some("invalid_dpop_proof"),
            &what("ath"),
        );

        // Proofs keycard never accepts: alg none, HMAC, a private key in
        // the jwk, a wrong typ, too old, no proof, two proofs.
        let claims = json!({
            "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
            "iat": now(), "ath": access_token_hash(&token),
        });
        let none = format!(
            "{}.{}.",
            b64(json!({"typ": "dpop+jwt", "alg": "none", "jwk": alice.jwk})
                .to_string()
                .as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        expect(
            &run(&dpop_call(&token, &none)),
            401,
            Some("invalid_dpop_proof"),
            &what("alg none"),
        );
        let hmac = {
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some("dpop+jwt".into());
            h.jwk = Some(serde_json::from_value(json!({"kty": "oct", "k": b64(SECRET)})).unwrap());
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
        };
        expect(
            &run(&dpop_call(&token, &hmac)),
            401,
            Some("invalid_dpop_proof"),
            &what("HMAC proof"),
        );
        let mut with_private = alice.jwk.clone();
        with_private.insert("d".into(), json!("c29tZS1wcml2YXRlLWtleS1tYXRlcmlhbA"));
        let leaked = alice.raw_proof(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": with_private}),
            claims.clone(),
        );
        expect(
            &run(&dpop_call(&token, &leaked)),
            401,
            Some("invalid_dpop_proof"),
            &what("private jwk"),
        );
        let wrong_typ = {
            let mut h = Header::new(Algorithm::ES256);
            h.typ = Some("JWT".into());
            h.jwk = Some(serde_json::from_value(Value::Object(alice.jwk.clone())).unwrap());
            jsonwebtoken::encode(&h, &claims, &alice.encoding).unwrap()
        };
        expect(
            &run(&dpop_call(&token, &wrong_typ)),
            401,
            Some("invalid_dpop_proof"),
            &what("typ JWT"),
        );
        let old = alice.proof_with(
            Value::Object(alice.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
                "iat": now() - 600, "ath": access_token_hash(&token),
            }),
        );
        expect(
            &run(&dpop_call(&token, &old)),
            401,
            Some("invalid_dpop_proof"),
            &what("old proof"),
        );
        let no_proof = Call::get("/me").header("authorization", format!("DPoP {token}"));
        expect(
            &run(&no_proof),
            401,
            Some("invalid_dpop_proof"),
            &what("no proof"),
        );
        let two = dpop_call(&token, &alice.proof("GET", "/me", &token))
            .header("dpop", alice.proof("GET", "/me", &token));
        expect(
            &run(&two),
            401,
            Some("invalid_dpop_proof"),
            &what("two proofs"),
        );

        // An unbound token presented with DPoP is refused too.
        let unbound = access("alice", &["user"]);
        let proof = alice.proof("GET", "/me", &unbound);
        expect(
            &run(&dpop_call(&unbound, &proof)),
            401,
            Some("invalid_token"),
            &what("unbound + DPoP"),
        );
    }
}

#[test]
fn a_bound_token_is_never_a_bearer_token_even_without_dpop_configured() {
    let plain = verifier();
    let token = bound_token(&alice().jkt());
    for adapter in ADAPTERS {
        let a = call(adapter, &plain, &Call::get("/me").bearer(&token));
        expect(&a, 401, Some("invalid_token"), &format!("{adapter:?}"));
        // And without DPoP configured, the DPoP scheme is not read at all.
        let a = call(adapter, &plain, &dpop_call(&token, "x.y.z"));
        expect(&a, 401, None, &format!("{adapter:?} DPoP scheme unread"));
    }
}

#[test]
fn policies_and_their_challenges() {
    let alice = alice();
    let unbound = access("alice", &["user"]);
    let required = dpop_verifier(DpopConfig::new(DpopPolicy::Required));
    let allowed = dpop_verifier(DpopConfig::new(DpopPolicy::Allowed));
    for adapter in ADAPTERS {
        // Required: a Bearer token is refused with a DPoP challenge.
        let a = call(adapter, &required, &Call::get("/me").bearer(&unbound));
        assert_eq!(a.status, 401);
        let c = a.challenge.unwrap();
        assert!(c.starts_with("DPoP ") && c.contains("algs=\"ES256"), "{c}");
        // Required: no credentials → a DPoP challenge.
        let a = call(adapter, &required, &Call::get("/me"));
        assert!(a.challenge.unwrap().starts_with("DPoP "));
        // Allowed: Bearer works, and a failure offers both schemes.
        let a = call(adapter, &allowed, &Call::get("/me").bearer(&unbound));
        assert_eq!(a.status, 200, "{adapter:?}");
        let a = call(adapter, &allowed, &Call::get("/me"));
        let c = a.challenge.unwrap();
        assert!(
            c.starts_with("Bearer ") && c.contains("DPoP algs=\""),
            "{c}"
        );
        // A DPoP error always answers with the DPoP scheme.
        let token = bound_token(&alice.jkt());
        let proof = alice.proof("POST", "/me", &token);
        let a = call(adapter, &allowed, &dpop_call(&token, &proof));
        let c = a.challenge.unwrap();
        assert!(
            c.starts_with("DPoP ") && c.contains("error=\"invalid_dpop_proof\""),
            "{c}"
        );
    }
}

#[test]
fn server_nonces() {
    let v = dpop_verifier(DpopConfig::new(DpopPolicy::Required).require_nonces());
    let alice = alice();
    let token = bound_token(&alice.jkt());
    for adapter in ADAPTERS {
        let first = call(
            adapter,
            &v,
            &dpop_call(&token, &alice.proof("GET", "/me", &token)),
        );
        expect(&first, 401, Some("use_dpop_nonce"), &format!("{adapter:?}"));
        let nonce = first.dpop_nonce.expect("a DPoP-Nonce header");
        let proof = alice.proof_with(
            Value::Object(alice.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
                "iat": now(), "ath": access_token_hash(&token), "nonce": nonce,
            }),
        );
        let again = call(adapter, &v, &dpop_call(&token, &proof));
        expect(&again, 200, None, &format!("{adapter:?} with the nonce"));
        let forged = alice.proof_with(
            Value::Object(alice.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
                "iat": now(), "ath": access_token_hash(&token), "nonce": "bm90LWEtbm9uY2U",
            }),
        );
        let bad = call(adapter, &v, &dpop_call(&token, &forged));
        expect(
            &bad,
            401,
            Some("use_dpop_nonce"),
            &format!("{adapter:?} forged nonce"),
        );
    }
}

#[test]
fn every_proof_algorithm_keycard_allows_by_default() {
    let v = dpop_verifier(DpopConfig::new(DpopPolicy::Required));
    for client in [
        Client::from_fixture(Algorithm::ES256, "p256.pem"),
        Client::from_fixture(Algorithm::RS256, "rsa2048.pem"),
        Client::from_fixture(Algorithm::PS256, "rsa2048b.pem"),
        Client::from_fixture(Algorithm::EdDSA, "ed25519.pem"),
    ] {
        let token = bound_token(&client.jkt());
        let a = call(
            Adapter::Tower,
            &v,
            &dpop_call(&token, &client.proof("GET", "/me", &token)),
        );
        assert_eq!(a.status, 200, "{:?}: {a:?}", client.alg);
    }
    // ES384 is on the default list too; a proof whose jwk claims another
    // curve than its alg is no proof.
    let p384 = Client::from_fixture(Algorithm::ES384, "p384.pem");
    let token = bound_token(&p384.jkt());
    let a = call(
        Adapter::Tower,
        &v,
        &dpop_call(&token, &p384.proof("GET", "/me", &token)),
    );
    assert_eq!(a.status, 200, "{a:?}");
    let mismatched = p384.raw_proof(
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": p384.jwk}),
        json!({
            "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
            "iat": now(), "ath": access_token_hash(&token),
        }),
    );
    let a = call(Adapter::Tower, &v, &dpop_call(&token, &mismatched));
    assert_eq!(a.status, 401);
}

#[test]
fn the_issuer_binds_tokens_and_strips_a_claimed_cnf() {
    let jkt = alice().jkt();
    let t = bound_token(&jkt);
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["cnf"]["jkt"], jkt);
    // A user claim named cnf never binds (or unbinds) a token.
    let sneaky = issuer()
        .issue(
            keycard::TokenType::Access,
            "alice",
            None,
            &json!({"cnf": {"jkt": "attacker"}}),
        )
        .unwrap()
        .token;
    let v = Verifier::builder()
        .key(Key::hs256(SECRET).unwrap())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let verified = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(v.verify(&sneaky))
        .unwrap();
    assert_eq!(verified.confirmation_jkt(), None);
    assert!(TokenIssuer::builder(SigningKey::hs256(SECRET).unwrap())
        .build()
        .unwrap()
        .issue_bound("alice", None, &json!({}), "not a thumbprint!")
        .is_err());
}

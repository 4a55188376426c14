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
        self.proof_for_url(htm, &format!("{ORIGIN}{path}"), token)
    }

    fn proof_for_url(&self, htm: &str, url: &str, token: &str) -> String {
        self.proof_with(
            Value::Object(self.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": htm, "htu": url,
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

/// Any panic in this test binary aborts it, as a service built with
/// `panic = "abort"` would: a request that panicked cannot pass as a
/// refused connection.
fn abort_on_panic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default(info);
            std::process::abort();
        }));
    });
}

/// A `%` before a multi-byte character in a proof's `htu`, or in a `Host`
/// that the expected URL was built from, once sliced a string inside a
/// character and panicked (before anything was verified, for the `Host`).
/// Now each gets 401 and the next request is served, on every adapter.
#[test]
fn no_url_input_panics_and_the_next_request_is_served() {
    abort_on_panic();
    let alice = alice();
    let token = bound_token(&alice.jkt());
    let pinned = dpop_verifier(DpopConfig::new(DpopPolicy::Allowed));
    let from_host = verifier_builder()
        .dpop(DpopConfig::new(DpopPolicy::Allowed))
        .build()
        .unwrap();
    for adapter in ADAPTERS {
        let what = |s: &str| format!("{adapter:?}: {s}");
        for url in [
            "https://api.test/%\u{20ac}",
            "https://api.test/me%\u{20ac}%",
            "https://api.test/%e2%82",
        ] {
            let a = call(
                adapter,
                &pinned,
                &dpop_call(&token, &alice.proof_for_url("GET", url, &token)),
            );
            expect(&a, 401, Some("invalid_dpop_proof"), &what(url));
            let ok = call(
                adapter,
                &pinned,
                &dpop_call(&token, &alice.proof("GET", "/me", &token)),
            );
            expect(&ok, 200, None, &what("the next request"));
        }
        for host in [
            "x/%\u{20ac}",
            "api.test/%\u{20ac}",
            "\u{20ac}%",
            "%",
            "api.test\u{a0}",
            "\u{2003}api.test",
        ] {
            let proof = alice.proof("GET", "/me", &token);
            let a = call(
                adapter,
                &from_host,
                &dpop_call(&token, &proof).header("host", host),
            );
            expect(&a, 401, Some("invalid_dpop_proof"), &what(host));
            // An opaque or unknown token too: the request URL is built
            // before anything is verified.
            let a = call(
                adapter,
                &from_host,
                &dpop_call("opaque", &proof).header("host", host),
            );
            assert_eq!(a.status, 401, "{}", what(host));
            let proof = alice.proof("GET", "/me", &token);
            let ok = call(
                adapter,
                &from_host,
                &dpop_call(&token, &proof).header("host", "api.test"),
            );
            expect(&ok, 200, None, &what("the next request"));
        }
    }
}

/// The URL a proof must name comes from the configured origin, or from a
/// `Host` that is a host[:port] authority; a `Host` (or a trusted
/// `X-Forwarded-Host`) with `/`, `?` or `#` can no longer move the
/// boundary between host and path so that a proof for `/admin` passes on
/// `/me`.
#[test]
fn the_proof_url_comes_from_a_validated_host_or_the_configured_origin() {
    abort_on_panic();
    let alice = alice();
    let token = bound_token(&alice.jkt());
    let from_host = verifier_builder()
        .dpop(DpopConfig::new(DpopPolicy::Allowed))
        .build()
        .unwrap();
    let forwarded = verifier_builder()
        .trust_forwarded_origin()
        .dpop(DpopConfig::new(DpopPolicy::Allowed))
        .build()
        .unwrap();
    let pinned = dpop_verifier(DpopConfig::new(DpopPolicy::Allowed));
    let admin_proof = || alice.proof_for_url("GET", "https://api.test/admin", &token);
    for adapter in ADAPTERS {
        let what = |s: &str| format!("{adapter:?}: {s}");
        for host in [
            "api.test/admin#",
            "api.test/admin?",
            "api.test/admin%23",
            "u@api.test",
            "api.test, evil",
        ] {
            let a = call(
                adapter,
                &from_host,
                &dpop_call(&token, &admin_proof()).header("host", host),
            );
            expect(&a, 401, Some("invalid_dpop_proof"), &what(host));
            let a = call(
                adapter,
                &forwarded,
                &dpop_call(&token, &admin_proof())
                    .header("host", "api.test")
                    .header("x-forwarded-host", host),
            );
            expect(
                &a,
                401,
                Some("invalid_dpop_proof"),
                &what(&format!("forwarded {host}")),
            );
        }
        // A valid Host, written as a client may: case and default port.
        let p = alice.proof_for_url("GET", "https://api.test/me", &token);
        let a = call(
            adapter,
            &from_host,
            &dpop_call(&token, &p).header("host", "API.test:443"),
        );
        expect(&a, 200, None, &what("Host API.test:443"));
        let p = alice.proof_for_url("GET", "https://api.test:8443/me", &token);
        let a = call(
            adapter,
            &from_host,
            &dpop_call(&token, &p).header("host", "api.test:8443"),
        );
        expect(&a, 200, None, &what("Host with a port"));
        // With the origin configured, the Host says nothing: a proof made
        // for another server is refused whatever Host comes with it.
        let other = alice.proof_for_url("GET", "https://other.test/me", &token);
        let a = call(
            adapter,
            &pinned,
            &dpop_call(&token, &other).header("host", "other.test"),
        );
        expect(
            &a,
            401,
            Some("invalid_dpop_proof"),
            &what("a proof for another server"),
        );
        let p = alice.proof("GET", "/me", &token);
        let a = call(
            adapter,
            &pinned,
            &dpop_call(&token, &p).header("host", "other.test"),
        );
        expect(&a, 200, None, &what("the configured origin"));
    }
    // An origin that is not scheme://host[:port] does not build.
    for bad in [
        "api.test",
        "https://api.test/path",
        "ftp://api.test",
        "https://u@api.test",
    ] {
        assert!(
            verifier_builder()
                .dpop(DpopConfig::new(DpopPolicy::Allowed).public_origin(bad))
                .build()
                .is_err(),
            "{bad}"
        );
    }
}

/// Under axum's `Router::nest` and actix-web's `scope`, a proof names the
/// full path: a genuine proof for `/api/me` passes, and a proof for `/me`
/// is refused on `/api/me`.
#[test]
fn nested_routes_are_checked_against_the_full_path() {
    abort_on_panic();
    let alice = alice();
    let token = bound_token(&alice.jkt());
    let v = dpop_verifier(DpopConfig::new(DpopPolicy::Required));
    let cases = [("/api/me", 200), ("/me", 401), ("/api/api/me", 401)];
    // axum, with the layer inside the nested router and outside it.
    for inside in [true, false] {
        for (proof_path, status) in cases {
            let proof = alice.proof("GET", proof_path, &token);
            let status_got = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    use axum::routing::get;
                    use keycard::axum::{Authenticated, JwtAuth};
                    use tower::ServiceExt;
                    async fn me(Authenticated(v): Authenticated) -> String {
                        v.subject().unwrap_or("").to_owned()
                    }
                    let inner = axum::Router::new().route("/me", get(me));
                    let app = if inside {
                        axum::Router::new().nest("/api", inner.layer(JwtAuth::new(v.clone())))
                    } else {
                        axum::Router::new()
                            .nest("/api", inner)
                            .layer(JwtAuth::new(v.clone()))
                    };
                    let req = http::Request::get("/api/me")
                        .header("authorization", format!("DPoP {token}"))
                        .header("dpop", proof)
                        .body(axum::body::Body::empty())
                        .unwrap();
                    app.oneshot(req).await.unwrap().status().as_u16()
                });
            assert_eq!(
                status_got, status,
                "axum (layer inside: {inside}) proof for {proof_path}"
            );
        }
    }
    // actix-web: a scope's prefix stays in the path the middleware sees.
    for (proof_path, status) in cases {
        let proof = alice.proof("GET", proof_path, &token);
        let got = actix_web::rt::System::new().block_on(async {
            use actix_web::{test, web, App, HttpResponse};
            use keycard_actix::{Authenticated, JwtAuth};
            async fn me(v: Authenticated) -> HttpResponse {
                HttpResponse::Ok().body(v.subject().unwrap_or("").to_owned())
            }
            let app = test::init_service(
                App::new().service(
                    web::scope("/api")
                        .wrap(JwtAuth::new(v.clone()))
                        .route("/me", web::get().to(me)),
                ),
            )
            .await;
            let req = test::TestRequest::get()
                .uri("/api/me")
                .insert_header(("authorization", format!("DPoP {token}")))
                .insert_header(("dpop", proof))
                .to_request();
            test::call_service(&app, req).await.status().as_u16()
        });
        assert_eq!(got, status, "actix-web scope, proof for {proof_path}");
    }
}

/// Behind a load balancer without sticky sessions, a nonce one node gave
/// must pass on the next: with a shared nonce secret it does; with each
/// process's own secret it does not (the client would loop on
/// `use_dpop_nonce`).
#[test]
fn nonces_from_one_node_pass_on_another_with_a_shared_secret() {
    let secret = b"a cluster-wide DPoP nonce secret, 32+ bytes";
    let node = || {
        dpop_verifier(
            DpopConfig::new(DpopPolicy::Required)
                .nonce_secret(secret)
                .unwrap(),
        )
    };
    let (a, b) = (node(), node());
    let lone = dpop_verifier(DpopConfig::new(DpopPolicy::Required).require_nonces());
    let alice = alice();
    let token = bound_token(&alice.jkt());
    let with_nonce = |nonce: &str| {
        alice.proof_with(
            Value::Object(alice.jwk.clone()),
            json!({
                "jti": keycard::random_id(), "htm": "GET", "htu": format!("{ORIGIN}/me"),
                "iat": now(), "ath": access_token_hash(&token), "nonce": nonce,
            }),
        )
    };
    for adapter in ADAPTERS {
        let first = call(
            adapter,
            &a,
            &dpop_call(&token, &alice.proof("GET", "/me", &token)),
        );
        expect(&first, 401, Some("use_dpop_nonce"), &format!("{adapter:?}"));
        let nonce = first.dpop_nonce.expect("a DPoP-Nonce header");
        let on_b = call(adapter, &b, &dpop_call(&token, &with_nonce(&nonce)));
        expect(
            &on_b,
            200,
            None,
            &format!("{adapter:?}: node A's nonce on node B"),
        );
        let on_lone = call(adapter, &lone, &dpop_call(&token, &with_nonce(&nonce)));
        expect(
            &on_lone,
            401,
            Some("use_dpop_nonce"),
            &format!("{adapter:?}: a node with its own secret"),
        );
    }
}

/// One client key flooding the replay cache with fresh proofs uses up its
/// own share only: its further proofs are refused (401), while another
/// client is still served, where a full shared cache once answered every
/// DPoP request with 503.
#[test]
fn a_proof_flood_from_one_key_does_not_deny_other_clients() {
    let v = dpop_verifier(DpopConfig::new(DpopPolicy::Required).replay_capacity(1000, 50));
    let (alice, mallory) = (alice(), mallory());
    let (alice_token, mallory_token) = (bound_token(&alice.jkt()), bound_token(&mallory.jkt()));
    let mut refused = 0;
    for _ in 0..200 {
        let proof = mallory.proof("GET", "/me", &mallory_token);
        let a = call(Adapter::Tower, &v, &dpop_call(&mallory_token, &proof));
        match a.status {
            200 => {}
            401 => refused += 1,
            other => panic!("the flooder got {other}: {a:?}"),
        }
    }
    assert_eq!(refused, 150, "the flooder keeps its share of 50");
    for adapter in ADAPTERS {
        let proof = alice.proof("GET", "/me", &alice_token);
        let a = call(adapter, &v, &dpop_call(&alice_token, &proof));
        expect(
            &a,
            200,
            None,
            &format!("{adapter:?}: another client during the flood"),
        );
    }
}

/// A `cnf` naming a confirmation method keycard cannot check (a client
/// certificate's `x5t#S256`, RFC 8705; a `jwk`, `jku` or `kid`, RFC 7800)
/// refuses the token: it would otherwise pass as a plain bearer token,
/// and a stolen certificate-bound token would work without the
/// certificate. On every adapter, in the default and the typed mode.
#[test]
fn a_confirmation_method_keycard_cannot_check_refuses_the_token() {
    let v = verifier_builder().build().unwrap();
    for cnf in [
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}}),
        json!({"kid": "k1"}),
        json!({"JKT": "abc"}),
        json!({"jkt": "abc", "x5t#S256": "def"}),
    ] {
        let mut c = claims();
        c["cnf"] = cnf.clone();
        let token = at(&c);
        for adapter in ADAPTERS {
            for (mode, a) in [
                (
                    "default",
                    call(adapter, &v, &Call::get("/me").bearer(&token)),
                ),
                (
                    "typed",
                    call_typed(adapter, &v, &Call::get("/me").bearer(&token)),
                ),
            ] {
                expect(
                    &a,
                    401,
                    Some("invalid_token"),
                    &format!("{adapter:?} {mode} {cnf}"),
                );
            }
        }
    }
    // Without `cnf`, the same claims pass.
    let ok = call(Adapter::Tower, &v, &Call::get("/me").bearer(&at(&claims())));
    expect(&ok, 200, None, "no cnf");
}

/// Over HTTP/2 a request names its host in `:authority` (the URI's
/// authority) and sends no `Host`: the tower layer lets the authority stand
/// in for it, validated the same way, so DPoP without a configured origin
/// works over HTTP/2 too.
#[test]
fn over_http2_the_authority_stands_for_host() {
    let alice = alice();
    let token = bound_token(&alice.jkt());
    let v = verifier_builder()
        .dpop(DpopConfig::new(DpopPolicy::Allowed))
        .build()
        .unwrap();
    let status = |uri: &str, proof: String| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                use tower::{service_fn, Layer, ServiceExt};
                let handler = service_fn(|_req: http::Request<String>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
                });
                let req = http::Request::get(uri)
                    .version(http::Version::HTTP_2)
                    .header("authorization", format!("DPoP {token}"))
                    .header("dpop", proof)
                    .body(String::new())
                    .unwrap();
                keycard::tower::JwtAuth::new(v.clone())
                    .layer(handler)
                    .oneshot(req)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
    };
    let proof = || alice.proof_for_url("GET", "https://api.test/me", &token);
    assert_eq!(
        status("https://api.test/me", proof()),
        200,
        ":authority as Host"
    );
    assert_eq!(status("/me", proof()), 401, "neither Host nor :authority");
    let other = alice.proof_for_url("GET", "https://other.test/me", &token);
    assert_eq!(
        status("https://api.test/me", other),
        401,
        "a proof for another authority"
    );
}

/// The RFC 9728 document says what the server then enforces: derived from
/// each DPoP policy and token-source set, and checked against what the same
/// server accepts (a Bearer token in the header; a DPoP-bound token with
/// its proof), on every adapter.
#[test]
fn the_resource_metadata_describes_what_the_server_enforces() {
    use keycard::TokenSource;
    let alice = alice();
    let bound = bound_token(&alice.jkt());
    let plain = at(&claims());
    let cookie_only = || vec![TokenSource::Cookie("keycard_access".into())];
    let default_sources = || {
        vec![
            TokenSource::BearerHeader,
            TokenSource::Cookie("keycard_access".into()),
        ]
    };
    for (policy, sources) in [
        (None, default_sources()),
        (Some(DpopPolicy::Allowed), default_sources()),
        (Some(DpopPolicy::Required), default_sources()),
        (None, cookie_only()),
        (Some(DpopPolicy::Required), cookie_only()),
    ] {
        let mut b = verifier_builder()
            .sources(sources.clone())
            .protected_resource(format!("{ORIGIN}/me"))
            .unwrap();
        if let Some(p) = policy {
            b = b.dpop(DpopConfig::new(p).public_origin(ORIGIN));
        }
        let v = b.build().unwrap();
        let doc: Value = serde_json::from_str(&v.resource_metadata().unwrap().to_json()).unwrap();
        let what = format!("{policy:?} {sources:?}: {doc}");
        let says_header = doc["bearer_methods_supported"]
            .as_array()
            .expect("always published")
            .contains(&json!("header"));
        let dpop_algs = doc["dpop_signing_alg_values_supported"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            doc["dpop_bound_access_tokens_required"].as_bool(),
            policy.map(|p| p == DpopPolicy::Required),
            "{what}"
        );
        for adapter in ADAPTERS {
            let bearer = call(adapter, &v, &Call::get("/me").bearer(&plain));
            assert_eq!(
                bearer.status == 200,
                says_header,
                "{adapter:?} Bearer, {what}"
            );
            let dpop = call(
                adapter,
                &v,
                &dpop_call(&bound, &alice.proof("GET", "/me", &bound)),
            );
            assert_eq!(
                dpop.status == 200,
                !dpop_algs.is_empty(),
                "{adapter:?} DPoP, {what}"
            );
        }
        for alg in &dpop_algs {
            assert!(
                ["ES256", "ES384", "RS256", "PS256", "EdDSA"].contains(&alg.as_str().unwrap()),
                "{what}"
            );
        }
    }
}

//! `VerifierConfig`: TOML and environment in, a verifier that enforces what
//! they say out, and errors that name the field.
#![cfg(feature = "toml")]

use std::collections::HashMap;
use std::time::Duration;

use keycard_core::config::VerifierConfig;
use keycard_core::{AuthErrorKind, SigningKey, TokenIssuer, TokenType};
use serde_json::json;

const SECRET_A: &str = "config-test-secret-for-provider-a-0123456789";
const SECRET_B: &str = "config-test-secret-for-provider-b-0123456789";

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn issuer(secret: &str, kid: &str, iss: &str, aud: &str) -> TokenIssuer {
    TokenIssuer::builder(SigningKey::hs256(secret.as_bytes()).unwrap().with_kid(kid))
        .issuer(iss)
        .audience(aud)
        .build()
        .unwrap()
}

fn token(i: &TokenIssuer) -> String {
    i.issue(
        TokenType::Access,
        "alice",
        None,
        &json!({"roles": ["admin"]}),
    )
    .unwrap()
    .token
}

fn error_of(toml: &str) -> String {
    match VerifierConfig::from_toml_str(toml).and_then(|c| c.build()) {
        Ok(_) => panic!("expected an error for:\n{toml}"),
        Err(e) => e.to_string(),
    }
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

#[tokio::test]
async fn two_providers_each_with_its_own_keys_and_audience() {
    std::env::set_var("KEYCARD_CONFIG_TEST_SECRET_A", SECRET_A);
    let secret_b = std::env::temp_dir().join(format!("keycard-config-b-{}", std::process::id()));
    std::fs::write(&secret_b, format!("{SECRET_B}\n")).unwrap();
    let config = VerifierConfig::from_toml_str(&format!(
        r#"
        algorithms = ["HS256"]
        leeway_secs = 5
        role_claims = ["roles"]

        [[providers]]
        issuer = "https://a.example"
        audiences = ["orders"]
        keys = [{{ alg = "HS256", kid = "a1", secret_env = "KEYCARD_CONFIG_TEST_SECRET_A" }}]

        [[providers]]
        issuer = "https://b.example"
        audiences = ["billing"]
        keys = [{{ alg = "HS256", kid = "b1", secret_file = {:?} }}]
        "#,
        secret_b.display().to_string()
    ))
    .unwrap();
    let v = config.build().unwrap();
    std::fs::remove_file(&secret_b).unwrap();

    let a = issuer(SECRET_A, "a1", "https://a.example", "orders");
    let ok = v.verify(&token(&a)).await.unwrap();
    assert_eq!(ok.issuer(), Some("https://a.example"));
    assert!(ok.has_role("admin"));
    let b = issuer(SECRET_B, "b1", "https://b.example", "billing");
    v.verify(&token(&b)).await.unwrap();

    // A's token for B's audience, and B's for A's, are refused.
    let a_for_billing = issuer(SECRET_A, "a1", "https://a.example", "billing");
    assert_eq!(
        v.verify(&token(&a_for_billing)).await.unwrap_err().kind(),
        AuthErrorKind::WrongAudience
    );
    let b_for_orders = issuer(SECRET_B, "b1", "https://b.example", "orders");
    assert_eq!(
        v.verify(&token(&b_for_orders)).await.unwrap_err().kind(),
        AuthErrorKind::WrongAudience
    );
    // B's key never verifies a token that names A (nor the other way).
    let b_claiming_a = issuer(SECRET_B, "a1", "https://a.example", "orders");
    assert_eq!(
        v.verify(&token(&b_claiming_a)).await.unwrap_err().kind(),
        AuthErrorKind::BadSignature
    );
    // An unknown issuer has no keys at all.
    let c = issuer(SECRET_A, "a1", "https://c.example", "orders");
    assert!(v.verify(&token(&c)).await.is_err());
}

#[tokio::test]
async fn one_provider_from_the_environment_with_a_pem_key_and_settings() {
    let dir = std::env::temp_dir().join(format!("keycard-config-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keycard.toml");
    std::fs::write(
        &file,
        format!(
            r#"
            leeway_secs = 10
            sources = ["header:x-auth-token"]
            [[providers]]
            issuer = "https://from-file.example"
            keys = [{{ alg = "RS256", kid = "r1", pem_file = {:?} }}]
            "#,
            fixture("rsa2048.pub.pem")
        ),
    )
    .unwrap();
    let config = VerifierConfig::from_vars(vars(&[
        ("KEYCARD_CONFIG", file.to_str().unwrap()),
        // The environment overrides the file.
        ("KEYCARD_ISSUER", "https://from-env.example"),
        ("KEYCARD_AUDIENCE", "api, other"),
        ("KEYCARD_LEEWAY_SECS", "20"),
        ("KEYCARD_ALGORITHMS", "RS256"),
    ]))
    .unwrap();
    assert_eq!(config.leeway_secs, Some(20));
    assert_eq!(config.audiences, ["api", "other"]);
    assert_eq!(
        config.providers[0].issuer.as_deref(),
        Some("https://from-env.example")
    );
    let v = config.build().unwrap();
    let signer = SigningKey::from_pem(
        keycard_core::Algorithm::RS256,
        std::fs::read(fixture("rsa2048.pem")).unwrap(),
    )
    .unwrap()
    .with_kid("r1");
    let i = TokenIssuer::builder(signer)
        .issuer("https://from-env.example")
        .audience("other")
        .build()
        .unwrap();
    let t = token(&i);
    v.verify(&t).await.unwrap();
    // The token source from the file is the only one.
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {t}").parse().unwrap());
    assert!(v.authenticate("GET", &headers).await.is_err());
    let mut headers = http::HeaderMap::new();
    headers.insert("x-auth-token", t.parse().unwrap());
    v.authenticate("GET", &headers).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("leeway = 5", "unknown field `leeway`"),
        ("leeway_secs = \"five\"", "leeway_secs"),
        ("leeway_secs = 301\n[[providers]]\nissuer = \"https://i\"", "leeway_secs (KEYCARD_LEEWAY_SECS): at most 300"),
        ("", "providers: no key provider configured"),
        ("algorithms = [\"none\"]\n[[providers]]\nissuer = \"https://i\"", "algorithms (KEYCARD_ALGORITHMS): unknown algorithm \"none\""),
        ("algorithms = []\n[[providers]]\nissuer = \"https://i\"", "algorithms (KEYCARD_ALGORITHMS): empty list"),
        ("max_token_bytes = 10\n[[providers]]\nissuer = \"https://i\"", "max_token_bytes"),
        ("profile = \"okta2\"\n[[providers]]\nissuer = \"https://i\"", "profile (KEYCARD_PROFILE): unknown provider profile"),
        ("profile = \"keycloak\"\n[[providers]]\nissuer = \"https://i\"", "client_id (KEYCARD_CLIENT_ID): the keycloak profile needs"),
        ("sources = [\"query\"]\n[[providers]]\nissuer = \"https://i\"", "sources (KEYCARD_TOKEN_SOURCES): \"query\""),
        ("cookie_name = \"a b\"\n[[providers]]\nissuer = \"https://i\"", "cookie_name"),
        ("allowed_origins = [\"app.example\"]\n[[providers]]\nissuer = \"https://i\"", "allowed_origins"),
        ("[[providers]]\nissuer = \"https://a\"\n[[providers]]\njwks_url = \"https://b/jwks\"", "providers[1].issuer: required"),
        ("[[providers]]\nissuer = \"https://a\"\n[[providers]]\nissuer = \"https://a\"", "providers[1].issuer: \"https://a\" appears twice"),
                ("[[providers]]\naudiences = []\nissuer = \"https://a\"", "providers[0].audiences: empty list"),
        ("[[providers]]\nkeys = [{ alg = \"HS256\", secret_env = \"KEYCARD_CONFIG_TEST_UNSET\" }]", "providers[0].keys[0].secret_env: the variable KEYCARD_CONFIG_TEST_UNSET is not set"),
        ("[[providers]]\nkeys = [{ alg = \"HS256\" }]", "providers[0].keys[0].secret_env: give exactly one of"),
        ("[[providers]]\nkeys = [{ alg = \"HS257\", pem = \"x\" }]", "providers[0].keys[0].alg: unknown algorithm"),
        ("[[providers]]\nkeys = [{ alg = \"HS256\", secret = \"inline\" }]", "unknown field `secret`"),
        ("[[providers]]\nkeys = [{ alg = \"ES256\", kid = \"k\", secret_file = \"/nonexistent/keycard\" }]", "providers[0].keys[0].secret_file: cannot read"),
    ];
    for (toml, want) in cases {
        let got = error_of(toml);
        assert!(
            got.contains(want),
            "for\n{toml}\nwanted {want:?}\ngot {got:?}"
        );
    }
}

#[test]
fn a_public_key_labelled_hs256_in_the_config_is_refused() {
    let got = error_of(&format!(
        "[[providers]]\nkeys = [{{ alg = \"HS256\", pem_file = {:?} }}]",
        fixture("p256.pub.pem")
    ));
    assert!(got.starts_with("providers[0].keys[0]: "), "{got}");
}

#[test]
fn a_weak_secret_in_the_environment_is_refused_with_its_field() {
    std::env::set_var("KEYCARD_CONFIG_TEST_WEAK", "short");
    let got = error_of(
        "[[providers]]\nkeys = [{ alg = \"HS256\", secret_env = \"KEYCARD_CONFIG_TEST_WEAK\" }]",
    );
    assert!(
        got.contains("providers[0].keys[0]") && got.contains("at least 32 bytes"),
        "{got}"
    );
}

#[test]
fn environment_errors_name_the_variable() {
    for (var, value, want) in [
        (
            "KEYCARD_LEEWAY_SECS",
            "soon",
            "leeway_secs (KEYCARD_LEEWAY_SECS): invalid digit",
        ),
        (
            "KEYCARD_CACHE_SIZE",
            "-1",
            "cache_size (KEYCARD_CACHE_SIZE)",
        ),
        (
            "KEYCARD_ALLOW_HTTP",
            "maybe",
            "(KEYCARD_ALLOW_HTTP): expected 1 or 0",
        ),
        (
            "KEYCARD_CONFIG",
            "/nonexistent/keycard.toml",
            "config file (KEYCARD_CONFIG): cannot read",
        ),
    ] {
        let got = VerifierConfig::from_vars(vars(&[(var, value), ("KEYCARD_ISSUER", "https://i")]))
            .unwrap_err()
            .to_string();
        assert!(got.contains(want), "{var}={value}: {got}");
    }
}

#[test]
fn a_config_survives_a_round_trip_through_toml() {
    let text = r#"
        algorithms = ["ES256", "RS256"]
        allowed_origins = ["https://app.example"]
        profile = "keycloak"
        client_id = "orders"

        [[providers]]
        issuer = "https://kc.example/realms/r"
        jwks_cooldown_secs = 60
    "#;
    let config = VerifierConfig::from_toml_str(text).unwrap();
    let again = VerifierConfig::from_toml_str(&toml::to_string(&config).unwrap()).unwrap();
    assert_eq!(config, again);
}

#[cfg(feature = "jwks")]
#[tokio::test]
async fn a_remote_provider_that_is_down_builds_and_reports_not_ready() {
    // Nothing listens on this port: the verifier still builds (a service
    // starts while its identity provider is away), is not ready, and
    // answers 503-class errors instead of exiting.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = VerifierConfig::from_vars(vars(&[
        (
            "KEYCARD_JWKS_URL",
            &format!("http://127.0.0.1:{port}/jwks.json"),
        ),
        ("KEYCARD_ISSUER", "https://a.example"),
        ("KEYCARD_ALLOW_HTTP", "1"),
        ("KEYCARD_AUDIENCE", "api"),
        ("KEYCARD_JWKS_COOLDOWN_SECS", "1"),
    ]))
    .unwrap();
    let v = config.build().unwrap();
    let readiness = v.readiness();
    assert!(!readiness.is_ready());
    assert!(!readiness.reasons().is_empty());
    let i = issuer(SECRET_A, "a1", "https://a.example", "api");
    let err = tokio::time::timeout(Duration::from_secs(20), v.verify(&token(&i)))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn the_issuer_is_required_unless_any_issuer_is_asked_for_by_name() {
    std::env::set_var("KEYCARD_CONFIG_TEST_SECRET_ANY", SECRET_A);
    let keys =
        "keys = [{ alg = \"HS256\", kid = \"a1\", secret_env = \"KEYCARD_CONFIG_TEST_SECRET_ANY\" }]";
    let got = error_of(&format!("[[providers]]\n{keys}"));
    assert!(
        got.starts_with("providers[0].issuer (KEYCARD_ISSUER): required"),
        "{got}"
    );
    let got = error_of(&format!(
        "[[providers]]\nissuer = \"https://a.example\"\ninsecure_any_issuer = true\n{keys}"
    ));
    assert!(got.contains("insecure_any_issuer"), "{got}");
    let v = VerifierConfig::from_toml_str(&format!(
        "[[providers]]\ninsecure_any_issuer = true\naudiences = [\"orders\"]\n{keys}"
    ))
    .unwrap()
    .build()
    .unwrap();
    for iss in ["https://a.example", "https://anyone.example"] {
        v.verify(&token(&issuer(SECRET_A, "a1", iss, "orders")))
            .await
            .unwrap();
    }
}

#[test]
fn a_toml_error_never_repeats_the_line_it_is_on() {
    let got = error_of(
        "[[providers]]\nissuer = \"https://a\"\nkeys = [{ alg = \"HS256\", secret = \"TOP-SECRET-VALUE-123\" }]",
    );
    assert!(got.contains("unknown field `secret`"), "{got}");
    assert!(got.contains("line 3"), "{got}");
    assert!(!got.contains("TOP-SECRET-VALUE-123"), "{got}");
    let got = error_of("revocation_url = 5 # redis://user:PASSWORD-IN-FILE@host");
    assert!(!got.contains("PASSWORD-IN-FILE"), "{got}");
}

#[test]
fn a_public_key_file_is_never_an_hmac_secret() {
    let got = error_of(&format!(
        "[[providers]]\nissuer = \"https://a\"\nkeys = [{{ alg = \"HS256\", secret_file = {:?} }}]",
        fixture("rsa2048.pub.pem")
    ));
    assert!(got.starts_with("providers[0].keys[0]"), "{got}");
}

#[test]
fn environment_lists_that_are_set_must_name_something_and_cannot_pick_a_provider() {
    let got = VerifierConfig::from_vars(vars(&[
        ("KEYCARD_ISSUER", "https://i"),
        ("KEYCARD_AUDIENCE", " , "),
    ]))
    .unwrap_err()
    .to_string();
    assert_eq!(got, "audiences (KEYCARD_AUDIENCE): set but empty");

    let file =
        std::env::temp_dir().join(format!("keycard-config-multi-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "[[providers]]\nissuer = \"https://a\"\n[[providers]]\nissuer = \"https://b\"\n",
    )
    .unwrap();
    let got = VerifierConfig::from_vars(vars(&[
        ("KEYCARD_CONFIG", file.to_str().unwrap()),
        ("KEYCARD_ISSUER", "https://c"),
    ]))
    .unwrap_err()
    .to_string();
    std::fs::remove_file(&file).unwrap();
    assert!(
        got.starts_with(
            "providers[0].issuer (KEYCARD_ISSUER): the configuration file has several providers"
        ),
        "{got}"
    );
}

#[tokio::test]
async fn apply_carries_the_audiences_to_a_builder_with_its_own_keys() {
    let config = VerifierConfig::from_vars(vars(&[("KEYCARD_AUDIENCE", "orders")])).unwrap();
    let v = config
        .apply(
            keycard_core::Verifier::builder().key(
                keycard_core::Key::hs256(SECRET_A.as_bytes())
                    .unwrap()
                    .with_kid("a1"),
            ),
        )
        .unwrap()
        .build()
        .unwrap();
    v.verify(&token(&issuer(
        SECRET_A,
        "a1",
        "https://a.example",
        "orders",
    )))
    .await
    .unwrap();
    let wrong = v
        .verify(&token(&issuer(
            SECRET_A,
            "a1",
            "https://a.example",
            "billing",
        )))
        .await
        .unwrap_err();
    assert_eq!(wrong.kind(), AuthErrorKind::WrongAudience);
}

#[test]
fn dpop_from_the_configuration() {
    std::env::set_var("KEYCARD_CONFIG_TEST_SECRET_DPOP", SECRET_A);
    let keys = "keys = [{ alg = \"HS256\", secret_env = \"KEYCARD_CONFIG_TEST_SECRET_DPOP\" }]";
    let v = VerifierConfig::from_toml_str(&format!(
        "dpop = \"required\"\nresource = \"https://api.example/orders\"\n[[providers]]\nissuer = \"https://a\"\n{keys}"
    ))
    .unwrap()
    .build()
    .unwrap();
    let keycard_core::Attempt::Done(Err(e)) = v.verify_now("a.b.c") else {
        panic!("refused")
    };
    let c = e.www_authenticate().unwrap();
    assert!(c.starts_with("DPoP ") && c.contains("algs=\""), "{c}");
    let got = error_of(&format!(
        "dpop = \"maybe\"\n[[providers]]\nissuer = \"https://a\"\n{keys}"
    ));
    assert!(got.starts_with("dpop (KEYCARD_DPOP): \"maybe\""), "{got}");
    let got = error_of(&format!(
        "dpop_nonces = true\n[[providers]]\nissuer = \"https://a\"\n{keys}"
    ));
    assert!(
        got.starts_with("dpop_nonces (KEYCARD_DPOP_NONCES)"),
        "{got}"
    );
}

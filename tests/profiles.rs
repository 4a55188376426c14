//! Identity-provider profiles against tokens shaped as each provider's own
//! documentation shows its access tokens and ID tokens, signed by a test
//! key: roles, scopes and client are read where the provider puts them, the
//! access token passes, the ID token does not. And `RequireScopes` on all
//! three adapters.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use keycard::{AuthErrorKind, Key, Profile, Verifier, VerifierBuilder};
use serde_json::{json, Value};

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
const KID: &str = "provider-key-1";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIX}{name}")).unwrap()
}

/// Sign a provider-shaped token: `typ` in the header as the provider sends
/// it (`None`: no `typ` at all), RS256 with the test key.
fn provider_token(typ: Option<&str>, claims: &Value) -> String {
    keycard::ensure_crypto_backend().unwrap();
    let mut header = json!({"alg": "RS256", "kid": KID});
    if let Some(t) = typ {
        header["typ"] = json!(t);
    }
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = EncodingKey::from_rsa_pem(&fixture("rsa2048.pem")).unwrap();
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::RS256).unwrap();
    format!("{input}.{sig}")
}

fn key() -> Key {
    Key::from_pem(Algorithm::RS256, fixture("rsa2048.pub.pem"))
        .unwrap()
        .with_kid(KID)
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

struct Case {
    name: &'static str,
    verifier: VerifierBuilder,
    access: String,
    id_token: String,
    roles: Vec<&'static str>,
    scopes: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    let (now, exp) = (now(), now() + 600);
    vec![
        Case {
            name: "keycloak",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://kc.example/realms/demo")
                .audience("account")
                .profile(Profile::keycloak("web-app"))
                .client_ids(["web-app"]),
            access: provider_token(
                Some("JWT"),
                &json!({"exp": exp, "iat": now, "jti": "a1", "iss": "https://kc.example/realms/demo",
                    "aud": "account", "sub": "f1b0", "typ": "Bearer", "azp": "web-app", "acr": "1",
                    "realm_access": {"roles": ["offline_access", "admin"]},
                    "resource_access": {"web-app": {"roles": ["editor"]}, "account": {"roles": ["manage-account"]}},
                    "scope": "openid email profile", "preferred_username": "alice"}),
            ),
            id_token: provider_token(
                Some("JWT"),
                &json!({"exp": exp, "iat": now, "jti": "i1", "iss": "https://kc.example/realms/demo",
                    "aud": "account", "sub": "f1b0", "typ": "ID", "azp": "web-app"}),
            ),
            roles: vec!["offline_access", "admin", "editor"],
            scopes: vec!["openid", "email", "profile"],
        },
        Case {
            name: "auth0",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://tenant.auth0.com/")
                .audience("https://api.example.com")
                .profile(Profile::auth0("https://example.com/roles")),
            access: provider_token(
                Some("JWT"),
                &json!({"iss": "https://tenant.auth0.com/", "sub": "auth0|123",
                    "aud": ["https://api.example.com", "https://tenant.auth0.com/userinfo"],
                    "iat": now, "exp": exp, "azp": "spa-client", "scope": "openid profile read:orders",
                    "permissions": ["read:orders", "write:orders"], "https://example.com/roles": ["admin"]}),
            ),
            id_token: provider_token(
                Some("JWT"),
                &json!({"iss": "https://tenant.auth0.com/", "sub": "auth0|123",
                    "aud": "https://api.example.com", "iat": now, "exp": exp, "nonce": "n",
                    "https://example.com/roles": ["admin"]}),
            ),
            roles: vec!["admin"],
            scopes: vec!["openid", "profile", "read:orders", "write:orders"],
        },
        Case {
            name: "entra",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://login.microsoftonline.com/7c1f-tenant/v2.0")
                .issuer("https://sts.windows.net/7c1f-tenant/")
                .audience("6e74-api-client")
                .profile(Profile::entra()),
            access: provider_token(
                Some("JWT"),
                &json!({"aud": "6e74-api-client", "iss": "https://login.microsoftonline.com/7c1f-tenant/v2.0",
                    "iat": now, "nbf": now, "exp": exp, "aio": "x", "azp": "spa", "azpacr": "0",
                    "oid": "o1", "roles": ["Orders.Admin"], "scp": "Orders.Read Orders.Write",
                    "sub": "s1", "tid": "7c1f-tenant", "uti": "u", "ver": "2.0"}),
            ),
            id_token: provider_token(
                Some("JWT"),
                &json!({"aud": "6e74-api-client", "iss": "https://login.microsoftonline.com/7c1f-tenant/v2.0",
                    "iat": now, "nbf": now, "exp": exp, "nonce": "n", "oid": "o1", "sub": "s1",
                    "tid": "7c1f-tenant", "ver": "2.0"}),
            ),
            roles: vec!["Orders.Admin"],
            scopes: vec!["Orders.Read", "Orders.Write"],
        },
        Case {
            name: "cognito",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC")
                .profile(Profile::cognito())
                .client_ids(["3n4b5urk1ft4fl3mg5e62d9ado"]),
            access: provider_token(
                None,
                &json!({"sub": "aaaa", "cognito:groups": ["admins"],
                    "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC", "version": 2,
                    "client_id": "3n4b5urk1ft4fl3mg5e62d9ado", "token_use": "access",
                    "scope": "orders/read orders/write", "auth_time": now, "exp": exp, "iat": now,
                    "jti": "j", "username": "alice"}),
            ),
            id_token: provider_token(
                None,
                &json!({"sub": "aaaa", "cognito:groups": ["admins"],
                    "iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC",
                    "aud": "3n4b5urk1ft4fl3mg5e62d9ado", "token_use": "id", "auth_time": now,
                    "exp": exp, "iat": now, "client_id": "3n4b5urk1ft4fl3mg5e62d9ado"}),
            ),
            roles: vec!["admins"],
            scopes: vec!["orders/read", "orders/write"],
        },
        Case {
            name: "okta",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://dev-1.okta.com/oauth2/default")
                .audience("api://default")
                .profile(Profile::okta())
                .client_ids(["0oa1client"]),
            access: provider_token(
                None,
                &json!({"ver": 1, "jti": "AT.x", "iss": "https://dev-1.okta.com/oauth2/default",
                    "aud": "api://default", "iat": now, "exp": exp, "cid": "0oa1client", "uid": "00u1",
                    "scp": ["openid", "orders.read"], "auth_time": now, "sub": "alice@example.com",
                    "groups": ["Admins", "Everyone"]}),
            ),
            id_token: provider_token(
                None,
                &json!({"ver": 1, "jti": "ID.x", "iss": "https://dev-1.okta.com/oauth2/default",
                    "aud": "api://default", "iat": now, "exp": exp, "sub": "alice@example.com",
                    "amr": ["pwd"], "nonce": "n", "cid": "0oa1client"}),
            ),
            roles: vec!["Admins", "Everyone"],
            scopes: vec!["openid", "orders.read"],
        },
        Case {
            name: "google",
            verifier: Verifier::builder()
                .key(key())
                .issuer("https://accounts.google.com")
                .issuer("accounts.google.com")
                .audience("https://orders-abc.a.run.app")
                .profile(Profile::google()),
            access: provider_token(
                Some("JWT"),
                &json!({"aud": "https://orders-abc.a.run.app", "azp": "1057", "email": "svc@p.iam.gserviceaccount.com",
                    "email_verified": true, "exp": exp, "iat": now, "iss": "https://accounts.google.com", "sub": "1057"}),
            ),
            // A token for another service: refused by audience.
            id_token: provider_token(
                Some("JWT"),
                &json!({"aud": "https://billing-xyz.a.run.app", "azp": "1057", "exp": exp, "iat": now,
                    "iss": "https://accounts.google.com", "sub": "1057"}),
            ),
            roles: vec![],
            scopes: vec![],
        },
    ]
}

#[test]
fn every_profile_reads_its_providers_access_tokens_and_refuses_its_id_tokens() {
    for case in cases() {
        let name = case.name;
        let v = case.verifier.build().unwrap();
        let ok = block(v.verify(&case.access)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ok.roles(), case.roles.as_slice(), "{name} roles");
        assert_eq!(ok.scopes(), case.scopes.as_slice(), "{name} scopes");
        let refused = block(v.verify(&case.id_token)).unwrap_err();
        assert!(
            matches!(
                refused.kind(),
                AuthErrorKind::WrongTokenType | AuthErrorKind::WrongAudience
            ),
            "{name}: the ID token got {:?}",
            refused.kind()
        );
        // Without the profile the provider's access token is refused: the
        // relaxation is the profile's, never silent.
        if name != "google" {
            let strict = Verifier::builder()
                .key(key())
                .insecure_ignore_audience()
                .build()
                .unwrap();
            assert_eq!(
                block(strict.verify(&case.access)).unwrap_err().kind(),
                AuthErrorKind::WrongTokenType,
                "{name}"
            );
        }
    }
}

#[test]
fn client_id_checks_are_opt_in_and_name_the_profiles_claim() {
    let (now, exp) = (now(), now() + 600);
    let okta = provider_token(
        None,
        &json!({"iss": "https://o/oauth2/default", "aud": "api://default", "iat": now, "exp": exp,
            "cid": "someone-else", "scp": ["x"], "sub": "s"}),
    );
    let v = |ids: &[&str]| {
        Verifier::builder()
            .key(key())
            .issuer("https://o/oauth2/default")
            .audience("api://default")
            .profile(Profile::okta())
            .client_ids(ids.iter().copied())
            .build()
            .unwrap()
    };
    assert!(block(v(&[]).verify(&okta)).is_ok(), "off by default");
    assert_eq!(
        block(v(&["0oa1client"]).verify(&okta)).unwrap_err().kind(),
        AuthErrorKind::WrongAudience
    );
    assert!(block(v(&["someone-else"]).verify(&okta)).is_ok());
}

#[test]
fn profiles_by_name_for_configuration() {
    for n in [
        "keycloak", "auth0", "entra", "cognito", "okta", "google", "generic",
    ] {
        let p = Profile::by_name(n, Some("x")).unwrap();
        assert_eq!(p.name(), n);
    }
    assert!(
        Profile::by_name("keycloak", None).is_err(),
        "needs the client"
    );
    assert!(Profile::by_name("ping", None).is_err());
}

#[test]
fn require_scopes_answers_403_naming_the_scope_on_every_adapter() {
    let with_scope = |scope: &str| {
        let mut c = claims();
        c["scope"] = json!(scope);
        at(&c)
    };
    let read = with_scope("orders:read profile");
    let write = with_scope("orders:write");
    let mut wrong = Vec::new();
    for adapter in ADAPTERS {
        for (token, status) in [(&read, 200), (&write, 403)] {
            let a = call_scoped(adapter, token);
            if a.status != status {
                wrong.push(format!("{adapter:?}: {} for {status}", a.status));
            }
            if status == 403 {
                let c = a.challenge.unwrap_or_default();
                if !(c.contains("error=\"insufficient_scope\"")
                    && c.contains("scope=\"orders:read\""))
                {
                    wrong.push(format!("{adapter:?}: challenge {c}"));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `GET /orders` behind `RequireScopes::any_of(["orders:read"])`.
fn call_scoped(adapter: Adapter, token: &str) -> Answer {
    use tower::ServiceExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match adapter {
        Adapter::Tower => rt.block_on(async {
            let svc = tower::ServiceBuilder::new()
                .layer(keycard::tower::JwtAuth::new(verifier()))
                .layer(keycard::tower::RequireScopes::any_of(["orders:read"]))
                .service(tower::service_fn(|_r: http::Request<String>| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(String::from("ok")))
                }));
            let req = http::Request::get("/orders")
                .header("authorization", format!("Bearer {token}"))
                .body(String::new())
                .unwrap();
            let res = svc.oneshot(req).await.unwrap();
            let challenge = res.headers().get("www-authenticate").cloned();
            answer(res.status().as_u16(), challenge.as_ref(), res.into_body())
        }),
        Adapter::Axum => rt.block_on(async {
            use http_body_util::BodyExt;
            let app = axum::Router::new()
                .route("/orders", axum::routing::get(|| async { "ok" }))
                .route_layer(keycard::axum::RequireScopes::any_of(["orders:read"]))
                .layer(keycard::axum::JwtAuth::new(verifier()));
            let req = http::Request::get("/orders")
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status().as_u16();
            let challenge = res.headers().get("www-authenticate").cloned();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            answer(
                status,
                challenge.as_ref(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }),
        Adapter::Actix => actix_web::rt::System::new().block_on(async {
            use actix_web::{test, web, App, HttpResponse};
            let app = test::init_service(
                App::new().service(
                    web::resource("/orders")
                        .wrap(keycard::actix::RequireScopes::any_of(["orders:read"]))
                        .wrap(keycard::actix::JwtAuth::new(verifier()))
                        .to(|| async { HttpResponse::Ok().body("ok") }),
                ),
            )
            .await;
            let req = test::TestRequest::get()
                .uri("/orders")
                .insert_header(("authorization", format!("Bearer {token}")))
                .to_request();
            let res = test::call_service(&app, req).await;
            let status = res.status().as_u16();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = test::read_body(res).await;
            Answer {
                status,
                challenge,
                dpop_nonce: None,
                body: String::from_utf8_lossy(&body).into_owned(),
            }
        }),
    }
}

fn answer(status: u16, challenge: Option<&http::HeaderValue>, body: String) -> Answer {
    Answer {
        status,
        challenge: challenge.map(|v| v.to_str().unwrap().to_owned()),
        dpop_nonce: None,
        body,
    }
}

/// A role claim path means the same thing under every profile, from
/// configuration as an operator writes it: a dotted path, a JSON Pointer,
/// and a namespaced claim (Auth0's layout) each find the roles under
/// `generic`, `keycloak`, `auth0`, `entra`, `cognito`, `okta` and `google`.
/// (Under `auth0` a JSON Pointer was once taken as a literal claim name,
/// and every request got 403.)
#[test]
fn role_claim_paths_mean_the_same_under_every_profile() {
    std::env::set_var(
        "KEYCARD_PROFILE_TEST_SECRET",
        "profiles-test-secret-0123456789abcdef!!",
    );
    let claims = json!({
        "iss": "https://idp.test/", "aud": "api", "sub": "alice", "azp": "web",
        "client_id": "web", "scope": "openid", "token_use": "access",
        "iat": now(), "exp": now() + 600,
        "app": {"roles": ["admin"]},
        "https://shop.test/roles": ["admin"],
    });
    let token = {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &h,
            &claims,
            &EncodingKey::from_secret(b"profiles-test-secret-0123456789abcdef!!"),
        )
        .unwrap()
    };
    for profile in [
        "generic", "keycloak", "auth0", "entra", "cognito", "okta", "google",
    ] {
        for path in [
            "app.roles",
            "/app/roles",
            "/https:~1~1shop.test~1roles",
            "https://shop.test/roles",
        ] {
            let client = if profile == "keycloak" {
                "client_id = \"web\"\n"
            } else {
                ""
            };
            let cfg = keycard::config::VerifierConfig::from_toml_str(&format!(
                "profile = \"{profile}\"\n{client}role_claims = [\"{path}\"]\n\
                 [[providers]]\nissuer = \"https://idp.test/\"\naudiences = [\"api\"]\n\
                 keys = [{{ alg = \"HS256\", secret_env = \"KEYCARD_PROFILE_TEST_SECRET\" }}]\n"
            ))
            .unwrap();
            let v = cfg.build().unwrap();
            let verified =
                block(v.verify(&token)).unwrap_or_else(|e| panic!("{profile} {path}: {e}"));
            assert_eq!(verified.roles(), ["admin"], "{profile} {path}");
        }
    }
}

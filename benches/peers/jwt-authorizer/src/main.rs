//! `peer-jwt-authorizer <none|jwt-authorizer> <port>` with `LOAD_ALG`
//! (HS256, RS256, ES256): the same hello-world as examples/load_server.rs,
//! behind jwt-authorizer 0.15 (axum 0.7). Prints `token <jwt>`.

use axum::{routing::get, Router};
use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MyClaims {
    sub: String,
    iss: String,
    aud: String,
    exp: i64,
}

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../tests/fixtures/");
const SECRET: &str = "load-benchmark-secret-load-benchmark-secret";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, port) = (args[1].clone(), args[2].parse::<u16>().unwrap());
    let alg = std::env::var("LOAD_ALG").unwrap_or_else(|_| "HS256".into());
    let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 + 3600;
    let claims = MyClaims { sub: "alice".into(), iss: "load".into(), aud: "api".into(), exp };
    let (header, key) = match alg.as_str() {
        "RS256" => (jsonwebtoken::Algorithm::RS256, jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(format!("{FIX}rsa2048.pem")).unwrap()).unwrap()),
        "ES256" => (jsonwebtoken::Algorithm::ES256, jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(format!("{FIX}p256.pem")).unwrap()).unwrap()),
        _ => (jsonwebtoken::Algorithm::HS256, jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes())),
    };
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(header), &claims, &key).unwrap();
    println!("token {token}");
    let validation = Validation::new().iss(&["load"]).aud(&["api"]);
    let app = if mode == "none" {
        Router::new().route("/", get(|| async { "hello" }))
    } else {
        let builder: jwt_authorizer::AuthorizerBuilder<MyClaims> = match alg.as_str() {
            "RS256" => JwtAuthorizer::from_rsa_pem(&format!("{FIX}rsa2048.pub.pem")),
            "ES256" => JwtAuthorizer::from_ec_pem(&format!("{FIX}p256.pub.pem")),
            _ => JwtAuthorizer::from_secret(SECRET),
        };
        let auth = builder.validation(validation).build().await.unwrap();
        Router::new()
            .route("/", get(|JwtClaims(c): JwtClaims<MyClaims>| async move { c.sub }))
            .layer(auth.into_layer())
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}

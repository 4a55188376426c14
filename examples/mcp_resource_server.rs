//! A minimal MCP-style JSON-RPC endpoint protected the way the Model Context
//! Protocol's authorization spec asks: RFC 9728 protected resource metadata,
//! tokens bound to this resource (RFC 8707: `aud` must be the resource URL),
//! 401 challenges that point to the metadata, and 403 `insufficient_scope`
//! naming the missing scope. Run:
//!
//! `KEYCARD_ISSUER=https://idp.example cargo run --example mcp_resource_server`
//!
//! Environment: `PORT` (3002); `KEYCARD_RESOURCE` (default
//! `http://127.0.0.1:$PORT/mcp`); `KEYCARD_ISSUER` (the authorization
//! server, also used for OIDC discovery) or `KEYCARD_JWKS_URL`; every other
//! `VerifierConfig` setting (`KEYCARD_ALLOW_HTTP=1` for a loopback IdP).
//!
//! Routes:
//! - `GET /.well-known/oauth-protected-resource/mcp`: the metadata, no token;
//! - `POST /mcp`: JSON-RPC 2.0 with scope `mcp:read`; `initialize`,
//!   `tools/list`, and `tools/call` (tool `echo`), which also needs
//!   `mcp:write`;
//! - `GET /health`.

mod common;

use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keycard::axum::{resource_metadata, AuthRejection, Authenticated, JwtAuth, RequireScopes};
use keycard::config::VerifierConfig;
use keycard::RoleRequirement;
use serde_json::{json, Value};

use common::fail;

/// The scopes this server understands.
const READ: &str = "mcp:read";
const WRITE: &str = "mcp:write";

fn rpc_result(id: &Value, result: Value) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

fn rpc_error(id: &Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
        .into_response()
}

async fn mcp(Authenticated(token): Authenticated, Json(req): Json<Value>) -> Response {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    match req.get("method").and_then(Value::as_str) {
        Some("initialize") => rpc_result(
            &id,
            json!({
                "protocolVersion": "2025-06-18",
                "serverInfo": {"name": "keycard-mcp-example", "version": "0.1.0"},
                "capabilities": {"tools": {}},
            }),
        ),
        Some("tools/list") => rpc_result(
            &id,
            json!({"tools": [{
                "name": "echo",
                "description": "Returns its input (needs mcp:write).",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
            }]}),
        ),
        Some("tools/call") => {
            // A tool that changes something needs more than the endpoint:
            // 403 insufficient_scope, naming the scope (and the metadata).
            if let Err(e) = RoleRequirement::scopes_all_of([WRITE]).check(&token) {
                return AuthRejection(e).into_response();
            }
            let text = req["params"]["arguments"]["text"].as_str().unwrap_or("");
            rpc_result(
                &id,
                json!({"content": [{"type": "text", "text": text}], "isError": false}),
            )
        }
        Some(_) => rpc_error(&id, -32601, "method not found"),
        None => rpc_error(&id, -32600, "invalid request"),
    }
}

#[tokio::main]
async fn main() {
    let metrics = common::ops::init();
    let port = common::ops::port_from_env(3002);
    let mut config = VerifierConfig::from_env().unwrap_or_else(|e| fail(&e.to_string()));
    if config.providers.is_empty() {
        fail("set KEYCARD_ISSUER (the authorization server), or KEYCARD_JWKS_URL with it");
    }
    let resource = config
        .resource
        .get_or_insert_with(|| format!("http://127.0.0.1:{port}/mcp"))
        .clone();
    // RFC 8707 / MCP: a token must have been issued for this resource.
    config.audiences = vec![resource.clone()];
    config
        .scopes_supported
        .get_or_insert_with(|| vec![READ.into(), WRITE.into()]);
    let verifier = config.build().unwrap_or_else(|e| fail(&e.to_string()));
    let (metadata_path, metadata) =
        resource_metadata(&verifier).unwrap_or_else(|| fail("no resource metadata"));
    let app = Router::new()
        .route("/mcp", post(mcp))
        .route_layer(RequireScopes::any_of([READ]))
        .route_layer(JwtAuth::new(verifier))
        .route(&metadata_path, get(metadata))
        .route("/health", get(|| async { "ok" }))
        .route("/metrics", common::ops::metrics_route(metrics));
    let listener = common::ops::listen(port).await;
    println!("MCP resource server for {resource} on http://127.0.0.1:{port}/mcp");
    common::ops::serve_axum(listener, app)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
}

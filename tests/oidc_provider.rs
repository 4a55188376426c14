//! keycard against third-party software no one here wrote: a real, OpenID
//! Certified provider (panva's `oidc-provider`, from the npm registry,
//! pinned by `tests/oidc/package-lock.json` and installed by this test
//! with `npm ci` when missing) issuing RFC 9068 access tokens, and an
//! independent JOSE library (`jose`) verifying keycard's own tokens and
//! JWKS. Needs Node.js and npm (on this repository's machines; `scripts/test.sh`
//! installs Debian's when missing).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::free_port;
use common::{call, Call, ADAPTERS};
use keycard::jwks::RemoteJwks;
use keycard::{Algorithm, AuthErrorKind, Verifier};
use serde_json::{json, Value};

fn oidc_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc"))
}

/// `npm ci` from the committed lock file, once.
fn ensure_installed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if oidc_dir().join("node_modules/oidc-provider").exists()
            && oidc_dir().join("node_modules/jose").exists()
        {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(oidc_dir())
            .status()
            .expect("npm must be installed (Debian packages nodejs and npm; scripts/test.sh installs them)");
        assert!(status.success(), "npm ci in tests/oidc failed");
    });
}

struct Provider {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    issuer: String,
}

impl Provider {
    fn start() -> Self {
        ensure_installed();
        let port = free_port();
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg(port.to_string())
            .current_dir(oidc_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node must be installed");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Self {
            child,
            stdin,
            lines,
            issuer: String::new(),
        };
        p.issuer = p.wait_ready();
        p
    }

    fn wait_ready(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .expect("the OpenID provider did not start");
            if let Some(rest) = line.strip_prefix("ready ") {
                return rest.split(' ').next().unwrap().to_owned();
            }
        }
    }

    /// New signing keys, the old ones kept published; the provider
    /// restarts on the same port.
    fn rotate(&mut self) {
        writeln!(self.stdin, "rotate").unwrap();
        self.stdin.flush().unwrap();
        self.wait_ready();
    }

    async fn token(&self, resource: &str) -> String {
        let res = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("interop", Some("interop-secret-0123456789"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope=orders%3Aread&resource={}",
                resource.replace(':', "%3A").replace('/', "%2F")
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "token endpoint");
        let body: Value = res.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header(token: &str) -> Value {
    use base64::Engine as _;
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_openid_provider_end_to_end() {
    let mut idp = Provider::start();
    let issuer = idp.issuer.clone();
    // Discovery from the issuer alone.
    let jwks = Arc::new(
        RemoteJwks::from_issuer(issuer.clone())
            .insecure_allow_http_loopback()
            .cooldown(Duration::from_secs(1))
            .build()
            .await
            .expect("discovery and JWKS"),
    );
    let verifier = |aud: &str| {
        Verifier::builder()
            .key_provider(jwks.clone())
            .issuer(issuer.clone())
            .audience(aud)
            .client_ids(["interop"])
            .build()
            .unwrap()
    };

    // Every algorithm, including PS256 from an RSA key published without
    // `alg` and RFC 9864's `Ed25519`, on all three adapters.
    for (resource, alg, want) in [
        ("https://api.test/rs256", "RS256", Algorithm::RS256),
        ("https://api.test/ps256", "PS256", Algorithm::PS256),
        ("https://api.test/es256", "ES256", Algorithm::ES256),
        ("https://api.test/ed25519", "Ed25519", Algorithm::EdDSA),
    ] {
        let token = idp.token(resource).await;
        assert_eq!(header(&token)["alg"], alg);
        assert_eq!(header(&token)["typ"], "at+jwt");
        let v = verifier(resource);
        let verified = v
            .verify(&token)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e} ({:?})", e.detail()));
        assert_eq!(verified.algorithm(), Some(want));
        assert_eq!(verified.subject(), Some("interop"));
        assert!(verified.has_scope("orders:read"), "{:?}", verified.scopes());
        let vv = v.clone();
        let t = token.clone();
        let answers = tokio::task::spawn_blocking(move || {
            ADAPTERS
                .iter()
                .map(|a| (*a, call(*a, &vv, &Call::get("/me").bearer(&t)).status))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for (adapter, status) in answers {
            assert_eq!(status, 200, "{alg} through {adapter:?}");
        }
        // Another resource's token: wrong audience.
        let other = verifier("https://api.test/other");
        assert_eq!(
            other.verify(&token).await.unwrap_err().kind(),
            AuthErrorKind::WrongAudience,
            "{alg}"
        );
    }

    // Expiry: a 2 s token, a 1 s leeway.
    let short = idp.token("https://api.test/short").await;
    let strict = Verifier::builder()
        .key_provider(jwks.clone())
        .issuer(issuer.clone())
        .audience("https://api.test/short")
        .leeway(Duration::from_secs(1))
        .build()
        .unwrap();
    assert!(strict.verify(&short).await.is_ok());
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(
        strict.verify(&short).await.unwrap_err().kind(),
        AuthErrorKind::Expired
    );

    // Key rotation at the provider while keycard keeps running: the new
    // keys are found by their kid, the old tokens keep verifying.
    let before = idp.token("https://api.test/es256").await;
    idp.rotate();
    let after = idp.token("https://api.test/es256").await;
    assert_ne!(header(&before)["kid"], header(&after)["kid"]);
    let v = verifier("https://api.test/es256");
    assert!(
        v.verify(&after).await.is_ok(),
        "a token signed by the rotated-in key"
    );
    assert!(v.verify(&before).await.is_ok(), "a token of the old key");
}

/// keycard's own tokens and JWKS through an independent JOSE library,
/// strictly as RFC 9068 access tokens (typ, and every required claim,
/// `client_id` included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_library_verifies_keycards_tokens_and_jwks() {
    ensure_installed();
    const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    for (alg, file) in [
        (Algorithm::EdDSA, "ed25519.pem"),
        (Algorithm::ES256, "p256.pem"),
        (Algorithm::RS256, "rsa2048.pem"),
        (Algorithm::PS256, "rsa2048.pem"),
    ] {
        let key =
            keycard::SigningKey::from_pem(alg, std::fs::read(format!("{FIX}{file}")).unwrap())
                .unwrap()
                .with_kid(format!("{alg:?}-1"));
        let ring = Arc::new(keycard::KeyRing::new(key));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = ring.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let body = served.jwks_json();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let issuer = keycard::TokenIssuer::builder_with_ring(ring)
            .issuer(base.clone())
            .audience("orders")
            .build()
            .unwrap();
        let sessions = keycard::Sessions::in_memory(issuer).unwrap();
        let pair = sessions
            .login("alice", &json!({"roles": ["user"]}))
            .await
            .unwrap();
        let run = move |token: &str| {
            let out = Command::new("node")
                .arg("verify.mjs")
                .arg(format!("{base}/jwks.json"))
                .arg(&base)
                .arg("orders")
                .arg(token)
                .current_dir(oidc_dir())
                .output()
                .expect("node");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let (ok, out) = tokio::task::spawn_blocking({
            let t = pair.access_token.clone();
            let run = run.clone();
            move || run(&t)
        })
        .await
        .unwrap();
        assert!(ok, "{alg:?}: jose refused keycard's access token: {out}");
        let verified: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(verified["payload"]["client_id"], "orders", "{alg:?}");
        assert_eq!(verified["header"]["typ"], "at+jwt");
        // A refresh token is not an access token for an RFC 9068 verifier
        // either.
        let (ok, out) = tokio::task::spawn_blocking({
            let t = pair.refresh_token.clone();
            move || run(&t)
        })
        .await
        .unwrap();
        assert!(!ok && out.starts_with("refused"), "{alg:?}: {out}");
    }
}

/// DPoP proofs made by an independent JOSE library (jose), for keys it
/// generated, verified by keycard on every adapter; jose's RFC 7638
/// thumbprint is keycard's.
#[test]
fn dpop_proofs_from_jose_verify_and_thumbprints_agree() {
    use common::{issuer, verifier_builder};
    use keycard::dpop::{access_token_hash, thumbprint, DpopConfig, DpopPolicy};
    ensure_installed();
    let node = |args: &[&str]| {
        let out = Command::new("node")
            .arg(oidc_dir().join("dpop.mjs"))
            .args(args)
            .current_dir(oidc_dir())
            .output()
            .expect("node");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let v = verifier_builder()
        .dpop(DpopConfig::new(DpopPolicy::Required).public_origin("https://api.test"))
        .build()
        .unwrap();
    for alg in ["ES256", "ES384", "PS256", "RS256", "EdDSA"] {
        let keys: Value = serde_json::from_str(&node(&["keygen", alg])).unwrap();
        let jkt = keys["jkt"].as_str().unwrap();
        assert_eq!(
            thumbprint(keys["public"].as_object().unwrap()).as_deref(),
            Some(jkt),
            "{alg}: thumbprints differ"
        );
        let token = issuer()
            .issue_bound("alice", None, &json!({"roles": ["user"]}), jkt)
            .unwrap()
            .token;
        let private = keys["private"].to_string();
        for adapter in ADAPTERS {
            let proof = node(&[
                "proof",
                &private,
                alg,
                "GET",
                "https://api.test/me",
                &access_token_hash(&token),
            ]);
            let c = Call::get("/me")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof.clone());
            let a = call(adapter, &v, &c);
            assert_eq!(a.status, 200, "{alg} {adapter:?}: {a:?}");
            // The same proof again is a replay.
            let a = call(adapter, &v, &c);
            assert_eq!(a.status, 401, "{alg} {adapter:?} replay");
        }
    }
}

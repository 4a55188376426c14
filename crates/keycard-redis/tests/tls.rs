//! `rediss://` against a real `redis-server` with TLS on, with a CA and a
//! server certificate this test makes: revocations travel between two
//! nodes over TLS; a node that does not trust the CA, or speaks plain text
//! to the TLS port, cannot connect (and says so) rather than run unsafely.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keycard_core::stores::TokenFacts;
use keycard_redis::{RedisConfig, RedisStores};

struct TlsRedis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
    ca_pem: String,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start() -> TlsRedis {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "keycard test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();

    let dir = std::env::temp_dir().join(format!(
        "keycard-redis-tls-{}-{}",
        std::process::id(),
        keycard_core::random_id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.crt"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(dir.join("server.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("server.key"))
        .arg("--tls-ca-cert-file")
        .arg(dir.join("ca.crt"))
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be on PATH");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsRedis {
        child,
        port,
        dir,
        ca_pem: ca_cert.pem(),
    }
}

fn prefix() -> String {
    format!(
        "kc-tls-{}-{}:",
        std::process::id(),
        keycard_core::random_id()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_travel_over_tls_and_untrusted_or_plain_connections_fail() {
    let redis = start();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let p = prefix();
    let node = |ca: Option<String>| {
        let mut cfg = RedisConfig::new(url.clone())
            .prefix(p.clone())
            .timeout(Duration::from_secs(2));
        if let Some(ca) = ca {
            cfg = cfg.tls_root_ca_pem(ca);
        }
        RedisStores::connect_with(cfg)
    };
    let a = node(Some(redis.ca_pem.clone()))
        .await
        .expect("node A over TLS");
    let b = node(Some(redis.ca_pem.clone()))
        .await
        .expect("node B over TLS");
    assert!(a.wait_current(Duration::from_secs(5)).await);
    assert!(b.wait_current(Duration::from_secs(5)).await);

    let now = keycard_core::unix_now();
    let facts = TokenFacts::new(now + 600)
        .jti("tls-jti")
        .subject("alice")
        .iat(now);
    assert!(!b.revocation().is_revoked(&facts).unwrap());
    a.revocation()
        .revoke_token("tls-jti", now + 600)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !b.revocation().is_revoked(&facts).unwrap_or(false) {
        assert!(
            Instant::now() < deadline,
            "the revocation never reached node B"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Without the CA the server's certificate is not trusted.
    let err = node(None)
        .await
        .expect_err("an untrusted certificate connected");
    assert!(!err.to_string().is_empty());
    // Plain text to the TLS port does not work either.
    let plain = RedisStores::connect_with(
        RedisConfig::new(format!("redis://127.0.0.1:{}", redis.port))
            .prefix(p.clone())
            .timeout(Duration::from_millis(500)),
    )
    .await;
    assert!(plain.is_err());
    // A CA with a plain URL is a configuration mistake, said at once.
    let mixed = RedisStores::connect_with(
        RedisConfig::new(format!("redis://127.0.0.1:{}", redis.port))
            .tls_root_ca_pem(redis.ca_pem.clone()),
    )
    .await
    .expect_err("a CA on a plain URL");
    assert!(mixed.to_string().contains("rediss://"), "{mixed}");
}

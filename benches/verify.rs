//! Micro benchmarks: keycard's whole verification next to raw
//! `jsonwebtoken::decode` of the same token and key, per algorithm; issuing;
//! key lookup; revocation checks. After criterion, an interleaved run prints
//! the ratio keycard / jsonwebtoken per algorithm (medians of alternating
//! batches, so machine noise hits both sides alike).
//!
//! `cargo bench --bench verify` (add `-- --quick` for a fast pass).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::*;
use criterion::{criterion_group, Criterion};
use keycard::{InMemoryRevocationStore, KeyProvider, RevocationStore, TokenFacts, TokenType};

fn verify(c: &mut Criterion) {
    for case in cases() {
        let mut g = c.benchmark_group(format!("verify/{}", case.name));
        g.bench_function("jsonwebtoken::decode", |b| {
            b.iter(|| black_box(raw_decode(black_box(&case))))
        });
        g.bench_function("keycard headers->Claims<T>", |b| {
            b.iter(|| black_box(keycard_verify(black_box(&case))))
        });
        g.bench_function("keycard cached, repeated token", |b| {
            b.iter(|| black_box(keycard_verify_cached(black_box(&case))))
        });
        if case.floor.is_some() {
            g.bench_function("ideal floor", |b| {
                b.iter(|| black_box(floor_verify(black_box(&case))))
            });
        }
        g.finish();
    }
}

fn issue(c: &mut Criterion) {
    let mut g = c.benchmark_group("issue");
    for case in cases() {
        g.bench_function(case.name, |b| {
            b.iter(|| {
                black_box(
                    case.issuer
                        .issue(
                            TokenType::Access,
                            "alice",
                            None,
                            &serde_json::json!({"roles": ["user"]}),
                        )
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let case = &cases()[0];
    let provider = case.verifier.keys().clone();
    c.bench_function("key lookup/static key set", |b| {
        b.iter(|| black_box(provider.lookup(None, None, black_box("HS256"))))
    });
    let ring = case.issuer.key_ring().clone();
    c.bench_function("key lookup/signing key ring", |b| {
        b.iter(|| black_box(ring.lookup(None, None, black_box("HS256"))))
    });

    // A remote JWKS (served on loopback by this bench) holding the ES256 key.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let es = cases().into_iter().find(|c| c.name == "ES256").unwrap();
    let jwks_doc = es.issuer.key_ring().jwks_json();
    let jwks = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || async move { jwks_doc }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        keycard::jwks::RemoteJwks::builder(url)
            .insecure_allow_http_loopback()
            .build()
            .await
            .unwrap()
    });
    c.bench_function("key lookup/remote JWKS cache", |b| {
        b.iter(|| black_box(jwks.lookup(None, None, black_box("ES256"))))
    });

    let store = InMemoryRevocationStore::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let exp = keycard::unix_now() + 3600;
    for i in 0..10_000 {
        rt.block_on(store.revoke_token(&format!("jti-{i}"), exp))
            .unwrap();
    }
    let facts = TokenFacts::new(exp)
        .jti("not-revoked")
        .subject("alice")
        .sid("s")
        .iat(exp - 60);
    c.bench_function("revocation check/in-memory, 10k entries", |b| {
        b.iter(|| black_box(store.is_revoked(black_box(&facts))))
    });

    // The Redis-backed local view, when a Redis is reachable.
    let url =
        std::env::var("KEYCARD_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("kc-bench-{}:", std::process::id());
    match rt.block_on(keycard_redis::RedisStores::connect_with(
        keycard_redis::RedisConfig::new(&url).prefix(&prefix),
    )) {
        Ok(stores) => {
            let store = stores.revocation();
            c.bench_function("revocation check/redis local view", |b| {
                b.iter(|| black_box(store.is_revoked(black_box(&facts))))
            });
        }
        Err(e) => eprintln!("skipping the Redis view bench: {e}"),
    }
}

/// Median ns per call of `f`, in `batch`-sized batches.
fn batch_ns(f: &dyn Fn(), batch: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..batch {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(batch)
}

fn ratios() {
    println!(
        "\nkeycard / jsonwebtoken::decode, same token and key (median of 31 interleaved batches):"
    );
    for case in cases() {
        let batch = if case.name == "HS256" { 2000 } else { 200 };
        let (mut k, mut r, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..31 {
            r.push(batch_ns(&|| drop(black_box(raw_decode(&case))), batch));
            k.push(batch_ns(&|| drop(black_box(keycard_verify(&case))), batch));
            c.push(batch_ns(
                &|| drop(black_box(keycard_verify_cached(&case))),
                batch,
            ));
        }
        for v in [&mut k, &mut r, &mut c] {
            v.sort_by(f64::total_cmp);
        }
        let (km, rm, cm) = (k[15], r[15], c[15]);
        let floor = if case.floor.is_some() {
            let mut f: Vec<f64> = (0..31)
                .map(|_| batch_ns(&|| drop(black_box(floor_verify(&case))), batch))
                .collect();
            f.sort_by(f64::total_cmp);
            format!(
                "   ideal floor {:>6.2} µs (keycard / floor {:.2}x)",
                f[15] / 1000.0,
                km / f[15]
            )
        } else {
            String::new()
        };
        println!(
            "  {:6} keycard {:>8.2} µs ({:.2}x)   cached {:>6.2} µs ({:.3}x)   jsonwebtoken {:>8.2} µs{floor}",
            case.name,
            km / 1000.0,
            km / rm,
            cm / 1000.0,
            cm / rm,
            rm / 1000.0
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = verify, issue, lookups
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}

//! Heap allocations per authenticated request, counted with `stats_alloc`'s
//! instrumented global allocator: keycard's whole path (headers → `Verified` →
//! `Claims<T>`) and raw `jsonwebtoken::decode`, per algorithm; then whole
//! requests through the axum apps of `examples/load_server.rs`
//! (`benches/support/apps.rs`), each against the no-auth app: what the
//! layer, the extractor and the metrics add per request.
//!
//! `cargo bench --bench allocations`

mod common;

#[path = "support/apps.rs"]
mod apps;
use common::floor;

use std::alloc::System;

use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn count(f: impl Fn()) -> f64 {
    f();
    let n = 1000;
    let region = Region::new(GLOBAL);
    for _ in 0..n {
        f();
    }
    let change = region.change();
    (change.allocations + change.reallocations) as f64 / f64::from(n)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("heap allocations per call (mean over 1000 calls):");
    for case in common::cases() {
        let k = count(|| {
            std::hint::black_box(common::keycard_verify(&case));
        });
        let r = count(|| {
            std::hint::black_box(common::raw_decode(&case));
        });
        let f = if case.floor.is_some() {
            format!(
                "   ideal floor {:>5.1}",
                count(|| {
                    std::hint::black_box(common::floor_verify(&case));
                })
            )
        } else {
            String::new()
        };
        let typed = count(|| {
            std::hint::black_box(common::keycard_verify_typed(&case));
        });
        let own = count(|| {
            std::hint::black_box(common::keycard_verified(&case));
        });
        println!(
            "  {:6} keycard headers->Claims<T> {k:>5.1} (keycard's own, before Claims<T>: {own:.1})   typed {typed:>5.1}   jsonwebtoken::decode {r:>5.1}{f}",
            case.name
        );
    }
    println!("\nheap allocations per whole request, HS256 (the load_server apps, in-process):");
    let none = count_app("none");
    for mode in [
        "none",
        "layer",
        "floor",
        "keycard",
        "keycard-typed",
        "jsonwebtoken",
    ] {
        let n = count_app(mode);
        println!("  {mode:14} {n:>5.1}   over no-auth {:>+5.1}", n - none);
    }
}

/// Allocations per request through one app (its runtime is built outside
/// the counted region; each request allocates its own headers and body).
fn count_app(mode: &str) -> f64 {
    let app = apps::App::new(mode, "HS256");
    count(|| {
        std::hint::black_box(app.request());
    })
}

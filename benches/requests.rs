//! Whole requests in-process: the axum apps of `examples/load_server.rs`
//! (`benches/support/apps.rs`) called without a socket, on one thread and on
//! two threads sharing one router (as two server workers do), in alternating
//! rounds. Prints nanoseconds per request and each mode against the ideal
//! floor: what the load script measures, without wrk and the kernel in the
//! same two cores.
//!
//! `cargo bench --bench requests` (`-- --rounds N` to change the 31 rounds)

#[path = "support/apps.rs"]
mod apps;
#[path = "support/floor.rs"]
mod floor;

use std::time::Instant;

const MODES: [&str; 5] = ["none", "floor", "keycard", "keycard-typed", "jsonwebtoken"];

/// Wall-clock ns per request of `threads` callers sharing `app`'s router,
/// each making `n` requests.
fn ns_per_request(app: &apps::App, threads: usize, n: u32) -> f64 {
    let callers: Vec<apps::App> = (0..threads).map(|_| app.another()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for caller in &callers {
            s.spawn(move || {
                for _ in 0..n {
                    std::hint::black_box(caller.request());
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / (f64::from(n) * threads as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(31);
    let apps: Vec<apps::App> = MODES.iter().map(|m| apps::App::new(m, "HS256")).collect();
    // Warm up every app (allocator, caches, lazy statics) before counting.
    for app in &apps {
        ns_per_request(app, 2, 20_000);
    }
    for threads in [1, 2] {
        let n = 20_000;
        let mut runs = vec![Vec::new(); MODES.len()];
        for round in 0..rounds {
            // Alternate the order, so that drift favours no mode.
            let order: Vec<usize> = if round % 2 == 0 {
                (0..MODES.len()).collect()
            } else {
                (0..MODES.len()).rev().collect()
            };
            for i in order {
                runs[i].push(ns_per_request(&apps[i], threads, n));
            }
        }
        // Per-round ratios to the floor (index 1), then their median.
        let ratio = |i: usize| median(runs[i].iter().zip(&runs[1]).map(|(a, f)| a / f).collect());
        let added = |i: usize| {
            median(
                (0..rounds)
                    .map(|r| (runs[i][r] - runs[0][r]) / (runs[1][r] - runs[0][r]))
                    .collect(),
            )
        };
        println!(
            "\nwhole request in-process, HS256, {threads} thread(s) sharing one router, median of {rounds} alternating rounds:"
        );
        println!(
            "  {:14} {:>10} {:>13} {:>22}",
            "mode", "ns/request", "÷ floor", "added ÷ floor's added"
        );
        for (i, mode) in MODES.iter().enumerate() {
            println!(
                "  {:14} {:>10.0} {:>13.3} {:>22.3}",
                mode,
                median(runs[i].clone()),
                ratio(i),
                added(i)
            );
        }
    }
}

//! The verify path for instruction counting under callgrind: runs one mode
//! `iters` times. `scripts/instructions.sh` runs it under
//! `valgrind --tool=callgrind` with two iteration counts and subtracts, so
//! setup cancels out and the result is instructions per verification.
//!
//! `instructions <keycard|keycard-typed|jsonwebtoken|floor> <HS256|RS256|PS256|ES256|EdDSA> <iters>`
//! (`floor`: the ideal floor of `benches/support/floor.rs`, HS256 only)
//!
//! `instructions app-<mode> <HS256|RS256|ES256> <iters>` counts a whole
//! request instead: the axum app that `examples/load_server.rs` serves for
//! `<mode>` (`none`, `floor`, `keycard`, `keycard-typed`, `jsonwebtoken`, ...),
//! called in-process from the request to the collected response body. Only
//! the network and hyper's parsing are left out, and they are the same for
//! every mode.

mod common;

#[path = "support/apps.rs"]
mod apps;
use common::floor;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.len() < 3 {
        // `cargo bench` runs every bench target with `--bench`: nothing to do.
        return;
    }
    let iters: u32 = args[2].parse().expect("iters");
    if let Some(mode) = args[0].strip_prefix("app-") {
        let app = apps::App::new(mode, &args[1]);
        app_loop(&app, 1);
        app_loop(&app, iters);
        return;
    }
    let case = common::cases()
        .into_iter()
        .find(|c| c.name == args[1])
        .expect("unknown algorithm");
    // Warm up once outside the counted loop (lazy statics, first-use setup).
    measured_loop(&args[0], &case, 1);
    measured_loop(&args[0], &case, iters);
}

/// The only function callgrind counts (`--toggle-collect`).
#[inline(never)]
fn measured_loop(mode: &str, case: &common::Case, iters: u32) {
    for _ in 0..iters {
        match mode {
            "keycard" => drop(std::hint::black_box(common::keycard_verify(case))),
            "keycard-typed" => drop(std::hint::black_box(common::keycard_verify_typed(case))),
            "jsonwebtoken" => drop(std::hint::black_box(common::raw_decode(case))),
            "floor" => drop(std::hint::black_box(common::floor_verify(case))),
            other => panic!("unknown mode {other}"),
        }
    }
}

/// The counted loop of the `app-*` modes (`--toggle-collect='*measured_loop*'`
/// matches this one too).
#[inline(never)]
fn app_measured_loop(app: &apps::App, iters: u32) {
    for _ in 0..iters {
        std::hint::black_box(app.request());
    }
}

fn app_loop(app: &apps::App, iters: u32) {
    app_measured_loop(app, iters)
}

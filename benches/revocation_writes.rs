//! Revocation writes stay flat as the denylist grows: one logout costs the
//! same at a thousand live entries as at a million (the denylist is a
//! persistent map: a writer copies the snapshot in O(1) and inserts in
//! O(log n), while checks keep reading theirs without a lock). A check is
//! measured at the same sizes.
//!
//! `cargo bench --bench revocation_writes` prints criterion's figures, then
//! the write and check costs at 1M entries as ratios to 1k, from
//! interleaved batches in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use keycard::{EntryKind, InMemoryRevocationStore, RevocationEntry, RevocationStore, TokenFacts};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

fn filled(n: usize) -> InMemoryRevocationStore {
    let store = InMemoryRevocationStore::with_capacity(n + 10_000_000);
    let exp = keycard::unix_now() + 3600;
    for i in 0..n {
        store
            .insert(&RevocationEntry::new(
                EntryKind::Token,
                format!("jti-{i:09}"),
                exp,
                0,
            ))
            .unwrap();
    }
    store
}

fn write_once(store: &InMemoryRevocationStore, i: &mut u64, exp: i64) {
    *i += 1;
    store
        .insert(&RevocationEntry::new(
            EntryKind::Token,
            format!("new-{i}"),
            exp,
            0,
        ))
        .unwrap();
}

fn check_once(store: &InMemoryRevocationStore, exp: i64) -> bool {
    store
        .is_revoked(
            &TokenFacts::new(exp)
                .jti("jti-000000500")
                .sid("s")
                .subject("u"),
        )
        .unwrap()
}

fn writes(c: &mut Criterion) {
    let exp = keycard::unix_now() + 3600;
    let mut g = c.benchmark_group("revocation write");
    for n in SIZES {
        let store = filled(n);
        let mut i = 0u64;
        g.bench_function(format!("{n} live entries"), |b| {
            b.iter(|| write_once(black_box(&store), &mut i, exp))
        });
        g.bench_function(format!("check at {n}"), |b| {
            b.iter(|| black_box(check_once(black_box(&store), exp)))
        });
    }
    g.finish();
}

/// Median ns per operation over alternating batches of the small and the
/// large store.
fn ratios() {
    let exp = keycard::unix_now() + 3600;
    let small = filled(SIZES[0]);
    let large = filled(SIZES[2]);
    let (mut i, mut j) = (0u64, 0u64);
    let batch = 2_000;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        t.elapsed().as_nanos() as f64 / f64::from(batch)
    };
    let (mut ws, mut wl, mut cs, mut cl) = (vec![], vec![], vec![], vec![]);
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        ws.push(time(&mut || write_once(&small, &mut i, exp)));
        wl.push(time(&mut || write_once(&large, &mut j, exp)));
        cs.push(time(&mut || {
            black_box(check_once(&small, exp));
        }));
        cl.push(time(&mut || {
            black_box(check_once(&large, exp));
        }));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ws, wl, cs, cl) = (med(&mut ws), med(&mut wl), med(&mut cs), med(&mut cl));
    println!(
        "\nrevocation write: {ws:.0} ns at 1k entries, {wl:.0} ns at 1M: ratio {:.2}",
        wl / ws
    );
    println!(
        "revocation check: {cs:.0} ns at 1k entries, {cl:.0} ns at 1M: ratio {:.2}",
        cl / cs
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = writes
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratios();
}

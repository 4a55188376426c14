//! The declared MSRV (`rust-version` in the workspace manifest) is true for
//! the locked dependencies: no dependency keycard builds with (any feature)
//! declares a newer one. CI has only the current stable toolchain, so this
//! checks the lock file rather than compiling with the old compiler.

use std::process::Command;

fn version(v: &str) -> [u64; 3] {
    let mut out = [0; 3];
    for (slot, part) in out.iter_mut().zip(v.split('.')) {
        *slot = part.parse().unwrap_or(0);
    }
    out
}

#[test]
fn the_declared_rust_version_covers_every_locked_dependency() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--all-features",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = m["packages"].as_array().unwrap();
    let id_of = |name: &str| {
        packages
            .iter()
            .find(|p| p["name"] == name && p["source"].is_null())
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let declared = packages
        .iter()
        .find(|p| p["name"] == "keycard" && p["source"].is_null())
        .and_then(|p| p["rust_version"].as_str())
        .expect("keycard declares a rust-version")
        .to_owned();
    // Everything reachable through normal and build dependencies from the
    // published crates.
    let nodes = m["resolve"]["nodes"].as_array().unwrap();
    let mut stack: Vec<String> = [
        "keycard",
        "keycard-core",
        "keycard-tower",
        "keycard-axum",
        "keycard-actix",
        "keycard-redis",
    ]
    .iter()
    .map(|n| id_of(n))
    .collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).unwrap();
        for dep in node["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if normal {
                stack.push(dep["pkg"].as_str().unwrap().to_owned());
            }
        }
    }
    let mut newer = Vec::new();
    for p in packages {
        if !seen.contains(p["id"].as_str().unwrap()) {
            continue;
        }
        if let Some(rv) = p["rust_version"].as_str() {
            if version(rv) > version(&declared) {
                newer.push(format!("{} {} needs {rv}", p["name"], p["version"]));
            }
        }
    }
    assert!(
        newer.is_empty(),
        "rust-version {declared} is not true: {newer:?}"
    );
}

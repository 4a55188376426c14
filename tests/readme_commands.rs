//! Every `cargo run` command in the Markdown (README, guides, crate
//! READMEs) and in the examples' own documentation runs as written: the
//! package and example exist, the features it names exist and include the
//! example's `required-features`, and a command that configures Redis
//! (`KEYCARD_REDIS_*`) builds with the `redis` feature. CI also builds each
//! command's target with its exact flags (`scripts/readme_commands.py`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// One command, as written.
#[derive(Debug)]
struct Command {
    place: String,
    env: Vec<String>,
    package: Option<String>,
    features: BTreeSet<String>,
    all_features: bool,
    example: Option<String>,
}

fn documents() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from(ROOT).join("README.md")];
    for dir in ["docs", "examples", "crates/keycard-redis/examples"] {
        if let Ok(entries) = std::fs::read_dir(Path::new(ROOT).join(dir)) {
            for e in entries.flatten() {
                let p = e.path();
                if matches!(p.extension().and_then(|e| e.to_str()), Some("md" | "rs")) {
                    files.push(p);
                }
            }
        }
    }
    for entry in std::fs::read_dir(Path::new(ROOT).join("crates"))
        .unwrap()
        .flatten()
    {
        let readme = entry.path().join("README.md");
        if readme.exists() {
            files.push(readme);
        }
    }
    files
}

/// The commands in `text`: from `cargo run` to the end of the code span,
/// line or shell comment, with the environment assignments before it.
fn commands(file: &Path, text: &str) -> Vec<Command> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("cargo run") {
            let before = &rest[..i];
            let after = &rest[i + "cargo run".len()..];
            let end = after.find(['`', '#', '|', ')']).unwrap_or(after.len());
            let args: Vec<&str> = after[..end]
                .split_whitespace()
                .take_while(|a| *a != "--")
                .collect();
            let env = before
                .rsplit('`')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .filter(|w| w.contains('=') && w.starts_with("KEYCARD_"))
                .map(|w| w.split('=').next().unwrap().to_owned())
                .collect();
            let mut c = Command {
                place: format!(
                    "{}:{}",
                    file.strip_prefix(ROOT).unwrap_or(file).display(),
                    n + 1
                ),
                env,
                package: None,
                features: BTreeSet::new(),
                all_features: false,
                example: None,
            };
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match *a {
                    "-p" | "--package" => c.package = it.next().map(|s| s.to_string()),
                    "--features" | "-F" => {
                        for f in it.next().unwrap_or(&"").split(',') {
                            c.features.insert(f.to_owned());
                        }
                    }
                    "--all-features" => c.all_features = true,
                    "--example" => c.example = it.next().map(|s| s.to_string()),
                    _ => {}
                }
            }
            out.push(c);
            rest = &after[end..];
        }
    }
    out
}

/// A package's features and its examples' required features.
struct Manifest {
    features: BTreeSet<String>,
    examples: Vec<(String, BTreeSet<String>)>,
}

fn manifest(package: Option<&str>) -> Manifest {
    let dir = match package {
        None | Some("keycard") => PathBuf::from(ROOT),
        Some(p) => PathBuf::from(ROOT).join("crates").join(p),
    };
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let toml: toml_manifest::Table = text.parse().unwrap();
    let mut features: BTreeSet<String> = toml
        .get("features")
        .and_then(|f| f.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    // Optional dependencies are features too.
    if let Some(deps) = toml.get("dependencies").and_then(|d| d.as_table()) {
        for (name, spec) in deps {
            if spec.get("optional").and_then(|o| o.as_bool()) == Some(true) {
                features.insert(name.clone());
            }
        }
    }
    let mut examples: Vec<(String, BTreeSet<String>)> = toml
        .get("example")
        .and_then(|e| e.as_array())
        .into_iter()
        .flatten()
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_owned();
            let required = e
                .get("required-features")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
                .map(|f| f.as_str().unwrap().to_owned())
                .collect();
            (name, required)
        })
        .collect();
    for entry in std::fs::read_dir(dir.join("examples"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = entry.path();
        let name = if p.extension().and_then(|e| e.to_str()) == Some("rs") {
            p.file_stem().unwrap().to_string_lossy().into_owned()
        } else if p.join("main.rs").exists() {
            p.file_name().unwrap().to_string_lossy().into_owned()
        } else {
            continue;
        };
        if !examples.iter().any(|(n, _)| *n == name) {
            examples.push((name, BTreeSet::new()));
        }
    }
    Manifest { features, examples }
}

#[test]
fn every_cargo_run_command_in_the_docs_runs_as_written() {
    let mut seen = 0;
    let mut problems = Vec::new();
    for file in documents() {
        let text = std::fs::read_to_string(&file).unwrap();
        for c in commands(&file, &text) {
            seen += 1;
            let m = manifest(c.package.as_deref());
            let Some(example) = &c.example else {
                continue;
            };
            let Some((_, required)) = m.examples.iter().find(|(n, _)| n == example) else {
                problems.push(format!("{}: no example {example:?}", c.place));
                continue;
            };
            for f in &c.features {
                if !m.features.contains(f) {
                    problems.push(format!("{}: no feature {f:?}", c.place));
                }
            }
            let defaults_on = c.all_features;
            for f in required {
                if !defaults_on && !c.features.contains(f) && !default_features(&c).contains(f) {
                    problems.push(format!(
                        "{}: `--example {example}` needs `--features {f}`",
                        c.place
                    ));
                }
            }
            if c.env.iter().any(|e| e.starts_with("KEYCARD_REDIS_"))
                && !c.all_features
                && !c.features.contains("redis")
                && c.package.as_deref().is_none_or(|p| p == "keycard")
            {
                problems.push(format!(
                    "{}: a Redis setting needs `--features redis` (`{example}` exits otherwise)",
                    c.place
                ));
            }
        }
    }
    assert!(
        seen >= 10,
        "only {seen} commands found: the extraction broke"
    );
    assert!(
        problems.is_empty(),
        "commands that do not run as written:\n{}",
        problems.join("\n")
    );
}

fn default_features(c: &Command) -> BTreeSet<String> {
    let dir = match c.package.as_deref() {
        None | Some("keycard") => PathBuf::from(ROOT),
        Some(p) => PathBuf::from(ROOT).join("crates").join(p),
    };
    let toml: toml_manifest::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    toml.get("features")
        .and_then(|f| f.get("default"))
        .and_then(|d| d.as_array())
        .into_iter()
        .flatten()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// The extraction itself, on the forms the docs use.
#[test]
fn commands_are_read_with_their_flags_and_environment() {
    let text = "`KEYCARD_REDIS_URL=redis://x PORT=3001 cargo run --release -p keycard-redis --features a,b --example e -- --flag`\n\
                cargo run --example q    # comment";
    let c = commands(Path::new("x.md"), text);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].env, ["KEYCARD_REDIS_URL"]);
    assert_eq!(c[0].package.as_deref(), Some("keycard-redis"));
    assert_eq!(c[0].features.iter().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(c[0].example.as_deref(), Some("e"));
    assert_eq!(c[1].example.as_deref(), Some("q"));
    assert!(c[1].features.is_empty());
}

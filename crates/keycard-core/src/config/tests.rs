//! The configuration's own checks: what it shows, what it reads, and the
//! DPoP nonce secret.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

/// A file of its own under the temporary directory.
trait Refusal {
    /// The error `apply` refuses this configuration with.
    fn refusal(&self) -> String;
}

impl Refusal for VerifierConfig {
    fn refusal(&self) -> String {
        self.apply(crate::Verifier::builder())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    }
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("keycard-config-unit-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

// ---- Secrets in Debug output and errors ----

#[test]
fn redact_url_hides_user_info_and_credential_parameters() {
    for (url, shown) in [
        (
            "redis://:hunter2@redis.internal:6379/0",
            "redis://<redacted>@redis.internal:6379/0",
        ),
        (
            "redis://app:hunter2@10.0.0.5:6379",
            "redis://<redacted>@10.0.0.5:6379",
        ),
        // A raw `@`, `/` or `#` in a password still hides all of it.
        (
            "redis://:hun@ter/2#x@10.0.0.5",
            "redis://<redacted>@10.0.0.5",
        ),
        (
            "https://token@idp.example/jwks",
            "https://<redacted>@idp.example/jwks",
        ),
        (
            "redis+unix:///run/redis.sock?db=1&password=hunter2&user=app",
            "redis+unix:///run/redis.sock?db=1&password=<redacted>&user=<redacted>",
        ),
        (
            "https://idp.example/jwks?tenant=a#k",
            "https://idp.example/jwks?tenant=a#k",
        ),
        (
            "https://idp.example/realms/shop",
            "https://idp.example/realms/shop",
        ),
        ("not a url", "not a url"),
    ] {
        assert_eq!(redact_url(url), shown, "{url}");
    }
}

#[test]
fn debug_never_shows_the_passwords_of_urls() {
    let config = VerifierConfig {
        revocation_url: Some("redis://app:PW-REDIS@redis.internal:6379/0".into()),
        resource: Some("https://u:PW-RESOURCE@api.example/mcp".into()),
        allowed_origins: vec!["https://u:PW-ORIGIN@app.example".into()],
        providers: vec![ProviderConfig {
            issuer: Some("https://u:PW-ISSUER@idp.example".into()),
            jwks_url: Some("https://idp.example/jwks?token=PW-QUERY".into()),
            ..ProviderConfig::default()
        }],
        dpop_nonce_secret_env: Some("NONCE_VAR".into()),
        ..VerifierConfig::default()
    };
    for shown in [format!("{config:?}"), format!("{config:#?}")] {
        assert!(!shown.contains("PW-"), "{shown}");
        assert!(shown.contains("redis.internal:6379/0"), "{shown}");
        assert!(shown.contains("<redacted>@idp.example"), "{shown}");
        assert!(shown.contains("NONCE_VAR"), "{shown}");
    }
    // Every field is shown (a new one cannot be left out: the impl
    // destructures the struct).
    let shown = format!("{:?}", VerifierConfig::default());
    for field in struct_fields::<VerifierConfig>() {
        assert!(shown.contains(&format!("{field}: ")), "{field} in {shown}");
    }
    let shown = format!("{:?}", ProviderConfig::default());
    for field in struct_fields::<ProviderConfig>() {
        assert!(shown.contains(&format!("{field}: ")), "{field} in {shown}");
    }
}

#[test]
fn errors_about_urls_never_show_their_passwords() {
    for (name, value) in [
        ("KEYCARD_RESOURCE", "https://u:PW-RESOURCE@/mcp"),
        ("KEYCARD_ALLOWED_ORIGINS", "ftp://u:PW-ORIGIN@app.example"),
    ] {
        let got = VerifierConfig::from_vars(vars(&[(name, value)]))
            .unwrap()
            .refusal();
        assert!(got.contains(name), "{got}");
        assert!(!got.contains("PW-"), "{got}");
        assert!(got.contains("<redacted>@"), "{got}");
    }
}

#[test]
fn a_secret_set_in_the_wrong_variable_is_never_shown() {
    let secret = "k3ycard/NONCE+SECRET=of-at-least-32-bytes";
    for name in [
        "KEYCARD_DPOP",
        "KEYCARD_DPOP_NONCES",
        "KEYCARD_TOKEN_SOURCES",
        "KEYCARD_COOKIE_NAME",
        "KEYCARD_PROFILE",
        "KEYCARD_ALGORITHMS",
        "KEYCARD_REQUIRE_SUBJECT",
        "KEYCARD_INSECURE_ANY_ISSUER",
    ] {
        let got = VerifierConfig::from_vars(vars(&[(name, secret)]))
            .and_then(|c| c.apply(crate::Verifier::builder()))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(got.contains(name), "{got}");
        assert!(!got.contains("SECRET"), "{got}");
        assert!(got.contains("<41 bytes, not shown>"), "{got}");
    }
    // A short word is still quoted, to say what was wrong.
    let got = VerifierConfig::from_vars(vars(&[("KEYCARD_DPOP", "maybe")]))
        .unwrap()
        .refusal();
    assert_eq!(
        got,
        "dpop (KEYCARD_DPOP): \"maybe\": expected bearer, allowed or required"
    );
}

#[cfg(feature = "toml")]
#[test]
fn a_toml_error_names_field_place_and_kind_but_never_the_value() {
    for (text, want) in [
        (
            "cookie_name = \"abc\"\nleeway_secs = \"SECRET-1\"",
            "leeway_secs: invalid type: string, expected u64 (line 2, column 15)",
        ),
        (
            "cookie_name = 5",
            "cookie_name: invalid type: integer, expected a string (line 1, column 15)",
        ),
        (
            "revocation_url = [\"redis://:SECRET-2@h\"]",
            "revocation_url: invalid type: sequence, expected a string (line 1, column 18)",
        ),
        (
            "[[providers]]\nkeys = [{ secret_env = \"SECRET-3\", alg = 7 }]",
            "alg: invalid type: integer, expected a string (line 2, column 42)",
        ),
        (
            "audiences = [\"a b=SECRET-4\", 5]",
            "audiences: invalid type: integer, expected a string (line 1, column 30)",
        ),
        (
            "max_token_bytes = -5 # SECRET-5",
            "max_token_bytes: invalid value: integer, expected usize (line 1, column 19)",
        ),
        (
            "SECRET-6 = 1",
            "unknown field `…`, expected one of `providers`",
        ),
        (
            "cookie_name = \"SECRET-7",
            "cookie_name: invalid basic string, expected `\"` (line 1, column 24)",
        ),
        (
            "pem = \"\"\"\nMIIabc=SECRET-8 \\q\n\"\"\"",
            "missing escaped value",
        ),
    ] {
        let got = VerifierConfig::from_toml_str(text).unwrap_err().to_string();
        assert!(
            got.contains(want),
            "for\n{text}\nwanted {want:?}\ngot    {got:?}"
        );
        assert!(!got.contains("SECRET"), "{got}");
    }
    // The loader says which file, and no more of it.
    let path = temp_file(
        "type-error.toml",
        b"realm = \"r\"\nleeway_secs = \"SECRET-9\"\n",
    );
    let got = VerifierConfig::from_vars(vars(&[(CONFIG_FILE_ENV, path.to_str().unwrap())]))
        .unwrap_err()
        .to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(got.starts_with("config file (KEYCARD_CONFIG): "), "{got}");
    assert!(
        got.ends_with("leeway_secs: invalid type: string, expected u64 (line 2, column 15)"),
        "{got}"
    );
    assert!(!got.contains("SECRET"), "{got}");
}

// ---- Every variable documented is read, and every one read documented ----

/// The workspace root, when the crate is built inside it.
fn workspace_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("README.md").is_file().then_some(root)
}

/// Every `KEYCARD_[A-Z0-9_]+` in `text`.
fn keycard_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("KEYCARD_") {
        let tail: String = text[at + "KEYCARD_".len()..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !tail.is_empty() {
            names.insert(format!("KEYCARD_{tail}"));
        }
    }
    names
}

/// Variables documented in this repository that another part reads, and
/// the file that reads each (it must hold the name as a string literal).
const READ_ELSEWHERE: &[(&str, &str)] = &[
    ("KEYCARD_SECRET", "examples/common/mod.rs"),
    ("KEYCARD_ACCESS_TTL_SECS", "examples/common/mod.rs"),
    ("KEYCARD_ONLY", "examples/microservices.rs"),
    ("KEYCARD_AUTH_URL", "examples/microservices.rs"),
    ("KEYCARD_ORDERS_URL", "examples/microservices.rs"),
    ("KEYCARD_BILLING_URL", "examples/microservices.rs"),
    ("KEYCARD_REDIS_URL", "crates/keycard-redis/src/config.rs"),
    (
        "KEYCARD_REDIS_CLUSTER",
        "crates/keycard-redis/src/config.rs",
    ),
    (
        "KEYCARD_REDIS_SENTINELS",
        "crates/keycard-redis/src/config.rs",
    ),
    (
        "KEYCARD_REDIS_SENTINEL_SERVICE",
        "crates/keycard-redis/src/config.rs",
    ),
    (
        "KEYCARD_REDIS_CA_FILE",
        "crates/keycard-redis/src/config.rs",
    ),
    ("KEYCARD_REDIS_PREFIX", "crates/keycard-redis/src/config.rs"),
    (
        "KEYCARD_REDIS_WAIT_REPLICAS",
        "crates/keycard-redis/src/config.rs",
    ),
    (
        "KEYCARD_TEST_REDIS_URL",
        "crates/keycard-redis/tests/cluster.rs",
    ),
];

#[test]
fn every_documented_variable_is_read_and_every_read_one_is_documented() {
    let Some(root) = workspace_root() else {
        eprintln!("not inside the keycard workspace: documentation not checked");
        return;
    };
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut docs: Vec<PathBuf> = vec![root.join("README.md")];
    for dir in ["docs", "crates"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                docs.push(path);
            } else if path.join("README.md").is_file() {
                docs.push(path.join("README.md"));
            }
        }
    }
    for file in ["mod.rs", "load.rs", "build.rs"] {
        docs.push(root.join("crates/keycard-core/src/config").join(file));
    }
    assert!(docs.len() >= 9, "{docs:?}");

    // Every name read elsewhere is really read there.
    for (name, file) in READ_ELSEWHERE {
        assert!(
            read(&root.join(file)).contains(&format!("\"{name}\"")),
            "{name} is not read in {file}"
        );
    }
    let known: BTreeSet<&str> = ENV_NAMES
        .iter()
        .map(|(_, env)| *env)
        .chain(READ_ELSEWHERE.iter().map(|(name, _)| *name))
        .chain([CONFIG_FILE_ENV])
        .collect();
    let mut unknown = Vec::new();
    for doc in &docs {
        for name in keycard_names(&read(doc)) {
            // `KEYCARD_REDIS_*`: a family, which must have members.
            let ok = match name.strip_suffix('_') {
                Some(_) => known.iter().any(|k| k.starts_with(&name)),
                None => known.contains(name.as_str()),
            };
            if !ok {
                unknown.push(format!("{name} ({})", doc.display()));
            }
        }
    }
    assert!(unknown.is_empty(), "documented but never read: {unknown:?}");

    // The other way: the README's table lists every variable with its field.
    let readme = read(&root.join("README.md"));
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| Variable | Field |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(
        table.len() > ENV_NAMES.len(),
        "no table of variables in the README"
    );
    for (field, env) in ENV_NAMES {
        let row = table
            .iter()
            .find(|row| row.starts_with(&format!("| `{env}` |")))
            .unwrap_or_else(|| panic!("{env} is missing from the README's table"));
        assert!(
            row.contains(&format!("| `{field}` |")),
            "the README's row for {env} does not name {field}: {row}"
        );
    }
}

/// The value at `path` (`providers[0].issuer`) of a configuration as JSON.
fn at_path(config: &VerifierConfig, path: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap();
    for part in path.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, i)) => (
                name,
                Some(i.trim_end_matches(']').parse::<usize>().unwrap()),
            ),
            None => (part, None),
        };
        value = value.get(name).cloned().unwrap_or_default();
        if let Some(i) = index {
            value = value.get(i).cloned().unwrap_or_default();
        }
    }
    value
}

#[test]
fn every_variable_sets_the_field_it_is_listed_for() {
    let unset = VerifierConfig::from_vars(vars(&[])).unwrap();
    assert_eq!(unset, VerifierConfig::default());
    let mut seen = BTreeSet::new();
    for (field, env) in ENV_NAMES {
        assert!(seen.insert(*env), "{env} is listed twice");
        // `1` is a flag, a number, a string and a one-item list.
        let config = VerifierConfig::from_vars(vars(&[(env, "1")]))
            .unwrap_or_else(|e| panic!("{env}=1: {e}"));
        assert_ne!(config, unset, "{env} is not read");
        assert!(
            !at_path(&config, field).is_null(),
            "{env} does not set {field}: {config:?}"
        );
        assert!(at_path(&unset, field).is_null(), "{field}");
        // A value that is no flag, number or list item, where one is
        // needed, is an error naming the variable.
        if let Err(e) = VerifierConfig::from_vars(vars(&[(env, " ,")])) {
            assert!(e.to_string().contains(env), "{env}: {e}");
        }
    }
}

#[test]
fn insecure_any_issuer_is_read_from_the_environment() {
    // As from a file: one provider with a fixed key and no issuer.
    let from_file = VerifierConfig {
        providers: vec![ProviderConfig {
            issuer: None,
            ..hmac_provider()
        }],
        ..VerifierConfig::default()
    };
    let without = from_file.build().map(|_| ()).unwrap_err().to_string();
    assert!(
        without.starts_with("providers[0].issuer (KEYCARD_ISSUER): required"),
        "{without}"
    );
    let mut config = from_file.clone();
    config
        .apply_vars(&vars(&[("KEYCARD_INSECURE_ANY_ISSUER", "1")]))
        .unwrap();
    assert_eq!(config.providers[0].insecure_any_issuer, Some(true));
    config.build().unwrap();
    let got = VerifierConfig::from_vars(vars(&[("KEYCARD_INSECURE_ANY_ISSUER", "maybe")]))
        .unwrap_err()
        .to_string();
    assert!(
        got.starts_with("providers[0].insecure_any_issuer (KEYCARD_INSECURE_ANY_ISSUER)"),
        "{got}"
    );
}

/// A provider with issuer `https://a.example` and a fixed HMAC key.
fn hmac_provider() -> ProviderConfig {
    std::env::set_var(
        "KEYCARD_CONFIG_UNIT_SECRET",
        "a config unit test secret of 32+ bytes",
    );
    ProviderConfig {
        issuer: Some("https://a.example".into()),
        keys: vec![KeyConfig {
            alg: "HS256".into(),
            secret_env: Some("KEYCARD_CONFIG_UNIT_SECRET".into()),
            ..KeyConfig::default()
        }],
        ..ProviderConfig::default()
    }
}

// ---- The DPoP nonce secret ----

const NONCE_SECRET: &str = "a DPoP nonce secret shared by the cluster";

fn nonces_of(config: &VerifierConfig) -> crate::dpop::Nonces {
    let b = config.apply(crate::Verifier::builder()).unwrap();
    let dpop = b.dpop.expect("DPoP configured");
    assert!(dpop.nonces, "a nonce secret turns nonces on");
    assert!(dpop.nonce_secret.is_some(), "the secret is applied");
    crate::dpop::Nonces::new(dpop.nonce_secret.as_ref())
}

fn with_provider(config: &VerifierConfig) -> VerifierConfig {
    VerifierConfig {
        providers: vec![hmac_provider()],
        ..config.clone()
    }
}

#[test]
fn a_nonce_secret_file_makes_every_verifier_accept_the_others_nonces() {
    let file = temp_file("nonce-secret", format!("{NONCE_SECRET}\n").as_bytes());
    let config = VerifierConfig {
        dpop: Some("required".into()),
        dpop_nonce_secret_file: Some(file.clone()),
        ..VerifierConfig::default()
    };
    let (a, b) = (nonces_of(&config), nonces_of(&config));
    let now = 1_700_000_000;
    assert!(b.valid(&a.current(now), now));
    assert!(a.valid(&b.current(now), now));
    // The trailing newline is not part of the secret.
    let same = crate::dpop::DpopConfig::new(crate::dpop::DpopPolicy::Required)
        .nonce_secret(NONCE_SECRET.as_bytes())
        .unwrap();
    assert!(crate::dpop::Nonces::new(same.nonce_secret.as_ref()).valid(&a.current(now), now));
    // Another secret, or none, is another cluster.
    let other = temp_file(
        "nonce-secret-other",
        b"another secret, of another cluster!!",
    );
    let other_config = VerifierConfig {
        dpop_nonce_secret_file: Some(other.clone()),
        ..config.clone()
    };
    assert!(!nonces_of(&other_config).valid(&a.current(now), now));
    with_provider(&config).build().unwrap();

    let short = temp_file("nonce-secret-short", b"short\n");
    let got = with_provider(&VerifierConfig {
        dpop_nonce_secret_file: Some(short.clone()),
        ..config.clone()
    })
    .build()
    .map(|_| ())
    .unwrap_err()
    .to_string();
    assert!(
        got.starts_with("dpop_nonce_secret_file (KEYCARD_DPOP_NONCE_SECRET_FILE): the file "),
        "{got}"
    );
    assert!(got.contains("at least 32"), "{got}");
    for f in [file, other, short] {
        std::fs::remove_file(f).unwrap();
    }
}

#[test]
fn the_nonce_secret_from_the_environment_is_read_by_name_and_checked() {
    // The only test that sets this variable: tests run in parallel.
    let config = VerifierConfig::from_vars(vars(&[
        ("KEYCARD_DPOP", "required"),
        (DPOP_NONCE_SECRET_ENV, "(read from the process environment)"),
    ]))
    .unwrap();
    assert_eq!(
        config.dpop_nonce_secret_env.as_deref(),
        Some("KEYCARD_DPOP_NONCE_SECRET")
    );
    std::env::set_var(DPOP_NONCE_SECRET_ENV, NONCE_SECRET);
    let (a, b) = (nonces_of(&config), nonces_of(&config));
    let now = 1_700_000_000;
    assert!(b.valid(&a.current(now), now));
    with_provider(&config).build().unwrap();
    assert!(!format!("{config:?}").contains(NONCE_SECRET));

    std::env::set_var(DPOP_NONCE_SECRET_ENV, "too-short-SECRET");
    let got = with_provider(&config)
        .build()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    std::env::remove_var(DPOP_NONCE_SECRET_ENV);
    assert_eq!(
        got,
        "dpop_nonce_secret_env (KEYCARD_DPOP_NONCE_SECRET): the variable \
         KEYCARD_DPOP_NONCE_SECRET: the DPoP nonce secret has 16 bytes; at least 32 are needed"
    );
    let got = with_provider(&config)
        .build()
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        got.starts_with("dpop_nonce_secret_env (KEYCARD_DPOP_NONCE_SECRET): the variable KEYCARD_DPOP_NONCE_SECRET is not set"),
        "{got}"
    );
}

#[test]
fn a_nonce_secret_needs_dpop_and_only_one_source() {
    let named = VerifierConfig {
        dpop_nonce_secret_env: Some("SOME_NONCE_VAR".into()),
        ..VerifierConfig::default()
    };
    let got = named.refusal();
    assert_eq!(
        got,
        "dpop_nonce_secret_env: needs dpop = allowed or required"
    );
    let got = VerifierConfig {
        dpop: Some("allowed".into()),
        dpop_nonce_secret_file: Some("/nonexistent/keycard-nonce".into()),
        ..named.clone()
    }
    .refusal();
    assert!(
        got.starts_with("dpop_nonce_secret_env: give either"),
        "{got}"
    );
    let got = VerifierConfig {
        dpop: Some("allowed".into()),
        ..named.clone()
    }
    .refusal();
    assert_eq!(
        got,
        "dpop_nonce_secret_env: the variable SOME_NONCE_VAR is not set"
    );
    let got = VerifierConfig::from_vars(vars(&[
        ("KEYCARD_DPOP_NONCE_SECRET", "x"),
        ("KEYCARD_DPOP_NONCE_SECRET_FILE", "/x"),
    ]))
    .unwrap_err()
    .to_string();
    assert!(got.contains("not both"), "{got}");
    // The variable overrides the file's setting, and the other way round.
    let from_file = VerifierConfig {
        dpop_nonce_secret_env: Some("SOME_NONCE_VAR".into()),
        ..VerifierConfig::default()
    };
    let mut config = from_file.clone();
    config
        .apply_vars(&vars(&[(
            "KEYCARD_DPOP_NONCE_SECRET_FILE",
            "/run/secrets/nonce",
        )]))
        .unwrap();
    assert_eq!(config.dpop_nonce_secret_env, None);
    assert_eq!(
        config.dpop_nonce_secret_file.as_deref(),
        Some(Path::new("/run/secrets/nonce"))
    );
}

#[cfg(feature = "toml")]
#[test]
fn the_nonce_secret_is_named_in_toml_never_written_there() {
    let config = VerifierConfig::from_toml_str(
        "dpop = \"required\"\ndpop_nonce_secret_env = \"NONCE\"\ndpop_nonce_secret_file = \"/x\"",
    )
    .unwrap();
    assert_eq!(config.dpop_nonce_secret_env.as_deref(), Some("NONCE"));
    assert_eq!(
        config.dpop_nonce_secret_file.as_deref(),
        Some(Path::new("/x"))
    );
    let got = VerifierConfig::from_toml_str("dpop_nonce_secret = \"SECRET\"")
        .unwrap_err()
        .to_string();
    assert!(got.contains("unknown field `dpop_nonce_secret`"), "{got}");
    assert!(!got.contains("SECRET\""), "{got}");
}

/// Configuration that builds but cannot work is refused with the setting,
/// its variable and what to do.
#[cfg(all(feature = "toml", feature = "jwks"))]
#[test]
fn configuration_errors_point_at_the_fix() {
    // An issuer that is no URL, used for discovery.
    let cfg = VerifierConfig::from_toml_str(
        "[[providers]]\nissuer = \"idp.example.com\"\naudiences = [\"api\"]\n",
    )
    .unwrap();
    let e = cfg.build().unwrap_err().to_string();
    assert!(
        e.contains("providers[0].issuer") && e.contains("KEYCARD_ISSUER"),
        "{e}"
    );
    assert!(e.contains("https://"), "{e}");
    // Plain http names its switch.
    let cfg = VerifierConfig::from_toml_str(
        "[[providers]]\nissuer = \"http://idp.example.com\"\naudiences = [\"api\"]\n",
    )
    .unwrap();
    let e = cfg.build().unwrap_err().to_string();
    assert!(e.contains("KEYCARD_ALLOW_HTTP=1"), "{e}");
    // A short secret names the variable that held it.
    std::env::set_var("KEYCARD_TEST_SHORT_SECRET_FOR_ERRORS", "short");
    let cfg = VerifierConfig::from_toml_str(
        "[[providers]]\nissuer = \"https://idp.example.com\"\naudiences = [\"api\"]\nkeys = [{ alg = \"HS256\", secret_env = \"KEYCARD_TEST_SHORT_SECRET_FOR_ERRORS\" }]\n",
    )
    .unwrap();
    let e = cfg.build().unwrap_err().to_string();
    assert!(e.contains("KEYCARD_TEST_SHORT_SECRET_FOR_ERRORS"), "{e}");
    assert!(!e.contains("short\""), "{e}");
    // An inline secret says why it is refused.
    let e = VerifierConfig::from_toml_str(
        "[[providers]]\nissuer = \"https://idp.example.com\"\nkeys = [{ alg = \"HS256\", secret = \"inline-secret-value-of-32-bytes!!\" }]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("secret_env") && e.contains("never written"),
        "{e}"
    );
    assert!(!e.contains("inline-secret-value"), "{e}");
}

//! Start example programs as child processes for end-to-end tests.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed on drop.
pub struct Running {
    pub child: Child,
    pub port: u16,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of an example, built (or found up to date) once per test
/// process, with the same profile as the tests.
pub fn example_path(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.iter().any(|b| b == name) {
        let mut cmd = Command::new(env!("CARGO"));
        // The same features as the test build (the README's test command
        // is `--all-features`), so the binary is built once.
        cmd.args(["build", "--quiet", "--all-features", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().unwrap();
        assert!(status.success(), "building example {name} failed");
        built.push(name.to_owned());
    }
    profile_dir.join("examples").join(name)
}

/// Start an example with `env` and wait until `GET /health` answers.
pub fn start_example(name: &str, env: &[(&str, String)]) -> Running {
    start_example_logging(name, env, Stdio::null())
}

/// [`start_example`] with its stderr (its log) going to `stderr`.
pub fn start_example_logging(name: &str, env: &[(&str, String)], stderr: Stdio) -> Running {
    let port = free_port();
    let mut cmd = Command::new(example_path(name));
    cmd.env("PORT", port.to_string())
        .env_remove("KEYCARD_REDIS_URL")
        .env_remove("KEYCARD_SECRET")
        .env_remove("KEYCARD_CONFIG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(stderr);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let mut running = Running { child, port };
    wait_healthy(&mut running);
    running
}

/// Send `signal` (`TERM`, `INT`) and wait for the exit status; fails the
/// test when the process still runs after `within`.
pub fn stop_with(
    running: &mut Running,
    signal: &str,
    within: Duration,
) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    loop {
        if let Some(s) = running.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < within,
            "still running {within:?} after SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until `GET /health` answers 200; fail at once if the child exits.
pub fn wait_healthy(running: &mut Running) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = running.child.try_wait() {
            panic!("the example exited before it became healthy: {status}");
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", running.port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {} did not become healthy", running.port);
}

/// Start an example that prints `name url` lines, and collect them until
/// every name in `wanted` is known.
pub fn start_printing(
    example: &str,
    env: &[(&str, String)],
    wanted: &[&str],
) -> (Child, std::collections::HashMap<String, String>) {
    use std::io::{BufRead, BufReader};
    let mut cmd = Command::new(example_path(example));
    cmd.env_remove("KEYCARD_REDIS_URL")
        .env_remove("KEYCARD_ONLY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut found = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wanted.iter().all(|w| found.contains_key(*w)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("{example} did not print {wanted:?} (got {found:?})")
        });
        if let Some((name, url)) = line.split_once(' ') {
            if url.starts_with("http://") {
                found.insert(name.to_owned(), url.to_owned());
            }
        }
    }
    (child, found)
}

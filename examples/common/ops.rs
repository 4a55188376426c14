//! What every example gives its operator, whatever the framework: logs,
//! `GET /metrics`, `GET /ready`, and a graceful stop on SIGTERM or Ctrl-C.

use keycard::Verifier;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The content type of the Prometheus text format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Log to stderr by `RUST_LOG` (default `info`; keycard's refusals, with
/// their reason, are at `debug` under `keycard`), and record keycard's
/// metrics for `GET /metrics`.
pub fn init() -> PrometheusHandle {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    PrometheusBuilder::new()
        .install_recorder()
        .unwrap_or_else(|e| super::fail(&format!("cannot install the metrics recorder: {e}")))
}

/// `GET /ready`: 200 when the verifier can decide now (keys present and
/// fresh, revocation view current), else 503 with the reasons, as JSON.
pub fn ready(verifier: &Verifier) -> (u16, String) {
    let readiness = verifier.readiness();
    let status = if readiness.is_ready() { 200 } else { 503 };
    (status, readiness.to_json())
}

/// `PORT`, or `default` when unset or empty; exits with a message when it
/// is not a port number.
pub fn port_from_env(default: u16) -> u16 {
    std::env::var("PORT")
        .ok()
        .filter(|p| !p.is_empty())
        .map_or(default, |p| {
            p.parse()
                .unwrap_or_else(|_| super::fail(&format!("PORT={p:?} is not a port number")))
        })
}

/// `GET /metrics` for an axum router: the Prometheus text of `handle`.
pub fn metrics_route<S: Clone + Send + Sync + 'static>(
    handle: PrometheusHandle,
) -> axum::routing::MethodRouter<S> {
    axum::routing::get(move || {
        let body = handle.render();
        async move { ([("content-type", METRICS_CONTENT_TYPE)], body) }
    })
}

/// Bind `127.0.0.1:port`, or exit with a message.
pub async fn listen(port: u16) -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| super::fail(&format!("cannot listen on 127.0.0.1:{port}: {e}")))
}

/// How long in-flight requests may take to finish after a stop signal.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(4);

/// Serve `app` until SIGTERM or SIGINT, then let in-flight requests finish
/// for at most [`GRACE`] (a client that never completes its request does
/// not hold the process), and return.
pub async fn serve_axum(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> std::io::Result<()> {
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop_signal().await;
        let _ = stopping.send(());
    });
    let deadline = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(GRACE).await,
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = server => r,
        () = deadline => {
            tracing::warn!("stopping now: requests still in flight after {GRACE:?}");
            Ok(())
        }
    }
}

/// Resolves once SIGTERM or SIGINT (Ctrl-C) arrives.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .unwrap_or_else(|e| super::fail(&format!("cannot wait for SIGTERM: {e}")));
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("stopping: finishing in-flight requests");
}

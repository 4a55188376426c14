//! [`FaultProxy`]: what the network does to a keycard node.

use std::io;
use std::time::{Duration, Instant};

/// A fault-injecting TCP proxy in front of a real `redis-server`, for tests
/// of what the network does to a cluster: it forwards both ways, and on
/// request silences the subscriber connections (drops Redis→client bytes
/// of any connection that sent `SUBSCRIBE`, while keeping the socket open,
/// as a NAT or firewall that dropped the flow would) or holds replies on
/// the command connections for a while (a reply that misses the client's
/// timeout).
///
/// ```no_run
/// use keycard_redis::testing::{FaultProxy, RedisServer};
///
/// let redis = RedisServer::start()?;
/// let proxy = FaultProxy::start(redis.port())?;
/// let url = proxy.url(); // connect a node through the proxy
/// proxy.silence_subscribers(true);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Debug, Default)]
struct ProxyState {
    silence_subscribers: std::sync::atomic::AtomicBool,
    hold_until: std::sync::Mutex<Option<Instant>>,
    dropped: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

impl FaultProxy {
    /// Listen on a free loopback port and forward to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> io::Result<Self> {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = std::sync::Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stop.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let subscriber = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                let (st1, sub1) = (st.clone(), subscriber.clone());
                std::thread::spawn(move || pump_up(client, server, &st1, &sub1));
                let st2 = st.clone();
                std::thread::spawn(move || pump_down(s2, c2, &st2, &subscriber));
            }
        });
        Ok(Self { port, state })
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drop (or stop dropping) every byte Redis sends to subscriber
    /// connections, keeping their sockets open.
    pub fn silence_subscribers(&self, on: bool) {
        self.state
            .silence_subscribers
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Hold every byte Redis sends on command (non-subscriber) connections
    /// for `d` from now, then deliver it: replies that arrive too late.
    pub fn hold_replies_for(&self, d: Duration) {
        *self
            .state
            .hold_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + d);
    }

    /// How many Redis→subscriber bytes were dropped so far.
    pub fn dropped_bytes(&self) -> u64 {
        self.state.dropped.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Client → Redis: forward, and notice subscriptions.
fn pump_up(
    from: std::net::TcpStream,
    to: std::net::TcpStream,
    st: &ProxyState,
    subscriber: &std::sync::atomic::AtomicBool,
) {
    pump(from, to, st, |chunk| {
        if chunk
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
        {
            subscriber.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        true
    });
}

/// Redis → client: forward, drop, or hold, as the faults say.
fn pump_down(
    from: std::net::TcpStream,
    to: std::net::TcpStream,
    st: &ProxyState,
    subscriber: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    pump(from, to, st, |chunk| {
        let is_sub = subscriber.load(Ordering::SeqCst);
        if is_sub && st.silence_subscribers.load(Ordering::SeqCst) {
            st.dropped.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            return false;
        }
        if !is_sub {
            let until = *st.hold_until.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(until) = until {
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
        }
        true
    });
}

/// Copy `from` to `to` until either side closes or the proxy stops;
/// `forward` sees each chunk first and says whether to pass it on.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    st: &ProxyState,
    mut forward: impl FnMut(&[u8]) -> bool,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    while !st.stop.load(std::sync::atomic::Ordering::Relaxed) {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if forward(&buf[..n]) && to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

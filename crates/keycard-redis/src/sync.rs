//! The background task that keeps a node's view current: subscribe, load a
//! snapshot, follow announcements, and prove liveness through the
//! subscription itself. On any failure it marks the view not current and
//! starts over. It owns no request-path state besides the view.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use keycard_core::{Denylist, EntryKind, RevocationEntry, StoreError, REVOCATION_GRACE};
use tokio::time::Instant;

use crate::config::Keys;
use crate::conn::{Conn, Incoming, Source, Subscription};
use crate::scripts::Scripts;
use crate::view::View;
use crate::{revoke, unavailable, with_timeout};

/// Parse an announcement: `seq kind exp cutoff id`.
pub(crate) fn parse_event(payload: &str) -> Option<(u64, RevocationEntry)> {
    let mut it = payload.splitn(5, ' ');
    let seq = it.next()?.parse().ok()?;
    let kind = match it.next()? {
        "jti" => EntryKind::Token,
        "sid" => EntryKind::Session,
        "sub" => EntryKind::Subject,
        _ => return None,
    };
    let exp = it.next()?.parse().ok()?;
    let cutoff = it.next()?.parse().ok()?;
    Some((seq, RevocationEntry::new(kind, it.next()?, exp, cutoff)))
}

pub(crate) fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Token => "jti",
        EntryKind::Session => "sid",
        _ => "sub",
    }
}

/// Load the live entries from Redis, with the number of the last
/// announcement they include (one script: atomic on one server and in a
/// cluster alike).
async fn snapshot(
    conn: &mut Conn,
    keys: &Keys,
    scripts: &Scripts,
    timeout: Duration,
    now: i64,
) -> Result<(Denylist, u64), StoreError> {
    let horizon = now - REVOCATION_GRACE.as_secs() as i64;
    type Pairs = Vec<(String, i64)>;
    let mut inv = scripts.snapshot.prepare_invoke();
    inv.key(&keys.jti)
        .key(&keys.sid)
        .key(&keys.sub)
        .key(&keys.subcut)
        .key(&keys.seq)
        .arg(horizon);
    let (jti, sid, sub, cut, seq): (Pairs, Pairs, Pairs, Vec<(String, i64)>, u64) =
        with_timeout(timeout * 5, inv.invoke_async(conn)).await?;
    let mut list = Denylist::default();
    for (id, exp) in jti {
        list.insert(&RevocationEntry::new(EntryKind::Token, id, exp, 0));
    }
    for (id, exp) in sid {
        list.insert(&RevocationEntry::new(EntryKind::Session, id, exp, 0));
    }
    let cut: std::collections::HashMap<String, i64> = cut.into_iter().collect();
    for (id, exp) in sub {
        let c = cut.get(&id).copied().unwrap_or(exp);
        list.insert(&RevocationEntry::new(EntryKind::Subject, id, exp, c));
    }
    Ok((list, seq))
}

/// The slowest round trip whose clock reading replaces a known offset.
const MAX_CLOCK_RTT_MS: i64 = 20;

/// Read the Redis clock and record its offset to the local one.
pub(crate) async fn measure_clock(
    conn: &mut Conn,
    keys: &Keys,
    scripts: &Scripts,
    view: &View,
    timeout: Duration,
) -> Result<(), StoreError> {
    let before = view.local_millis();
    let mut inv = scripts.clock.prepare_invoke();
    inv.key(&keys.seq);
    let (secs, micros): (i64, i64) = with_timeout(timeout, inv.invoke_async(conn)).await?;
    let after = view.local_millis();
    // The midpoint is off by up to half the round trip: once an offset is
    // known, a sample from a slow round trip is not worth taking (it could
    // move a logout's cut-off by hundreds of milliseconds).
    let redis_ms = secs * 1000 + micros / 1000;
    let offset = redis_ms - (before + after) / 2;
    let rtt = after - before;
    // ...unless it shows the clocks moved by more than its own error could
    // explain (a clock stepped by NTP): then it is the better estimate.
    if rtt > MAX_CLOCK_RTT_MS
        && view.clock_measured()
        && (offset - view.clock_offset_ms()).abs() <= rtt
    {
        return Ok(());
    }
    view.set_clock_offset_ms(offset);
    Ok(())
}

pub(crate) struct Sync {
    pub(crate) source: Source,
    pub(crate) conn: Conn,
    pub(crate) keys: Keys,
    pub(crate) scripts: &'static Scripts,
    pub(crate) view: Arc<View>,
    pub(crate) timeout: Duration,
    pub(crate) health: Duration,
    /// Heartbeat numbers keep counting across rounds, so a late heartbeat
    /// of an earlier round never proves a later one.
    pub(crate) heartbeats: u64,
    /// When the current round became current. The backoff starts over
    /// only after a round that stayed current for the staleness bound: a
    /// subscription killed right after each snapshot must not loop at
    /// full speed.
    pub(crate) current_since: Option<Instant>,
}

/// Write `entries` again, many at a time (the connection multiplexes).
async fn write_back(
    conn: &Conn,
    keys: &Keys,
    scripts: &Scripts,
    timeout: Duration,
    entries: &[RevocationEntry],
) -> Result<(), StoreError> {
    for chunk in entries.chunks(32) {
        let mut writes = Vec::with_capacity(chunk.len());
        for e in chunk {
            let mut conn = conn.clone();
            writes.push(async move { revoke(&mut conn, keys, scripts, timeout, e).await });
        }
        futures_util::future::try_join_all(writes).await?;
    }
    Ok(())
}

impl Sync {
    /// Subscribe, resync, follow announcements; on any failure mark the
    /// view not current and start over.
    pub(crate) async fn run_forever(mut self) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if let Err(e) = self.run_once().await {
                tracing::warn!(error = %e, "keycard-redis: revocation view not current; resyncing");
            }
            let stayed = self
                .current_since
                .take()
                .is_some_and(|at| at.elapsed() >= self.view.max_staleness());
            if stayed {
                // A round that became current ended (a failover, a slot
                // move): start over at once rather than at the backoff
                // of old failures.
                backoff = Duration::from_millis(50);
            }
            self.view.set_current(false);
            self.view
                .resyncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics::counter!(keycard_core::observe::names::REVOCATION_RESYNCS).increment(1);
            metrics::gauge!(keycard_core::observe::names::REVOCATION_CURRENT).set(0.0);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn run_once(&mut self) -> Result<(), StoreError> {
        let (keys, view, timeout, scripts) = (&self.keys, &*self.view, self.timeout, self.scripts);
        let mut messages =
            Subscription::open(&self.source, &[&keys.channel, &keys.heartbeat], timeout).await?;
        // Subscribed first, so nothing announced from here on is missed:
        // once the snapshot is in, the view holds everything acknowledged
        // before it was asked for.
        let asked = Instant::now();
        measure_clock(&mut self.conn, keys, scripts, view, timeout).await?;
        let (remote, mut last_seq) =
            snapshot(&mut self.conn, keys, scripts, timeout, view.now()).await?;
        let now = view.now();
        let missing = view.update(|local| {
            local.prune(now);
            let missing: Vec<RevocationEntry> = local
                .entries()
                .filter(|e| match remote.get(e.kind, &e.id) {
                    None => true,
                    Some(r) => r.exp < e.exp || r.cutoff < e.cutoff,
                })
                .collect();
            for e in remote.entries() {
                local.insert(&e);
            }
            missing
        });
        // Own writes the snapshot holds are settled, wherever their
        // announcement went.
        view.settled_by(&remote);
        // Redis lost entries this node knows (e.g. a restart without
        // persistence, or writes a failed-over primary acknowledged):
        // write them back so every node learns them again.
        if !missing.is_empty() {
            tracing::warn!(
                count = missing.len(),
                "keycard-redis: Redis lacks revocations this node knows; writing them back"
            );
            write_back(&self.conn, keys, scripts, timeout, &missing).await?;
        }
        view.prove(asked);
        view.set_current(true);
        self.current_since = Some(Instant::now());
        let mut ticker = tokio::time::interval(self.health);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Heartbeats in flight: (sequence number, when it was published).
        let mut sent: VecDeque<(u64, Instant)> = VecDeque::new();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let (channel, payload) = match msg {
                        Incoming::Message { channel, payload } => (channel, payload),
                        Incoming::Lost(why) => return Err(unavailable(why)),
                    };
                    let payload = String::from_utf8_lossy(&payload);
                    if channel == keys.heartbeat {
                        // `n redis_seq`: everything announced before this
                        // heartbeat was published has reached us, and the
                        // last of it was number `redis_seq`.
                        let mut it = payload.split(' ');
                        let (Some(Ok(n)), Some(Ok(redis_seq))) = (
                            it.next().map(str::parse::<u64>),
                            it.next().map(str::parse::<u64>),
                        ) else {
                            continue;
                        };
                        if redis_seq != last_seq {
                            // Missed an announcement, or Redis lost its
                            // data (the counter went back): resync, which
                            // also writes back what this node knows.
                            return Err(unavailable(format!(
                                "announcement {redis_seq} was published, {last_seq} is the last seen"
                            )));
                        }
                        let mut proven = None;
                        while let Some((s, at)) = sent.front().copied() {
                            if s > n { break; }
                            sent.pop_front();
                            if s == n { proven = Some(at); }
                        }
                        if let Some(at) = proven {
                            // Own writes acknowledged before this heartbeat
                            // went out, but never announced here: a server
                            // that lost them acknowledged them. Write them
                            // again, to the server this node follows now.
                            let lost = view.unechoed_before(at);
                            if !lost.is_empty() {
                                tracing::warn!(
                                    count = lost.len(),
                                    "keycard-redis: acknowledged revocations were never announced (failover?); writing them again"
                                );
                                metrics::counter!(keycard_core::observe::names::REVOCATION_REWRITES)
                                    .increment(lost.len() as u64);
                                view.rewrites.fetch_add(lost.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            write_back(&self.conn, keys, scripts, timeout, &lost).await?;
                            view.prove(at);
                        }
                        continue;
                    }
                    match parse_event(&payload) {
                        Some((seq, entry)) => {
                            view.apply(&entry);
                            view.echoed(&entry);
                            if seq == last_seq + 1 {
                                last_seq = seq;
                            } else if seq > last_seq + 1 {
                                return Err(unavailable(format!(
                                    "announcements {} to {} were lost",
                                    last_seq + 1,
                                    seq - 1
                                )));
                            }
                            // seq <= last_seq: already in the snapshot, or
                            // Redis restarted empty (the heartbeat tells).
                        }
                        None => tracing::warn!("keycard-redis: ignoring a malformed announcement"),
                    }
                }
                _ = ticker.tick() => {
                    self.heartbeats += 1;
                    let n = self.heartbeats;
                    let at = Instant::now();
                    let mut hb = scripts.heartbeat.prepare_invoke();
                    hb.key(&keys.seq).arg(&keys.heartbeat).arg(n);
                    with_timeout(timeout, hb.invoke_async::<String>(&mut self.conn)).await?;
                    sent.push_back((n, at));
                    if sent.len() > 1024 {
                        sent.pop_front();
                    }
                    measure_clock(&mut self.conn, keys, scripts, view, timeout).await?;
                    if let Source::Sentinel(s) = &self.source {
                        // A planned failover demotes the primary without
                        // closing our connections: notice, and move.
                        s.still_primary().await?;
                    }
                    metrics::gauge!(keycard_core::observe::names::REVOCATION_LAG)
                        .set(view.lag().as_secs_f64());
                    metrics::gauge!(keycard_core::observe::names::REVOCATION_CURRENT)
                        .set(if view.is_current() { 1.0 } else { 0.0 });
                    let now = view.now();
                    if view.snapshot().has_expired(now) {
                        view.update(|l| l.prune(now));
                    }
                    // The oldest heartbeat still unanswered: a view that is
                    // past its bound only because loading a large snapshot
                    // took long (checks fail closed meanwhile) gets the
                    // chance to prove itself with a heartbeat sent since.
                    let waiting = sent.front().map_or(Duration::ZERO, |(_, at)| at.elapsed());
                    if view.lag() > view.max_staleness() && waiting > view.max_staleness() {
                        // The subscription went silent (a dropped flow that
                        // never closed): rebuild it rather than keep
                        // answering from a view that may be stale.
                        return Err(unavailable(format!(
                            "no heartbeat came back through the subscription for {:?}",
                            view.lag()
                        )));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_and_ids_may_contain_spaces() {
        let (seq, e) = parse_event("7 sub 100 50 john smith").unwrap();
        assert_eq!(
            (seq, e.kind, e.exp, e.cutoff, &*e.id),
            (7, EntryKind::Subject, 100, 50, "john smith")
        );
        assert!(parse_event("1 bogus 1 2 x").is_none());
        assert!(parse_event("1 jti x 2 y").is_none());
        assert!(parse_event("1 jti 1").is_none());
        assert!(parse_event("jti 1 2 x").is_none(), "no sequence number");
    }
}

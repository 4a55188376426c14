//! The cluster refresh-family store: every operation is one Lua script, so
//! of N concurrent rotations across any number of nodes exactly one wins,
//! and a reuse marks the family and revokes its session in one step.

use std::fmt;
use std::sync::Arc;

use keycard_core::{
    BoxFuture, Committed, EntryKind, NewFamily, RefreshStore, RevocationEntry, RotateRequest,
    Rotation, StoreError,
};

use crate::{generation, replicated, unavailable, with_timeout, Shared};

/// A rotation or a new family is committed on the primary once the script
/// ran: a replica shortfall afterwards is reported, not turned into an
/// error (the client would retry with a spent refresh token, which is
/// reuse, and lose its session). Revocations do fail on a shortfall.
fn shortfall(what: &str, e: &StoreError) {
    tracing::warn!(error = %e, "keycard-redis: a committed {what} is not confirmed by the replicas");
}

/// The cluster refresh-family store (see the crate docs).
pub struct RedisRefreshStore(pub(crate) Arc<Shared>);

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.0.keys.family)
            .finish()
    }
}

impl RedisRefreshStore {
    async fn end_one(&self, sid: &str, revoke_until: i64) -> Result<(), StoreError> {
        let entry = RevocationEntry::new(EntryKind::Session, sid, revoke_until, 0);
        self.0.view.writing(&entry);
        let ended = self.end_script(sid, revoke_until).await;
        match &ended {
            Ok(()) => self.0.view.written(&entry),
            Err(_) => self.0.view.abandon(&entry),
        }
        ended
    }

    async fn end_script(&self, sid: &str, revoke_until: i64) -> Result<(), StoreError> {
        let keys = &self.0.keys;
        let mut conn = self.0.conn.clone();
        let mut inv = self.0.scripts.end.prepare_invoke();
        inv.key(keys.family(sid))
            .key(&keys.sid)
            .key(&keys.seq)
            .arg(sid)
            .arg(&keys.subject_families)
            .arg(revoke_until)
            .arg(&keys.channel);
        let before = generation(&conn);
        with_timeout(self.0.timeout, inv.invoke_async::<i64>(&mut conn)).await?;
        replicated(&mut conn, keys, self.0.timeout, before).await
    }

    /// The script revoked the session: apply it here at once, before the
    /// announcement echoes back.
    fn applied(&self, sid: &str, until: i64) {
        self.0
            .view
            .acknowledged(&RevocationEntry::new(EntryKind::Session, sid, until, 0));
    }
}

fn field(reply: &[String], i: usize) -> Result<&str, StoreError> {
    reply
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("rotate reply has no field {i}")))
}

fn number(reply: &[String], i: usize) -> Result<i64, StoreError> {
    field(reply, i)?
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("rotate reply field {i} is not a number")))
}

impl RefreshStore for RedisRefreshStore {
    fn start<'a>(&'a self, f: NewFamily<'a>) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let keys = &self.0.keys;
            let mut conn = self.0.conn.clone();
            let mut inv = self.0.scripts.start.prepare_invoke();
            inv.key(keys.family(f.sid))
                .key(keys.subject(f.sub))
                .key(&keys.sid)
                .key(&keys.seq)
                .arg(f.jti)
                .arg(f.session_expires_at)
                .arg(f.sub)
                .arg(f.now)
                .arg(f.max_per_subject.min(i64::MAX as usize) as i64)
                .arg(f.sid)
                .arg(&keys.family)
                .arg(f.revoke_evicted_until)
                .arg(&keys.channel);
            let before = generation(&conn);
            let evicted: Vec<String> =
                with_timeout(self.0.timeout, inv.invoke_async(&mut conn)).await?;
            if let Err(e) = replicated(&mut conn, keys, self.0.timeout, before).await {
                shortfall("login", &e);
            }
            for sid in &evicted {
                self.applied(sid, f.revoke_evicted_until);
            }
            Ok(evicted)
        })
    }

    fn rotate<'a>(&'a self, r: RotateRequest<'a>) -> BoxFuture<'a, Result<Rotation, StoreError>> {
        Box::pin(async move {
            let keys = &self.0.keys;
            let mut conn = self.0.conn.clone();
            let mut inv = self.0.scripts.rotate.prepare_invoke();
            inv.key(keys.family(r.sid))
                .key(&keys.sid)
                .key(&keys.seq)
                .arg(r.presented)
                .arg(r.next)
                .arg(r.access_jti)
                .arg(r.now)
                .arg(r.reuse_grace)
                .arg(r.reuse_revokes_until)
                .arg(&keys.channel)
                .arg(r.sid);
            let before = generation(&conn);
            let reply: Vec<String> =
                with_timeout(self.0.timeout, inv.invoke_async(&mut conn)).await?;
            if let Err(e) = replicated(&mut conn, keys, self.0.timeout, before).await {
                shortfall("rotation", &e);
            }
            Ok(match field(&reply, 0)? {
                "rotated" => Rotation::Rotated {
                    session_expires_at: number(&reply, 1)?,
                },
                "already" => Rotation::AlreadyRotated(Committed {
                    session_expires_at: number(&reply, 1)?,
                    next: field(&reply, 2)?.to_owned(),
                    access_jti: field(&reply, 3)?.to_owned(),
                    rotated_at: number(&reply, 4)?,
                }),
                "reused" => {
                    self.applied(r.sid, r.reuse_revokes_until);
                    Rotation::Reused
                }
                "unknown" => Rotation::Unknown,
                other => return Err(unavailable(format!("unexpected rotate reply {other:?}"))),
            })
        })
    }

    fn end<'a>(&'a self, sid: &'a str, revoke_until: i64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.end_one(sid, revoke_until))
    }

    fn end_subject<'a>(
        &'a self,
        sub: &'a str,
        revoke_until: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let mut conn = self.0.conn.clone();
            let sids: Vec<String> = with_timeout(
                self.0.timeout,
                redis::cmd("ZRANGE")
                    .arg(self.0.keys.subject(sub))
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn),
            )
            .await?;
            for sid in &sids {
                self.end_one(sid, revoke_until).await?;
            }
            Ok(sids)
        })
    }
}

//! The cluster revocation store: writes go to Redis (atomic, announced),
//! checks read the node's local view. It never waits on Redis to answer a
//! check.

use std::fmt;
use std::sync::Arc;

use keycard_core::{
    BoxFuture, EntryKind, RevocationEntry, RevocationStore, StoreError, TokenFacts,
};

use crate::{revoke, Shared};

/// The cluster revocation store (see the crate docs).
pub struct RedisRevocationStore(pub(crate) Arc<Shared>);

impl fmt::Debug for RedisRevocationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationStore")
            .field("channel", &self.0.keys.channel)
            .finish()
    }
}

impl RedisRevocationStore {
    fn write(&self, entry: RevocationEntry) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut conn = self.0.conn.clone();
            self.0.view.writing(&entry);
            match revoke(
                &mut conn,
                &self.0.keys,
                self.0.scripts,
                self.0.timeout,
                &entry,
            )
            .await
            {
                // Acknowledged: this node applies it at once, before the echo.
                Ok(()) => self.0.view.written(&entry),
                Err(e) => {
                    self.0.view.abandon(&entry);
                    return Err(e);
                }
            }
            Ok(())
        })
    }
}

impl RevocationStore for RedisRevocationStore {
    fn is_revoked(&self, token: &TokenFacts<'_>) -> Result<bool, StoreError> {
        self.0.view.check(token)
    }

    fn now(&self) -> i64 {
        self.0.view.now()
    }

    fn readiness(&self) -> Result<(), String> {
        if self.0.view.is_current() {
            Ok(())
        } else {
            Err(format!(
                "the Redis revocation view is not current (last proven {:.1}s ago)",
                self.0.view.lag().as_secs_f64()
            ))
        }
    }

    fn revoke_token<'a>(
        &'a self,
        jti: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(RevocationEntry::new(EntryKind::Token, jti, expires_at, 0))
    }

    fn revoke_session<'a>(
        &'a self,
        sid: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(RevocationEntry::new(EntryKind::Session, sid, expires_at, 0))
    }

    fn revoke_subject<'a>(
        &'a self,
        sub: &'a str,
        issued_at_or_before: i64,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.write(RevocationEntry::new(
            EntryKind::Subject,
            sub,
            expires_at,
            issued_at_or_before,
        ))
    }
}

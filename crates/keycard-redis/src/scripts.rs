//! The Lua scripts: each write is one atomic script, so a write counts only
//! once Redis acknowledged all of it. Scripts read the time from Redis
//! itself where they judge expiry. Nothing here talks to the network.

use std::sync::LazyLock;

use redis::Script;

/// Every announcement carries a sequence number from `rev:seq`, so a node
/// notices a lost one (a gap, or a heartbeat naming a number it has not
/// seen) and resyncs.
///
/// Add or widen a denylist entry, prune entries past `exp` + grace, and
/// announce it.
/// KEYS: zset of the kind, subject cut-off hash, sequence.
/// ARGV: kind, id, exp, cutoff, channel, grace seconds.
const REVOKE: &str = r"
local t = redis.call('TIME')
local horizon = tonumber(t[1]) - tonumber(ARGV[6])
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[2])
if ARGV[1] == 'sub' then
  local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. horizon)
  for _, m in ipairs(old) do redis.call('HDEL', KEYS[2], m) end
  local cur = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '-9e18')
  if tonumber(ARGV[4]) > cur then redis.call('HSET', KEYS[2], ARGV[2], ARGV[4]) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. horizon)
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[5], seq .. ' ' .. ARGV[1] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[2])
return 1
";

/// Start a family and index it under its subject. The subject's oldest
/// families beyond the cap end in the same step: deleted, unindexed, and
/// their sessions revoked (announced); their sids are returned. The index
/// is scored by start time in microseconds (Redis time), so "oldest" is
/// well defined within a second; entries older than one session lifetime
/// are pruned. Family keys of evicted sessions are derived from the family
/// prefix (same key prefix, so the same hash tag when one is used).
/// KEYS: family hash, subject index (zset sid -> start time), sid
/// revocation zset, sequence.
/// ARGV: first jti, session end, sub, now, cap, sid, family prefix,
/// revoke-until, channel.
const START: &str = r"
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl_us = (tonumber(ARGV[2]) - tonumber(ARGV[4])) * 1000000
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'cur', ARGV[1], 'exp', ARGV[2], 'sub', ARGV[3], 'st', 'live')
redis.call('EXPIREAT', KEYS[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now_us - ttl_us))
redis.call('ZREM', KEYS[2], ARGV[6])
local over = redis.call('ZCARD', KEYS[2]) + 1 - tonumber(ARGV[5])
local evicted = {}
if over > 0 then
  evicted = redis.call('ZRANGE', KEYS[2], 0, over - 1)
  for _, s in ipairs(evicted) do
    redis.call('ZREM', KEYS[2], s)
    redis.call('DEL', ARGV[7] .. s)
    redis.call('ZADD', KEYS[3], 'GT', ARGV[8], s)
    local seq = redis.call('INCR', KEYS[4])
    redis.call('PUBLISH', ARGV[9], seq .. ' sid ' .. ARGV[8] .. ' 0 ' .. s)
  end
end
redis.call('ZADD', KEYS[2], now_us, ARGV[6])
redis.call('EXPIREAT', KEYS[2], ARGV[2], 'GT')
if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIREAT', KEYS[2], ARGV[2]) end
return evicted
";

/// Rotate a family. Replies `{'rotated', exp}`, `{'already', exp, next,
/// access_jti, rotated_at}`, `{'reused'}` or `{'unknown'}`. On reuse the
/// family is marked and the session's tokens are revoked in the same step.
/// KEYS: family hash, sid revocation zset, sequence.
/// ARGV: presented, next, access jti, now, grace, revoke-until, channel, sid.
const ROTATE: &str = r"
local h = redis.call('HMGET', KEYS[1], 'cur', 'exp', 'st', 'prev', 'nxt', 'nat', 'rat')
if not h[1] then return {'unknown'} end
if h[3] == 'reuse' then return {'reused'} end
local now = tonumber(ARGV[4])
if tonumber(h[2]) < now then return {'unknown'} end
if h[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'prev', ARGV[1], 'nxt', ARGV[2], 'nat', ARGV[3], 'rat', ARGV[4])
  return {'rotated', h[2]}
end
if h[4] == ARGV[1] and h[1] == h[5] then
  local grace = tonumber(ARGV[5])
  if h[5] == ARGV[2] or (grace > 0 and now - tonumber(h[7]) <= grace) then
    return {'already', h[2], h[5], h[6], h[7]}
  end
end
redis.call('HSET', KEYS[1], 'st', 'reuse')
redis.call('ZADD', KEYS[2], 'GT', ARGV[6], ARGV[8])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[7], seq .. ' sid ' .. ARGV[6] .. ' 0 ' .. ARGV[8])
return {'reused'}
";

/// End a family: unindex it from its subject, delete it, and revoke the
/// session's tokens, in one step. The subject index key is derived from
/// the family's own `sub` field (same key prefix, so the same hash tag when
/// one is used).
/// KEYS: family hash, sid revocation zset, sequence.
/// ARGV: sid, subject index prefix, revoke-until, channel.
const END: &str = r"
local sub = redis.call('HGET', KEYS[1], 'sub')
if sub then redis.call('ZREM', ARGV[2] .. sub, ARGV[1]) end
redis.call('DEL', KEYS[1])
redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], seq .. ' sid ' .. ARGV[3] .. ' 0 ' .. ARGV[1])
return 1
";

/// A heartbeat on a node's own channel, carrying the sequence number of
/// the last announcement: the node is current when it has seen that one.
/// KEYS: sequence. ARGV: the node's heartbeat channel, heartbeat number.
const HEARTBEAT: &str = r"
local s = redis.call('GET', KEYS[1]) or '0'
redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. s)
return s
";

/// Everything the local view needs, read in one atomic step: the live
/// entries of each kind (with their `exp`), the subject cut-offs and the
/// number of the last announcement they include.
/// KEYS: jti zset, sid zset, sub zset, subject cut-off hash, sequence.
/// ARGV: horizon (entries with `exp` below it are no longer needed).
const SNAPSHOT: &str = r"
local out = {}
for i = 1, 3 do
  out[i] = redis.call('ZRANGEBYSCORE', KEYS[i], ARGV[1], '+inf', 'WITHSCORES')
end
out[4] = redis.call('HGETALL', KEYS[4])
out[5] = redis.call('GET', KEYS[5]) or '0'
return out
";

/// The clock of the server that holds the keys (in a cluster, the shard
/// that owns keycard's slot, whose clock the scripts read too).
/// KEYS: sequence.
const CLOCK: &str = r"
return redis.call('TIME')
";

/// The scripts for one deployment: announcements go out with `PUBLISH` on
/// one server and with sharded `SPUBLISH` in a cluster (the channel shares
/// the keys' hash slot, so the script's slot check passes).
pub(crate) struct Scripts {
    pub(crate) revoke: Script,
    pub(crate) start: Script,
    pub(crate) rotate: Script,
    pub(crate) end: Script,
    pub(crate) heartbeat: Script,
    pub(crate) snapshot: Script,
    pub(crate) clock: Script,
}

impl Scripts {
    fn new(publish: &str) -> Self {
        let with = |src: &str| Script::new(&src.replace("'PUBLISH'", publish));
        Self {
            revoke: with(REVOKE),
            start: with(START),
            rotate: with(ROTATE),
            end: with(END),
            heartbeat: with(HEARTBEAT),
            snapshot: Script::new(SNAPSHOT),
            clock: Script::new(CLOCK),
        }
    }
}

// Hashed once; invoked by EVALSHA with a fallback to EVAL.
static SINGLE: LazyLock<Scripts> = LazyLock::new(|| Scripts::new("'PUBLISH'"));
static SHARDED: LazyLock<Scripts> = LazyLock::new(|| Scripts::new("'SPUBLISH'"));

/// The scripts for one server, or for a cluster.
pub(crate) fn scripts(cluster: bool) -> &'static Scripts {
    if cluster {
        &SHARDED
    } else {
        &SINGLE
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_scripts_publish_sharded_and_only_there() {
        for (src, publishes) in [
            (super::REVOKE, true),
            (super::START, true),
            (super::ROTATE, true),
            (super::END, true),
            (super::HEARTBEAT, true),
            (super::SNAPSHOT, false),
        ] {
            assert_eq!(src.contains("'PUBLISH'"), publishes, "{src}");
            let sharded = src.replace("'PUBLISH'", "'SPUBLISH'");
            assert!(!sharded.contains("'PUBLISH'"));
        }
    }
}

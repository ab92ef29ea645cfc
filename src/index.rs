//! An index that never leaks: a sorted set of keys scored by their expiry (sessions of a user,
//! cache entries of a tag, a semaphore's permits), pruned as it is touched and expiring with its
//! last member. Each change replicates as the command that makes it, and only when it changed
//! something, as Redis does.

use crate::ffi::{Ctx, Key, Notify, OwnedString, Put, ScoreRange, Str};

/// Drops the index's members that expired by `now` (scored `now` or lower: an expiry is the
/// first millisecond a member is dead), replicated as `ZREMRANGEBYSCORE` when there were any.
/// What is left scores above `now`, so the index's new expiry is in the future (a PEXPIREAT at
/// `now` would delete it).
fn prune(ctx: Ctx, index: &mut Key, now: i64) {
    let expired = index.zset_members(ScoreRange::through(now));
    if index.zset_remove(&expired) > 0 {
        ctx.replicate(c"ZREMRANGEBYSCORE", (index.name(), c"-inf", now));
        index.modified(&[(Notify::ZSET, c"zremrangebyscore")]);
    }
}

/// The index expires with its last member: its TTL is its highest score.
fn fix_index_ttl(ctx: Ctx, index: &mut Key) {
    let Some(top) = index.zset_top_score() else {
        return;
    };
    let at = top as i64;
    if index.expire_at_ms() != Some(at) {
        index.set_expire_at(at);
        ctx.replicate(c"PEXPIREAT", (index.name(), at));
        index.modified(&[(Notify::GENERIC, c"expire")]);
    }
}

/// One update of an index, in the order the Lua twin runs it: prune the expired members,
/// remove `remove`, add `add` (score, member), then fix the index's TTL. Returns whether `add`
/// was a new member.
pub fn update_index(
    ctx: Ctx,
    index: &[u8],
    now: i64,
    remove: Option<&[u8]>,
    add: Option<(i64, &[u8])>,
) -> bool {
    let name = OwnedString::new(ctx, index);
    let remove = remove.map(|m| OwnedString::new(ctx, m));
    let add = add.map(|(score, m)| (score, OwnedString::new(ctx, m)));
    let mut key = Key::open_named(ctx, &name);
    let remove = remove.as_ref().map(OwnedString::as_str);
    let add = add.as_ref().map(|(score, m)| (*score, m.as_str()));
    update_open_index(ctx, &mut key, now, remove, add)
}

/// [`update_index`] on an index already open, with members the caller holds as strings.
pub fn update_open_index(
    ctx: Ctx,
    index: &mut Key,
    now: i64,
    remove: Option<Str>,
    add: Option<(i64, Str)>,
) -> bool {
    prune(ctx, index, now);
    if let Some(member) = remove {
        if index.zset_remove_one(member) {
            ctx.replicate(c"ZREM", (index.name(), member));
            index.modified(&[(Notify::ZSET, c"zrem")]);
        }
    }
    let mut added = false;
    if let Some((score, member)) = add {
        let outcome = index.zset_put(score as f64, member);
        added = outcome == Put::Added;
        if outcome != Put::Unchanged {
            ctx.replicate(c"ZADD", (index.name(), score, member));
            index.modified(&[(Notify::ZSET, c"zadd")]);
        }
    }
    fix_index_ttl(ctx, index);
    added
}

/// The index's members alive at `now` (scored above it), counted without pruning: a read, so
/// it runs on replicas and under read-only ACL users. Through the key API (no command lookup):
/// its length less the expired members still listed, O(log N + M).
pub fn live_count(ctx: Ctx, index: &[u8], now: i64) -> i64 {
    let name = OwnedString::new(ctx, index);
    let index = Key::open_named(ctx, &name);
    index.len() - index.zset_count(ScoreRange::through(now))
}

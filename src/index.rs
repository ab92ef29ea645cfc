//! An index that never leaks: a sorted set of keys scored by their expiry (sessions of a user,
//! cache entries of a tag, a semaphore's permits), pruned as it is touched and expiring with its
//! last member. Each change replicates as the command that makes it, and only when it changed
//! something, as Redis does.

use crate::ffi::{Ctx, Key, Notify, OwnedString, ScoreRange};

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
    let mut added = false;
    let name = OwnedString::new(ctx, index);
    let mut index = Key::open_named(ctx, &name);
    prune(ctx, &mut index, now);
    if let Some(member) = remove {
        let member = [OwnedString::new(ctx, member)];
        if index.zset_remove(&member) > 0 {
            ctx.replicate(c"ZREM", (name.as_str(), member[0].as_str()));
            index.modified(&[(Notify::ZSET, c"zrem")]);
        }
    }
    if let Some((score, member)) = add {
        let member = OwnedString::new(ctx, member);
        added = index.zset_score(member.as_str()).is_none();
        if index.zset_add(score as f64, member.as_str()) {
            ctx.replicate(c"ZADD", (name.as_str(), score, member.as_str()));
            index.modified(&[(Notify::ZSET, c"zadd")]);
        }
    }
    fix_index_ttl(ctx, &mut index);
    added
}

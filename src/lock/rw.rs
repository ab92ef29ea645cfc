//! Binds read/write locks (`patterns_core::lock::rw`): read holds in the key's sorted set (a
//! semaphore's layout, pruned as it is touched), the write hold in `{key}:writer` (a lock's
//! hash, its token from its counter `{key}:writer:fence`). Both modes wait in one FIFO queue per key
//! (`Kind::Rw`), so nobody, reader or writer, overtakes a waiter.
//!
//! Writes replicate as a lock's and a semaphore's do: `ZREMRANGEBYSCORE`, `ZADD`, `ZREM` and
//! `PEXPIREAT` for read holds; `SET` of the counter, `HSET` and `PEXPIREAT` (or `DEL`) for the
//! write hold. Each command checks every key's type before its first write.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::lock::rw::{
    self, parse_mode, rw_acquire, rw_fence_key, writer_key, Holds, Mode, RwAcquire,
};
use patterns_core::lock::{self as l, Release, OWNER_FIELD, TOKEN_FIELD};

use super::wait::{self, Kind, Wanted};
use super::{grant_or_wait, read_lease, replicate_pexpireat, wanted, write_grant, Stored, HOLDS};
use crate::ffi::{
    check_key_access, now_ms, Call, Ctx, Key, KeyType, Notify, OwnedString, Reply, ScoreRange,
    Value,
};
use crate::index::{live_count, update_index};
use crate::stats::{self, Stat};
use crate::text::StackText;

/// The write hold's key, after checking the name and the current user's access to it.
fn checked_writer(ctx: Ctx, name: &[u8]) -> Result<Vec<u8>, CmdError> {
    let writer = writer_key(name)?;
    check_key_access(ctx, &writer)?;
    Ok(writer)
}

/// The write hold (None when there is none), once the read holds' key's type is checked.
fn open_holds(ctx: Ctx, name: &[u8], writer: &OwnedString) -> Result<Option<Stored>, CmdError> {
    let key_name = OwnedString::new(ctx, name);
    Key::open_named(ctx, &key_name).expect(KeyType::ZSet)?;
    read_lease(&Key::open_named(ctx, writer))
}

/// The owner's live read hold's end, if any (expired ones not counted, nothing pruned).
fn read_hold(key: &Key, ctx: Ctx, owner: &[u8], now: i64) -> Option<i64> {
    let owner = OwnedString::new(ctx, owner);
    let end = key.zset_score(owner.as_str())? as i64;
    (end > now).then_some(end)
}

/// Grants what `wanted` asks for on `name` now, if it can: the reply (the write token, or 1);
/// None when another hold, or a waiter (`waiters`), is in the way. Prunes expired read holds
/// after deciding (so an error writes nothing), as the twin does.
pub fn try_rw(
    ctx: Ctx,
    name: &[u8],
    wanted: &Wanted,
    waiters: bool,
) -> Result<Option<Value>, CmdError> {
    let mode = wanted.mode.unwrap_or(Mode::Write);
    let now = now_ms();
    let key_name = OwnedString::new(ctx, name);
    let writer_name = OwnedString::new(ctx, &writer_key(name)?);
    let fence_name = OwnedString::new(ctx, &rw_fence_key(name)?);
    let stored = open_holds(ctx, name, &writer_name)?;
    let mut fence_key = Key::open_named(ctx, &fence_name);
    let fence = l::parse_fence(fence_key.string()?)?;
    let holds = {
        let readers = Key::open_named(ctx, &key_name);
        Holds {
            writer: stored.as_ref().map(Stored::lease),
            readers: readers.len() - readers.zset_count(ScoreRange::through(now)),
            reads: read_hold(&readers, ctx, &wanted.owner, now).is_some(),
        }
    };
    let decided = rw_acquire(
        holds,
        fence,
        mode,
        &wanted.owner,
        wanted.ttl_ms,
        now,
        waiters,
    )?;
    update_index(ctx, name, now, None, None);
    let granted = match decided {
        RwAcquire::Busy => None,
        RwAcquire::Write(granted) => {
            let mut writer = Key::open_named(ctx, &writer_name);
            write_grant(ctx, &mut writer, &mut fence_key, granted)
        }
        RwAcquire::Read { expire_at_ms } => {
            update_index(ctx, name, now, None, Some((expire_at_ms, &wanted.owner)));
            Some(1)
        }
    };
    if granted.is_some() {
        stats::bump(Stat::RwGrants);
    }
    Ok(granted.map(Value::Int))
}

/// When a hold on `name` next ends by itself: the write lease or the first read lease.
pub fn next_end(ctx: Ctx, name: &[u8]) -> Option<i64> {
    let key_name = OwnedString::new(ctx, name);
    let readers = Key::open_named(ctx, &key_name);
    let first_read = match readers.kind() {
        KeyType::ZSet => readers
            .zset_nth_score(ScoreRange::all(), 0)
            .map(|s| s as i64),
        _ => None,
    };
    let writer_name = OwnedString::new(ctx, &writer_key(name).ok()?);
    let writer = Key::open_named(ctx, &writer_name);
    let write_end = match writer.kind() {
        KeyType::Hash => writer.expire_at_ms(),
        _ => None,
    };
    first_read.into_iter().chain(write_end).min()
}

// RWLOCK.ACQUIRE key owner ttl_ms mode [WAIT timeout_ms]
pub fn acquire(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&rw::RW_ACQUIRE)?;
    // The ttl is checked before the mode, as the twin checks them.
    let mut wanted = wanted(&p, 1)?;
    wanted.mode = Some(parse_mode(p.text("mode"))?);
    let (ctx, name) = (call.ctx(), call.key_name());
    checked_writer(ctx, name)?;
    check_key_access(ctx, &rw_fence_key(name)?)?;
    grant_or_wait(ctx, Kind::Rw, name, wanted, p.int("WAIT"), Reply::Null)
}

/// The write hold's key (checked) and the hold.
fn holds_of(ctx: Ctx, name: &[u8]) -> Result<(OwnedString, Option<Stored>), CmdError> {
    let writer_name = OwnedString::new(ctx, &checked_writer(ctx, name)?);
    let stored = open_holds(ctx, name, &writer_name)?;
    Ok((writer_name, stored))
}

// RWLOCK.RELEASE key owner
pub fn release(call: &Call) -> Result<Reply, CmdError> {
    let owner = call.parse(&rw::RW_RELEASE)?.text("owner");
    let (ctx, name) = (call.ctx(), call.key_name());
    let (writer_name, stored) = holds_of(ctx, name)?;
    let released = match l::release(stored.as_ref().map(Stored::lease), owner) {
        Release::Kept(lease) => {
            let mut writer = Key::open_named(ctx, &writer_name);
            writer.hash_set(&HOLDS, StackText::int(lease.holds).as_bytes());
            writer.modified(&[(Notify::HASH, c"hset")]);
            ctx.replicate(c"HSET", (writer.name(), &HOLDS, lease.holds));
            true
        }
        Release::Freed => {
            let mut writer = Key::open_named(ctx, &writer_name);
            writer.delete();
            writer.modified(&[(Notify::GENERIC, c"del")]);
            ctx.replicate(c"DEL", (writer.name(),));
            true
        }
        Release::NotHeld => release_read(ctx, name, owner),
    };
    if !released {
        return Ok(Reply::Integer(0));
    }
    stats::bump(Stat::RwReleases);
    wait::serve(ctx, Kind::Rw, name);
    Ok(Reply::Integer(1))
}

/// Drops the owner's live read hold (expired ones pruned first): whether it had one.
fn release_read(ctx: Ctx, name: &[u8], owner: &[u8]) -> bool {
    let now = now_ms();
    update_index(ctx, name, now, None, None);
    let key_name = OwnedString::new(ctx, name);
    if read_hold(&Key::open_named(ctx, &key_name), ctx, owner, now).is_none() {
        return false;
    }
    update_index(ctx, name, now, Some(owner), None);
    true
}

// RWLOCK.EXTEND key owner ttl_ms
pub fn extend(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&rw::RW_EXTEND)?;
    let (owner, ttl_ms) = (p.text("owner"), l::check_ttl(p.int("ttl_ms"))?);
    let (ctx, name) = (call.ctx(), call.key_name());
    let (writer_name, stored) = holds_of(ctx, name)?;
    let now = now_ms();
    let held = stored.as_ref().map(Stored::lease);
    let extended = if let Some(at) = l::extend(held.as_ref(), owner, ttl_ms, now) {
        let mut writer = Key::open_named(ctx, &writer_name);
        writer.set_expire_at(at);
        writer.modified(&[(Notify::GENERIC, c"expire")]);
        replicate_pexpireat(ctx, &writer, at);
        true
    } else {
        update_index(ctx, name, now, None, None);
        let key_name = OwnedString::new(ctx, name);
        let reads = read_hold(&Key::open_named(ctx, &key_name), ctx, owner, now).is_some();
        if reads {
            update_index(ctx, name, now, None, Some((now + ttl_ms, owner)));
        }
        reads
    };
    if extended {
        // The waiters' timer follows the lease's new end.
        wait::serve(ctx, Kind::Rw, name);
    }
    Ok(Reply::Integer(extended as i64))
}

// RWLOCK.INFO key
pub fn info(call: &Call) -> Result<Reply, CmdError> {
    call.parse(&rw::RW_INFO)?;
    let (ctx, name) = (call.ctx(), call.key_name());
    let (writer_name, stored) = holds_of(ctx, name)?;
    let now = now_ms();
    let readers = live_count(ctx, name, now);
    let field = |name: &str| Value::Bulk(name.as_bytes().to_vec());
    let (mode, owner, token, end) = match &stored {
        Some(w) => {
            let end = Key::open_named(ctx, &writer_name).expire_at_ms();
            let owner = Value::Bulk(w.owner.bytes().to_vec());
            ("write", owner, Value::Int(w.token), end)
        }
        None if readers > 0 => {
            let key_name = OwnedString::new(ctx, name);
            let end = Key::open_named(ctx, &key_name).zset_top_score();
            ("read", Value::Null, Value::Null, end.map(|s| s as i64))
        }
        None => return Ok(Reply::Null),
    };
    let ttl = end.map_or(-1, |at| (at - now).max(0));
    let waiters = wait::count(ctx, Kind::Rw, name) as i64;
    Ok(Reply::Value(Value::Map(vec![
        (field("mode"), field(mode)),
        (field(OWNER_FIELD), owner),
        (field(TOKEN_FIELD), token),
        (field("readers"), Value::Int(readers)),
        (field("ttl"), Value::Int(ttl)),
        (field("waiters"), Value::Int(waiters)),
    ])))
}

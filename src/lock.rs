//! Binds the lock family (`patterns_core::lock`) to Redis: locks with fencing tokens, the
//! storage-side fencing check, and semaphores. Clients that wait (`WAIT timeout_ms`) are
//! blocked on the server and queued in `wait`.
//!
//! Every write goes through the key API (the rarer `LOCK.FENCEDHSET` through
//! `RedisModule_Call`) and replicates as the Redis command that makes it, with absolute times:
//! `SET` of the fencing counter, `HSET` and `PEXPIREAT` of the lease, `DEL`, and for semaphores
//! `ZREMRANGEBYSCORE`, `ZADD`, `ZREM` and `PEXPIREAT`. A grant to a waiter is written and
//! replicated by the context that makes it: the release, the timer at the lease's end, or the
//! next command on the key. Each command validates everything before its first write.

#![deny(unsafe_code)]

mod events;
mod rw;
mod wait;

use patterns_core::command::{Args, CmdError};
use patterns_core::keys::check_fields;
use patterns_core::lock::{
    self as l, Acquire, Lease, Release, HOLDS_FIELD, NO_WAIT, OWNER_FIELD, RESOURCE_FENCE_FIELD,
    TOKEN_FIELD,
};

use crate::command;
use crate::ffi::{
    check_key_access, key_type, now_ms, redis_call, Call, Command, Ctx, Key, KeyType, Notify,
    OwnedString, Reply, ScoreRange, Token, Value,
};
use crate::index::{live_count, update_index};
use crate::stats::{self, Stat};
use crate::text::StackText;
pub use wait::{waiting, HOOKS};
use wait::{Kind, Wanted};

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(l::ACQUIRE, acquire),
    command!(l::RELEASE, release),
    command!(l::EXTEND, extend),
    command!(l::INFO, info),
    command!(l::FENCEDHSET, fencedhset),
    command!(l::SEM_ACQUIRE, sem_acquire),
    command!(l::SEM_RELEASE, sem_release),
    command!(l::SEM_COUNT, sem_count),
    command!(l::rw::RW_ACQUIRE, rw::acquire),
    command!(l::rw::RW_RELEASE, rw::release),
    command!(l::rw::RW_EXTEND, rw::extend),
    command!(l::rw::RW_INFO, rw::info),
];

/// The lease's field names (core's), kept as strings made once: the hash API reads them as C
/// strings and a replicated `HSET` takes them by reference, instead of making and freeing a
/// string per field on every write.
static OWNER: Token = Token::named(c"owner", OWNER_FIELD);
static TOKEN: Token = Token::named(c"token", TOKEN_FIELD);
pub(crate) static HOLDS: Token = Token::named(c"holds", HOLDS_FIELD);

/// A lock's hash, as read.
struct Stored {
    owner: OwnedString,
    token: i64,
    holds: i64,
}

impl Stored {
    fn lease(&self) -> Lease<'_> {
        Lease {
            owner: self.owner.bytes(),
            token: self.token,
            holds: self.holds,
        }
    }
}

/// The lease held on `key`: None when the lock is free; WRONGTYPE unless a hash; BadState
/// unless a lock's hash.
fn read_lease(key: &Key) -> Result<Option<Stored>, CmdError> {
    match key.kind() {
        KeyType::Empty => return Ok(None),
        KeyType::Hash => {}
        _ => return Err(CmdError::WrongType),
    }
    let owner = key.hash_field(&OWNER);
    let token = key.hash_field(&TOKEN);
    let holds = key.hash_field(&HOLDS);
    fn text(s: &Option<OwnedString>) -> Option<&[u8]> {
        s.as_ref().map(OwnedString::bytes)
    }
    let lease = Lease::parse(text(&owner), text(&token), text(&holds))?;
    let (token, holds) = (lease.token, lease.holds);
    Ok(owner.map(|owner| Stored {
        owner,
        token,
        holds,
    }))
}

/// Writes the lease (`HSET key owner o token t holds h`) and its end (`PEXPIREAT`).
fn write_lease(ctx: Ctx, key: &mut Key, lease: &Lease, expire_at_ms: i64) {
    key.hash_set(&OWNER, lease.owner);
    key.hash_set(&TOKEN, StackText::int(lease.token).as_bytes());
    key.hash_set(&HOLDS, StackText::int(lease.holds).as_bytes());
    key.set_expire_at(expire_at_ms);
    key.modified(&[(Notify::HASH, c"hset"), (Notify::GENERIC, c"expire")]);
    let hset = (
        key.name(),
        &OWNER,
        lease.owner,
        &TOKEN,
        lease.token,
        &HOLDS,
        lease.holds,
    );
    ctx.replicate(c"HSET", hset);
    replicate_pexpireat(ctx, key, expire_at_ms);
}

fn replicate_pexpireat(ctx: Ctx, key: &Key, at_ms: i64) {
    ctx.replicate(c"PEXPIREAT", (key.name(), at_ms));
}

/// The fencing counter's key, after checking the name and the current user's access to it.
fn checked_fence_key(ctx: Ctx, name: &[u8]) -> Result<Vec<u8>, CmdError> {
    let fence = l::fence_key(name)?;
    check_key_access(ctx, &fence)?;
    Ok(fence)
}

/// Acquires lock `name` for the owner now: the token when granted, None when another owner
/// holds it. The caller has checked the user's access to the fencing counter.
fn try_lock(ctx: Ctx, name: &[u8], wanted: &Wanted) -> Result<Option<i64>, CmdError> {
    let name = OwnedString::new(ctx, name);
    let mut key = Key::open_named(ctx, &name);
    let stored = read_lease(&key)?;
    let fence_name = OwnedString::new(ctx, &l::fence_key(name.bytes())?);
    let mut fence_key = Key::open_named(ctx, &fence_name);
    let fence = l::parse_fence(fence_key.string()?)?;
    let now = now_ms();
    let held = stored.as_ref().map(Stored::lease);
    let granted = l::acquire(held, fence, &wanted.owner, wanted.ttl_ms, now)?;
    Ok(write_grant(ctx, &mut key, &mut fence_key, granted))
}

/// Writes a lock's grant (a new owner's token to the counter, then the lease): its token; None
/// when busy.
fn write_grant(ctx: Ctx, key: &mut Key, fence_key: &mut Key, granted: Acquire) -> Option<i64> {
    let Acquire::Granted {
        lease,
        expire_at_ms,
        fence,
    } = granted
    else {
        return None;
    };
    if let Some(token) = fence {
        let text = StackText::of(token);
        fence_key.write_string(text.as_bytes());
        fence_key.modified(&[(Notify::STRING, c"set")]);
        ctx.replicate(c"SET", (fence_key.name(), token));
    }
    write_lease(ctx, key, &lease, expire_at_ms);
    events::watch(ctx);
    Some(lease.token)
}

/// Grants semaphore `name`'s permit to the owner now, when one is free or the owner has one
/// (which is refreshed). Prunes expired permits first, as the Lua twin does.
fn try_permit(ctx: Ctx, name: &[u8], wanted: &Wanted) -> Result<bool, CmdError> {
    let now = now_ms();
    let key_name = OwnedString::new(ctx, name);
    Key::open_named(ctx, &key_name).expect(KeyType::ZSet)?;
    update_index(ctx, name, now, None, None);
    let (live, holds_one) = {
        let key = Key::open_named(ctx, &key_name);
        let owner = OwnedString::new(ctx, &wanted.owner);
        (key.len(), key.zset_score(owner.as_str()).is_some())
    };
    if !l::permit_granted(live, holds_one, wanted.limit) {
        return Ok(false);
    }
    update_index(
        ctx,
        name,
        now,
        None,
        Some((now + wanted.ttl_ms, &wanted.owner)),
    );
    Ok(true)
}

/// Grants what a waiter waits for, if it can be had now (for `wait`): the reply, the lock's
/// token, a permit's 1, or a read/write lock's reply.
fn try_grant(
    ctx: Ctx,
    kind: Kind,
    name: &[u8],
    wanted: &Wanted,
    behind_waiters: bool,
) -> Result<Option<Value>, CmdError> {
    let (granted, grants) = match kind {
        Kind::Lock => (
            try_lock(ctx, name, wanted)?.map(Value::Int),
            Stat::LockGrants,
        ),
        Kind::Sem => (
            try_permit(ctx, name, wanted)?.then_some(Value::Int(1)),
            Stat::SemGrants,
        ),
        // (It counts its own grants.)
        Kind::Rw => return rw::try_rw(ctx, name, wanted, behind_waiters),
    };
    if granted.is_some() {
        stats::bump(grants);
    }
    Ok(granted)
}

/// When what blocks the key's waiters ends: the lease's end, the first permit's expiry, or a
/// read/write lock's first hold's end.
fn deadline(ctx: Ctx, kind: Kind, name: &[u8]) -> Option<i64> {
    let name = OwnedString::new(ctx, name);
    let key = Key::open_named(ctx, &name);
    match (kind, key.kind()) {
        (Kind::Lock, KeyType::Hash) => key.expire_at_ms(),
        (Kind::Sem, KeyType::ZSet) => key.zset_nth_score(ScoreRange::all(), 0).map(|s| s as i64),
        (Kind::Rw, _) => rw::next_end(ctx, name.bytes()),
        _ => None,
    }
}

/// Replies now when granted; else blocks the client when it asked to wait and may be blocked
/// (not inside MULTI or a script, and the server agrees to block it), or replies `denied`.
fn grant_or_wait(
    ctx: Ctx,
    kind: Kind,
    name: &[u8],
    wanted: Wanted,
    timeout_ms: i64,
    denied: Reply,
) -> Result<Reply, CmdError> {
    wait::serve(ctx, kind, name);
    // A read/write lock may be free for this call with waiters queued (a reader behind a
    // writer): they come first. (A lock or a semaphore with waiters left is busy anyway.)
    let behind = kind == Kind::Rw && wait::count(ctx, kind, name) > 0;
    if let Some(granted) = try_grant(ctx, kind, name, &wanted, behind)? {
        // The waiters' timer follows the new lease's end.
        wait::serve(ctx, kind, name);
        return Ok(Reply::Value(granted));
    }
    if timeout_ms != NO_WAIT && ctx.can_block() && wait::block(ctx, kind, name, wanted, timeout_ms)
    {
        return Ok(Reply::Blocked);
    }
    Ok(denied)
}

/// What an acquire asks for: its owner and checked `ttl_ms`, and `limit` permits (a read/write
/// lock sets its `mode` after). Inlined, so the reads by name resolve at compile time.
#[inline(always)]
fn wanted(p: &Args, limit: i64) -> Result<Wanted, CmdError> {
    Ok(Wanted {
        owner: p.text("owner").to_vec(),
        ttl_ms: l::check_ttl(p.int("ttl_ms"))?,
        limit,
        mode: None,
    })
}

// LOCK.ACQUIRE key owner ttl_ms [WAIT timeout_ms]
fn acquire(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::ACQUIRE)?;
    let wanted = wanted(&p, 1)?;
    let name = call.key_name();
    checked_fence_key(call.ctx(), name)?;
    // A key no lock can be taken on fails the waiters (if any) and this call alike: serving
    // them first writes nothing before this call's error.
    grant_or_wait(
        call.ctx(),
        Kind::Lock,
        name,
        wanted,
        p.int("WAIT"),
        Reply::Null,
    )
}

// LOCK.RELEASE key owner
fn release(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::RELEASE)?;
    let owner = p.text("owner");
    let ctx = call.ctx();
    {
        let mut key = Key::open(call);
        let stored = read_lease(&key)?;
        match l::release(stored.as_ref().map(Stored::lease), owner) {
            Release::NotHeld => return Ok(Reply::Integer(0)),
            Release::Kept(lease) => {
                stats::bump(Stat::LockReleases);
                let holds = StackText::int(lease.holds);
                key.hash_set(&HOLDS, holds.as_bytes());
                key.modified(&[(Notify::HASH, c"hset")]);
                let hset = (key.name(), &HOLDS, lease.holds);
                ctx.replicate(c"HSET", hset);
                return Ok(Reply::Integer(1));
            }
            Release::Freed => {
                stats::bump(Stat::LockReleases);
                key.delete();
                key.modified(&[(Notify::GENERIC, c"del")]);
                ctx.replicate(c"DEL", (key.name(),));
            }
        }
    }
    wait::serve(ctx, Kind::Lock, call.key_name());
    Ok(Reply::Integer(1))
}

// LOCK.EXTEND key owner ttl_ms
fn extend(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::EXTEND)?;
    let (owner, ttl_ms) = (p.text("owner"), l::check_ttl(p.int("ttl_ms"))?);
    {
        let mut key = Key::open(call);
        let stored = read_lease(&key)?;
        let held = stored.as_ref().map(Stored::lease);
        let Some(at) = l::extend(held.as_ref(), owner, ttl_ms, now_ms()) else {
            return Ok(Reply::Integer(0));
        };
        key.set_expire_at(at);
        key.modified(&[(Notify::GENERIC, c"expire")]);
        replicate_pexpireat(call.ctx(), &key, at);
    }
    // The waiters' timer follows the lease's new end.
    wait::serve(call.ctx(), Kind::Lock, call.key_name());
    Ok(Reply::Integer(1))
}

// LOCK.INFO key
fn info(call: &Call) -> Result<Reply, CmdError> {
    call.parse(&l::INFO)?;
    let key = Key::open(call);
    let Some(stored) = read_lease(&key)? else {
        return Ok(Reply::Null);
    };
    let ttl = key.expire_at_ms().map_or(-1, |at| (at - now_ms()).max(0));
    let waiters = wait::count(call.ctx(), Kind::Lock, call.key_name()) as i64;
    let field = |name: &str| Value::Bulk(name.as_bytes().to_vec());
    Ok(Reply::Value(Value::Map(vec![
        (
            field(OWNER_FIELD),
            Value::Bulk(stored.owner.bytes().to_vec()),
        ),
        (field(TOKEN_FIELD), Value::Int(stored.token)),
        (field("ttl"), Value::Int(ttl)),
        (field(HOLDS_FIELD), Value::Int(stored.holds)),
        (field("waiters"), Value::Int(waiters)),
    ])))
}

// LOCK.FENCEDHSET resource token field value [field value ...]
fn fencedhset(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::FENCEDHSET)?;
    let token = p.int("token");
    let pairs = p.trailing();
    check_fields(pairs)?;
    {
        let key = Key::open(call);
        key.expect(KeyType::Hash)?;
        let newest = key.hash_field(RESOURCE_FENCE_FIELD);
        let newest = l::parse_resource_fence(newest.as_ref().map(OwnedString::bytes))?;
        if !l::fence_admits(newest, token) {
            return Ok(Reply::Integer(0));
        }
    }
    let token = StackText::of(token);
    let mut hset: Vec<&[u8]> = vec![
        call.key_name(),
        RESOURCE_FENCE_FIELD.as_bytes(),
        token.as_bytes(),
    ];
    hset.extend_from_slice(pairs);
    redis_call(call.ctx(), c"HSET", &hset, true);
    Ok(Reply::Integer(1))
}

// SEM.ACQUIRE key owner limit ttl_ms [WAIT timeout_ms]
fn sem_acquire(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::SEM_ACQUIRE)?;
    let wanted = wanted(&p, p.int("limit"))?;
    Key::open(call).expect(KeyType::ZSet)?;
    let name = call.key_name();
    grant_or_wait(
        call.ctx(),
        Kind::Sem,
        name,
        wanted,
        p.int("WAIT"),
        Reply::Integer(0),
    )
}

// SEM.RELEASE key owner
fn sem_release(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&l::SEM_RELEASE)?;
    let owner = p.text("owner");
    let (ctx, name) = (call.ctx(), call.key_name());
    Key::open(call).expect(KeyType::ZSet)?;
    let now = now_ms();
    update_index(ctx, name, now, None, None);
    if Key::open(call)
        .zset_score(OwnedString::new(ctx, owner).as_str())
        .is_none()
    {
        return Ok(Reply::Integer(0));
    }
    update_index(ctx, name, now, Some(owner), None);
    stats::bump(Stat::SemReleases);
    wait::serve(ctx, Kind::Sem, name);
    Ok(Reply::Integer(1))
}

// SEM.COUNT key
fn sem_count(call: &Call) -> Result<Reply, CmdError> {
    call.parse(&l::SEM_COUNT)?;
    let ctx = call.ctx();
    if !matches!(
        key_type(ctx, call.key_name()),
        KeyType::Empty | KeyType::ZSet
    ) {
        return Err(CmdError::WrongType);
    }
    Ok(Reply::Integer(live_count(ctx, call.key_name(), now_ms())))
}

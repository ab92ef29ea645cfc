//! Binds the session family (`patterns_core::session`) to Redis. The hot path (sliding a
//! session's expiry, pruning its index, fixing the index's TTL) uses the key API and replicates
//! each change as the command that makes it; the rarer writes (HSET, RENAME, DEL, ZREM) run as
//! Redis commands through `RedisModule_Call`. Either way replicas and the AOF receive effects
//! with explicit absolute times and the generated key (never the command: its id is random),
//! and the Lua twin runs the very same steps.
//!
//! Each command validates everything (arguments, types, ACL of the keys it derives) before its
//! first write: an error writes nothing.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::session::{
    self as s, check_fields, session_key, Deadlines, Meta, Timeouts, ID_BYTES,
};

use crate::command;
use crate::ffi::{
    check_key_access, fill_random, key_type, live_key_type, now_ms, redis_call, Call, Command, Ctx,
    Key, KeyType, Notify, OwnedString, Reply,
};
use crate::index::update_index;

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(s::CREATE, create),
    command!(s::GET, get),
    command!(s::SET, set),
    command!(s::ROTATE, rotate),
    command!(s::DESTROY, destroy),
    command!(s::DESTROYALL, destroyall),
    command!(s::LIST, list),
    command!(s::COUNT, count),
];

/// A fresh id: 128 bits from getrandom(2), base64url.
fn new_id() -> Result<[u8; s::ID_LEN], CmdError> {
    let mut raw = [0u8; ID_BYTES];
    fill_random(&mut raw)?;
    Ok(s::encode_id(&raw))
}

fn text(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

fn expect_index(ctx: Ctx, index: &[u8]) -> Result<(), CmdError> {
    match key_type(ctx, index) {
        KeyType::Empty | KeyType::ZSet => Ok(()),
        _ => Err(CmdError::WrongType),
    }
}

/// A live session: its hash's pairs, with the reserved fields read.
struct Loaded {
    pairs: Vec<Vec<u8>>,
}

impl Loaded {
    fn meta(&self) -> Result<Meta<'_>, CmdError> {
        let pairs: Vec<(&[u8], &[u8])> = self
            .pairs
            .chunks(2)
            .map(|p| (p[0].as_slice(), p[1].as_slice()))
            .collect();
        Meta::parse(&pairs)
    }

    /// The caller's fields, reserved ones excluded.
    fn user_pairs(&self) -> Vec<Vec<u8>> {
        self.pairs
            .chunks(2)
            .filter(|p| !p[0].starts_with(s::RESERVED_PREFIX.as_bytes()))
            .flat_map(|p| p.iter().cloned())
            .collect()
    }
}

/// Reads the session at `key` as of `now`: None when absent (or expired by `now`); WRONGTYPE unless a hash; BadState unless it
/// holds the reserved fields. Checks the index's type and the user's access to it.
fn load(ctx: Ctx, key: &[u8], now: i64) -> Result<Option<Loaded>, CmdError> {
    match live_key_type(ctx, key, now) {
        KeyType::Empty => return Ok(None),
        KeyType::Hash => {}
        _ => return Err(CmdError::WrongType),
    }
    let loaded = Loaded {
        pairs: redis_call(ctx, c"HGETALL", &[key], false).strings(),
    };
    let index = loaded.meta()?.index.to_vec();
    check_key_access(ctx, &index)?;
    expect_index(ctx, &index)?;
    Ok(Some(loaded))
}

/// Slides the session's expiry after a use at `now` and records it in the index, through the
/// key API, replicating each change as the command that makes it.
fn touch(ctx: Ctx, key: &[u8], index: &[u8], d: Deadlines, now: i64) {
    let at = d.expiry(now);
    let name = OwnedString::new(ctx, key);
    let mut session = Key::open_named(ctx, &name);
    session.set_expire_at(at);
    session.modified(&[(Notify::GENERIC, c"expire")]);
    ctx.replicate(c"PEXPIREAT", (name.as_str(), at));
    update_index(ctx, index, now, None, Some((at, key)));
}

// SESSION.CREATE index idle_ms absolute_ms [field value ...]
fn create(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = s::CREATE.parse(args)?;
    let [idle, absolute, ..] = p.positionals;
    let timeouts = Timeouts::new(idle, absolute)?;
    let fields = &args[p.trailing_at..];
    check_fields(fields)?;
    let ctx = call.ctx();
    let index = call.key_name();
    let key = session_key(index, &new_id()?)?;
    check_key_access(ctx, &key)?;
    expect_index(ctx, index)?;
    if key_type(ctx, &key) != KeyType::Empty {
        return Err(CmdError::Internal); // a 128-bit collision: never
    }
    let now = now_ms();
    let d = timeouts.start(now);
    let (idle, absolute_at) = (text(d.idle_ms), text(d.absolute_at));
    let mut hset: Vec<&[u8]> = vec![
        &key,
        s::IDLE_FIELD.as_bytes(),
        &idle,
        s::ABSOLUTE_FIELD.as_bytes(),
        &absolute_at,
        s::INDEX_FIELD.as_bytes(),
        index,
    ];
    hset.extend_from_slice(fields);
    redis_call(ctx, c"HSET", &hset, true);
    touch(ctx, &key, index, d, now);
    Ok(Reply::Bulk(key))
}

// SESSION.GET session
fn get(call: &Call) -> Result<Reply, CmdError> {
    s::GET.parse(call.rest())?;
    let key = call.key_name();
    let now = now_ms();
    let Some(loaded) = load(call.ctx(), key, now)? else {
        return Ok(Reply::Null);
    };
    let meta = loaded.meta()?;
    touch(call.ctx(), key, meta.index, meta.deadlines, now);
    Ok(Reply::Bulks(loaded.user_pairs()))
}

// SESSION.SET session field value [field value ...]
fn set(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = s::SET.parse(args)?;
    let fields = &args[p.trailing_at..];
    check_fields(fields)?;
    let key = call.key_name();
    let now = now_ms();
    let Some(loaded) = load(call.ctx(), key, now)? else {
        return Ok(Reply::Null);
    };
    let meta = loaded.meta()?;
    let mut hset: Vec<&[u8]> = vec![key];
    hset.extend_from_slice(fields);
    let added = redis_call(call.ctx(), c"HSET", &hset, true).integer();
    touch(call.ctx(), key, meta.index, meta.deadlines, now);
    Ok(Reply::Integer(added))
}

// SESSION.ROTATE session
fn rotate(call: &Call) -> Result<Reply, CmdError> {
    s::ROTATE.parse(call.rest())?;
    let ctx = call.ctx();
    let old = call.key_name();
    let now = now_ms();
    let Some(loaded) = load(ctx, old, now)? else {
        return Ok(Reply::Null);
    };
    let meta = loaded.meta()?;
    let new = session_key(meta.index, &new_id()?)?;
    check_key_access(ctx, &new)?;
    if key_type(ctx, &new) != KeyType::Empty {
        return Err(CmdError::Internal);
    }
    let at = redis_call(ctx, c"PEXPIRETIME", &[old], false).integer();
    redis_call(ctx, c"RENAME", &[old, &new], true);
    update_index(ctx, meta.index, now, Some(old), Some((at, &new)));
    Ok(Reply::Bulk(new))
}

// SESSION.DESTROY session
fn destroy(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROY.parse(call.rest())?;
    let ctx = call.ctx();
    let key = call.key_name();
    let now = now_ms();
    let Some(loaded) = load(ctx, key, now)? else {
        return Ok(Reply::Integer(0));
    };
    let meta = loaded.meta()?;
    redis_call(ctx, c"DEL", &[key], true);
    update_index(ctx, meta.index, now, Some(key), None);
    Ok(Reply::Integer(1))
}

/// The index's live session keys, after pruning the expired ones.
fn live(ctx: Ctx, index: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    expect_index(ctx, index)?;
    update_index(ctx, index, now_ms(), None, None);
    Ok(redis_call(ctx, c"ZRANGE", &[index, b"0", b"-1"], false).strings())
}

// SESSION.DESTROYALL index
fn destroyall(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROYALL.parse(call.rest())?;
    let ctx = call.ctx();
    let index = call.key_name();
    expect_index(ctx, index)?;
    let members = redis_call(ctx, c"ZRANGE", &[index, b"0", b"-1"], false).strings();
    for m in &members {
        check_key_access(ctx, m)?;
    }
    let members = live(ctx, index)?;
    let mut destroyed = 0;
    for m in &members {
        destroyed += redis_call(ctx, c"DEL", &[m], true).integer();
    }
    redis_call(ctx, c"DEL", &[index], true);
    Ok(Reply::Integer(destroyed))
}

// SESSION.LIST index
fn list(call: &Call) -> Result<Reply, CmdError> {
    s::LIST.parse(call.rest())?;
    Ok(Reply::Bulks(live(call.ctx(), call.key_name())?))
}

// SESSION.COUNT index
fn count(call: &Call) -> Result<Reply, CmdError> {
    s::COUNT.parse(call.rest())?;
    let ctx = call.ctx();
    let index = call.key_name();
    expect_index(ctx, index)?;
    update_index(ctx, index, now_ms(), None, None);
    Ok(Reply::Integer(
        redis_call(ctx, c"ZCARD", &[index], false).integer(),
    ))
}

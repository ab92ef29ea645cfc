//! Binds the session family (`patterns_core::session`) to Redis: each command parses its
//! arguments, reads the clock once and runs its write plan (`session::ops`) over [`Redis`],
//! the family's `Store`. The hot path (sliding a session's expiry, pruning its index, fixing
//! the index's TTL) uses the key API and replicates each change as the command that makes it;
//! the rarer writes (HSET, RENAME, DEL, ZREM) run as Redis commands through
//! `RedisModule_Call`. Either way replicas and the AOF receive effects
//! with explicit absolute times and the generated key (never the command: its id is random),
//! and the Lua twin runs the very same steps.
//!
//! Each command validates everything (arguments, types, ACL of the keys it derives) before its
//! first write: an error writes nothing.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::keys::{self, Kind, ID_BYTES};
use patterns_core::session::ops::{self, IndexChange, Store};
use patterns_core::session::{self as s, Timeouts};

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

/// The session commands' store: Redis, through the key API and `RedisModule_Call`, every write
/// replicated as the command that makes it.
struct Redis<'a>(Ctx<'a>);

fn kind(t: KeyType) -> Kind {
    match t {
        KeyType::Empty => Kind::Empty,
        KeyType::Hash => Kind::Hash,
        KeyType::ZSet => Kind::ZSet,
        _ => Kind::Other,
    }
}

impl Store for Redis<'_> {
    fn kind(&mut self, key: &[u8]) -> Kind {
        kind(key_type(self.0, key))
    }

    fn live_kind(&mut self, key: &[u8], now_ms: i64) -> Kind {
        kind(live_key_type(self.0, key, now_ms))
    }

    fn may_access(&mut self, key: &[u8]) -> bool {
        check_key_access(self.0, key).is_ok()
    }

    /// 128 bits from getrandom(2), base64url.
    fn new_id(&mut self) -> Result<[u8; keys::ID_LEN], CmdError> {
        let mut raw = [0u8; ID_BYTES];
        fill_random(&mut raw)?;
        Ok(keys::encode_id(&raw))
    }

    fn fields(&mut self, key: &[u8]) -> Vec<Vec<u8>> {
        redis_call(self.0, c"HGETALL", &[key], false).strings()
    }

    fn expire_time(&mut self, key: &[u8]) -> i64 {
        redis_call(self.0, c"PEXPIRETIME", &[key], false).integer()
    }

    fn members(&mut self, index: &[u8]) -> Vec<Vec<u8>> {
        redis_call(self.0, c"ZRANGE", &[index, b"0", b"-1"], false).strings()
    }

    fn len(&mut self, index: &[u8]) -> i64 {
        redis_call(self.0, c"ZCARD", &[index], false).integer()
    }

    fn hset(&mut self, key: &[u8], pairs: &[&[u8]]) -> i64 {
        let mut args = vec![key];
        args.extend_from_slice(pairs);
        redis_call(self.0, c"HSET", &args, true).integer()
    }

    /// Through the key API (the hot path), replicated as PEXPIREAT.
    fn expire_at(&mut self, key: &[u8], at_ms: i64) {
        let name = OwnedString::new(self.0, key);
        let mut session = Key::open_named(self.0, &name);
        session.set_expire_at(at_ms);
        session.modified(&[(Notify::GENERIC, c"expire")]);
        self.0.replicate(c"PEXPIREAT", (name.as_str(), at_ms));
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        redis_call(self.0, c"RENAME", &[from, to], true);
    }

    fn del(&mut self, key: &[u8]) -> i64 {
        redis_call(self.0, c"DEL", &[key], true).integer()
    }

    fn update_index(&mut self, index: &[u8], now_ms: i64, change: IndexChange<'_>) {
        update_index(self.0, index, now_ms, change.removed(), change.added());
    }
}

fn nullable<T>(value: Option<T>, reply: impl FnOnce(T) -> Reply) -> Reply {
    value.map_or(Reply::Null, reply)
}

// SESSION.CREATE index idle_ms absolute_ms [field value ...]
fn create(call: &Call) -> Result<Reply, CmdError> {
    let p = s::CREATE.parse(call.rest())?;
    let timeouts = Timeouts::new(p.int("idle_ms"), p.int("absolute_ms"))?;
    let (mut store, index) = (Redis(call.ctx()), call.key_name());
    let key = ops::create(&mut store, index, timeouts, p.trailing(), now_ms())?;
    Ok(Reply::Bulk(key))
}

// SESSION.GET session
fn get(call: &Call) -> Result<Reply, CmdError> {
    s::GET.parse(call.rest())?;
    let fields = ops::get(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(nullable(fields, Reply::Bulks))
}

// SESSION.SET session field value [field value ...]
fn set(call: &Call) -> Result<Reply, CmdError> {
    let p = s::SET.parse(call.rest())?;
    let added = ops::set(
        &mut Redis(call.ctx()),
        call.key_name(),
        p.trailing(),
        now_ms(),
    )?;
    Ok(nullable(added, Reply::Integer))
}

// SESSION.ROTATE session
fn rotate(call: &Call) -> Result<Reply, CmdError> {
    s::ROTATE.parse(call.rest())?;
    let new = ops::rotate(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(nullable(new, Reply::Bulk))
}

// SESSION.DESTROY session
fn destroy(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROY.parse(call.rest())?;
    let destroyed = ops::destroy(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(Reply::Integer(i64::from(destroyed)))
}

// SESSION.DESTROYALL index
fn destroyall(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROYALL.parse(call.rest())?;
    let destroyed = ops::destroy_all(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(Reply::Integer(destroyed))
}

// SESSION.LIST index
fn list(call: &Call) -> Result<Reply, CmdError> {
    s::LIST.parse(call.rest())?;
    let live = ops::list(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(Reply::Bulks(live))
}

// SESSION.COUNT index
fn count(call: &Call) -> Result<Reply, CmdError> {
    s::COUNT.parse(call.rest())?;
    let live = ops::count(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(Reply::Integer(live))
}

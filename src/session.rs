//! Binds the session family (`patterns_core::session`) to Redis: each command parses its
//! arguments, reads the clock once and runs its write plan (`session::ops`) over [`Redis`],
//! the family's `Store`. The hot path (reading a session with `RedisModule_ScanKey`, sliding
//! its expiry, pruning its index, fixing the index's TTL) and DESTROYALL's deletions use the
//! key API and replicate each change as the command that makes it; the rarer writes (HSET,
//! RENAME, a single DEL) run as Redis commands through `RedisModule_Call`. Either way replicas
//! and the AOF receive effects with explicit absolute times and the generated key (never the
//! command: its id is random), and the Lua twin runs the very same steps.
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
    check_key_access, check_keys_access, fill_random, key_type, now_ms, redis_call, Call, Command,
    Ctx, Key, KeyType, Notify, OwnedString, Reply, ScoreRange, Str, Value,
};
use crate::index::{live_count, update_index};
use crate::stats::{self, Stat};

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

    /// Through the key API (`RedisModule_ScanKey`), or `HGETALL` for a hash whose order the
    /// scan does not give (a hash table: fields or values over 64 bytes, or many fields).
    fn live_hash(&mut self, key: &[u8], now_ms: i64) -> Result<Option<Vec<Vec<u8>>>, CmdError> {
        let name = OwnedString::new(self.0, key);
        let session = Key::open_named(self.0, &name);
        // Dead from its expiry's millisecond on. Redis expires keys on access by the time
        // cached when the command started, which can lag `now_ms`, and keeps a key alive
        // through its expiry's millisecond; a session dead by `now_ms` must not be revived,
        // and the module and its twin must agree.
        let expired = session.expire_at_ms().is_some_and(|at| at <= now_ms);
        if session.kind() == KeyType::Empty || expired {
            return Ok(None);
        }
        session.expect(KeyType::Hash)?;
        if let Some(pairs) = session.hash_pairs() {
            return Ok(Some(pairs));
        }
        drop(session);
        Ok(Some(
            redis_call(self.0, c"HGETALL", &[key], false).strings(),
        ))
    }

    fn may_access(&mut self, key: &[u8]) -> bool {
        check_key_access(self.0, key).is_ok()
    }

    fn may_access_all(&mut self, keys: &[Vec<u8>]) -> bool {
        check_keys_access(self.0, keys.iter().map(Vec::as_slice)).is_ok()
    }

    /// 128 bits from getrandom(2), base64url.
    fn new_id(&mut self) -> Result<[u8; keys::ID_LEN], CmdError> {
        let mut raw = [0u8; ID_BYTES];
        fill_random(&mut raw)?;
        Ok(keys::encode_id(&raw))
    }

    fn expire_time(&mut self, key: &[u8]) -> i64 {
        redis_call(self.0, c"PEXPIRETIME", &[key], false).integer()
    }

    fn members(&mut self, index: &[u8]) -> Vec<Vec<u8>> {
        self.index_members(index, ScoreRange::all(), usize::MAX)
    }

    fn live_members(&mut self, index: &[u8], now_ms: i64, n: i64) -> Vec<Vec<u8>> {
        let n = usize::try_from(n).unwrap_or(0);
        self.index_members(index, ScoreRange::after(now_ms), n)
    }

    fn live_len(&mut self, index: &[u8], now_ms: i64) -> i64 {
        live_count(self.0, index, now_ms)
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

    fn unlink(&mut self, key: &[u8]) {
        redis_call(self.0, c"UNLINK", &[key], true);
    }

    /// Through the key API, replicated as DELs of up to `DEL_BATCH` keys each.
    fn del_all(&mut self, keys: &[Vec<u8>]) -> i64 {
        let names: Vec<OwnedString> = keys.iter().map(|k| OwnedString::new(self.0, k)).collect();
        let mut deleted: Vec<Str> = Vec::with_capacity(names.len());
        for name in &names {
            let mut key = Key::open_named(self.0, name);
            if key.kind() != KeyType::Empty {
                key.delete();
                key.modified(&[(Notify::GENERIC, c"del")]);
                deleted.push(name.as_str());
            }
        }
        for batch in deleted.chunks(DEL_BATCH) {
            self.0.replicate_list(c"DEL", batch);
        }
        deleted.len() as i64
    }

    fn update_index(&mut self, index: &[u8], now_ms: i64, change: IndexChange<'_>) {
        update_index(self.0, index, now_ms, change.removed(), change.added());
    }
}

/// The most keys one replicated DEL names (DESTROYALL): a replica or an AOF replay handles
/// big indexes in commands of bounded size.
const DEL_BATCH: usize = 1024;

impl Redis<'_> {
    /// The index's first `limit` members in the score range, soonest to expire first.
    fn index_members(&mut self, index: &[u8], range: ScoreRange, limit: usize) -> Vec<Vec<u8>> {
        let name = OwnedString::new(self.0, index);
        let members = Key::open_named(self.0, &name).zset_first(range, limit);
        members.iter().map(|m| m.bytes().to_vec()).collect()
    }
}

fn nullable<T>(value: Option<T>, reply: impl FnOnce(T) -> Reply) -> Reply {
    value.map_or(Reply::Null, reply)
}

// SESSION.CREATE index [MAX n] idle_ms absolute_ms [field value ...]
fn create(call: &Call) -> Result<Reply, CmdError> {
    let p = s::CREATE.parse(call.rest())?;
    let timeouts = Timeouts::new(p.int("idle_ms"), p.int("absolute_ms"))?;
    let max = Some(p.int("MAX")).filter(|&n| n > 0);
    let (mut store, index) = (Redis(call.ctx()), call.key_name());
    let (key, destroyed) = ops::create(&mut store, index, timeouts, max, p.trailing(), now_ms())?;
    stats::bump(Stat::SessionsCreated);
    stats::add(Stat::SessionsDestroyed, destroyed as u64);
    Ok(Reply::Bulk(key))
}

/// A session's fields as a record: a map under RESP3, `field, value, ...` under RESP2.
fn record(pairs: Vec<Vec<u8>>) -> Value {
    let mut pairs = pairs.into_iter();
    let mut map = Vec::with_capacity(pairs.len() / 2);
    while let (Some(field), Some(value)) = (pairs.next(), pairs.next()) {
        map.push((Value::Bulk(field), Value::Bulk(value)));
    }
    Value::Map(map)
}

// SESSION.GET session
fn get(call: &Call) -> Result<Reply, CmdError> {
    s::GET.parse(call.rest())?;
    let fields = ops::get(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    Ok(nullable(fields, |pairs| Reply::Value(record(pairs))))
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
    if new.is_some() {
        stats::bump(Stat::SessionsRotated);
    }
    Ok(nullable(new, Reply::Bulk))
}

// SESSION.DESTROY session
fn destroy(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROY.parse(call.rest())?;
    let destroyed = ops::destroy(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    stats::add(Stat::SessionsDestroyed, u64::from(destroyed));
    Ok(Reply::Integer(i64::from(destroyed)))
}

// SESSION.DESTROYALL index
fn destroyall(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROYALL.parse(call.rest())?;
    let destroyed = ops::destroy_all(&mut Redis(call.ctx()), call.key_name(), now_ms())?;
    stats::add(Stat::SessionsDestroyed, destroyed as u64);
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

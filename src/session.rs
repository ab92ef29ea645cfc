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
use patterns_core::keys::{self, Kind, Pairs, ID_BYTES};
use patterns_core::session::ops::{self, IndexChange, Store};
use patterns_core::session::{self as s, Timeouts};

use crate::command;
use crate::ffi::{
    check_key_access, check_keys_access, fill_random, key_type, now_ms, redis_call, Call, Command,
    Ctx, CurrentUser, Key, KeyType, Notify, OwnedKey, OwnedString, Reply, ScoreRange, Str,
};
use crate::index::{update_index, update_open_index};
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
struct Redis<'c, 'a> {
    call: &'c Call<'a>,
    /// The command's declared key while it is open: a session read and not yet slid. Closed
    /// before any write through `RedisModule_Call`, which must not find it open.
    declared: Option<Key<'a>>,
    /// Whether the index is kept open from its type check to its update (the commands that
    /// slide a session; the others only read it or open it once).
    keep_index: bool,
    /// The index while kept open; closed with the declared key.
    index: Option<OwnedKey<'a>>,
    /// The name of the key whose access was just checked, kept (when the index is) to open it
    /// next: one server string for the check and the open (~240 instructions, 1% of a
    /// `SESSION.GET`: bench/analysis.md, "Review debt").
    checked: Option<OwnedString>,
}

impl<'c, 'a> Redis<'c, 'a> {
    fn new(call: &'c Call<'a>) -> Self {
        Self {
            call,
            declared: None,
            keep_index: false,
            index: None,
            checked: None,
        }
    }

    /// For a command that reads a session and slides it: its index is opened once.
    fn sliding(call: &'c Call<'a>) -> Self {
        Self {
            keep_index: true,
            ..Self::new(call)
        }
    }

    fn ctx(&self) -> Ctx<'a> {
        self.call.ctx()
    }

    /// Closes the keys kept open (before a write through `RedisModule_Call`).
    fn close(&mut self) {
        self.declared = None;
        self.index = None;
    }

    /// `member` as a server string: the declared key's own when it is that key.
    fn member(&self, member: &[u8]) -> Member<'a> {
        match member == self.call.key_name() {
            true => Member::Declared(self.call.key()),
            false => Member::Owned(OwnedString::new(self.ctx(), member)),
        }
    }
}

/// An index member as a server string.
enum Member<'a> {
    Declared(Str<'a>),
    Owned(OwnedString),
}

impl Member<'_> {
    fn as_str(&self) -> Str<'_> {
        match self {
            Member::Declared(s) => *s,
            Member::Owned(s) => s.as_str(),
        }
    }
}

fn kind(t: KeyType) -> Kind {
    match t {
        KeyType::Empty => Kind::Empty,
        KeyType::Hash => Kind::Hash,
        KeyType::ZSet => Kind::ZSet,
        _ => Kind::Other,
    }
}

impl Store for Redis<'_, '_> {
    fn kind(&mut self, key: &[u8]) -> Kind {
        if !self.keep_index {
            return kind(key_type(self.ctx(), key));
        }
        let name = match self.checked.take().filter(|name| name.bytes() == key) {
            Some(name) => name,
            None => OwnedString::new(self.ctx(), key),
        };
        let mut index = OwnedKey::open_named(self.ctx(), name);
        let t = index.with(|k| k.kind());
        self.index = Some(index);
        kind(t)
    }

    /// Through the key API (`RedisModule_ScanKey`), or `HGETALL` for a hash whose order the
    /// scan does not give (a hash table: fields or values over 64 bytes, or many fields). The
    /// declared key stays open for the slide that follows.
    fn live_hash(&mut self, key: &[u8], now_ms: i64) -> Result<Option<Pairs>, CmdError> {
        self.close();
        let read = if key == self.call.key_name() {
            let session = Key::open(self.call);
            let read = read_session(&session, now_ms)?;
            if matches!(read, Read::Pairs(_)) {
                self.declared = Some(session);
            }
            read
        } else {
            let name = OwnedString::new(self.ctx(), key);
            let session = Key::open_named(self.ctx(), &name);
            read_session(&session, now_ms)?
        };
        Ok(match read {
            Read::Gone => None,
            Read::Pairs(pairs) => Some(pairs),
            Read::Unordered => Some(
                redis_call(self.ctx(), c"HGETALL", &[key], false)
                    .strings()
                    .into_iter()
                    .collect(),
            ),
        })
    }

    fn may_access(&mut self, key: &[u8]) -> bool {
        if !self.keep_index {
            return check_key_access(self.ctx(), key).is_ok();
        }
        let name = OwnedString::new(self.ctx(), key);
        let allowed = CurrentUser::of(self.ctx())
            .check_read_write(name.as_str())
            .is_ok();
        self.checked = Some(name);
        allowed
    }

    fn may_access_all(&mut self, keys: &[Vec<u8>]) -> bool {
        check_keys_access(self.ctx(), keys.iter().map(Vec::as_slice)).is_ok()
    }

    /// 128 bits from getrandom(2), base64url.
    fn new_id(&mut self) -> Result<[u8; keys::ID_LEN], CmdError> {
        let mut raw = [0u8; ID_BYTES];
        fill_random(&mut raw)?;
        Ok(keys::encode_id(&raw))
    }

    fn expire_time(&mut self, key: &[u8]) -> i64 {
        self.close();
        redis_call(self.ctx(), c"PEXPIRETIME", &[key], false).integer()
    }

    /// Through the key API, as [`read_session`] sees a session's liveness.
    fn live_expiry(&mut self, key: &[u8], now_ms: i64) -> Option<i64> {
        let name = OwnedString::new(self.ctx(), key);
        let key = Key::open_named(self.ctx(), &name);
        if key.kind() == KeyType::Empty {
            return None;
        }
        match key.expire_at_ms() {
            Some(at) if at <= now_ms => None,
            at => Some(at.unwrap_or(i64::MAX)),
        }
    }

    fn members(&mut self, index: &[u8]) -> Vec<Vec<u8>> {
        self.index_members(index, ScoreRange::all())
    }

    /// One walk of the index through the key API: its members scored up to `edge` (usually
    /// none), the rest counted by its length.
    fn split_at(&mut self, index: &[u8], after: i64, edge: i64) -> (i64, Vec<Vec<u8>>) {
        let name = OwnedString::new(self.ctx(), index);
        let index = Key::open_named(self.ctx(), &name);
        let scored = index.zset_scored(ScoreRange::through(edge));
        let window = scored
            .iter()
            .filter(|(_, score)| *score > after as f64)
            .map(|(m, _)| m.bytes().to_vec())
            .collect();
        (index.len() - scored.len() as i64, window)
    }

    /// On the index kept open since its type check, when it is this one.
    fn index_score(&mut self, index: &[u8], member: &[u8]) -> Option<i64> {
        let member = self.member(member);
        let score = match self.index.as_mut().filter(|k| k.name() == index) {
            Some(open) => open.with(|key| key.zset_score(member.as_str())),
            None => {
                let name = OwnedString::new(self.ctx(), index);
                let score = Key::open_named(self.ctx(), &name).zset_score(member.as_str());
                score
            }
        };
        score.map(|s| s as i64)
    }

    fn hset(&mut self, key: &[u8], pairs: &[&[u8]]) -> i64 {
        self.close();
        let mut args = vec![key];
        args.extend_from_slice(pairs);
        redis_call(self.ctx(), c"HSET", &args, true).integer()
    }

    /// Through the key API (the hot path; the session read just before is still open),
    /// replicated as PEXPIREAT.
    fn expire_at(&mut self, key: &[u8], at_ms: i64) {
        let ctx = self.ctx();
        match self.declared.take().filter(|_| key == self.call.key_name()) {
            Some(mut session) => slide(ctx, &mut session, at_ms),
            None => {
                let name = OwnedString::new(ctx, key);
                slide(ctx, &mut Key::open_named(ctx, &name), at_ms);
            }
        }
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) {
        self.close();
        redis_call(self.ctx(), c"RENAME", &[from, to], true);
    }

    fn del(&mut self, key: &[u8]) -> i64 {
        self.close();
        redis_call(self.ctx(), c"DEL", &[key], true).integer()
    }

    fn unlink(&mut self, key: &[u8]) {
        self.close();
        redis_call(self.ctx(), c"UNLINK", &[key], true);
    }

    /// Through the key API, replicated as DELs of up to `DEL_BATCH` keys each.
    fn del_all(&mut self, keys: &[Vec<u8>]) -> i64 {
        let names: Vec<OwnedString> = keys
            .iter()
            .map(|k| OwnedString::new(self.ctx(), k))
            .collect();
        let mut deleted: Vec<Str> = Vec::with_capacity(names.len());
        for name in &names {
            let mut key = Key::open_named(self.ctx(), name);
            if key.kind() != KeyType::Empty {
                key.delete();
                key.modified(&[(Notify::GENERIC, c"del")]);
                deleted.push(name.as_str());
            }
        }
        for batch in deleted.chunks(DEL_BATCH) {
            self.ctx().replicate_list(c"DEL", batch);
        }
        deleted.len() as i64
    }

    /// On the index kept open since its type check, when it is this one.
    fn update_index(&mut self, index: &[u8], now_ms: i64, change: IndexChange<'_>) {
        let ctx = self.ctx();
        let Some(mut open) = self.index.take().filter(|k| k.name() == index) else {
            update_index(ctx, index, now_ms, change.removed(), change.added());
            return;
        };
        let removed = change.removed().map(|m| self.member(m));
        let added = change.added().map(|(at, m)| (at, self.member(m)));
        open.with(|key| {
            let added = added.as_ref().map(|(at, m)| (*at, m.as_str()));
            update_open_index(
                ctx,
                key,
                now_ms,
                removed.as_ref().map(Member::as_str),
                added,
            )
        });
    }
}

/// A session as read through the key API.
enum Read {
    /// Absent, or dead by now.
    Gone,
    /// Its fields and values, in `HGETALL`'s order.
    Pairs(Pairs),
    /// A hash whose order the scan does not give.
    Unordered,
}

/// Reads the session at `session` as of `now_ms`; WRONGTYPE unless a hash.
fn read_session(session: &Key, now_ms: i64) -> Result<Read, CmdError> {
    // Dead from its expiry's millisecond on. Redis expires keys on access by the time cached
    // when the command started, which can lag `now_ms`, and keeps a key alive through its
    // expiry's millisecond; a session dead by `now_ms` must not be revived, and the module and
    // its twin must agree.
    let expired = session.expire_at_ms().is_some_and(|at| at <= now_ms);
    if session.kind() == KeyType::Empty || expired {
        return Ok(Read::Gone);
    }
    session.expect(KeyType::Hash)?;
    Ok(session.hash_pairs().map_or(Read::Unordered, Read::Pairs))
}

/// Sets the session's expiry, replicated as PEXPIREAT.
fn slide(ctx: Ctx, session: &mut Key, at_ms: i64) {
    session.set_expire_at(at_ms);
    session.modified(&[(Notify::GENERIC, c"expire")]);
    ctx.replicate(c"PEXPIREAT", (session.name(), at_ms));
}

/// The most keys one replicated DEL names (DESTROYALL): a replica or an AOF replay handles
/// big indexes in commands of bounded size.
const DEL_BATCH: usize = 1024;

impl Redis<'_, '_> {
    /// The index's members in the score range, lowest score first.
    fn index_members(&mut self, index: &[u8], range: ScoreRange) -> Vec<Vec<u8>> {
        let name = OwnedString::new(self.ctx(), index);
        let members = Key::open_named(self.ctx(), &name).zset_members(range);
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
    let (mut store, index) = (Redis::new(call), call.key_name());
    let (key, destroyed) = ops::create(&mut store, index, timeouts, max, p.trailing(), now_ms())?;
    stats::bump(Stat::SessionsCreated);
    stats::add(Stat::SessionsDestroyed, destroyed as u64);
    Ok(Reply::Bulk(key))
}

// SESSION.GET session
fn get(call: &Call) -> Result<Reply, CmdError> {
    s::GET.parse(call.rest())?;
    let fields = ops::get(&mut Redis::sliding(call), call.key_name(), now_ms())?;
    Ok(nullable(fields, Reply::Record))
}

// SESSION.SET session field value [field value ...]
fn set(call: &Call) -> Result<Reply, CmdError> {
    let p = s::SET.parse(call.rest())?;
    let added = ops::set(
        &mut Redis::sliding(call),
        call.key_name(),
        p.trailing(),
        now_ms(),
    )?;
    Ok(nullable(added, Reply::Integer))
}

// SESSION.ROTATE session
fn rotate(call: &Call) -> Result<Reply, CmdError> {
    s::ROTATE.parse(call.rest())?;
    let new = ops::rotate(&mut Redis::new(call), call.key_name(), now_ms())?;
    if new.is_some() {
        stats::bump(Stat::SessionsRotated);
    }
    Ok(nullable(new, Reply::Bulk))
}

// SESSION.DESTROY session
fn destroy(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROY.parse(call.rest())?;
    let destroyed = ops::destroy(&mut Redis::new(call), call.key_name(), now_ms())?;
    stats::add(Stat::SessionsDestroyed, u64::from(destroyed));
    Ok(Reply::Integer(i64::from(destroyed)))
}

// SESSION.DESTROYALL index
fn destroyall(call: &Call) -> Result<Reply, CmdError> {
    s::DESTROYALL.parse(call.rest())?;
    let destroyed = ops::destroy_all(&mut Redis::new(call), call.key_name(), now_ms())?;
    stats::add(Stat::SessionsDestroyed, destroyed as u64);
    Ok(Reply::Integer(destroyed))
}

// SESSION.LIST index
fn list(call: &Call) -> Result<Reply, CmdError> {
    s::LIST.parse(call.rest())?;
    let live = ops::list(&mut Redis::new(call), call.key_name(), now_ms())?;
    Ok(Reply::Bulks(live))
}

// SESSION.COUNT index
fn count(call: &Call) -> Result<Reply, CmdError> {
    s::COUNT.parse(call.rest())?;
    let live = ops::count(&mut Redis::new(call), call.key_name(), now_ms())?;
    Ok(Reply::Integer(live))
}

//! What every family's binding shares: the command boundary (registration, argument split,
//! panic guard, replies and error replies), the clock, key access, keyspace signals and effect
//! replication.
//!
//! Commands are called through `redis_module::raw` directly: the hot path allocates nothing
//! but what Redis itself needs (see BENCHMARKS.md for why that matters).

use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::{ptr, slice};

use patterns_core::command::{CmdError, CommandDef, Keys};
use redis_module::raw::{self, KeyType, RedisModuleCtx, RedisModuleKey, RedisModuleString};

/// A command's C entry point.
pub type Handler = extern "C" fn(*mut RedisModuleCtx, *mut *mut RedisModuleString, c_int) -> c_int;

/// Defines a command's C entry point: `command!(name, DEF, body)` runs `body` through
/// [`dispatch`] with DEF's arity check.
#[macro_export]
macro_rules! command {
    ($name:ident, $def:expr, $body:expr) => {
        pub extern "C" fn $name(
            ctx: *mut redis_module::raw::RedisModuleCtx,
            argv: *mut *mut redis_module::raw::RedisModuleString,
            argc: std::ffi::c_int,
        ) -> std::ffi::c_int {
            $crate::shared::dispatch(ctx, argv, argc, &$def, $body)
        }
    };
}

/// Registers a command under its definition's name (lower case) with its key positions (for
/// keys after an option token, the range covers the first key; `docs::describe`'s key specs
/// then give Redis the rest).
pub fn register(
    ctx: *mut RedisModuleCtx,
    def: &CommandDef,
    handler: Handler,
) -> Result<(), String> {
    let name = CString::new(def.name.to_ascii_lowercase()).map_err(|e| e.to_string())?;
    // Keys after a token: Redis 7.0's Cluster routing reads only the legacy key range, so the
    // command also answers key-position requests (see `dispatch`).
    let flags = match def.key_positions {
        Keys::FirstAndAfter { .. } => format!("{} getkeys-api", def.flags),
        _ => def.flags.to_string(),
    };
    let flags = CString::new(flags).map_err(|e| e.to_string())?;
    let last = match def.key_positions {
        Keys::All => -1,
        Keys::First | Keys::FirstAndAfter { .. } => 1,
    };
    let status = unsafe {
        raw::RedisModule_CreateCommand.unwrap()(
            ctx,
            name.as_ptr(),
            Some(handler),
            flags.as_ptr(),
            1,
            last,
            1,
        )
    };
    if status == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err(format!("could not register {}", def.name))
    }
}

/// A successful reply.
pub enum Reply {
    Ints([i64; 5]),
    Null,
    Integer(i64),
    Bulk(Vec<u8>),
    Bulks(Vec<Vec<u8>>),
    /// Any shape: nested arrays of integers, strings, doubles and nils.
    Value(Value),
    /// A simple string such as `OK`.
    Simple(&'static std::ffi::CStr),
    /// No reply now: the client is blocked and a callback replies later.
    Blocked,
}

/// One element of a [`Reply::Value`].
pub enum Value {
    Int(i64),
    Bulk(Vec<u8>),
    /// A double, formatted by the server as its own replies are.
    Double(f64),
    Array(Vec<Value>),
    Null,
}

fn reply_value(ctx: *mut RedisModuleCtx, value: &Value) {
    unsafe {
        match value {
            Value::Int(n) => raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *n),
            Value::Bulk(b) => {
                raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, b.as_ptr().cast(), b.len())
            }
            Value::Double(d) => raw::RedisModule_ReplyWithDouble.unwrap()(ctx, *d),
            Value::Null => raw::RedisModule_ReplyWithNull.unwrap()(ctx),
            Value::Array(items) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _);
                for item in items {
                    reply_value(ctx, item);
                }
                raw::REDISMODULE_OK as c_int
            }
        };
    }
}

/// One invocation: the context, the key and the arguments after it.
pub struct Call<'a> {
    pub ctx: *mut RedisModuleCtx,
    pub key: *mut RedisModuleString,
    rest: Args<'a>,
}

/// Most commands have few arguments: keep them on the stack.
const INLINE_ARGS: usize = 12;

enum Args<'a> {
    Inline([&'a [u8]; INLINE_ARGS], usize),
    Heap(Vec<&'a [u8]>),
}

impl<'a> Call<'a> {
    fn new(
        ctx: *mut RedisModuleCtx,
        def: &CommandDef,
        argv: &'a [*mut RedisModuleString],
    ) -> Result<Self, CmdError> {
        let [_, key, rest @ ..] = argv else {
            return Err(CmdError::WrongArity(def.name));
        };
        let rest = if rest.len() <= INLINE_ARGS {
            let mut inline: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
            for (slot, arg) in inline.iter_mut().zip(rest) {
                *slot = bytes(*arg);
            }
            Args::Inline(inline, rest.len())
        } else {
            Args::Heap(rest.iter().map(|a| bytes(*a)).collect())
        };
        Ok(Self {
            ctx,
            key: *key,
            rest,
        })
    }

    /// The arguments after the key.
    pub fn rest(&self) -> &[&'a [u8]] {
        match &self.rest {
            Args::Inline(args, len) => &args[..*len],
            Args::Heap(args) => args,
        }
    }
}

/// A RedisModuleString's bytes, valid while the string lives.
pub fn bytes<'a>(s: *const RedisModuleString) -> &'a [u8] {
    let mut len = 0;
    let ptr = unsafe { raw::RedisModule_StringPtrLen.unwrap()(s, &mut len) };
    unsafe { slice::from_raw_parts(ptr.cast::<u8>(), len) }
}

/// The command boundary: parses nothing itself, runs `body` with panics caught (a bug
/// replies with an error instead of taking the server down; bodies compute everything before
/// they write, so an unwind leaves no half-write), and replies.
pub fn dispatch(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
    def: &'static CommandDef,
    body: fn(&Call) -> Result<Reply, CmdError>,
) -> c_int {
    if let Keys::FirstAndAfter { token, from } = def.key_positions {
        if unsafe { raw::RedisModule_IsKeysPositionRequest.unwrap()(ctx) } != 0 {
            report_keys(ctx, argv, argc, token, from);
            return raw::REDISMODULE_OK as c_int;
        }
    }
    let result = catch_unwind(AssertUnwindSafe(|| {
        let argv = match argv.is_null() {
            true => &[][..],
            false => unsafe { slice::from_raw_parts(argv, argc as usize) },
        };
        body(&Call::new(ctx, def, argv)?)
    }))
    .unwrap_or(Err(CmdError::Internal));
    match result {
        Ok(reply) => send(ctx, reply),
        Err(err) => send_error(ctx, &err.to_string()),
    }
    raw::REDISMODULE_OK as c_int
}

/// Sends a reply to the current client.
pub fn send(ctx: *mut RedisModuleCtx, reply: Reply) {
    unsafe {
        match reply {
            Reply::Ints(values) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, values.len() as _);
                for v in values {
                    raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, v);
                }
            }
            Reply::Null => {
                raw::RedisModule_ReplyWithNull.unwrap()(ctx);
            }
            Reply::Integer(n) => {
                raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, n);
            }
            Reply::Bulk(b) => {
                raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, b.as_ptr().cast(), b.len());
            }
            Reply::Bulks(items) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _);
                for b in items {
                    raw::RedisModule_ReplyWithStringBuffer.unwrap()(
                        ctx,
                        b.as_ptr().cast(),
                        b.len(),
                    );
                }
            }
            Reply::Value(v) => {
                reply_value(ctx, &v);
            }
            Reply::Simple(text) => {
                raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, text.as_ptr());
            }
            Reply::Blocked => {}
        }
    }
}

/// Sends an error reply (`text` starts with its code, e.g. `ERR ...`).
pub fn send_error(ctx: *mut RedisModuleCtx, text: &str) {
    let text = CString::new(text).unwrap_or_default();
    unsafe { raw::RedisModule_ReplyWithError.unwrap()(ctx, text.as_ptr()) };
}

/// Answers a key-position request as the key specs read the arguments: the first argument,
/// and every argument after the first `token` found from position `from` on.
fn report_keys(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
    token: &str,
    from: i32,
) {
    let argv = match argv.is_null() {
        true => &[][..],
        false => unsafe { slice::from_raw_parts(argv, argc as usize) },
    };
    let key_at = |pos: usize| unsafe { raw::RedisModule_KeyAtPos.unwrap()(ctx, pos as c_int) };
    if argv.len() > 1 {
        key_at(1);
    }
    let from = usize::try_from(from).unwrap_or(0).max(2);
    let found = argv
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, a)| bytes(**a).eq_ignore_ascii_case(token.as_bytes()));
    if let Some((at, _)) = found {
        (at + 1..argv.len()).for_each(key_at);
    }
}

/// The server's clock in ms: read once per command.
pub fn now_ms() -> i64 {
    unsafe { raw::RedisModule_Milliseconds.unwrap()() }
}

/// A key opened for reading and writing, closed on drop. The module runs with implicit
/// modified-key signals off, so opening for write signals nothing: only [`Key::modified`]
/// does, after a real write. A peek or a denial leaves WATCH and client tracking alone.
pub struct Key<'a> {
    ctx: *mut RedisModuleCtx,
    name: *mut RedisModuleString,
    inner: *mut RedisModuleKey,
    /// The name must outlive the key.
    _name: std::marker::PhantomData<&'a ()>,
}

impl<'a> Key<'a> {
    /// The command's declared key.
    pub fn open(call: &'a Call<'a>) -> Self {
        Self::open_raw(call.ctx, call.key)
    }

    /// A key the command derives (its name held by the caller).
    pub fn open_named(ctx: *mut RedisModuleCtx, name: &'a OwnedString) -> Self {
        Self::open_raw(ctx, name.inner)
    }

    fn open_raw(ctx: *mut RedisModuleCtx, name: *mut RedisModuleString) -> Self {
        let mode = (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int;
        Self {
            ctx,
            name,
            inner: unsafe { raw::RedisModule_OpenKey.unwrap()(ctx, name, mode) },
            _name: std::marker::PhantomData,
        }
    }

    pub fn name(&self) -> *mut RedisModuleString {
        self.name
    }

    pub fn kind(&self) -> KeyType {
        unsafe { raw::RedisModule_KeyType.unwrap()(self.inner) }.into()
    }

    /// Fails with WRONGTYPE unless the key is absent or of type `kind`.
    pub fn expect(&self, kind: KeyType) -> Result<(), CmdError> {
        match self.kind() {
            KeyType::Empty => Ok(()),
            k if k == kind => Ok(()),
            _ => Err(CmdError::WrongType),
        }
    }

    /// The string value, None when absent; WRONGTYPE for another type.
    pub fn string(&self) -> Result<Option<&[u8]>, CmdError> {
        match self.kind() {
            KeyType::Empty => return Ok(None),
            KeyType::String => {}
            _ => return Err(CmdError::WrongType),
        }
        let mut len = 0;
        let ptr = unsafe {
            raw::RedisModule_StringDMA.unwrap()(
                self.inner,
                &mut len,
                raw::REDISMODULE_READ as c_int,
            )
        };
        if ptr.is_null() {
            return Err(CmdError::WrongType);
        }
        Ok(Some(unsafe {
            slice::from_raw_parts(ptr.cast::<u8>(), len)
        }))
    }

    /// Replaces the string value in place (no new object when the key already holds one).
    pub fn write_string(&self, value: &[u8]) {
        unsafe {
            raw::RedisModule_StringTruncate.unwrap()(self.inner, value.len());
            let mut len = 0;
            let dma = raw::RedisModule_StringDMA.unwrap()(
                self.inner,
                &mut len,
                raw::REDISMODULE_WRITE as c_int,
            );
            ptr::copy_nonoverlapping(value.as_ptr(), dma.cast::<u8>(), value.len().min(len));
        }
    }

    /// The absolute expiry in ms, None when the key has none.
    pub fn expire_at_ms(&self) -> Option<i64> {
        abs_expire(self.inner)
    }

    /// Sets the expiry to the absolute `at_ms`: exactly where the server has an absolute API
    /// (Redis 7.2+, Valkey), else relative to the clock read just before (Redis 7.0).
    pub fn set_expire_at(&self, at_ms: i64) {
        unsafe {
            match raw::RedisModule_SetAbsExpire {
                Some(set_abs) => set_abs(self.inner, at_ms),
                None => raw::RedisModule_SetExpire.unwrap()(self.inner, (at_ms - now_ms()).max(1)),
            };
        }
    }

    /// Deletes the key (its events and replication are the caller's).
    pub fn delete(&self) {
        unsafe { raw::RedisModule_DeleteKey.unwrap()(self.inner) };
    }

    /// Signals a real modification (WATCH, client tracking) and fires keyspace events, as
    /// Redis's own commands do: `events` are (class, event name) pairs.
    pub fn modified(&self, events: &[(c_int, &std::ffi::CStr)]) {
        unsafe {
            raw::RedisModule_SignalModifiedKey.unwrap()(self.ctx, self.name);
            for (class, event) in events {
                raw::RedisModule_NotifyKeyspaceEvent.unwrap()(
                    self.ctx,
                    *class,
                    event.as_ptr(),
                    self.name,
                );
            }
        }
    }
}

/// A score range of a sorted set: bounds and whether each is exclusive.
#[derive(Clone, Copy)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub min_exclusive: bool,
    pub max_exclusive: bool,
}

impl ScoreRange {
    /// Scores up to and including `max`.
    pub fn through(max: i64) -> Self {
        Self::new(f64::NEG_INFINITY, max as f64, false, false)
    }

    /// Scores strictly above `min`.
    pub fn after(min: i64) -> Self {
        Self::new(min as f64, f64::INFINITY, true, false)
    }

    pub fn at(score: i64) -> Self {
        Self::new(score as f64, score as f64, false, false)
    }

    pub fn all() -> Self {
        Self::new(f64::NEG_INFINITY, f64::INFINITY, false, false)
    }

    fn new(min: f64, max: f64, min_exclusive: bool, max_exclusive: bool) -> Self {
        Self {
            min,
            max,
            min_exclusive,
            max_exclusive,
        }
    }
}

/// Sorted-set access through the module's zset API (no command lookups, no reply parsing).
impl Key<'_> {
    /// Starts iterating a range (from its low end, or its high end with `from_top`); false when
    /// the range is empty. Always pair with [`Key::zset_stop`].
    pub fn zset_start(&self, r: ScoreRange, from_top: bool) -> bool {
        unsafe {
            let start = if from_top {
                raw::RedisModule_ZsetLastInScoreRange
            } else {
                raw::RedisModule_ZsetFirstInScoreRange
            };
            start.unwrap()(
                self.inner,
                r.min,
                r.max,
                c_int::from(r.min_exclusive),
                c_int::from(r.max_exclusive),
            ) == raw::REDISMODULE_OK as c_int
                && raw::RedisModule_ZsetRangeEndReached.unwrap()(self.inner) == 0
        }
    }

    pub fn zset_stop(&self) {
        unsafe { raw::RedisModule_ZsetRangeStop.unwrap()(self.inner) };
    }

    /// Moves to the next element in the range; false at its end.
    pub fn zset_next(&self) -> bool {
        unsafe { raw::RedisModule_ZsetRangeNext.unwrap()(self.inner) != 0 }
    }

    /// The element under the iterator and its score.
    pub fn zset_current(&self) -> (OwnedString, f64) {
        let mut score = 0.0;
        let inner =
            unsafe { raw::RedisModule_ZsetRangeCurrentElement.unwrap()(self.inner, &mut score) };
        (OwnedString::adopt(self.ctx, inner), score)
    }

    /// Elements in the range.
    pub fn zset_count(&self, r: ScoreRange) -> i64 {
        let mut n = 0;
        if self.zset_start(r, false) {
            n = 1;
            while self.zset_next() {
                n += 1;
            }
        }
        self.zset_stop();
        n
    }

    /// The members in the range.
    pub fn zset_members(&self, r: ScoreRange) -> Vec<OwnedString> {
        let mut members = Vec::new();
        if self.zset_start(r, false) {
            loop {
                members.push(self.zset_current().0);
                if !self.zset_next() {
                    break;
                }
            }
        }
        self.zset_stop();
        members
    }

    /// The highest score, None when the set is empty.
    pub fn zset_top_score(&self) -> Option<f64> {
        let top = self
            .zset_start(ScoreRange::all(), true)
            .then(|| self.zset_current().1);
        self.zset_stop();
        top
    }

    /// Entries in the set.
    pub fn len(&self) -> i64 {
        unsafe { raw::RedisModule_ValueLength.unwrap()(self.inner) as i64 }
    }

    /// Removes members; how many were there.
    pub fn zset_remove(&self, members: &[OwnedString]) -> usize {
        members
            .iter()
            .filter(|m| {
                let mut deleted: c_int = 0;
                unsafe { raw::RedisModule_ZsetRem.unwrap()(self.inner, m.inner, &mut deleted) };
                deleted != 0
            })
            .count()
    }

    /// A hash field's value, None when the field (or the hash) is absent.
    pub fn hash_field(&self, field: &std::ffi::CStr) -> Option<OwnedString> {
        let mut value: *mut RedisModuleString = ptr::null_mut();
        unsafe {
            raw::RedisModule_HashGet.unwrap()(
                self.inner,
                raw::REDISMODULE_HASH_CFIELDS as c_int,
                field.as_ptr(),
                &mut value,
                ptr::null::<c_char>(),
            )
        };
        (!value.is_null()).then(|| OwnedString::adopt(self.ctx, value))
    }

    /// A member's score, None when it is not in the set.
    pub fn zset_score(&self, member: *mut RedisModuleString) -> Option<f64> {
        let mut score = 0.0;
        let status = unsafe { raw::RedisModule_ZsetScore.unwrap()(self.inner, member, &mut score) };
        (status == raw::REDISMODULE_OK as c_int).then_some(score)
    }

    /// Adds or updates a member; whether the set changed.
    pub fn zset_add(&self, score: f64, member: *mut RedisModuleString) -> bool {
        let mut flags: c_int = 0;
        unsafe { raw::RedisModule_ZsetAdd.unwrap()(self.inner, score, member, &mut flags) };
        flags & (raw::REDISMODULE_ZADD_ADDED | raw::REDISMODULE_ZADD_UPDATED) as c_int != 0
    }
}

/// Hash writes through the module's hash API.
impl Key<'_> {
    /// Sets a field (creating the hash when the key is empty).
    pub fn hash_set(&self, field: &std::ffi::CStr, value: &[u8]) {
        let value = OwnedString::new(self.ctx, value);
        unsafe {
            raw::RedisModule_HashSet.unwrap()(
                self.inner,
                raw::REDISMODULE_HASH_CFIELDS as c_int,
                field.as_ptr(),
                value.inner,
                ptr::null::<c_char>(),
            );
        }
    }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_CloseKey.unwrap()(self.inner) };
    }
}

// ---------------------------------------------------------------------------------------------
// An index that never leaks: a sorted set of keys scored by their expiry (sessions of a user,
// cache entries of a tag), pruned as it is touched and expiring with its last member.

pub const ZSET: c_int = raw::REDISMODULE_NOTIFY_ZSET;
pub const GENERIC: c_int = raw::REDISMODULE_NOTIFY_GENERIC;

/// Drops the index's members that expired by `now` (scored `now` or lower: an expiry is the
/// first millisecond a member is dead), replicated as `ZREMRANGEBYSCORE` when there were any
/// (as Redis replicates a command only when it changed something). What is left scores above
/// `now`, so the index's new expiry is in the future (a PEXPIREAT at `now` would delete it).
fn prune(ctx: *mut RedisModuleCtx, index: &Key, now: i64) {
    if index.zset_remove(&index.zset_members(ScoreRange::through(now))) > 0 {
        let neg_inf = OwnedString::new(ctx, b"-inf");
        let bound = OwnedString::new(ctx, StackText::of(now).as_bytes());
        replicate_on(
            ctx,
            c"ZREMRANGEBYSCORE",
            index.name(),
            &[neg_inf.inner, bound.inner],
        );
        index.modified(&[(ZSET, c"zremrangebyscore")]);
    }
}

/// The index expires with its last session: its TTL is its highest score.
fn fix_index_ttl(ctx: *mut RedisModuleCtx, index: &Key) {
    let Some(top) = index.zset_top_score() else {
        return;
    };
    let at = top as i64;
    if index.expire_at_ms() != Some(at) {
        index.set_expire_at(at);
        let at = OwnedString::new(ctx, StackText::of(at).as_bytes());
        replicate_on(ctx, c"PEXPIREAT", index.name(), &[at.inner]);
        index.modified(&[(GENERIC, c"expire")]);
    }
}

/// One update of an index, in the order the Lua twin runs it: prune the expired members,
/// remove `remove`, add `add` (score, member), then fix the index's TTL. Each change replicates
/// as the command that makes it, and only when it changed something, as Redis does. Returns
/// whether `add` was a new member.
pub fn update_index(
    ctx: *mut RedisModuleCtx,
    index: &[u8],
    now: i64,
    remove: Option<&[u8]>,
    add: Option<(i64, &[u8])>,
) -> bool {
    let mut added = false;
    let name = OwnedString::new(ctx, index);
    let index = Key::open_named(ctx, &name);
    prune(ctx, &index, now);
    if let Some(member) = remove {
        let member = [OwnedString::new(ctx, member)];
        if index.zset_remove(&member) > 0 {
            replicate_on(ctx, c"ZREM", name.inner, &[member[0].inner]);
            index.modified(&[(ZSET, c"zrem")]);
        }
    }
    if let Some((score, member)) = add {
        let member = OwnedString::new(ctx, member);
        added = index.zset_score(member.inner).is_none();
        if index.zset_add(score as f64, member.inner) {
            let score = OwnedString::new(ctx, StackText::of(score).as_bytes());
            replicate_on(ctx, c"ZADD", name.inner, &[score.inner, member.inner]);
            index.modified(&[(ZSET, c"zadd")]);
        }
    }
    fix_index_ttl(ctx, &index);
    added
}

/// Fills `buf` from getrandom(2), the operating system's CSPRNG.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CmdError> {
    let mut filled = 0;
    while filled < buf.len() {
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CmdError::Internal);
        }
        filled += n as usize;
    }
    Ok(())
}

/// Publishes `message` on `channel` (as PUBLISH does; in Cluster, to every node).
pub fn publish(ctx: *mut RedisModuleCtx, channel: &[u8], message: &[u8]) {
    let channel = OwnedString::new(ctx, channel);
    let message = OwnedString::new(ctx, message);
    unsafe { raw::RedisModule_PublishMessage.unwrap()(ctx, channel.inner, message.inner) };
}

/// Replicates `SET key value PXAT at_ms` to replicas and the AOF: the primary's time travels in
/// the effect, never the caller's command.
pub fn replicate_set_pxat(call: &Call, value: &[u8], at_ms: i64) {
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            call.ctx,
            c"SET".as_ptr(),
            c"sbcl".as_ptr(),
            call.key,
            value.as_ptr().cast::<c_char>(),
            value.len(),
            c"PXAT".as_ptr(),
            at_ms as std::ffi::c_longlong,
        );
    }
}

/// Replicates a command whose arguments are the command's key and then `args`.
pub fn replicate_with_key(call: &Call, command: &std::ffi::CStr, args: &[*mut RedisModuleString]) {
    replicate_on(call.ctx, command, call.key, args);
}

/// Replicates a command whose arguments are `key` and then `args`.
pub fn replicate_on(
    ctx: *mut RedisModuleCtx,
    command: &std::ffi::CStr,
    key: *mut RedisModuleString,
    args: &[*mut RedisModuleString],
) {
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx,
            command.as_ptr(),
            c"sv".as_ptr(),
            key,
            args.as_ptr(),
            args.len(),
        );
    }
}

/// A module-owned string, freed on drop.
pub struct OwnedString {
    ctx: *mut RedisModuleCtx,
    pub inner: *mut RedisModuleString,
}

impl OwnedString {
    /// Takes ownership of a string Redis handed us (to be freed with this context).
    pub fn adopt(ctx: *mut RedisModuleCtx, inner: *mut RedisModuleString) -> Self {
        Self { ctx, inner }
    }

    pub fn new(ctx: *mut RedisModuleCtx, bytes: &[u8]) -> Self {
        let inner = unsafe {
            raw::RedisModule_CreateString.unwrap()(ctx, bytes.as_ptr().cast(), bytes.len())
        };
        Self { ctx, inner }
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        unsafe { raw::RedisModule_FreeString.unwrap()(self.ctx, self.inner) };
    }
}

/// Formats into a stack buffer (state values are short), for writes without allocation.
pub struct StackText {
    buf: [u8; 96],
    len: usize,
}

impl StackText {
    pub fn of(value: impl std::fmt::Display) -> Self {
        use std::io::Write;
        let mut text = Self {
            buf: [0; 96],
            len: 0,
        };
        let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
        write!(cursor, "{value}").expect("state values fit in 96 bytes");
        text.len = cursor.position() as usize;
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The type of the key named `name` (Empty when absent or expired).
pub fn key_type(ctx: *mut RedisModuleCtx, name: &[u8]) -> KeyType {
    read_key(ctx, name, |key| {
        unsafe { raw::RedisModule_KeyType.unwrap()(key) }.into()
    })
}

/// The type of the key at `name` as of `now`: a key whose expiry is `now` or earlier is absent
/// (an expiry is the first millisecond of death, as for the indexes). Redis expires keys on
/// access by the time cached when the command started, which can lag the command's own `now`,
/// and keeps a key alive through its expiry's millisecond; a session dead by `now` must not be
/// revived, and the module and its twin must agree.
pub fn live_key_type(ctx: *mut RedisModuleCtx, name: &[u8], now: i64) -> KeyType {
    read_key(ctx, name, |key| {
        match KeyType::from(unsafe { raw::RedisModule_KeyType.unwrap()(key) }) {
            KeyType::Empty => KeyType::Empty,
            _ if abs_expire(key).is_some_and(|at| at <= now) => KeyType::Empty,
            kind => kind,
        }
    })
}

/// A key's absolute expiry in ms, None when it has none: exact where the server has an absolute
/// API (Redis 7.2+, Valkey), else relative to the clock read at the same moment (Redis 7.0).
fn abs_expire(key: *mut RedisModuleKey) -> Option<i64> {
    let at = unsafe {
        match raw::RedisModule_GetAbsExpire {
            Some(get_abs) => get_abs(key),
            None => match raw::RedisModule_GetExpire.unwrap()(key) {
                ttl if ttl >= 0 => now_ms() + ttl,
                none => none,
            },
        }
    };
    (at >= 0).then_some(at)
}

/// The length of the value at `name` (members of a sorted set, fields of a hash; 0 when absent).
pub fn key_len(ctx: *mut RedisModuleCtx, name: &[u8]) -> i64 {
    read_key(
        ctx,
        name,
        |key| unsafe { raw::RedisModule_ValueLength.unwrap()(key) } as i64,
    )
}

/// Runs `f` on the key named `name`, opened for reading.
fn read_key<T>(
    ctx: *mut RedisModuleCtx,
    name: &[u8],
    f: impl FnOnce(*mut RedisModuleKey) -> T,
) -> T {
    let name = OwnedString::new(ctx, name);
    unsafe {
        let key =
            raw::RedisModule_OpenKey.unwrap()(ctx, name.inner, raw::REDISMODULE_READ as c_int);
        let out = f(key);
        raw::RedisModule_CloseKey.unwrap()(key);
        out
    }
}

/// Fails with NOPERM unless the current user may read and write the key `name` (a key the
/// command derives, so Redis did not check it). Without a current user (AOF loading,
/// replication, a module's own context) there is nothing to check.
pub fn check_key_access(ctx: *mut RedisModuleCtx, name: &[u8]) -> Result<(), CmdError> {
    let flags = raw::REDISMODULE_CMD_KEY_ACCESS
        | raw::REDISMODULE_CMD_KEY_INSERT
        | raw::REDISMODULE_CMD_KEY_DELETE
        | raw::REDISMODULE_CMD_KEY_UPDATE;
    check_key_permissions(ctx, name, flags)
}

/// Like [`check_key_access`], for a derived key the command only reads.
pub fn check_key_read(ctx: *mut RedisModuleCtx, name: &[u8]) -> Result<(), CmdError> {
    check_key_permissions(ctx, name, raw::REDISMODULE_CMD_KEY_ACCESS)
}

fn check_key_permissions(
    ctx: *mut RedisModuleCtx,
    name: &[u8],
    flags: u32,
) -> Result<(), CmdError> {
    unsafe {
        let user_name = raw::RedisModule_GetCurrentUserName.unwrap()(ctx);
        if user_name.is_null() {
            return Ok(());
        }
        let user_name = OwnedString::adopt(ctx, user_name);
        let user = raw::RedisModule_GetModuleUserFromUserName.unwrap()(user_name.inner);
        if user.is_null() {
            return Ok(());
        }
        let key = OwnedString::new(ctx, name);
        let status =
            raw::RedisModule_ACLCheckKeyPermissions.unwrap()(user, key.inner, flags as c_int);
        raw::RedisModule_FreeModuleUser.unwrap()(user);
        if status == raw::REDISMODULE_OK as c_int {
            Ok(())
        } else {
            Err(CmdError::NoPerm)
        }
    }
}

/// A reply of a command run through `RedisModule_Call`, freed on drop.
pub struct CallReply(*mut raw::RedisModuleCallReply);

impl CallReply {
    fn kind(&self) -> i32 {
        if self.0.is_null() {
            return raw::REDISMODULE_REPLY_UNKNOWN as i32;
        }
        unsafe { raw::RedisModule_CallReplyType.unwrap()(self.0) }
    }

    /// Whether the reply is nil (or the call failed).
    pub fn is_null(&self) -> bool {
        let kind = self.kind();
        kind == raw::REDISMODULE_REPLY_NULL as i32 || kind == raw::REDISMODULE_REPLY_UNKNOWN as i32
    }

    /// The integer reply (0 for anything else, e.g. when the call failed).
    pub fn integer(&self) -> i64 {
        if self.0.is_null() {
            return 0;
        }
        unsafe { raw::RedisModule_CallReplyInteger.unwrap()(self.0) }
    }

    /// The bulk strings of an array reply (or of a single string reply); none when the call
    /// failed.
    pub fn strings(&self) -> Vec<Vec<u8>> {
        if self.0.is_null() {
            return Vec::new();
        }
        let one = |r: *mut raw::RedisModuleCallReply| -> Vec<u8> {
            let mut len = 0;
            let p = unsafe { raw::RedisModule_CallReplyStringPtr.unwrap()(r, &mut len) };
            if p.is_null() {
                Vec::new()
            } else {
                unsafe { slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec()
            }
        };
        if self.kind() != raw::REDISMODULE_REPLY_ARRAY as i32 {
            return vec![one(self.0)];
        }
        let n = unsafe { raw::RedisModule_CallReplyLength.unwrap()(self.0) };
        (0..n)
            .map(|i| one(unsafe { raw::RedisModule_CallReplyArrayElement.unwrap()(self.0, i) }))
            .collect()
    }
}

impl Drop for CallReply {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { raw::RedisModule_FreeCallReply.unwrap()(self.0) };
        }
    }
}

/// Runs a Redis command from the module. With `replicate`, the command is a write whose exact
/// arguments (absolute times, generated keys) replicate and reach the AOF as the effect, wrapped
/// with the command's other effects in one MULTI/EXEC; a command that changes nothing replicates
/// nothing.
pub fn redis_call(
    ctx: *mut RedisModuleCtx,
    command: &std::ffi::CStr,
    args: &[&[u8]],
    replicate: bool,
) -> CallReply {
    let strings: Vec<OwnedString> = args.iter().map(|a| OwnedString::new(ctx, a)).collect();
    let mut ptrs: Vec<*mut RedisModuleString> = strings.iter().map(|s| s.inner).collect();
    let fmt = if replicate { c"!v" } else { c"v" };
    CallReply(unsafe {
        raw::RedisModule_Call.unwrap()(
            ctx,
            command.as_ptr(),
            fmt.as_ptr(),
            ptrs.as_mut_ptr(),
            ptrs.len(),
        )
    })
}

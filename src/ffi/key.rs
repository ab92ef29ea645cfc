//! Keys: [`Key`] (opened for reading and writing, closed on drop), its string, hash and
//! sorted-set access, the zset iteration guard, and one-shot reads of a key by name.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::Mutex;

use patterns_core::command::CmdError;
use patterns_core::keys::Pairs;
use redis_module::raw::{self, KeyType, RedisModuleKey};

use super::call::{redis_call_args, redis_call_strs, CallArg};
use super::command::{guard, Call};
use super::ctx::{now_ms, Ctx};
use super::string::{OwnedString, Str, Token};

/// A keyspace event's class (`RedisModule_NotifyKeyspaceEvent`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Notify(c_int);

impl Notify {
    pub const GENERIC: Self = Self(raw::REDISMODULE_NOTIFY_GENERIC);
    pub const STRING: Self = Self(raw::REDISMODULE_NOTIFY_STRING);
    pub const HASH: Self = Self(raw::REDISMODULE_NOTIFY_HASH);
    pub const ZSET: Self = Self(raw::REDISMODULE_NOTIFY_ZSET);
    pub const EXPIRED: Self = Self(raw::REDISMODULE_NOTIFY_EXPIRED);
    pub const EVICTED: Self = Self(raw::REDISMODULE_NOTIFY_EVICTED);

    /// These classes and `other`'s.
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub(super) fn bits(self) -> c_int {
        self.0
    }
}

/// A key opened for reading and writing, closed on drop. The module runs with implicit
/// modified-key signals off, so opening for write signals nothing: only [`Key::modified`]
/// does, after a real write. A peek or a denial leaves WATCH and client tracking alone.
///
/// Reads borrow the key (`&self`) and writes borrow it exclusively (`&mut self`): a value read
/// in place ([`Key::string`]) cannot be alive across a write.
pub struct Key<'a> {
    ctx: Ctx<'a>,
    name: Str<'a>,
    raw: NonNull<RedisModuleKey>,
}

impl<'a> Key<'a> {
    /// The command's declared key.
    pub fn open(call: &Call<'a>) -> Self {
        Self::open_str(call.ctx(), call.key())
    }

    /// A key named by one of the command's arguments ([`Call::arg`]).
    pub fn open_arg(ctx: Ctx<'a>, name: Str<'a>) -> Self {
        Self::open_str(ctx, name)
    }

    /// A key the command derives (its name held by the caller).
    pub fn open_named(ctx: Ctx<'a>, name: &'a OwnedString) -> Self {
        Self::open_str(ctx, name.as_str())
    }

    /// The command's declared key opened for reading only (as a read command's lookup sees
    /// it, expiry included), None when it does not exist. Writes through it fail cleanly.
    pub fn open_read(call: &Call<'a>) -> Option<Self> {
        let (ctx, name) = (call.ctx(), call.key());
        let mode = raw::REDISMODULE_READ as c_int;
        // SAFETY: the context and the name are live for 'a, which the key does not outlive.
        let raw = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.as_ptr(), name.as_ptr(), mode) };
        let raw = NonNull::new(raw.cast())?;
        Some(Self { ctx, name, raw })
    }

    fn open_str(ctx: Ctx<'a>, name: Str<'a>) -> Self {
        let mode = (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int;
        // SAFETY: the context and the name are live for 'a, which the key does not outlive.
        let raw = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.as_ptr(), name.as_ptr(), mode) };
        Self {
            ctx,
            name,
            // Opened for writing, a key exists even when its value does not.
            raw: NonNull::new(raw.cast()).expect("a key opened for writing exists"),
        }
    }

    pub fn name(&self) -> Str<'a> {
        self.name
    }

    fn as_ptr(&self) -> *mut RedisModuleKey {
        self.raw.as_ptr()
    }

    pub fn kind(&self) -> KeyType {
        // SAFETY: the key is open until drop.
        unsafe { raw::RedisModule_KeyType.unwrap()(self.as_ptr()) }.into()
    }

    /// Fails with WRONGTYPE unless the key is absent or of type `kind`.
    pub fn expect(&self, kind: KeyType) -> Result<(), CmdError> {
        match self.kind() {
            KeyType::Empty => Ok(()),
            k if k == kind => Ok(()),
            _ => Err(CmdError::WrongType),
        }
    }

    /// The string value read in place, None when absent; WRONGTYPE for another type. The
    /// slice borrows the key, so no write can happen while it lives. The read itself tells a
    /// string (or nothing) from another type; only an empty result asks which it was.
    pub fn string(&self) -> Result<Option<&[u8]>, CmdError> {
        let mut len = 0;
        let mode = raw::REDISMODULE_READ as c_int;
        // SAFETY: the key is open; the server answers null for a value that is no string and
        // a zero length for no value.
        let ptr = unsafe { raw::RedisModule_StringDMA.unwrap()(self.as_ptr(), &mut len, mode) };
        if ptr.is_null() {
            return Err(CmdError::WrongType);
        }
        if len == 0 {
            return Ok((self.kind() == KeyType::String).then_some(&[][..]));
        }
        // SAFETY: `ptr` is the value's `len` bytes; they stay put while the key is open and
        // unwritten, which the borrow of `self` guarantees.
        Ok(Some(unsafe {
            slice::from_raw_parts(ptr.cast::<u8>(), len)
        }))
    }

    /// The string value as `GET` replies it (through the server), copied: unlike a read in
    /// place, it leaves a value the server encoded as an integer as it is.
    pub fn string_by_command(&self) -> Vec<u8> {
        let reply = redis_call_strs(self.ctx, c"GET", &[self.name]);
        reply.strings().pop().unwrap_or_default()
    }

    /// The string value's length, without reading it (a read in place turns a value the server
    /// encoded as an integer into a string of the key's own); None when absent, WRONGTYPE for
    /// another type.
    pub fn string_len(&self) -> Result<Option<usize>, CmdError> {
        match self.kind() {
            KeyType::Empty => Ok(None),
            KeyType::String => Ok(Some(self.len() as usize)),
            _ => Err(CmdError::WrongType),
        }
    }

    /// Runs `SET <key> <value> <option> <operand>` (e.g. `PXAT <ms>`) through the server
    /// (`RedisModule_Call`), so the value is stored as `SET` stores a client's (a small
    /// integer as the server's shared one, where it shares them); the events and the
    /// modified-key signal are `SET`'s own, and nothing is replicated. The old value is deleted first, so this key never points at a
    /// value the call freed (closing the key around the call and opening it again instead
    /// cost about 1,000 instructions more). False when the call failed (nothing written, the
    /// old value gone).
    pub fn set_by_command(&mut self, value: &CStr, [option, operand]: [Str; 2]) -> bool {
        if self.kind() != KeyType::Empty {
            self.delete();
        }
        // Four arguments: each goes by a letter of the format, the value as a client's text.
        let args = [
            CallArg::Str(self.name),
            CallArg::Text(value),
            CallArg::Str(option),
            CallArg::Str(operand),
        ];
        !redis_call_args(self.ctx, c"SET", &args).is_error()
    }

    /// Replaces the string value in place (no new object when the key already holds one).
    pub fn write_string(&mut self, value: &[u8]) {
        // SAFETY: the key is open for writing; truncating an empty key makes it a string.
        unsafe { raw::RedisModule_StringTruncate.unwrap()(self.as_ptr(), value.len()) };
        let mut len = 0;
        let mode = raw::REDISMODULE_WRITE as c_int;
        // SAFETY: the key is open for writing and now holds a string.
        let dma = unsafe { raw::RedisModule_StringDMA.unwrap()(self.as_ptr(), &mut len, mode) };
        if dma.is_null() {
            return;
        }
        // SAFETY: `dma` is the value's `len` writable bytes, no other borrow of them exists
        // (`&mut self`), and at most `len` bytes are copied.
        unsafe { ptr::copy_nonoverlapping(value.as_ptr(), dma.cast::<u8>(), value.len().min(len)) };
    }

    /// Replaces the value with `value`, which the key then shares (no copy of its bytes):
    /// whatever the key held (any type) goes first.
    pub fn set_string(&mut self, value: &OwnedString) {
        // SAFETY: the key is open for writing and the string live for the call; the server
        // takes its own reference to it.
        unsafe { raw::RedisModule_StringSet.unwrap()(self.as_ptr(), value.as_str().as_ptr()) };
    }

    /// The absolute expiry in ms, None when the key has none.
    pub fn expire_at_ms(&self) -> Option<i64> {
        abs_expire(self.raw)
    }

    /// Sets the expiry to the absolute `at_ms`: exactly where the server has an absolute API
    /// (Redis 7.2+, Valkey), else relative to the clock read just before (Redis 7.0).
    pub fn set_expire_at(&mut self, at_ms: i64) {
        // SAFETY: the key is open for writing.
        unsafe {
            match raw::RedisModule_SetAbsExpire {
                Some(set_abs) => set_abs(self.as_ptr(), at_ms),
                None => {
                    raw::RedisModule_SetExpire.unwrap()(self.as_ptr(), (at_ms - now_ms()).max(1))
                }
            }
        };
    }

    /// Deletes the key (its events and replication are the caller's).
    pub fn delete(&mut self) {
        // SAFETY: the key is open for writing.
        unsafe { raw::RedisModule_DeleteKey.unwrap()(self.as_ptr()) };
    }

    /// Signals a real modification (WATCH, client tracking) and fires keyspace events, as
    /// Redis's own commands do: `events` are (class, event name) pairs.
    pub fn modified(&self, events: &[(Notify, &CStr)]) {
        let (ctx, name) = (self.ctx.as_ptr(), self.name.as_ptr());
        // SAFETY: the context and the key's name are live for 'a.
        unsafe { raw::RedisModule_SignalModifiedKey.unwrap()(ctx, name) };
        for (class, event) in events {
            // SAFETY: as above; the event name is a C string the server copies.
            unsafe {
                raw::RedisModule_NotifyKeyspaceEvent.unwrap()(ctx, class.0, event.as_ptr(), name)
            };
        }
    }

    /// Entries in the value (members of a sorted set, fields of a hash).
    pub fn len(&self) -> i64 {
        // SAFETY: the key is open.
        unsafe { raw::RedisModule_ValueLength.unwrap()(self.as_ptr()) as i64 }
    }
}

/// A score range of a sorted set: bounds and whether each is exclusive.
#[derive(Clone, Copy)]
pub struct ScoreRange {
    min: f64,
    max: f64,
    min_exclusive: bool,
    max_exclusive: bool,
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

    /// Exactly `score`.
    pub fn at_f64(score: f64) -> Self {
        Self::new(score, score, false, false)
    }

    /// Scores strictly below `score` (`down`), or strictly above it.
    fn beyond(score: f64, down: bool) -> Self {
        if down {
            Self::new(f64::NEG_INFINITY, score, false, true)
        } else {
            Self::new(score, f64::INFINITY, true, false)
        }
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

/// An iteration over a score range of a sorted set, stopped on drop. It borrows the key, so
/// the set cannot change under it.
struct ZsetCursor<'k, 'a> {
    key: &'k Key<'a>,
    /// Whether the cursor is on an element.
    on: bool,
    /// Whether it walks down from the top.
    from_top: bool,
}

impl<'k, 'a> ZsetCursor<'k, 'a> {
    /// Starts at the range's low end, or its high end with `from_top`.
    fn start(key: &'k Key<'a>, r: ScoreRange, from_top: bool) -> Self {
        // SAFETY: the key is open; iterating a key that is not a sorted set fails cleanly.
        let on = unsafe {
            let start = if from_top {
                raw::RedisModule_ZsetLastInScoreRange
            } else {
                raw::RedisModule_ZsetFirstInScoreRange
            };
            start.unwrap()(
                key.as_ptr(),
                r.min,
                r.max,
                c_int::from(r.min_exclusive),
                c_int::from(r.max_exclusive),
            ) == raw::REDISMODULE_OK as c_int
                && raw::RedisModule_ZsetRangeEndReached.unwrap()(key.as_ptr()) == 0
        };
        Self { key, on, from_top }
    }

    /// Moves on (up, or down from the top); false past the range's end.
    fn advance(&mut self) -> bool {
        // SAFETY: the key is open and its iteration started (`on`); the API's function
        // pointers are set once when the module loads.
        self.on = self.on
            && unsafe {
                let step = if self.from_top {
                    raw::RedisModule_ZsetRangePrev
                } else {
                    raw::RedisModule_ZsetRangeNext
                };
                step.unwrap()(self.key.as_ptr())
            } != 0;
        self.on
    }

    /// The elements from the current one on, counting at most `cap`.
    fn count_upto(&mut self, cap: i64) -> i64 {
        let mut n = i64::from(self.on);
        while n < cap && self.advance() {
            n += 1;
        }
        n
    }

    /// Up to `take` elements from the current one on, leaving the cursor past them.
    fn take(&mut self, take: i64) -> Vec<(OwnedString, f64)> {
        let mut out = Vec::new();
        while out.len() < take.max(0) as usize {
            let Some(element) = self.current() else {
                break;
            };
            out.push(element);
            self.advance();
        }
        out
    }

    /// Moves just past `member`, stepping over at most `limit` other elements first: None
    /// past that, or when the range ends before it.
    fn pass(&mut self, member: &[u8], limit: i64) -> Option<()> {
        let mut stepped = 0;
        while self.current()?.0.bytes() != member {
            stepped += 1;
            if stepped > limit || !self.advance() {
                return None;
            }
        }
        self.advance();
        Some(())
    }

    /// The element under the cursor and its score.
    fn current(&self) -> Option<(OwnedString, f64)> {
        if !self.on {
            return None;
        }
        let mut score = 0.0;
        // SAFETY: the iteration is on an element; the server hands us a new string to free.
        let member = unsafe {
            let raw =
                raw::RedisModule_ZsetRangeCurrentElement.unwrap()(self.key.as_ptr(), &mut score);
            OwnedString::adopt(raw)
        };
        member.map(|m| (m, score))
    }
}

impl Drop for ZsetCursor<'_, '_> {
    fn drop(&mut self) {
        // SAFETY: the key is open; stopping an iteration that failed to start is a no-op.
        unsafe { raw::RedisModule_ZsetRangeStop.unwrap()(self.key.as_ptr()) };
    }
}

/// Sorted-set access through the module's zset API (no command lookups, no reply parsing).
impl Key<'_> {
    /// Elements in the range.
    pub fn zset_count(&self, r: ScoreRange) -> i64 {
        self.zset_count_upto(r, i64::MAX)
    }

    /// Elements in the range, counting at most `cap`: O(log N + min(count, cap)) steps.
    pub fn zset_count_upto(&self, r: ScoreRange, cap: i64) -> i64 {
        ZsetCursor::start(self, r, false).count_upto(cap)
    }

    /// The range's last member (in ZRANGE's order) and its elements counting at most `cap`,
    /// in one walk down from the top.
    pub fn zset_last_and_count(&self, r: ScoreRange, cap: i64) -> (Option<OwnedString>, i64) {
        let mut cursor = ZsetCursor::start(self, r, true);
        let last = cursor.current().map(|(m, _)| m);
        (last, cursor.count_upto(cap))
    }

    /// The members in the range.
    /// The members in the range with their scores, lowest first.
    pub fn zset_scored(&self, r: ScoreRange) -> Vec<(OwnedString, f64)> {
        let mut cursor = ZsetCursor::start(self, r, false);
        let mut scored = Vec::new();
        while let Some(entry) = cursor.current() {
            scored.push(entry);
            cursor.advance();
        }
        scored
    }

    pub fn zset_members(&self, r: ScoreRange) -> Vec<OwnedString> {
        self.zset_first(r, usize::MAX)
    }

    /// The range's first `n` members (fewer when it holds fewer), from its low end.
    pub fn zset_first(&self, r: ScoreRange, n: usize) -> Vec<OwnedString> {
        let mut cursor = ZsetCursor::start(self, r, false);
        let mut members = Vec::new();
        while members.len() < n {
            let Some((member, _)) = cursor.current() else {
                break;
            };
            members.push(member);
            cursor.advance();
        }
        members
    }

    /// The score of the range's `n`th element from its low end (0: the first), None when the
    /// range holds fewer.
    pub fn zset_nth_score(&self, r: ScoreRange, n: i64) -> Option<f64> {
        let mut cursor = ZsetCursor::start(self, r, false);
        let found = (0..n).all(|_| cursor.advance());
        found.then(|| cursor.current().map(|(_, s)| s)).flatten()
    }

    /// Up to `take` elements after skipping `skip`, walking from the lowest score up, or from
    /// the highest down with `from_top` (ZRANGE's and ZREVRANGE's order): O(skip + take).
    pub fn zset_walk(&self, from_top: bool, skip: i64, take: i64) -> Vec<(OwnedString, f64)> {
        let mut cursor = ZsetCursor::start(self, ScoreRange::all(), from_top);
        if !(0..skip).all(|_| cursor.advance()) {
            return Vec::new();
        }
        cursor.take(take)
    }

    /// Up to `take` elements next to `member` (of score `score`), walking away from it: up
    /// (ZRANGE's order), or down with `from_top`. The walk starts at its score's first element
    /// that way and steps over at most `limit` of them to find it: None past that, or when it
    /// is not there.
    pub fn zset_walk_from(
        &self,
        member: &[u8],
        score: f64,
        from_top: bool,
        take: i64,
        limit: i64,
    ) -> Option<Vec<(OwnedString, f64)>> {
        let r = if from_top {
            ScoreRange::new(f64::NEG_INFINITY, score, false, false)
        } else {
            ScoreRange::new(score, f64::INFINITY, false, false)
        };
        let mut cursor = ZsetCursor::start(self, r, from_top);
        cursor.pass(member, limit)?;
        Some(cursor.take(take))
    }

    /// The highest score, None when the set is empty.
    pub fn zset_top_score(&self) -> Option<f64> {
        ZsetCursor::start(self, ScoreRange::all(), true)
            .current()
            .map(|(_, s)| s)
    }

    /// A member's score, None when it is not in the set.
    pub fn zset_score(&self, member: Str) -> Option<f64> {
        let mut score = 0.0;
        // SAFETY: the key is open and the member live for the call.
        let status = unsafe {
            raw::RedisModule_ZsetScore.unwrap()(self.as_ptr(), member.as_ptr(), &mut score)
        };
        (status == raw::REDISMODULE_OK as c_int).then_some(score)
    }

    /// Removes a member; whether it was there.
    pub fn zset_remove_one(&mut self, member: Str) -> bool {
        let mut deleted: c_int = 0;
        // SAFETY: the key is open for writing and the member live for the call.
        unsafe { raw::RedisModule_ZsetRem.unwrap()(self.as_ptr(), member.as_ptr(), &mut deleted) };
        deleted != 0
    }

    /// Adds or updates a member: what became of it.
    pub fn zset_put(&mut self, score: f64, member: Str) -> Put {
        let mut flags: c_int = 0;
        // SAFETY: the key is open for writing and the member live for the call.
        unsafe {
            raw::RedisModule_ZsetAdd.unwrap()(self.as_ptr(), score, member.as_ptr(), &mut flags)
        };
        Put::from_flags(flags)
    }

    /// Adds `by` to a member's score (from 0 when absent): what became of it and its score,
    /// None when the sum is not a number (nothing changes).
    pub fn zset_incr(&mut self, by: f64, member: Str) -> Option<(Put, f64)> {
        let (mut flags, mut score): (c_int, f64) = (0, 0.0);
        // SAFETY: the key is open for writing and the member live for the call.
        let status = unsafe {
            raw::RedisModule_ZsetIncrby.unwrap()(
                self.as_ptr(),
                by,
                member.as_ptr(),
                &mut flags,
                &mut score,
            )
        };
        (status == raw::REDISMODULE_OK as c_int).then(|| (Put::from_flags(flags), score))
    }

    /// The first member among the range's first `n` (from its low end) that `wanted` picks,
    /// and its index there; the walk stops at it.
    pub fn zset_find_first(
        &self,
        r: ScoreRange,
        n: i64,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Option<(i64, OwnedString)> {
        let mut cursor = ZsetCursor::start(self, r, false);
        for at in 0..n {
            let (member, _) = cursor.current()?;
            if wanted(member.bytes()) {
                return Some((at, member));
            }
            cursor.advance();
        }
        None
    }

    /// The first member whose score is exactly `score`, in ZRANGE's order (ZREVRANGE's with
    /// `from_top`).
    pub fn zset_first_at(&self, score: f64, from_top: bool) -> Option<OwnedString> {
        let r = ScoreRange::at_f64(score);
        ZsetCursor::start(self, r, from_top)
            .current()
            .map(|(m, _)| m)
    }

    /// Whether some member's score is exactly `score` (O(log N), whatever their number).
    pub fn zset_any_at(&self, score: f64) -> bool {
        ZsetCursor::start(self, ScoreRange::new(score, score, false, false), false).on
    }

    /// Up to `take` elements after skipping `skip`, from the highest score down with each
    /// score's elements lowest first (a tie-break order key read best first: oldest stamp
    /// first within a score). O(skip + take) steps and one O(log N) seek per score.
    pub fn zset_walk_groups_down(&self, skip: i64, take: i64) -> Vec<(OwnedString, f64)> {
        let mut out = Vec::new();
        self.walk_groups(ScoreRange::all(), true, skip, take, &mut out);
        out
    }

    /// Up to `take` elements after `member` (of score `score`) in the order of
    /// [`Key::zset_walk_groups_down`] (`down`), or back towards its start: higher scores next,
    /// each score's elements highest first. The walk steps over at most `limit` elements of
    /// its score to find `member`: None past that, or when it is not there.
    pub fn zset_walk_groups_from(
        &self,
        member: &[u8],
        score: f64,
        down: bool,
        take: i64,
        limit: i64,
    ) -> Option<Vec<(OwnedString, f64)>> {
        let mut out = {
            let mut group = ZsetCursor::start(self, ScoreRange::at_f64(score), !down);
            group.pass(member, limit)?;
            group.take(take)
        };
        self.walk_groups(ScoreRange::beyond(score, down), down, 0, take, &mut out);
        Some(out)
    }

    /// Appends elements of the scores in `groups` to `out` until it holds `take`, after
    /// skipping `skip`: score by score, highest score first with each score's elements lowest
    /// first (`down`), or lowest score first with each score's elements highest first.
    fn walk_groups(
        &self,
        mut groups: ScoreRange,
        down: bool,
        mut skip: i64,
        take: i64,
        out: &mut Vec<(OwnedString, f64)>,
    ) {
        while (out.len() as i64) < take {
            let Some((_, score)) = ZsetCursor::start(self, groups, down).current() else {
                break;
            };
            let mut group = ZsetCursor::start(self, ScoreRange::at_f64(score), !down);
            while skip > 0 && group.on {
                group.advance();
                skip -= 1;
            }
            out.extend(group.take(take - out.len() as i64));
            groups = ScoreRange::beyond(score, down);
        }
    }

    /// Removes members; how many were there.
    pub fn zset_remove(&mut self, members: &[OwnedString]) -> usize {
        members
            .iter()
            .filter(|m| self.zset_remove_one(m.as_str()))
            .count()
    }
}

/// What a write did to a sorted-set member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    /// A new member.
    Added,
    /// A member's score changed.
    Updated,
    /// The member was there with that score.
    Unchanged,
}

impl Put {
    fn from_flags(flags: c_int) -> Self {
        if flags & raw::REDISMODULE_ZADD_ADDED as c_int != 0 {
            Put::Added
        } else if flags & raw::REDISMODULE_ZADD_UPDATED as c_int != 0 {
            Put::Updated
        } else {
            Put::Unchanged
        }
    }
}

/// A hash field's name: a C string as it is, or text made one (on the stack when short, so a
/// name allocates nothing).
pub trait FieldName {
    fn with_c_str<T>(&self, f: impl FnOnce(&CStr) -> T) -> T;
}

impl FieldName for CStr {
    fn with_c_str<T>(&self, f: impl FnOnce(&CStr) -> T) -> T {
        f(self)
    }
}

impl FieldName for Token {
    fn with_c_str<T>(&self, f: impl FnOnce(&CStr) -> T) -> T {
        f(self.c_str())
    }
}

impl FieldName for str {
    fn with_c_str<T>(&self, f: impl FnOnce(&CStr) -> T) -> T {
        let mut buf = [0u8; 32];
        if let Some(name) = buf.get_mut(..self.len()) {
            name.copy_from_slice(self.as_bytes());
            if let Ok(c) = CStr::from_bytes_with_nul(&buf[..=self.len()]) {
                return f(c);
            }
        }
        f(&CString::new(self).expect("field names hold no NUL"))
    }
}

/// Hash access through the module's hash API.
impl Key<'_> {
    /// A hash field's value, None when the field (or the hash) is absent.
    pub fn hash_field(&self, field: &(impl FieldName + ?Sized)) -> Option<OwnedString> {
        field.with_c_str(|field| {
            // SAFETY: the key is open; CFIELDS names the field by a C string, live for the call.
            unsafe { hash_value(self.raw, CFIELDS, field.as_ptr().cast()) }
        })
    }

    /// The hash's fields and values, flat (`field, value, ...`), in `HGETALL`'s order, read
    /// through `RedisModule_ScanKey`; None when that order is not known, and the caller reads
    /// the hash another way. A listpack-encoded hash (any hash of at most
    /// `hash-max-listpack-entries` fields with short values) comes whole from the first scan
    /// step, in its stored order, which is `HGETALL`'s; a hash table comes a bucket per step,
    /// in the scan's own order, so the first step does not finish and the read gives up.
    pub fn hash_pairs(&self) -> Option<Pairs> {
        unsafe extern "C" fn collect(
            _key: *mut RedisModuleKey,
            field: *mut raw::RedisModuleString,
            value: *mut raw::RedisModuleString,
            out: *mut c_void,
        ) {
            guard((), || {
                // SAFETY: `out` is the `Vec` passed to ScanKey below, borrowed only by this
                // callback while the scan runs; the server's strings live for the call.
                let (out, field, value) = unsafe {
                    (
                        &mut *out.cast::<Pairs>(),
                        Str::from_raw(field),
                        Str::from_raw(value),
                    )
                };
                out.push(field.bytes());
                out.push(value.bytes());
            });
        }
        if self.kind() != KeyType::Hash {
            return None;
        }
        // Room for short fields and values: a listpack's (the scan's one step) are short. In
        // the buffers a reply gave back, when there are some (`recycle_pairs`).
        let n = 2 * self.len().max(0) as usize;
        let mut out = spare_pairs();
        out.clear_for(n, 16 * n);
        // SAFETY: the key is open and holds a hash; the cursor is made and destroyed here; the
        // callback gets `out` (alive and otherwise unborrowed until ScanKey returns).
        let more = unsafe {
            let cursor = raw::RedisModule_ScanCursorCreate.unwrap()();
            let more = raw::RedisModule_ScanKey.unwrap()(
                self.as_ptr(),
                cursor,
                Some(collect),
                ptr::addr_of_mut!(out).cast::<c_void>(),
            );
            raw::RedisModule_ScanCursorDestroy.unwrap()(cursor);
            more
        };
        (more == 0 && out.len() as i64 == 2 * self.len()).then_some(out)
    }

    /// A hash field's value, the field named by any bytes (the server's string, not a C
    /// string); None when the field (or the hash) is absent.
    pub fn hash_get(&self, field: Str) -> Option<OwnedString> {
        hash_get(self.raw, field)
    }

    /// Sets a field named by any bytes (creating the hash when the key is empty).
    pub fn hash_put(&mut self, field: Str, value: Str) {
        let (field, value) = (field.as_ptr().cast(), value.as_ptr().cast());
        // SAFETY: the key is open for writing (`&mut self`); without flags the field is a
        // server string, and the value a live string of which the server takes its own
        // reference.
        unsafe { hash_one(self.raw, HashCall::Set, SERVER_FIELDS, field, value) };
    }

    /// Deletes a field named by any bytes; whether it was there (a hash left empty is
    /// deleted).
    pub fn hash_delete(&mut self, field: Str) -> bool {
        let (field, delete) = (
            field.as_ptr().cast(),
            raw::REDISMODULE_HASH_DELETE.cast_mut(),
        );
        // SAFETY: the key is open for writing (`&mut self`); without flags the field is a
        // server string, and REDISMODULE_HASH_DELETE as its value deletes it.
        unsafe { hash_one(self.raw, HashCall::Set, SERVER_FIELDS, field, delete.cast()) > 0 }
    }

    /// Sets a field (creating the hash when the key is empty).
    pub fn hash_set(&mut self, field: &(impl FieldName + ?Sized), value: &[u8]) {
        let value = OwnedString::new(self.ctx, value);
        field.with_c_str(|field| {
            // SAFETY: the key is open for writing (`&mut self`); CFIELDS names the field by a
            // C string, and the value is a live string of which the server takes its own
            // reference.
            unsafe {
                hash_one(
                    self.raw,
                    HashCall::Set,
                    CFIELDS,
                    field.as_ptr().cast(),
                    value.as_str().as_ptr().cast(),
                )
            };
        });
    }
}

/// A hash read's buffers, back from the reply that sent them: the next read fills them instead
/// of allocating (a session read is a hot path). A static, not a thread-local: a thread-local
/// with a destructor keeps the library mapped after `MODULE UNLOAD`, so a later `MODULE LOAD`
/// would find the old statics. At unload its few kilobytes stay allocated, as tokens' do.
static SPARE_PAIRS: Mutex<Option<Pairs>> = Mutex::new(None);

/// The buffers `recycle_pairs` kept, or none.
fn spare_pairs() -> Pairs {
    SPARE_PAIRS
        .lock()
        .ok()
        .and_then(|mut spare| spare.take())
        .unwrap_or_default()
}

/// Keeps `pairs`' buffers for the next [`Key::hash_pairs`], unless they are large (a big hash
/// read once must not hold its memory).
pub(super) fn recycle_pairs(pairs: Pairs) {
    const KEPT_BYTES: usize = 4096;
    if pairs.capacity() <= KEPT_BYTES {
        if let Ok(mut spare) = SPARE_PAIRS.lock() {
            *spare = Some(pairs);
        }
    }
}

/// A key the command derives, opened by a name it owns and closed on drop: kept open from a
/// check to the write that follows it (one lookup instead of two).
pub struct OwnedKey<'a> {
    ctx: Ctx<'a>,
    raw: NonNull<RedisModuleKey>,
    name: OwnedString,
}

impl<'a> OwnedKey<'a> {
    /// Opened by a name the caller made (and may have checked the ACL of).
    pub fn open_named(ctx: Ctx<'a>, name: OwnedString) -> Self {
        let raw = ManuallyDrop::new(Key::open_str(ctx, name.as_str())).raw;
        Self { ctx, raw, name }
    }

    pub fn name(&self) -> &[u8] {
        self.name.bytes()
    }

    /// A derived key opened for reading only (as a read command's lookup sees it), by a name
    /// the caller made (and may have checked the ACL of); None when it does not exist.
    pub fn open_read(ctx: Ctx<'a>, name: OwnedString) -> Option<Self> {
        let mode = raw::REDISMODULE_READ as c_int;
        // SAFETY: the context and the name are live; the name is kept with the key, which is
        // closed on drop before the name is freed.
        let raw = unsafe {
            raw::RedisModule_OpenKey.unwrap()(ctx.as_ptr(), name.as_str().as_ptr(), mode)
        };
        let raw = NonNull::new(raw.cast())?;
        Some(Self { ctx, raw, name })
    }

    /// Runs `f` on the open key for reading (a view that does not close it).
    pub fn read<R>(&self, f: impl FnOnce(&Key<'_>) -> R) -> R {
        let key = ManuallyDrop::new(Key {
            ctx: self.ctx,
            name: self.name.as_str(),
            raw: self.raw,
        });
        f(&key)
    }

    /// Runs `f` on the open key (a view that borrows this one and does not close it).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Key<'_>) -> R) -> R {
        let mut key = ManuallyDrop::new(Key {
            ctx: self.ctx,
            name: self.name.as_str(),
            raw: self.raw,
        });
        f(&mut key)
    }
}

impl Drop for OwnedKey<'_> {
    fn drop(&mut self) {
        // SAFETY: the key was opened by `open` and is closed only here, before its name is
        // freed (fields drop after `drop`).
        unsafe { raw::RedisModule_CloseKey.unwrap()(self.raw.as_ptr()) };
    }
}

/// The hash API's variadic calls (`RedisModule_HashGet`, `RedisModule_HashSet`): a key, flags,
/// then (field, value) pairs ended by a null.
type HashFn = unsafe extern "C" fn(*mut RedisModuleKey, c_int, ...) -> c_int;

/// Which of the hash API's calls [`hash_one`] makes.
#[derive(Clone, Copy)]
enum HashCall {
    Get,
    Set,
}

/// How a hash call's field is named: by a C string, or (no flags) by a server string.
const CFIELDS: c_int = raw::REDISMODULE_HASH_CFIELDS as c_int;
const SERVER_FIELDS: c_int = raw::REDISMODULE_HASH_NONE as c_int;

/// The one call of the hash API's variadic functions: `call` on one field of `key`, named by
/// `field` as `flags` say, with `value`; what the server returns.
///
/// # Safety
/// `key` is open (for writing, for a set); `field` is a live name of the kind `flags` say;
/// `value` is what the call takes after a field: for a get, where the server stores the value
/// it hands over; for a set, a live string (or `REDISMODULE_HASH_DELETE`).
unsafe fn hash_one(
    key: NonNull<RedisModuleKey>,
    call: HashCall,
    flags: c_int,
    field: *const c_void,
    value: *mut c_void,
) -> c_int {
    let f: Option<HashFn> = match call {
        HashCall::Get => raw::RedisModule_HashGet,
        HashCall::Set => raw::RedisModule_HashSet,
    };
    // SAFETY: as the caller promises; the list ends with a null.
    unsafe { f.unwrap()(key.as_ptr(), flags, field, value, ptr::null::<c_char>()) }
}

/// A hash field's value, None when absent (or not a hash).
///
/// # Safety
/// `key` is open and `field` a live name of the kind `flags` say.
unsafe fn hash_value(
    key: NonNull<RedisModuleKey>,
    flags: c_int,
    field: *const c_void,
) -> Option<OwnedString> {
    let mut value: *mut raw::RedisModuleString = ptr::null_mut();
    // SAFETY: as the caller promises; the server stores a new string (ours to free) in
    // `value`, which outlives the call, or nothing.
    unsafe {
        hash_one(
            key,
            HashCall::Get,
            flags,
            field,
            ptr::addr_of_mut!(value).cast(),
        )
    };
    // SAFETY: `value` is null or a string the server handed over.
    unsafe { OwnedString::adopt(value) }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        // SAFETY: the key is open, and closed only here.
        unsafe { raw::RedisModule_CloseKey.unwrap()(self.as_ptr()) };
    }
}

/// A key's absolute expiry in ms, None when it has none: exact where the server has an
/// absolute API (Redis 7.2+, Valkey), else relative to the clock read at the same moment
/// (Redis 7.0).
fn abs_expire(key: NonNull<RedisModuleKey>) -> Option<i64> {
    let key = key.as_ptr();
    // SAFETY: the key is open (callers hold it open); neither call writes.
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

/// A hash field's value, the field named by any bytes; None when absent (or not a hash).
fn hash_get(key: NonNull<RedisModuleKey>, field: Str) -> Option<OwnedString> {
    // SAFETY: the key is open (callers hold it open); without flags the field is a server
    // string, live for the call.
    unsafe { hash_value(key, SERVER_FIELDS, field.as_ptr().cast()) }
}

/// The type of the key named `name` (Empty when absent or expired).
pub fn key_type(ctx: Ctx, name: &[u8]) -> KeyType {
    read_key(ctx, name, |key| key.map_or(KeyType::Empty, type_of))
}

fn type_of(key: NonNull<RedisModuleKey>) -> KeyType {
    // SAFETY: the key is open for the caller's closure run.
    unsafe { raw::RedisModule_KeyType.unwrap()(key.as_ptr()) }.into()
}

/// Runs `f` on the key named `name`, opened for reading (None when it does not exist).
fn read_key<T>(ctx: Ctx, name: &[u8], f: impl FnOnce(Option<NonNull<RedisModuleKey>>) -> T) -> T {
    let name = OwnedString::new(ctx, name);
    let mode = raw::REDISMODULE_READ as c_int;
    // SAFETY: the context and the name are live; reading opens no value.
    let key =
        unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.as_ptr(), name.as_str().as_ptr(), mode) };
    let key = NonNull::new(key.cast::<RedisModuleKey>());
    let out = f(key);
    if let Some(key) = key {
        // SAFETY: the key was opened above and is closed once.
        unsafe { raw::RedisModule_CloseKey.unwrap()(key.as_ptr()) };
    }
    out
}

//! Binds the cache family (`patterns_core::cache`) to Redis. An entry is one string read in
//! place through the key API (the hot path: one key open, no copy until the reply, and a hit
//! writes nothing); every write of an entry (SET, FILL, a lease's grant or release) writes the
//! whole string through the key API, replicated as `SET key bytes PXAT stale_until` with
//! absolute times, as the Lua twin writes it; tag indexes go through the shared expiring index.
//! Entries of the layout before (hashes) are read too, and written in the compact layout
//! whenever the entry is written. Random draws (XFetch's, lease tokens) happen here on the
//! primary only: a replica or an AOF replay receives the effects, never the command.
//!
//! Each command validates everything (arguments, types, ACL of the keys it derives) before its
//! first write: an error writes nothing.
#![deny(unsafe_code)]

use patterns_core::cache::{
    self as c, after_giving_up, check_beta, decide, invalidated_at_us, key_expiry, lease_until,
    voids, Entry, Lease, Outcome, Times, DRAW_MAX,
};
use patterns_core::command::{Args, CmdError};
use patterns_core::keys::{encode_id, ID_BYTES};

use std::ffi::CString;
use std::sync::OnceLock;

use crate::command;
use crate::config;
use crate::ffi::{
    check_key_access, fill_random, key_type, now_ms, precise_now_us, redis_call, Call, Command,
    Ctx, Key, KeyType, Notify, OwnedString, Part, Reply, ScoreRange, Str, Value,
};
use crate::index::update_index;
use crate::stats::{self, Stat};
use crate::text::StackText;

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(c::SET, set),
    command!(c::GET, get),
    command!(c::FILL, fill),
    command!(c::TAG, tag),
    command!(c::INVALIDATE, invalidate),
];

/// An entry as stored: the compact layout's string, read in place (it borrows the open key),
/// or an old-layout hash's fields, in `c::FIELDS` order.
enum Stored<'k> {
    Compact(&'k [u8]),
    Hash([Option<OwnedString>; c::FIELDS.len()]),
}

/// `c::FIELDS` as C strings, for reading old-layout entries.
fn field_names() -> &'static [CString; c::FIELDS.len()] {
    static NAMES: OnceLock<[CString; c::FIELDS.len()]> = OnceLock::new();
    NAMES.get_or_init(|| c::FIELDS.map(|f| CString::new(f).expect("no NUL")))
}

impl<'k> Stored<'k> {
    /// What the open key holds: None when absent; WRONGTYPE unless a string or a hash,
    /// BadState for a hash holding a field an entry has not (`entry` checks the rest).
    /// Inlined with `entry` (each has its old-layout branch apart): a hit's entry is then
    /// decoded where `get` reads it, not built and moved through two results.
    #[inline(always)]
    fn read(key: &'k Key) -> Result<Option<Self>, CmdError> {
        // The string first: a compact entry's type is checked once.
        match key.string() {
            Err(CmdError::WrongType) if key.kind() == KeyType::Hash => {
                Self::read_hash(key).map(Some)
            }
            read => Ok(read?.map(Self::Compact)),
        }
    }

    /// An old-layout entry's fields. Lookups stop once every field of the hash is found: an
    /// entry without a lease (its value's fields come first) costs four lookups, not seven.
    #[inline(never)]
    fn read_hash(key: &Key) -> Result<Self, CmdError> {
        let len = key.len();
        let mut found = 0;
        let mut fields: [Option<OwnedString>; c::FIELDS.len()] = Default::default();
        for (slot, field) in fields.iter_mut().zip(field_names()) {
            if found == len {
                break;
            }
            *slot = key.hash_field(field.as_c_str());
            found += i64::from(slot.is_some());
        }
        if found != len {
            return Err(CmdError::BadState(c::NOT_CACHE));
        }
        Ok(Self::Hash(fields))
    }

    /// The entry: WRONGTYPE for a string that is not one, BadState for such a hash.
    #[inline(always)]
    fn entry(&self) -> Result<Entry<'_>, CmdError> {
        match self {
            Self::Compact(bytes) => Entry::decode(bytes).ok_or(CmdError::WrongType),
            Self::Hash(fields) => hash_entry(fields),
        }
    }
}

/// An old-layout entry from its hash's fields (in `c::FIELDS` order).
#[inline(never)]
fn hash_entry(fields: &[Option<OwnedString>; c::FIELDS.len()]) -> Result<Entry<'_>, CmdError> {
    let pairs: Vec<(&[u8], &[u8])> = c::FIELDS
        .iter()
        .zip(fields)
        .filter_map(|(name, v)| Some((name.as_bytes(), v.as_ref()?.bytes())))
        .collect();
    Entry::parse(&pairs)
}

/// Fails unless the open key is absent or holds an entry.
fn check_entry(key: &Key) -> Result<(), CmdError> {
    match Stored::read(key)? {
        Some(stored) => stored.entry().map(drop),
        None => Ok(()),
    }
}

/// Replaces whatever the key holds (an old-layout entry too) with the entry's `bytes`,
/// expiring at `at`: through the key API, replicated as `SET key bytes PXAT at`, firing the
/// events that command fires (the twin's write). The key and the replicated command share one
/// string, made to size.
fn write_entry(ctx: Ctx, key: &mut Key, bytes: &[u8], at: i64) {
    let value = OwnedString::new(ctx, bytes);
    key.set_string(&value);
    key.set_expire_at(at);
    ctx.replicate(c"SET", (key.name(), value.as_str(), c"PXAT", at));
    key.modified(&[(Notify::STRING, c"set"), (Notify::GENERIC, c"expire")]);
}

/// Deletes the key, replicated as `DEL` with its event.
fn delete_entry(ctx: Ctx, key: &mut Key) {
    key.delete();
    ctx.replicate(c"DEL", (key.name(),));
    key.modified(&[(Notify::GENERIC, c"del")]);
}

/// Fails unless every tag may be an index: absent or a sorted set, and not the key itself.
fn check_tags(ctx: Ctx, key: &[u8], tags: &[&[u8]]) -> Result<(), CmdError> {
    for tag in tags {
        if *tag == key {
            return Err(CmdError::BadState(c::TAG_IS_KEY));
        }
        if !matches!(key_type(ctx, tag), KeyType::Empty | KeyType::ZSet) {
            return Err(CmdError::WrongType);
        }
    }
    Ok(())
}

/// A validated SET or FILL: the value, its times and its tags.
struct Store<'a> {
    value: &'a [u8],
    times: Times,
    tags: &'a [&'a [u8]],
}

impl<'a> Store<'a> {
    /// Reads the value, ttl_ms and the options; checks the tags.
    fn parse(ctx: Ctx, key: &[u8], p: &Args<'a>, now: i64) -> Result<Self, CmdError> {
        let (delta, grace) = (p.int("DELTA"), p.int("GRACE"));
        let times = Times::new(now, p.int("ttl_ms"), grace, delta)?;
        let tags = p.list("TAGS");
        check_tags(ctx, key, tags)?;
        Ok(Self {
            value: p.text("value"),
            times,
            tags,
        })
    }

    /// Replaces the entry (voiding any lease) and lists it under its tags, each write
    /// replicated as the command the Lua twin makes, in its order.
    fn write(&self, ctx: Ctx, key: &mut Key, now: i64) {
        let t = self.times;
        let entry = Entry {
            value: Some((self.value, t)),
            lease: None,
        };
        write_entry(ctx, key, &entry.encode(), t.stale_until);
        for tag in self.tags {
            update_index(
                ctx,
                tag,
                now,
                None,
                Some((t.stale_until, key.name().bytes())),
            );
        }
    }
}

// CACHE.SET key value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]
fn set(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&c::SET)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let now = now_ms();
    let store = Store::parse(ctx, key, &p, now)?;
    let mut entry = Key::open(call);
    check_entry(&entry)?;
    store.write(ctx, &mut entry, now);
    Ok(Reply::Simple(c"OK"))
}

/// What a FILL does once its lease is checked.
enum Filled {
    Refused,
    /// The lease can no longer fill: the entry's bytes without it (expiring at the value's
    /// end), or None when the key goes.
    GiveUp(Option<(Vec<u8>, i64)>),
    Write,
}

// CACHE.FILL key lease value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]
fn fill(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&c::FILL)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let now = now_ms();
    let store = Store::parse(ctx, key, &p, now)?;
    let lease = p.text("lease");
    let mut entry = Key::open(call);
    let filled = match Stored::read(&entry)? {
        None => Filled::Refused,
        Some(stored) => {
            let e = stored.entry()?;
            if !e.holds(lease, now) {
                Filled::Refused
            } else if invalidated_since(ctx, store.tags, e.leased_at()) {
                Filled::GiveUp(without_lease(&e, now))
            } else {
                Filled::Write
            }
        }
    };
    match filled {
        Filled::Write => {
            store.write(ctx, &mut entry, now);
            stats::bump(Stat::CacheFillsAccepted);
            return Ok(Reply::Simple(c"OK"));
        }
        Filled::GiveUp(Some((bytes, at))) => write_entry(ctx, &mut entry, &bytes, at),
        Filled::GiveUp(None) => delete_entry(ctx, &mut entry),
        Filled::Refused => {}
    }
    stats::bump(Stat::CacheFillsRefused);
    Ok(Reply::Null)
}

/// Whether any of `tags` was invalidated at or after `leased_us` (its marker says so).
fn invalidated_since(ctx: Ctx, tags: &[&[u8]], leased_us: i64) -> bool {
    tags.iter().any(|tag| {
        let name = OwnedString::new(ctx, tag);
        let score = Key::open_named(ctx, &name).zset_score(name.as_str());
        score.is_some_and(|s| voids(invalidated_at_us(s), leased_us))
    })
}

/// A lease that can no longer fill is dropped, so readers get a new one instead of waiting on
/// it: the entry keeps its live value (and then expires with it), or the key goes (None).
fn without_lease(entry: &Entry, now: i64) -> Option<(Vec<u8>, i64)> {
    let stale_until = after_giving_up(entry, now)?;
    let kept = Entry {
        value: entry.value,
        lease: None,
    };
    Some((kept.encode(), stale_until))
}

/// A fresh lease token: 128 bits from the CSPRNG, base64url (22 characters).
fn new_lease() -> Result<Vec<u8>, CmdError> {
    let mut raw = [0u8; ID_BYTES];
    fill_random(&mut raw)?;
    Ok(encode_id(&raw).to_vec())
}

/// XFetch's draw: uniform in `1..=2^53`.
fn new_draw() -> Result<u64, CmdError> {
    let mut raw = [0u8; 8];
    fill_random(&mut raw)?;
    Ok((u64::from_le_bytes(raw) >> 11) + 1)
}

/// The entry once the lease `token` is granted from now (recorded in µs) until `until`, and
/// when its key then expires: a miss drops whatever is left of the value; the key lives until
/// the later of its value's end and the lease's.
fn granted(entry: Option<&Entry>, outcome: Outcome, token: &[u8], until: i64) -> (Vec<u8>, i64) {
    let value = match outcome {
        Outcome::Miss => None,
        _ => entry.and_then(|e| e.value),
    };
    let lease = Lease {
        token,
        until,
        since: precise_now_us(),
    };
    let at = key_expiry(value.map(|(_, t)| t), Some(until));
    let bytes = Entry {
        value,
        lease: Some(lease),
    }
    .encode();
    (bytes, at)
}

/// `CACHE.GET`'s lease: its `LEASE`, else `patterns.cache-lease-ms`. (Its arguments are
/// options only and `BETA`'s value is a number, so a `LEASE` word is the option.)
fn lease_ms(args: &[&[u8]], parsed: i64) -> i64 {
    match args.iter().any(|a| a.eq_ignore_ascii_case(b"LEASE")) {
        true => parsed,
        false => config::CACHE_LEASE_MS.get(),
    }
}

/// How long a `WAIT` reply tells the client to wait: until the lease ends, at most
/// `patterns.cache-wait-hint-ms`.
fn wait_hint(entry: &Option<Entry>, now: i64) -> i64 {
    let until = entry
        .as_ref()
        .and_then(|e| e.lease.as_ref())
        .map_or(now, |l| l.until);
    (until - now).min(config::CACHE_WAIT_HINT_MS.get())
}

// CACHE.GET key [BETA beta] [LEASE lease_ms]
fn get(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&c::GET)?;
    let beta = check_beta(p.float("BETA"))?;
    let ctx = call.ctx();
    let now = now_ms();
    let until = lease_until(now, lease_ms(call.rest(), p.int("LEASE")))?;
    let mut key = Key::open(call);
    let stored = Stored::read(&key)?;
    let entry = match &stored {
        Some(stored) => Some(stored.entry()?),
        None => None,
    };
    // The draw comes from the CSPRNG only when it can decide anything.
    let draw = match c::draw_matters(now, entry.as_ref(), beta) {
        true => new_draw()?,
        false => DRAW_MAX,
    };
    let outcome = decide(now, entry.as_ref(), beta, draw);
    stats::bump(match outcome {
        Outcome::Hit => Stat::CacheHit,
        Outcome::Refresh => Stat::CacheRefresh,
        Outcome::Miss => Stat::CacheMiss,
        Outcome::Stale => Stat::CacheStale,
        Outcome::Wait { .. } => Stat::CacheWait,
    });
    let word = outcome.word().as_bytes();
    // A read that writes nothing replies from the open key: the value is not copied.
    if let (Outcome::Hit | Outcome::Stale, Some((v, _))) =
        (outcome, entry.as_ref().and_then(|e| e.value))
    {
        return Ok(ctx.reply_now(&[Part::Bulk(word), Part::Bulk(v), Part::Null]));
    }
    let value = match entry.as_ref().and_then(|e| e.value) {
        Some((v, _)) if !matches!(outcome, Outcome::Miss | Outcome::Wait { .. }) => {
            Value::Bulk(v.to_vec())
        }
        _ => Value::Null,
    };
    let extra = match outcome {
        Outcome::Hit | Outcome::Stale => Value::Null,
        Outcome::Wait { .. } => Value::Int(wait_hint(&entry, now)),
        Outcome::Refresh | Outcome::Miss => {
            let token = new_lease()?;
            let (bytes, at) = granted(entry.as_ref(), outcome, &token, until);
            drop(stored);
            write_entry(ctx, &mut key, &bytes, at);
            Value::Bulk(token)
        }
    };
    Ok(Reply::Three([Value::Static(word), value, extra]))
}

// CACHE.TAG key tag [tag ...]
fn tag(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&c::TAG)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let tags = p.trailing();
    check_tags(ctx, key, tags)?;
    let now = now_ms();
    let entry = Key::open(call);
    let stored = Stored::read(&entry)?;
    let live = stored.as_ref().map(Stored::entry).transpose()?;
    let Some((_, t)) = live.and_then(|e| e.live_value(now)) else {
        return Err(CmdError::BadState(c::NO_VALUE));
    };
    let attached = tags
        .iter()
        .filter(|tag| update_index(ctx, tag, now, None, Some((t.stale_until, key))))
        .count();
    Ok(Reply::Integer(attached as i64))
}

// CACHE.INVALIDATE tag [tag ...]
fn invalidate(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    c::INVALIDATE.parse(args)?;
    let ctx = call.ctx();
    let tags: Vec<&[u8]> = std::iter::once(call.key_name())
        .chain(args.iter().copied())
        .collect();
    let now = now_ms();
    let now_us = precise_now_us();
    let mut listed: Vec<Vec<OwnedString>> = Vec::with_capacity(tags.len());
    for tag in &tags {
        if !matches!(key_type(ctx, tag), KeyType::Empty | KeyType::ZSet) {
            return Err(CmdError::WrongType);
        }
        // The tag's own name is the marker of an earlier invalidation, not a key.
        let mut members = live_members(ctx, tag, now);
        members.retain(|m| m.bytes() != *tag);
        listed.push(members);
    }
    for key in listed.iter().flatten() {
        check_key_access(ctx, key.bytes())?;
    }
    let mut deleted = 0;
    let channel = config::CACHE_CHANNEL.get();
    for (tag, keys) in tags.iter().zip(&listed) {
        deleted += delete_listed(ctx, keys);
        // A tag can list many keys: UNLINK frees its members off the main thread.
        redis_call(ctx, c"UNLINK", &[tag], true);
        put_marker(ctx, tag, now_us);
        ctx.publish(&channel, tag);
    }
    stats::add(Stat::CacheInvalidations, tags.len() as u64);
    stats::add(Stat::CacheKeysInvalidated, deleted as u64);
    Ok(Reply::Integer(deleted))
}

/// Deletes the keys that exist among `keys` through the key API (no command per key), each
/// with its `del` event, replicated as `DEL`s of up to `DEL_BATCH` keys; how many there were.
fn delete_listed(ctx: Ctx, keys: &[OwnedString]) -> i64 {
    const DEL_BATCH: usize = 1024;
    let mut gone = Vec::with_capacity(keys.len().min(DEL_BATCH));
    let mut deleted = 0;
    for name in keys {
        let mut key = Key::open_named(ctx, name);
        if key.kind() != KeyType::Empty {
            key.delete();
            key.modified(&[(Notify::GENERIC, c"del")]);
            gone.push(name.as_str());
        }
        if gone.len() == DEL_BATCH {
            deleted += flush_deletes(ctx, &mut gone);
        }
    }
    deleted + flush_deletes(ctx, &mut gone)
}

/// Replicates one `DEL` of the keys deleted so far; how many.
fn flush_deletes(ctx: Ctx, gone: &mut Vec<Str>) -> i64 {
    if !gone.is_empty() {
        ctx.replicate_list(c"DEL", gone);
    }
    let n = gone.len() as i64;
    gone.clear();
    n
}

/// Leaves the invalidation's marker in the (emptied) tag: its own name, expiring with its score.
fn put_marker(ctx: Ctx, tag: &[u8], now_us: i64) {
    let score = c::marker_score(now_us);
    redis_call(ctx, c"ZADD", &[tag, score.as_bytes(), tag], true);
    let name = OwnedString::new(ctx, tag);
    let expiry = Key::open_named(ctx, &name)
        .zset_top_score()
        .map(|s| s as i64);
    if let Some(at) = expiry {
        redis_call(
            ctx,
            c"PEXPIREAT",
            &[tag, StackText::of(at).as_bytes()],
            true,
        );
    }
}

/// The keys a tag lists whose entries have not expired (scored after `now`).
fn live_members(ctx: Ctx, tag: &[u8], now: i64) -> Vec<OwnedString> {
    let name = OwnedString::new(ctx, tag);
    let index = Key::open_named(ctx, &name);
    index.zset_members(ScoreRange::after(now))
}

//! Binds the cache family (`patterns_core::cache`) to Redis. An entry is read through the key
//! API (the hot path: a hit writes nothing); SET and FILL write it through the key API too,
//! replicating `DEL`, `HSET`, `PEXPIREAT` with absolute times; the rarer writes (leases, giving
//! one up, invalidation) run as Redis commands through `RedisModule_Call`, replicated as they
//! are with the lease token the primary drew; tag indexes go through the shared expiring index.
//! Random draws (XFetch's, lease tokens) happen here on the primary only: a
//! replica or an AOF replay receives the effects, never the command.
//!
//! Each command validates everything (arguments, types, ACL of the keys it derives) before its
//! first write: an error writes nothing.
#![deny(unsafe_code)]

use patterns_core::cache::{
    self as c, after_giving_up, check_beta, decide, invalidated_at_us, key_expiry, lease_until,
    marker_score, voids, Entry, Outcome, Times, DRAW_MAX,
};
use patterns_core::command::{Args, CmdError};
use patterns_core::keys::{encode_id, ID_BYTES};

use std::ffi::CString;
use std::sync::OnceLock;

use crate::command;
use crate::ffi::{
    check_key_access, fill_random, key_type, now_ms, precise_now_us, redis_call, Call, Command,
    Ctx, Key, KeyType, Notify, OwnedString, Reply, ScoreRange, Value,
};
use crate::index::update_index;
use crate::text::StackText;

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(c::SET, set),
    command!(c::GET, get),
    command!(c::FILL, fill),
    command!(c::TAG, tag),
    command!(c::INVALIDATE, invalidate),
];

/// An entry's hash as stored: its fields, in `c::FIELDS` order, read through the key API.
struct Stored([Option<OwnedString>; c::FIELDS.len()]);

/// `c::FIELDS` as C strings, for the hot path's hash reads.
fn field_names() -> &'static [CString; c::FIELDS.len()] {
    static NAMES: OnceLock<[CString; c::FIELDS.len()]> = OnceLock::new();
    NAMES.get_or_init(|| c::FIELDS.map(|f| CString::new(f).expect("no NUL")))
}

impl Stored {
    /// The hash at the command's key: None when absent; WRONGTYPE unless a hash, BadState when
    /// it holds a field an entry has not (`entry` checks the rest). The key is closed on return.
    fn load(call: &Call) -> Result<Option<Self>, CmdError> {
        let key = Key::open(call);
        match key.kind() {
            KeyType::Empty => return Ok(None),
            KeyType::Hash => {}
            _ => return Err(CmdError::WrongType),
        }
        // Field lookups stop once every field of the hash is found: an entry without a lease
        // (its value's fields come first) costs four lookups, not seven.
        let len = key.len();
        let mut found = 0;
        let mut stored = Self(Default::default());
        for (slot, field) in stored.0.iter_mut().zip(field_names()) {
            if found == len {
                break;
            }
            *slot = key.hash_field(field.as_c_str());
            found += i64::from(slot.is_some());
        }
        if found != len {
            return Err(CmdError::BadState(c::NOT_CACHE));
        }
        Ok(Some(stored))
    }

    fn entry(&self) -> Result<Entry<'_>, CmdError> {
        let pairs: Vec<(&[u8], &[u8])> = c::FIELDS
            .iter()
            .zip(&self.0)
            .filter_map(|(name, v)| Some((name.as_bytes(), v.as_ref()?.bytes())))
            .collect();
        Entry::parse(&pairs)
    }
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

fn text(n: i64) -> StackText {
    StackText::of(n)
}

/// Sets the key's expiry, replicated as `PEXPIREAT` with the absolute time.
fn expire_at(ctx: Ctx, key: &[u8], at: i64) {
    redis_call(ctx, c"PEXPIREAT", &[key, text(at).as_bytes()], true);
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

    /// Replaces the entry (voiding any lease: the old hash goes) through the key API and lists
    /// it under its tags, each write replicated as the command the Lua twin makes, in its order.
    fn write(&self, ctx: Ctx, key: &[u8], existed: bool, now: i64) {
        let name = OwnedString::new(ctx, key);
        let mut entry = Key::open_named(ctx, &name);
        if existed {
            entry.delete();
            ctx.replicate(c"DEL", (name.as_str(),));
            entry.modified(&[(Notify::GENERIC, c"del")]);
        }
        let t = self.times;
        let (fresh, stale, delta) = (text(t.fresh_until), text(t.stale_until), text(t.delta_ms));
        // The value's fields lead `c::FIELDS`, in this order.
        let [f0, f1, f2, f3, ..] = field_names().each_ref().map(|f| f.as_c_str());
        let values = [
            self.value,
            fresh.as_bytes(),
            stale.as_bytes(),
            delta.as_bytes(),
        ];
        for (field, value) in [f0, f1, f2, f3].into_iter().zip(values) {
            entry.hash_set(field, value);
        }
        let [v0, v1, v2, v3] = values;
        let name = name.as_str();
        ctx.replicate(c"HSET", (name, f0, v0, f1, v1, f2, v2, f3, v3));
        entry.set_expire_at(t.stale_until);
        ctx.replicate(c"PEXPIREAT", (name, t.stale_until));
        entry.modified(&[(Notify::HASH, c"hset"), (Notify::GENERIC, c"expire")]);
        drop(entry);
        for tag in self.tags {
            update_index(ctx, tag, now, None, Some((t.stale_until, key)));
        }
    }
}

// CACHE.SET key value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]
fn set(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = c::SET.parse(args)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let now = now_ms();
    let store = Store::parse(ctx, key, &p, now)?;
    let stored = Stored::load(call)?;
    let existed = stored.as_ref().map(Stored::entry).transpose()?.is_some();
    store.write(ctx, key, existed, now);
    Ok(Reply::Simple(c"OK"))
}

// CACHE.FILL key lease value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]
fn fill(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = c::FILL.parse(args)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let now = now_ms();
    let store = Store::parse(ctx, key, &p, now)?;
    let lease = p.text("lease");
    let Some(stored) = Stored::load(call)? else {
        return Ok(Reply::Null);
    };
    let entry = stored.entry()?;
    if !entry.holds(lease, now) {
        return Ok(Reply::Null);
    }
    if invalidated_since(ctx, store.tags, entry.leased_at()) {
        give_up_lease(ctx, key, &entry, now);
        return Ok(Reply::Null);
    }
    store.write(ctx, key, true, now);
    Ok(Reply::Simple(c"OK"))
}

/// Whether any of `tags` was invalidated at or after `leased_us` (its marker says so).
fn invalidated_since(ctx: Ctx, tags: &[&[u8]], leased_us: i64) -> bool {
    tags.iter().any(|tag| {
        let name = OwnedString::new(ctx, tag);
        let score = Key::open_named(ctx, &name).zset_score(name.as_str());
        score.is_some_and(|s| voids(invalidated_at_us(s), leased_us))
    })
}

/// Drops a lease that can no longer fill, so readers get a new one instead of waiting on it:
/// the lease's fields go (the key then expires with its value), or the key when no live value
/// stays.
fn give_up_lease(ctx: Ctx, key: &[u8], entry: &Entry, now: i64) {
    match after_giving_up(entry, now) {
        Some(stale_until) => {
            let fields = [c::LEASE_FIELD, c::LEASE_UNTIL_FIELD, c::LEASED_AT_FIELD];
            let mut args = vec![key];
            args.extend(fields.iter().map(|f| f.as_bytes()));
            redis_call(ctx, c"HDEL", &args, true);
            expire_at(ctx, key, stale_until);
        }
        None => {
            redis_call(ctx, c"DEL", &[key], true);
        }
    }
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

/// Grants the lease `token` from now (recorded in µs) until `until`: a miss first drops
/// whatever is left of the entry; the key then lives until the later of its value's end and
/// the lease's.
fn grant(ctx: Ctx, key: &[u8], entry: Option<&Entry>, outcome: Outcome, token: &[u8], until: i64) {
    let value = match outcome {
        Outcome::Miss => {
            if entry.is_some() {
                redis_call(ctx, c"DEL", &[key], true);
            }
            None
        }
        _ => entry.and_then(|e| e.value).map(|(_, t)| t),
    };
    let (until_text, leased_text) = (text(until), text(precise_now_us()));
    redis_call(
        ctx,
        c"HSET",
        &[
            key,
            c::LEASE_FIELD.as_bytes(),
            token,
            c::LEASE_UNTIL_FIELD.as_bytes(),
            until_text.as_bytes(),
            c::LEASED_AT_FIELD.as_bytes(),
            leased_text.as_bytes(),
        ],
        true,
    );
    expire_at(ctx, key, key_expiry(value, Some(until)));
}

// CACHE.GET key [BETA beta] [LEASE lease_ms]
fn get(call: &Call) -> Result<Reply, CmdError> {
    let p = c::GET.parse(call.rest())?;
    let beta = check_beta(p.float("BETA"))?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let now = now_ms();
    let until = lease_until(now, p.int("LEASE"))?;
    let stored = Stored::load(call)?;
    let entry = stored.as_ref().map(Stored::entry).transpose()?;
    // The draw comes from the CSPRNG only when it can decide anything.
    let draw = match c::draw_matters(now, entry.as_ref(), beta) {
        true => new_draw()?,
        false => DRAW_MAX,
    };
    let outcome = decide(now, entry.as_ref(), beta, draw);
    let value = || match entry.as_ref().and_then(|e| e.value) {
        Some((v, _)) => Value::Bulk(v.to_vec()),
        None => Value::Null,
    };
    let word = Value::Bulk(outcome.word().as_bytes().to_vec());
    let lease = if outcome.grants_lease() {
        let token = new_lease()?;
        grant(ctx, key, entry.as_ref(), outcome, &token, until);
        Value::Bulk(token)
    } else {
        Value::Null
    };
    Ok(Reply::Value(Value::Array(match outcome {
        Outcome::Hit | Outcome::Stale => vec![word, value(), Value::Null],
        Outcome::Refresh => vec![word, value(), lease],
        Outcome::Miss => vec![word, Value::Null, lease],
        Outcome::Wait { retry_ms } => vec![word, Value::Null, Value::Int(retry_ms)],
    })))
}

// CACHE.TAG key tag [tag ...]
fn tag(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = c::TAG.parse(args)?;
    let (ctx, key) = (call.ctx(), call.key_name());
    let tags = p.trailing();
    check_tags(ctx, key, tags)?;
    let now = now_ms();
    let stored = Stored::load(call)?;
    let entry = stored.as_ref().map(Stored::entry).transpose()?;
    let Some((_, t)) = entry.and_then(|e| e.live_value(now)) else {
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
    let mut listed: Vec<Vec<Vec<u8>>> = Vec::with_capacity(tags.len());
    for tag in &tags {
        if !matches!(key_type(ctx, tag), KeyType::Empty | KeyType::ZSet) {
            return Err(CmdError::WrongType);
        }
        // The tag's own name is the marker of an earlier invalidation, not a key.
        let mut members = live_members(ctx, tag, now);
        members.retain(|m| m != tag);
        listed.push(members);
    }
    for key in listed.iter().flatten() {
        check_key_access(ctx, key)?;
    }
    let mut deleted = 0;
    for (tag, keys) in tags.iter().zip(&listed) {
        for key in keys {
            deleted += redis_call(ctx, c"DEL", &[key], true).integer();
        }
        redis_call(ctx, c"DEL", &[tag], true);
        put_marker(ctx, tag, now_us);
        ctx.publish(c::CHANNEL.as_bytes(), tag);
    }
    Ok(Reply::Integer(deleted))
}

/// Leaves the invalidation's marker in the (emptied) tag: its own name, expiring with its score.
fn put_marker(ctx: Ctx, tag: &[u8], now_us: i64) {
    let score = marker_score(now_us);
    redis_call(ctx, c"ZADD", &[tag, score.as_bytes(), tag], true);
    let name = OwnedString::new(ctx, tag);
    let expiry = Key::open_named(ctx, &name)
        .zset_top_score()
        .map(|s| s as i64);
    if let Some(at) = expiry {
        expire_at(ctx, tag, at);
    }
}

/// The keys a tag lists whose entries have not expired (scored after `now`).
fn live_members(ctx: Ctx, tag: &[u8], now: i64) -> Vec<Vec<u8>> {
    let name = OwnedString::new(ctx, tag);
    let index = Key::open_named(ctx, &name);
    index
        .zset_members(ScoreRange::after(now))
        .iter()
        .map(|m| m.bytes().to_vec())
        .collect()
}

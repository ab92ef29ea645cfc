//! Caching: tagged entries whose tag indexes never leak, atomic invalidation by tag, and
//! stampede protection (XFetch early refresh, leases, stale-while-revalidate).
//!
//! Everything here is pure: the entry's stored form, argument validation, and the one decision
//! `CACHE.GET` makes (`now_ms`, the entry and a random draw in, the reply's state out). The
//! binding (`src/cache.rs`) and the Lua twin (`lua.rs`) run the same steps on Redis.
//!
//! State: an entry is a string at its key: a 22-byte header, then, while a caller holds its
//! lease, the lease, then the value (see [`Entry::encode`] for the bytes). The header holds
//! the format byte ([`FORMAT`], with what the entry holds: [`HAS_VALUE`], [`HAS_LEASE`]) and
//! the value's times, `fresh_until`, `stale_until` (unix ms) and `delta_ms` (the value's recompute
//! time, for XFetch); the lease its end `lease_until` (unix ms), its grant `leased_at` (unix
//! **µs**: see invalidation below) and its token. A lease on an absent value leaves an entry
//! holding the lease only. The key expires at the later of `stale_until` and `lease_until`.
//! Entries written before this layout are hashes (fields `value`, `fresh_until`,
//! `stale_until`, `delta_ms`, `lease`, `lease_until`, `leased_at`, the times in decimal): they
//! are still read ([`Entry::parse`]), and any write of the entry writes the string instead.
//! A tag is the name of a sorted set: member = a key tagged with it, score = that
//! entry's `stale_until`; members scored `now` or lower (expired) are pruned whenever the tag is written,
//! and the tag's own TTL is its highest score, so it expires with its last entry.
//!
//! An invalidation leaves a marker in the tag: the tag's own name as a member (a key is never
//! its own tag), scored `invalidated_at + MAX_LEASE_MS` in ms with the invalidation's
//! microseconds as three decimals (`1733000060000.123`). A fill naming the tag is refused when
//! its lease was granted at or before that invalidation: the key was not listed under the tag
//! yet, so the invalidation could not void the lease by deleting the key. Leases and
//! invalidations are ordered by their microsecond (two commands on one server do not share
//! one: each takes longer, and the module's clock never repeats a value; a tie counts as
//! invalidated), not by their millisecond, so a lease granted just after an invalidation, in
//! the same millisecond, fills. A refused fill gives up its lease: nobody waits on a lease that
//! can no longer fill. Leases last at most `MAX_LEASE_MS`, so the marker outlives every lease
//! it must void, and then expires.
//!
//! XFetch (Vattani, Chierichetti and Lowenstein, VLDB 2015): a reader of a fresh value
//! recomputes early when `now - delta * beta * ln(rand) >= fresh_until`. The closer the expiry
//! and the longer the recompute, the likelier; `ln(rand)` is negative, so the draw decides how
//! far ahead of the expiry a given reader looks. One reader at a time gets to recompute: it
//! gets the lease, and the others keep reading the value.

pub mod lua;
#[cfg(test)]
mod tests;

use crate::command::{
    arg_option, positive, text, ArgKind, CmdError, CommandDef, Flags, Keys, OptValue, OptionDef,
    Trailing, LUA_EXACT_MAX, WRITE,
};
use crate::keys::MAX_MS;

/// Draws are integers in `1..=DRAW_MAX`; `rand = draw / DRAW_MAX` lies in (0, 1], exactly.
pub const DRAW_MAX: u64 = 1 << 53;
/// The longest a `WAIT` reply asks a caller to wait before asking again.
pub const WAIT_RETRY_MS: i64 = 50;
/// How long a lease lasts when `CACHE.GET` names no `LEASE`.
pub const DEFAULT_LEASE_MS: i64 = 10_000;
/// The channel `CACHE.INVALIDATE` publishes each tag on.
pub const CHANNEL: &str = "patterns:invalidate";

/// An entry's first byte, the format byte: the compact layout (version 1) in the high bits,
/// what the entry holds in the low ones, a value, a lease, or both.
pub const FORMAT: u8 = 0xC0;
pub const HAS_VALUE: u8 = 1;
pub const HAS_LEASE: u8 = 2;
/// A time's bytes: a big-endian integer below 2^53 (what a Lua number holds exactly).
pub const TIME_BYTES: usize = 7;
/// The header: the format byte, `fresh_until`, `stale_until`, `delta_ms`.
pub const HEADER_LEN: usize = 1 + 3 * TIME_BYTES;
/// Where `leased_at` sits in an entry holding a lease (after the header and `lease_until`).
pub const LEASED_AT_OFFSET: usize = HEADER_LEN + TIME_BYTES;
/// The lease's bytes before its token: `lease_until`, `leased_at`, the token's length (u32).
const LEASE_FIXED: usize = 2 * TIME_BYTES + 4;

// The layout before the compact one: a hash with these fields.
pub const VALUE_FIELD: &str = "value";
pub const FRESH_FIELD: &str = "fresh_until";
pub const STALE_FIELD: &str = "stale_until";
pub const DELTA_FIELD: &str = "delta_ms";
pub const LEASE_FIELD: &str = "lease";
pub const LEASE_UNTIL_FIELD: &str = "lease_until";
pub const LEASED_AT_FIELD: &str = "leased_at";
/// Every field an old-layout entry's hash may hold.
pub const FIELDS: [&str; 7] = [
    VALUE_FIELD,
    FRESH_FIELD,
    STALE_FIELD,
    DELTA_FIELD,
    LEASE_FIELD,
    LEASE_UNTIL_FIELD,
    LEASED_AT_FIELD,
];
/// The longest lease, and how long an invalidation's marker stays in its tag.
pub const MAX_LEASE_MS: i64 = 60_000;

pub const TOO_LONG: &str = "ttl_ms + GRACE and DELTA must be at most 2^52";
pub const LEASE_TOO_LONG: &str = "lease_ms must be at most 60000";
pub const BAD_BETA: &str = "BETA must be a finite non-negative number";
pub const NOT_CACHE: &str = "key does not hold a cache entry";
pub const NO_VALUE: &str = "no cached value at key";
pub const TAG_IS_KEY: &str = "a key cannot be its own tag";

// ---------------------------------------------------------------------------------------------
// Definitions

const ENTRY_KEYS: &str = "key: a string, a 22-byte header (the times `fresh_until`, \
     `stale_until`, `delta_ms`), the lease while leased, then the value, expiring at the later of \
     `stale_until` and `lease_until`; each tag: a sorted set of keys scored by `stale_until`, \
     expiring with its last";

/// `[DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]`, shared by SET and FILL.
const STORE_OPTIONS: [OptionDef; 3] = [
    arg_option("DELTA", "delta_ms", ArgKind::NonNegative, 0),
    arg_option("GRACE", "grace_ms", ArgKind::NonNegative, 0),
    OptionDef {
        token: "TAGS",
        value: OptValue::Rest { min: 1 },
        default: -1,
    },
];

pub static SET: CommandDef = CommandDef {
    name: "CACHE.SET",
    syntax: "key value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]",
    summary: "Caches value for ttl_ms (then serves it stale for grace_ms while one caller recomputes), records its recompute time delta_ms for XFetch, and lists key under each tag, atomically. Voids any lease on key.",
    complexity: "O(N + T log M), N the value's size, T the tags, M their entries (plus those pruned)",
    reply: "Simple string: OK",
    keys: ENTRY_KEYS,
    flags: WRITE,
    positionals: &[text("value"), positive("ttl_ms")],
    options: &STORE_OPTIONS,
    trailing: None,
    key_positions: Keys::FirstAndAfter {
        token: "TAGS",
        from: 4,
    },
};

pub static FILL: CommandDef = CommandDef {
    name: "CACHE.FILL",
    syntax: "key lease value ttl_ms [DELTA delta_ms] [GRACE grace_ms] [TAGS tag [tag ...]]",
    summary: "CACHE.SET for the holder of key's lease (from CACHE.GET): refused when the lease was voided (by a write or an invalidation) or expired; a lease an invalidation of one of tags voided is given up.",
    complexity: "O(N + T log M), N the value's size, T the tags, M their entries (plus those pruned)",
    reply: "Simple string: OK; nil when the lease is not the key's live lease (nothing written), or one of tags was invalidated after the lease was granted (the lease is dropped)",
    keys: ENTRY_KEYS,
    flags: WRITE,
    positionals: &[text("lease"), text("value"), positive("ttl_ms")],
    options: &STORE_OPTIONS,
    trailing: None,
    key_positions: Keys::FirstAndAfter {
        token: "TAGS",
        from: 5,
    },
};

pub static TAG: CommandDef = CommandDef {
    name: "CACHE.TAG",
    syntax: "key tag [tag ...]",
    summary: "Lists a cached key under more tags, until its value expires.",
    complexity: "O(T log M), T the tags, M their entries (plus those pruned)",
    reply: "Integer: the number of tags newly attached",
    keys: ENTRY_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: Some(Trailing {
        names: &["tag"],
        min: 1,
    }),
    key_positions: Keys::All,
};

pub static INVALIDATE: CommandDef = CommandDef {
    name: "CACHE.INVALIDATE",
    syntax: "tag [tag ...]",
    summary: "Deletes every live key listed under the tags and empties the tags (voiding the leases granted before, also on keys not listed yet), then publishes each tag on patterns:invalidate.",
    complexity: "O(K + T log M), K the keys deleted, T the tags; blocks the server throughout (measured: 2–4 µs per key on a busy 2-core machine)",
    reply: "Integer: the number of keys deleted",
    keys: "each tag: a sorted set of keys, emptied (the keys it lists are deleted) but for a marker, the tag's own name, that expires after 60 s",
    flags: Flags::WRITE,
    positionals: &[],
    options: &[],
    trailing: Some(Trailing {
        names: &["tag"],
        min: 0,
    }),
    key_positions: Keys::All,
};

pub static GET: CommandDef = CommandDef {
    name: "CACHE.GET",
    syntax: "key [BETA beta] [LEASE lease_ms]",
    summary: "The cached value, with stampede protection: XFetch picks readers to refresh early, one caller at a time holds the lease to recompute, the others get the stale value or wait.",
    complexity: "O(N), N the value's size",
    reply: "Array [state, value, extra]: `HIT value nil`, `REFRESH value lease`, `MISS nil lease`, `STALE value nil`, `WAIT nil retry_ms`",
    keys: ENTRY_KEYS,
    flags: Flags::WRITE.and(Flags::FAST),
    positionals: &[],
    options: &[
        arg_option("BETA", "BETA", ArgKind::Float, 1.0f64.to_bits() as i64),
        arg_option("LEASE", "lease_ms", ArgKind::Positive, DEFAULT_LEASE_MS),
    ],
    trailing: None,
    key_positions: Keys::First,
};

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 5] = [&SET, &GET, &FILL, &TAG, &INVALIDATE];

// ---------------------------------------------------------------------------------------------
// Entries

/// A cached value's times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Times {
    pub fresh_until: i64,
    pub stale_until: i64,
    pub delta_ms: i64,
}

impl Times {
    /// The header's times when the entry holds no value.
    pub const NONE: Self = Self {
        fresh_until: 0,
        stale_until: 0,
        delta_ms: 0,
    };

    /// A value written at `now_ms`, fresh for `ttl_ms`, then served stale for `grace_ms`.
    pub fn new(now_ms: i64, ttl_ms: i64, grace_ms: i64, delta_ms: i64) -> Result<Self, CmdError> {
        let life = ttl_ms.checked_add(grace_ms).filter(|l| *l <= MAX_MS);
        match life {
            Some(life) if delta_ms <= MAX_MS && ttl_ms > 0 && grace_ms >= 0 && delta_ms >= 0 => {
                Ok(Self {
                    fresh_until: now_ms + ttl_ms,
                    stale_until: now_ms + life,
                    delta_ms,
                })
            }
            _ => Err(CmdError::OutOfRange(TOO_LONG)),
        }
    }
}

/// A lease: who may fill, since and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease<'a> {
    pub token: &'a [u8],
    pub until: i64,
    pub since: i64,
}

/// An entry as stored, read from its hash's field/value pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The value and its times; None when only a lease is stored.
    pub value: Option<(&'a [u8], Times)>,
    pub lease: Option<Lease<'a>>,
}

impl<'a> Entry<'a> {
    /// Reads an old-layout entry's hash; `BadState` unless every field is one of the entry's, the value's
    /// fields come all together, the lease's too, and the times are integers.
    pub fn parse(pairs: &[(&'a [u8], &'a [u8])]) -> Result<Self, CmdError> {
        let bad = CmdError::BadState(NOT_CACHE);
        let mut f: [Option<&[u8]>; 7] = [None; 7];
        for (name, value) in pairs {
            let i = FIELDS
                .iter()
                .position(|n| n.as_bytes() == *name)
                .ok_or(bad.clone())?;
            f[i] = Some(value);
        }
        let int = |v: Option<&[u8]>| v.and_then(crate::command::parse_i64).filter(|n| *n >= 0);
        let value = match (f[0], int(f[1]), int(f[2]), int(f[3])) {
            (Some(v), Some(fresh_until), Some(stale_until), Some(delta_ms)) => Some((
                v,
                Times {
                    fresh_until,
                    stale_until,
                    delta_ms,
                },
            )),
            (None, None, None, None) if f[1..4].iter().all(Option::is_none) => None,
            _ => return Err(bad),
        };
        let lease = match (f[4], int(f[5]), int(f[6])) {
            (Some(token), Some(until), Some(since)) => Some(Lease {
                token,
                until,
                since,
            }),
            (None, None, None) if f[5].is_none() && f[6].is_none() => None,
            _ => return Err(bad),
        };
        if value.is_none() && lease.is_none() {
            return Err(bad);
        }
        Ok(Self { value, lease })
    }

    /// Reads an entry in the compact layout; None unless `bytes` are one: the format byte
    /// naming a value or a lease, times below 2^53 (all zero without a value), a lease that
    /// fits, and no value bytes without a value. Inlined: it is every cache read's hot path.
    #[inline(always)]
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let (&format, rest) = bytes.split_first()?;
        let flags = format ^ FORMAT;
        if !(1..=HAS_VALUE | HAS_LEASE).contains(&flags) {
            return None;
        }
        let mut r = Reader(rest);
        let (fresh_until, stale_until, delta_ms) = (r.time()?, r.time()?, r.time()?);
        let lease = match flags & HAS_LEASE {
            0 => None,
            _ => {
                let (until, since) = (r.time()?, r.time()?);
                let len = u32::from_be_bytes(*r.take::<4>()?) as usize;
                let token = r.0.get(..len)?;
                r.0 = &r.0[len..];
                Some(Lease {
                    token,
                    until,
                    since,
                })
            }
        };
        let times = Times {
            fresh_until,
            stale_until,
            delta_ms,
        };
        let value = match flags & HAS_VALUE {
            0 if r.0.is_empty() && times == Times::NONE => None,
            0 => return None,
            _ => Some((r.0, times)),
        };
        Some(Self { value, lease })
    }

    /// The entry's bytes in the compact layout: the format byte, `fresh_until`, `stale_until`,
    /// `delta_ms` (0 without a value), then with a lease `lease_until`, `leased_at` and the
    /// token's length (u32) and bytes, then the value. Integers are big-endian, times 7 bytes
    /// (the twin's `struct.pack('>Bi7i7i7')`).
    pub fn encode(&self) -> Vec<u8> {
        let (value, t) = self.value.unwrap_or((&[], Times::NONE));
        let lease_len = self
            .lease
            .as_ref()
            .map_or(0, |l| LEASE_FIXED + l.token.len());
        let mut out = Vec::with_capacity(HEADER_LEN + lease_len + value.len());
        let flags = match (&self.value, &self.lease) {
            (Some(_), Some(_)) => HAS_VALUE | HAS_LEASE,
            (None, Some(_)) => HAS_LEASE,
            _ => HAS_VALUE,
        };
        out.push(FORMAT | flags);
        for n in [t.fresh_until, t.stale_until, t.delta_ms] {
            put_time(&mut out, n);
        }
        if let Some(l) = &self.lease {
            put_time(&mut out, l.until);
            put_time(&mut out, l.since);
            out.extend_from_slice(&(l.token.len() as u32).to_be_bytes());
            out.extend_from_slice(l.token);
        }
        out.extend_from_slice(value);
        out
    }

    /// The value, while it may still be served (fresh or within its grace).
    pub fn live_value(&self, now_ms: i64) -> Option<(&'a [u8], Times)> {
        self.value.filter(|(_, t)| now_ms < t.stale_until)
    }

    /// Whether a caller holds a lease that has not expired.
    pub fn leased(&self, now_ms: i64) -> bool {
        self.lease.as_ref().is_some_and(|l| now_ms < l.until)
    }

    /// Whether `token` is the live lease.
    pub fn holds(&self, token: &[u8], now_ms: i64) -> bool {
        self.leased(now_ms) && self.lease.as_ref().is_some_and(|l| l.token == token)
    }

    /// When the lease was granted, in unix µs (0 without one).
    pub fn leased_at(&self) -> i64 {
        self.lease.as_ref().map_or(0, |l| l.since)
    }
}

/// Reads an entry's fields off the front of its bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Option<&'a [u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(head)
    }

    /// A time: [`TIME_BYTES`] big-endian, below 2^53 (the twin reads them as a signed
    /// integer: one with the top bit set is negative there, and refused on both sides).
    fn time(&mut self) -> Option<i64> {
        let mut be = [0u8; 8];
        be[8 - TIME_BYTES..].copy_from_slice(self.take::<TIME_BYTES>()?);
        Some(i64::from_be_bytes(be)).filter(|n| *n < LUA_EXACT_MAX)
    }
}

/// Appends a time (below 2^53) as [`TIME_BYTES`] big-endian.
fn put_time(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(&n.to_be_bytes()[8 - TIME_BYTES..]);
}

// ---------------------------------------------------------------------------------------------
// CACHE.GET's decision

/// What `CACHE.GET` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh: `HIT value nil`.
    Hit,
    /// Served, and this caller gets the lease to recompute: `REFRESH value lease`. XFetch chose
    /// it while the value is fresh, or the value is stale (within its grace) and nobody holds
    /// the lease.
    Refresh,
    /// Absent, and this caller gets the lease: `MISS nil lease`.
    Miss,
    /// Stale (within its grace) while another caller holds the lease: `STALE value nil`.
    Stale,
    /// Absent while another caller holds the lease: `WAIT nil retry_ms`.
    Wait { retry_ms: i64 },
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Refresh => "REFRESH",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Wait { .. } => "WAIT",
        }
    }

    /// Whether this caller is granted the lease.
    pub fn grants_lease(self) -> bool {
        matches!(self, Outcome::Refresh | Outcome::Miss)
    }
}

/// `BETA`, validated: finite and non-negative (0 turns early refresh off).
pub fn check_beta(beta: f64) -> Result<f64, CmdError> {
    // Two comparisons (NaN fails both) rather than a classification of the float.
    if (0.0..f64::INFINITY).contains(&beta) {
        Ok(beta)
    } else {
        Err(CmdError::OutOfRange(BAD_BETA))
    }
}

/// XFetch: whether a reader at `now_ms` of a value fresh until `t.fresh_until` recomputes
/// early, with `rand = draw / 2^53`: `now - delta * beta * ln(rand) >= fresh_until`. Computed
/// as `-delta * beta * ln(rand) >= fresh_until - now`, the very float operations the Lua twin
/// runs, so both decide alike on every draw.
pub fn early(now_ms: i64, t: Times, beta: f64, draw: u64) -> bool {
    let rand = draw as f64 / DRAW_MAX as f64;
    let gap = -(t.delta_ms as f64) * beta * rand.ln();
    gap >= (t.fresh_until - now_ms) as f64
}

/// The probability that [`early`] holds for a uniform draw: `exp(-(fresh_until - now) /
/// (delta * beta))` (for statistics tests).
pub fn early_probability(now_ms: i64, t: Times, beta: f64) -> f64 {
    let scale = t.delta_ms as f64 * beta;
    if scale == 0.0 {
        return 0.0;
    }
    (-((t.fresh_until - now_ms) as f64) / scale).exp().min(1.0)
}

/// Whether [`decide`] reads its draw: a fresh value, no lease held, and early refresh possible
/// (the caller may skip drawing otherwise).
pub fn draw_matters(now_ms: i64, entry: Option<&Entry>, beta: f64) -> bool {
    let fresh = entry
        .and_then(|e| e.live_value(now_ms))
        .is_some_and(|(_, t)| now_ms < t.fresh_until && may_refresh_early(t, beta));
    fresh && !entry.is_some_and(|e| e.leased(now_ms))
}

/// Whether XFetch can pick a reader of a fresh value with these times: without a delta or a
/// beta its gap is zero, never past the value's freshness (so [`early`] need not run).
fn may_refresh_early(t: Times, beta: f64) -> bool {
    t.delta_ms > 0 && beta > 0.0
}

/// `CACHE.GET`'s decision at `now_ms` on `entry` (None when the key is absent), with the
/// random draw in `1..=2^53`.
pub fn decide(now_ms: i64, entry: Option<&Entry>, beta: f64, draw: u64) -> Outcome {
    let leased = entry.is_some_and(|e| e.leased(now_ms));
    match entry.and_then(|e| e.live_value(now_ms)) {
        Some((_, t)) if now_ms < t.fresh_until => {
            if !leased && may_refresh_early(t, beta) && early(now_ms, t, beta, draw) {
                Outcome::Refresh
            } else {
                Outcome::Hit
            }
        }
        Some(_) if leased => Outcome::Stale,
        Some(_) => Outcome::Refresh,
        None if leased => {
            let until = entry
                .and_then(|e| e.lease.as_ref())
                .map_or(now_ms, |l| l.until);
            Outcome::Wait {
                retry_ms: (until - now_ms).min(WAIT_RETRY_MS),
            }
        }
        None => Outcome::Miss,
    }
}

/// The key's expiry once it holds `value` (its times) and `lease_until`: the later end.
pub fn key_expiry(value: Option<Times>, lease_until: Option<i64>) -> i64 {
    value
        .map(|t| t.stale_until)
        .into_iter()
        .chain(lease_until)
        .max()
        .unwrap_or(0)
}

/// The lease's end for a lease of `lease_ms` granted at `now_ms`.
pub fn lease_until(now_ms: i64, lease_ms: i64) -> Result<i64, CmdError> {
    if lease_ms > MAX_LEASE_MS {
        return Err(CmdError::OutOfRange(LEASE_TOO_LONG));
    }
    Ok(now_ms + lease_ms)
}

/// The score of the marker an invalidation at `now_us` (unix µs) leaves in its tag, as the
/// text ZADD is given: `invalidated_at + MAX_LEASE_MS` in ms, the microseconds as decimals.
pub fn marker_score(now_us: i64) -> String {
    let (ms, us) = (now_us.div_euclid(1000), now_us.rem_euclid(1000));
    format!("{}.{us:03}", ms + MAX_LEASE_MS)
}

/// When (unix µs) the invalidation whose marker is scored `score` happened. Until 2109 (2^42
/// ms) a score's double has a 2^-12 ms step or finer, so the microseconds round back exactly.
pub fn invalidated_at_us(score: f64) -> i64 {
    (score * 1000.0).round() as i64 - MAX_LEASE_MS * 1000
}

/// Whether an invalidation at `invalidated_us` voids a lease granted at `leased_us` (both unix
/// µs): the invalidation came at or after the grant.
pub fn voids(invalidated_us: i64, leased_us: i64) -> bool {
    invalidated_us >= leased_us
}

/// What a refused fill leaves of an entry whose lease it gives up: the value's `stale_until`
/// when a live value stays (the key then expires with it), None when the key goes.
pub fn after_giving_up(entry: &Entry, now_ms: i64) -> Option<i64> {
    entry.live_value(now_ms).map(|(_, t)| t.stale_until)
}

//! Rate limiting: a token bucket (GCRA), a fixed window, a sliding window (two weighted windows,
//! or an exact log of admissions) and redis-cell's `CL.THROTTLE`.
//!
//! Every function here is pure: it takes the stored state and `now_ms` (the server's clock, read
//! once per command) and returns the decision and what to write. Nothing is written when a
//! request is denied or is a peek (`COST 0`).
//!
//! Arithmetic is exact integer arithmetic in i128, so no argument in i64's range can overflow.
//! The only limit is on time spans: anything that would schedule an expiry more than
//! [`MAX_MS`] (2^52 ms, about 142,000 years) ahead is refused.

pub mod lua;

use crate::command::{
    arg_option, positive, Arg, ArgKind, Args, Block, CmdError, CommandDef, Flags, Keys, OptValue,
    OptionDef, Positional, WRITE,
};
use crate::keys::MAX_MS;

pub const SPAN_TOO_LONG: &str = "the limiter's time span is too long (over 2^52 ms)";
pub const MAX_BURST_TOO_LARGE: &str = "max_burst is too large";
pub const NOT_LIMITER_STATE: &str = "key does not hold rate limiter state";
/// The largest `COST` with `EXACT`: each unit is a member written (and replicated) by the call,
/// so an unbounded cost would let one call block the server or exhaust its memory.
pub const MAX_EXACT_COST: i64 = 10_000;
pub const EXACT_COST_TOO_HIGH: &str = "COST must be at most 10000 with EXACT";

// ---------------------------------------------------------------------------------------------
// Definitions

const COST: OptionDef = arg_option("COST", "COST", ArgKind::NonNegative, 1);

const EXACT: OptionDef = OptionDef {
    token: "EXACT",
    value: OptValue::Flag,
    default: 0,
};

const RL_REPLY: &str = "Array of 5 integers: allowed (1 or 0), limit, remaining, \
     retry_after_ms (-1 when allowed or when the cost can never fit), reset_after_ms";

pub static TOKENBUCKET: CommandDef = CommandDef {
    name: "RL.TOKENBUCKET",
    syntax: "key capacity rate period_ms [COST n]",
    summary:
        "Token bucket (GCRA): capacity tokens, refilled continuously at rate tokens per period_ms.",
    complexity: "O(1)",
    reply: RL_REPLY,
    keys: "key: string `0` when the theoretical arrival time (TAT) is a whole ms, the TAT being \
           the key's expiry (any one-byte value reads so), else `<tat_ms>+<num>/<rate>` (exact to \
           a fraction of a ms; a whole `<tat_ms>`, the earlier layout, is still read); expires \
           when the bucket is full again",
    flags: WRITE.and(Flags::FAST),
    positionals: &[
        positive("capacity"),
        positive("rate"),
        positive("period_ms"),
    ],
    options: &[COST],
    trailing: None,
    key_positions: Keys::First,
};

pub static FIXEDWINDOW: CommandDef = CommandDef {
    name: "RL.FIXEDWINDOW",
    syntax: "key limit window_ms [COST n]",
    summary: "Fixed window: at most limit per window_ms, windows aligned to the Unix epoch.",
    complexity: "O(1)",
    reply: RL_REPLY,
    keys: "key: string `<count>`; expires at the end of its window",
    flags: WRITE.and(Flags::FAST),
    positionals: &[positive("limit"), positive("window_ms")],
    options: &[COST],
    trailing: None,
    key_positions: Keys::First,
};

pub static SLIDINGWINDOW: CommandDef = CommandDef {
    name: "RL.SLIDINGWINDOW",
    syntax: "key limit window_ms [COST n] [EXACT]",
    summary: "Sliding window: the previous window's count weighted by its overlap, or with EXACT a log of every admission.",
    complexity: "O(1); with EXACT O(log N + COST + M), M the entries pruned",
    reply: RL_REPLY,
    keys: "key: string `<window_start_ms>:<previous_count>:<current_count>`, expires two windows \
           after its window starts; with EXACT a sorted set, one member `<ms>:<seq>` scored `<ms>` \
           per admitted unit of cost, expires a window after the newest",
    flags: WRITE,
    positionals: &[positive("limit"), positive("window_ms")],
    options: &[COST, EXACT],
    trailing: None,
    key_positions: Keys::First,
};

pub static THROTTLE: CommandDef = CommandDef {
    name: "CL.THROTTLE",
    syntax: "key max_burst count_per_period period_s [quantity]",
    summary: "redis-cell compatible GCRA: the same arguments and reply, seconds rounded up.",
    complexity: "O(1)",
    reply: "Array of 5 integers: limited (0 or 1), limit (max_burst + 1), remaining, \
            retry_after_s (-1 when allowed), reset_after_s",
    keys: "key: the same string as RL.TOKENBUCKET (capacity = max_burst + 1, \
           rate = count_per_period, period_ms = period_s * 1000)",
    flags: WRITE.and(Flags::FAST),
    positionals: &[
        Positional {
            arg: Arg {
                name: "max_burst",
                kind: ArgKind::NonNegative,
            },
            default: None,
        },
        positive("count_per_period"),
        positive("period_s"),
        Positional {
            arg: Arg {
                name: "quantity",
                kind: ArgKind::NonNegative,
            },
            default: Some(1),
        },
    ],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

/// The limits `RL.ALL` and `RL.REFUND` take: each kind is its own command's arguments after a
/// token and the key.
pub static LIMITS: [Block; 3] = [
    Block {
        token: "TOKENBUCKET",
        def: &TOKENBUCKET,
    },
    Block {
        token: "FIXEDWINDOW",
        def: &FIXEDWINDOW,
    },
    Block {
        token: "SLIDINGWINDOW",
        def: &SLIDINGWINDOW,
    },
];

const LIMIT_KEYS: Keys = Keys::Blocks {
    name: "limit",
    kinds: &LIMITS,
};

const LIMIT_SYNTAX: &str = "limit [limit ...]  where limit is: TOKENBUCKET key capacity rate \
     period_ms [COST n] | FIXEDWINDOW key limit window_ms [COST n] | SLIDINGWINDOW key limit \
     window_ms [COST n] [EXACT]";

pub static ALL: CommandDef = CommandDef {
    name: "RL.ALL",
    syntax: LIMIT_SYNTAX,
    summary: "Several limits at once, all or nothing: admits only when every limit admits, and \
              then consumes from each; otherwise consumes from none.",
    complexity: "O(L), L the limits (each as its own command)",
    reply: "Array: allowed (1 or 0), denied (the 1-based position of the first limit that \
            denied, 0 when allowed), then per limit its own command's array of 5 integers (when \
            denied: each limit's state without consumption; a limit that would have admitted \
            answers allowed 1 and its remaining after its cost)",
    keys: "each limit's key, as its own command's (all in one Cluster slot)",
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: LIMIT_KEYS,
};

pub static REFUND: CommandDef = CommandDef {
    name: "RL.REFUND",
    syntax: LIMIT_SYNTAX,
    summary: "Gives back COST units to each limit (a request that failed upstream), never past \
              full; a missing key is left alone.",
    complexity: "O(L), L the limits; with EXACT O(log N + COST) each",
    reply: "Array of integers: each limit's remaining after the refund",
    keys: "each limit's key, as its own command's (all in one Cluster slot); a key the refund \
           leaves full is deleted",
    flags: Flags::WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: LIMIT_KEYS,
};

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 6] = [
    &TOKENBUCKET,
    &FIXEDWINDOW,
    &SLIDINGWINDOW,
    &THROTTLE,
    &ALL,
    &REFUND,
];

// ---------------------------------------------------------------------------------------------
// Decisions

/// The reply every RL command gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateReply {
    pub allowed: bool,
    pub limit: i64,
    pub remaining: i64,
    /// -1 when allowed, or when the cost can never fit.
    pub retry_after_ms: i64,
    /// Until the limiter is fully replenished.
    pub reset_after_ms: i64,
}

impl RateReply {
    pub fn to_array(self) -> [i64; 5] {
        [
            i64::from(self.allowed),
            self.limit,
            self.remaining,
            self.retry_after_ms,
            self.reset_after_ms,
        ]
    }

    /// redis-cell's reply: `[limited, limit, remaining, retry_after_s, reset_after_s]`,
    /// seconds rounded up.
    pub fn to_cell_array(self) -> [i64; 5] {
        let secs = |ms: i64| {
            if ms < 0 {
                -1
            } else {
                ceil_div(ms.into(), 1000) as i64
            }
        };
        [
            i64::from(!self.allowed),
            self.limit,
            self.remaining,
            secs(self.retry_after_ms),
            secs(self.reset_after_ms),
        ]
    }
}

/// A stored string value and its absolute expiry (None when the key has no TTL, or when the
/// limiter does not read it: see [`Reads`]).
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    pub value: &'a [u8],
    pub expire_at_ms: Option<i64>,
}

/// A token bucket's value when its TAT is a whole ms: the TAT is then the key's expiry.
/// Written by `SET`, the server stores it as its shared integer 0 (the smallest string key).
pub const TAT_AT_EXPIRY: &str = "0";

/// Whether a token bucket's value is [`TAT_AT_EXPIRY`]: any one-byte value is, so the
/// binding can tell by the value's length without reading it (a read in place would turn the
/// shared integer into a string of the key's own, 8 B more).
fn is_tat_at_expiry(value: &[u8]) -> bool {
    value.len() == 1
}

/// What the binding reads of a string state besides its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reads {
    /// The key's expiry ([`Stored::expire_at_ms`]).
    pub expiry: bool,
    /// Whether a one-byte value is [`TAT_AT_EXPIRY`], which the binding then passes without
    /// reading the value.
    pub tat_at_expiry: bool,
}

/// A string state value; formatted by the binding straight into the key, without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateValue {
    /// Token bucket: `<tat_ms>`, or `<tat_ms>+<num>/<den>` when the TAT has a fraction.
    Tat { ms: i64, num: i64, den: i64 },
    /// Fixed window: `<count>`.
    Count(i64),
    /// Sliding window: `<window_start_ms>:<previous_count>:<current_count>`.
    Windows { start: i64, prev: i64, curr: i64 },
    /// Token bucket, a whole-ms TAT: [`TAT_AT_EXPIRY`], the TAT being the key's expiry.
    TatAtExpiry,
}

impl std::fmt::Display for StateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StateValue::Tat { ms, num: 0, .. } => write!(f, "{ms}"),
            StateValue::Tat { ms, num, den } => write!(f, "{ms}+{num}/{den}"),
            StateValue::Count(n) => write!(f, "{n}"),
            StateValue::Windows { start, prev, curr } => write!(f, "{start}:{prev}:{curr}"),
            StateValue::TatAtExpiry => write!(f, "{TAT_AT_EXPIRY}"),
        }
    }
}

/// How a string state's write reaches the key, and what replicas and the AOF receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// The value and its expiry: `SET key <value> PXAT <expire_at_ms>`.
    Set,
    /// Only the expiry, the key holding [`TAT_AT_EXPIRY`] already: `PEXPIREAT key
    /// <expire_at_ms>`.
    Expire,
}

/// The new string value to store, with its absolute expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringWrite {
    pub value: StateValue,
    pub expire_at_ms: i64,
    pub effect: Effect,
}

impl StringWrite {
    /// A write of the value and its expiry.
    pub fn set(value: StateValue, expire_at_ms: i64) -> Self {
        Self {
            value,
            expire_at_ms,
            effect: Effect::Set,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reply: RateReply,
    /// `None` when nothing changes (denied, or a peek).
    pub write: Option<StringWrite>,
}

/// A limiter whose whole state is one string.
pub trait StringLimiter {
    /// What `decide` looks at besides the value (so the binding reads only that).
    const READS: Reads = Reads {
        expiry: false,
        tat_at_expiry: false,
    };

    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError>;

    /// Whether `decide` admits `cost` and writes a new value whatever state of `len` bytes is
    /// stored (then reading it in place costs nothing to keep: the write replaces it).
    fn writes_over_any(&self, _len: usize, _cost: i64) -> bool {
        false
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    debug_assert!(a >= 0 && b > 0);
    (a + b - 1) / b
}

fn bad_state() -> CmdError {
    CmdError::BadState(NOT_LIMITER_STATE)
}

/// Parses a non-negative integer written by this family (Redis's integer syntax).
fn state_int(raw: &[u8]) -> Result<i64, CmdError> {
    match crate::command::parse_i64(raw) {
        Some(v) if v >= 0 => Ok(v),
        _ => Err(bad_state()),
    }
}

// ---------------------------------------------------------------------------------------------
// Token bucket, as GCRA.
//
// Think of the bucket as a schedule: each token is "emitted" every T = period_ms / rate ms.
// The state is one timestamp, the theoretical arrival time (TAT): the moment the bucket would
// be full again. The gap `TAT - now` is the bucket's debt; a request of n tokens fits when
// debt + n·T <= τ, where τ = capacity·T is how far ahead of the schedule we may run (the
// bucket's size, in time). Admitting it moves the TAT n·T later.
//
// T is rarely a whole number of ms, so the arithmetic runs in units of 1/rate ms, where T is
// exactly period_ms and τ exactly capacity·period_ms, and the TAT is stored exactly as whole
// ms plus a fraction `<num>/<rate>`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    pub capacity: i64,
    pub rate: i64,
    /// In i128: `CL.THROTTLE`'s `period_s * 1000` passes i64 (up to about 2^73).
    pub period_ms: i128,
}

impl TokenBucket {
    pub fn new(capacity: i64, rate: i64, period_ms: i64) -> Result<Self, CmdError> {
        Self::with_period(capacity, rate, i128::from(period_ms))
    }

    /// The bucket, unless its refill time τ = capacity·period_ms / rate passes MAX_MS. A
    /// product past i128 (capacity and period both near their ends) is such a span too.
    fn with_period(capacity: i64, rate: i64, period_ms: i128) -> Result<Self, CmdError> {
        let tau = i128::from(capacity).checked_mul(period_ms);
        if tau.is_none_or(|tau| tau > i128::from(MAX_MS) * i128::from(rate)) {
            return Err(CmdError::OutOfRange(SPAN_TOO_LONG));
        }
        Ok(Self {
            capacity,
            rate,
            period_ms,
        })
    }

    /// redis-cell's parameters: capacity = max_burst + 1, period in seconds.
    pub fn from_cell(
        max_burst: i64,
        count_per_period: i64,
        period_s: i64,
    ) -> Result<Self, CmdError> {
        let capacity = max_burst
            .checked_add(1)
            .ok_or(CmdError::OutOfRange(MAX_BURST_TOO_LARGE))?;
        Self::with_period(capacity, count_per_period, i128::from(period_s) * 1000)
    }

    /// τ in units of 1/rate ms: at most 2^52·rate < 2^115 (checked by `with_period`).
    fn tau(&self) -> i128 {
        i128::from(self.capacity) * self.period_ms
    }

    /// The debt (TAT − now) in units of 1/rate ms, within [0, τ].
    fn debt(&self, stored: Option<Stored<'_>>, now_ms: i64) -> Result<i128, CmdError> {
        let Some(stored) = stored else { return Ok(0) };
        let (tat_ms, num, den) = if is_tat_at_expiry(stored.value) {
            // Without an expiry (PERSIST), TAT 0: an empty bucket, as the old layout's "0".
            (stored.expire_at_ms.unwrap_or(0), 0, 1)
        } else {
            parse_tat(stored.value)?
        };
        let rate = i128::from(self.rate);
        // A fraction kept for another rate is rounded up to the next whole ms (stricter).
        let (tat_ms, num) = if num == 0 || den == self.rate {
            (i128::from(tat_ms), i128::from(num))
        } else {
            (i128::from(tat_ms) + 1, 0)
        };
        // Clamped: a TAT further ahead than τ (parameters changed, or a redis-cell key in
        // nanoseconds) counts as an empty bucket, never as a longer ban.
        Ok(((tat_ms - i128::from(now_ms)) * rate + num).clamp(0, self.tau()))
    }

    /// The state at a debt above 0: a whole-ms TAT is the key's expiry (only the expiry moves
    /// when the key holds [`TAT_AT_EXPIRY`] already); a fraction of a ms stays in the value.
    fn write(&self, stored: Option<Stored<'_>>, now_ms: i64, new_debt: i128) -> StringWrite {
        let rate = i128::from(self.rate);
        let expire_at_ms = now_ms + ceil_div(new_debt, rate) as i64;
        let num = (new_debt % rate) as i64;
        if num != 0 {
            let ms = (i128::from(now_ms) + new_debt / rate) as i64;
            let value = StateValue::Tat {
                ms,
                num,
                den: self.rate,
            };
            return StringWrite::set(value, expire_at_ms);
        }
        let effect = match stored {
            Some(s) if is_tat_at_expiry(s.value) => Effect::Expire,
            _ => Effect::Set,
        };
        StringWrite {
            value: StateValue::TatAtExpiry,
            expire_at_ms,
            effect,
        }
    }
}

impl StringLimiter for TokenBucket {
    const READS: Reads = Reads {
        expiry: true,
        tat_at_expiry: true,
    };

    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError> {
        let debt = self.debt(stored, now_ms)?;
        let (tau, rate, period) = (self.tau(), i128::from(self.rate), self.period_ms);
        // Past i128 only when cost > capacity (capacity·period fits): it never fits then.
        let needed = i128::from(cost).checked_mul(period).unwrap_or(i128::MAX);
        let allowed = cost <= self.capacity && debt + needed <= tau;
        let new_debt = if allowed { debt + needed } else { debt };
        let retry_after_ms = if allowed || cost > self.capacity {
            -1
        } else {
            ceil_div(debt + needed - tau, rate) as i64
        };
        let reset_after_ms = ceil_div(new_debt, rate) as i64;
        let write = (allowed && cost > 0).then(|| self.write(stored, now_ms, new_debt));
        Ok(Outcome {
            reply: RateReply {
                allowed,
                limit: self.capacity,
                remaining: ((tau - new_debt) / period) as i64,
                retry_after_ms,
                reset_after_ms,
            },
            write,
        })
    }
}

/// `<tat_ms>` or `<tat_ms>+<num>/<den>` with 0 < num < den.
fn parse_tat(raw: &[u8]) -> Result<(i64, i64, i64), CmdError> {
    let Some(plus) = raw.iter().position(|&b| b == b'+') else {
        return Ok((state_int(raw)?, 0, 1));
    };
    let (ms, fraction) = (&raw[..plus], &raw[plus + 1..]);
    let slash = fraction
        .iter()
        .position(|&b| b == b'/')
        .ok_or_else(bad_state)?;
    let (num, den) = (
        state_int(&fraction[..slash])?,
        state_int(&fraction[slash + 1..])?,
    );
    if num == 0 || num >= den {
        return Err(bad_state());
    }
    Ok((state_int(ms)?, num, den))
}

// ---------------------------------------------------------------------------------------------
// Fixed window: a counter per window of window_ms, windows aligned to the Unix epoch. The key
// expires at its window's end, so an existing key always belongs to the current window; one
// expiring later than that was written with other parameters and counts as empty.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedWindow {
    pub limit: i64,
    pub window_ms: i64,
}

fn check_window(window_ms: i64) -> Result<(), CmdError> {
    if window_ms > MAX_MS {
        return Err(CmdError::OutOfRange(SPAN_TOO_LONG));
    }
    Ok(())
}

fn window_start(now_ms: i64, window_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(window_ms)
}

impl FixedWindow {
    pub fn new(limit: i64, window_ms: i64) -> Result<Self, CmdError> {
        check_window(window_ms)?;
        Ok(Self { limit, window_ms })
    }

    /// The count of the window ending at `end`: a key expiring later was written with other
    /// parameters, and one expiring now is the previous window's (the server keeps a key
    /// through the ms it expires in, the next window's first): both count as empty.
    fn count(&self, stored: Option<Stored<'_>>, now_ms: i64, end: i64) -> Result<i64, CmdError> {
        let Some(s) = stored else { return Ok(0) };
        let count = state_int(s.value)?;
        Ok(match s.expire_at_ms {
            Some(at) if now_ms < at && at <= end => count,
            _ => 0,
        })
    }
}

impl StringLimiter for FixedWindow {
    const READS: Reads = Reads {
        expiry: true,
        tat_at_expiry: false,
    };

    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError> {
        let end = window_start(now_ms, self.window_ms) + self.window_ms;
        let count = self.count(stored, now_ms, end)?;
        // Written as a difference: count + cost could overflow.
        let allowed = cost <= self.limit - count;
        let new_count = if allowed { count + cost } else { count };
        Ok(Outcome {
            reply: RateReply {
                allowed,
                limit: self.limit,
                remaining: (self.limit - new_count).max(0),
                retry_after_ms: if allowed || cost > self.limit {
                    -1
                } else {
                    end - now_ms
                },
                reset_after_ms: if new_count > 0 { end - now_ms } else { 0 },
            },
            write: (allowed && cost > 0)
                .then(|| StringWrite::set(StateValue::Count(new_count), end)),
        })
    }

    /// Any count of `len` digits (at most 10^len - 1; one of another window counts as 0)
    /// admits a `cost` above 0 when the largest does.
    fn writes_over_any(&self, len: usize, cost: i64) -> bool {
        let largest = u32::try_from(len)
            .ok()
            .and_then(|len| 10_i64.checked_pow(len))
            .map(|p| p - 1);
        cost > 0 && largest.is_some_and(|largest| cost <= self.limit - largest)
    }
}

// ---------------------------------------------------------------------------------------------
// Sliding window, approximated by two fixed windows: the estimate is the current window's
// count plus the previous window's count weighted by how much of it the sliding window still
// covers, prev·(W − elapsed)/W. Compared after multiplying by W, so it stays exact.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindow {
    pub limit: i64,
    pub window_ms: i64,
}

impl SlidingWindow {
    pub fn new(limit: i64, window_ms: i64) -> Result<Self, CmdError> {
        check_window(window_ms)?;
        Ok(Self { limit, window_ms })
    }

    /// (previous, current) counts as seen from the window starting at `start`.
    fn counts(&self, stored: Option<Stored<'_>>, start: i64) -> Result<(i64, i64), CmdError> {
        let Some(stored) = stored else {
            return Ok((0, 0));
        };
        let mut parts = stored.value.split(|&b| b == b':');
        let mut next = || parts.next().ok_or_else(bad_state).and_then(state_int);
        let (stored_start, prev, curr) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(bad_state());
        }
        Ok(if stored_start == start {
            (prev, curr)
        } else if stored_start == start - self.window_ms {
            (curr, 0)
        } else {
            (0, 0)
        })
    }

    /// Least ms from now until `cost` fits, given the counts; the cost must fit in the limit.
    fn retry_after(&self, prev: i64, curr: i64, elapsed: i64, cost: i64) -> i64 {
        let w = i128::from(self.window_ms);
        let room = i128::from(self.limit) - i128::from(curr) - i128::from(cost);
        if room >= 0 {
            // In this window, once prev·(W − e) <= room·W (prev > 0, or it would fit now).
            let e = w - room * w / i128::from(prev);
            (e - i128::from(elapsed)) as i64
        } else {
            // In the next window, where the current count becomes the previous one.
            let e = w - i128::from(self.limit - cost) * w / i128::from(curr);
            (w - i128::from(elapsed) + e) as i64
        }
    }
}

impl StringLimiter for SlidingWindow {
    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError> {
        let start = window_start(now_ms, self.window_ms);
        let elapsed = now_ms - start;
        let (prev, curr) = self.counts(stored, start)?;
        let w = i128::from(self.window_ms);
        let weighted_prev = i128::from(prev) * (w - i128::from(elapsed));
        let capacity = i128::from(self.limit) * w;
        let allowed = weighted_prev + (i128::from(curr) + i128::from(cost)) * w <= capacity;
        let new_curr = if allowed { curr + cost } else { curr };
        let until_end = self.window_ms - elapsed;
        let reset_after_ms = if new_curr > 0 {
            until_end + self.window_ms
        } else if prev > 0 {
            until_end
        } else {
            0
        };
        let left = capacity - weighted_prev - i128::from(new_curr) * w;
        Ok(Outcome {
            reply: RateReply {
                allowed,
                limit: self.limit,
                remaining: (left.max(0) / w) as i64,
                retry_after_ms: if allowed || cost > self.limit {
                    -1
                } else {
                    self.retry_after(prev, curr, elapsed, cost)
                },
                reset_after_ms,
            },
            write: (allowed && cost > 0).then(|| {
                let value = StateValue::Windows {
                    start,
                    prev,
                    curr: new_curr,
                };
                StringWrite::set(value, start + 2 * self.window_ms)
            }),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sliding window, exact: a sorted set holding one member per admitted unit of cost, scored by
// its admission time. Entries older than the window are ignored, and pruned in batches: an
// admission prunes once PRUNE_BATCH of them (or a quarter of the limit, if fewer; at least one)
// have gathered, so the set holds at most limit + PRUNE_BATCH entries while most admissions
// write (and replicate) only the new ones. Small batches keep the stale entries that each
// call has to step over few.

/// Stale log entries that trigger a prune (fewer for small limits).
pub const PRUNE_BATCH: i64 = 8;

/// Read access to the admission log, so the decision can be tested without a server.
pub trait AdmissionLog {
    /// All entries, stale ones included.
    fn entries(&mut self) -> Result<i64, CmdError>;
    /// Entries admitted strictly after `after_ms`.
    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError>;
    /// Admission time of the `index`-th oldest entry admitted strictly after `after_ms`.
    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError>;
    /// Admission time of the newest entry.
    fn newest(&mut self) -> Result<Option<i64>, CmdError>;
    /// Entries admitted exactly at `at_ms`.
    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError>;
}

/// What an admission writes to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogWrite {
    /// Remove entries scored up to and including this time, when it is pruning's turn.
    pub prune_through_ms: Option<i64>,
    /// Members `<at_ms>:<seq>` for seq in first_seq..first_seq + count, scored at_ms.
    pub at_ms: i64,
    pub first_seq: i64,
    pub count: i64,
    pub expire_at_ms: i64,
}

impl LogWrite {
    pub fn members(&self) -> impl Iterator<Item = String> + '_ {
        (self.first_seq..self.first_seq + self.count).map(|seq| format!("{}:{seq}", self.at_ms))
    }
}

impl SlidingWindow {
    pub fn decide_exact(
        &self,
        log: &mut impl AdmissionLog,
        now_ms: i64,
        cost: i64,
    ) -> Result<(RateReply, Option<LogWrite>), CmdError> {
        if cost > MAX_EXACT_COST {
            return Err(CmdError::OutOfRange(EXACT_COST_TOO_HIGH));
        }
        let cutoff = now_ms - self.window_ms;
        let count = log.count_after(cutoff)?;
        let allowed = cost <= self.limit - count;
        let new_count = if allowed { count + cost } else { count };
        let retry_after_ms = if allowed || cost > self.limit {
            -1
        } else {
            // Wait until enough of the oldest entries leave the window.
            let oldest_needed = log.time_at(cutoff, count + cost - self.limit - 1)?;
            oldest_needed + self.window_ms - now_ms
        };
        let write = if allowed && cost > 0 {
            let stale = log.entries()? - count;
            Some(LogWrite {
                prune_through_ms: (stale >= (self.limit / 4).clamp(1, PRUNE_BATCH))
                    .then_some(cutoff),
                at_ms: now_ms,
                first_seq: log.count_at(now_ms)?,
                count: cost,
                expire_at_ms: now_ms + self.window_ms,
            })
        } else {
            None
        };
        let reset_after_ms = match (new_count, &write) {
            (0, _) => 0,
            (_, Some(_)) => self.window_ms,
            (_, None) => log
                .newest()?
                .map_or(0, |t| (t + self.window_ms - now_ms).max(0)),
        };
        let reply = RateReply {
            allowed,
            limit: self.limit,
            remaining: (self.limit - new_count).max(0),
            retry_after_ms,
            reset_after_ms,
        };
        Ok((reply, write))
    }
}

// ---------------------------------------------------------------------------------------------
// Several limits at once (RL.ALL) and refunds (RL.REFUND). Each limit is parsed by its own
// command's definition and decided by its own limiter; RL.ALL writes only when every limit
// admits.

/// A token bucket's arguments, as `RL.TOKENBUCKET` parses them: the bucket and the cost.
#[inline(always)]
pub fn token_bucket(args: &[&[u8]]) -> Result<(TokenBucket, i64), CmdError> {
    bucket_of(&TOKENBUCKET.parse(args)?)
}

#[inline(always)]
fn bucket_of(a: &Args<'_>) -> Result<(TokenBucket, i64), CmdError> {
    let bucket = TokenBucket::new(a.int("capacity"), a.int("rate"), a.int("period_ms"))?;
    Ok((bucket, a.int("COST")))
}

/// A fixed window's arguments, as `RL.FIXEDWINDOW` parses them: the window and the cost.
#[inline(always)]
pub fn fixed_window(args: &[&[u8]]) -> Result<(FixedWindow, i64), CmdError> {
    fixed_of(&FIXEDWINDOW.parse(args)?)
}

#[inline(always)]
fn fixed_of(a: &Args<'_>) -> Result<(FixedWindow, i64), CmdError> {
    let window = FixedWindow::new(a.int("limit"), a.int("window_ms"))?;
    Ok((window, a.int("COST")))
}

/// A sliding window's arguments, as `RL.SLIDINGWINDOW` parses them: the window, the cost and
/// whether it is EXACT.
#[inline(always)]
pub fn sliding_window(args: &[&[u8]]) -> Result<(SlidingWindow, i64, bool), CmdError> {
    sliding_of(&SLIDINGWINDOW.parse(args)?)
}

#[inline(always)]
fn sliding_of(a: &Args<'_>) -> Result<(SlidingWindow, i64, bool), CmdError> {
    let window = SlidingWindow::new(a.int("limit"), a.int("window_ms"))?;
    Ok((window, a.int("COST"), a.flag("EXACT")))
}

/// One limit of `RL.ALL` or `RL.REFUND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    TokenBucket(TokenBucket),
    FixedWindow(FixedWindow),
    SlidingWindow(SlidingWindow),
    /// `SLIDINGWINDOW ... EXACT`: the log, a sorted set.
    Exact(SlidingWindow),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub limiter: Limiter,
    pub cost: i64,
}

impl Limit {
    /// The limit of a block of kind `kind` (one of [`LIMITS`]), from its arguments as its own
    /// command parsed them ([`CommandDef::parse_block`]), with the same errors.
    pub fn of(kind: &Block, a: &Args<'_>) -> Result<Self, CmdError> {
        let (limiter, cost) = if std::ptr::eq(kind.def, &TOKENBUCKET) {
            let (bucket, cost) = bucket_of(a)?;
            (Limiter::TokenBucket(bucket), cost)
        } else if std::ptr::eq(kind.def, &FIXEDWINDOW) {
            let (window, cost) = fixed_of(a)?;
            (Limiter::FixedWindow(window), cost)
        } else {
            let (window, cost, exact) = sliding_of(a)?;
            let limiter = if exact {
                Limiter::Exact(window)
            } else {
                Limiter::SlidingWindow(window)
            };
            (limiter, cost)
        };
        Ok(Self { limiter, cost })
    }

    /// What the limit's decision reads besides the value (its limiter's [`StringLimiter::READS`]).
    pub fn reads(&self) -> Reads {
        match self.limiter {
            Limiter::TokenBucket(_) => TokenBucket::READS,
            Limiter::FixedWindow(_) => FixedWindow::READS,
            Limiter::SlidingWindow(_) | Limiter::Exact(_) => SlidingWindow::READS,
        }
    }

    /// The limit's own command's decision on a string state (not for [`Limiter::Exact`]).
    pub fn decide(&self, stored: Option<Stored<'_>>, now_ms: i64) -> Result<Outcome, CmdError> {
        match &self.limiter {
            Limiter::TokenBucket(l) => l.decide(stored, now_ms, self.cost),
            Limiter::FixedWindow(l) => l.decide(stored, now_ms, self.cost),
            Limiter::SlidingWindow(l) => l.decide(stored, now_ms, self.cost),
            Limiter::Exact(_) => Err(CmdError::Internal),
        }
    }

    /// Gives back `cost` units to a string state (not for [`Limiter::Exact`]).
    pub fn refund(&self, stored: Option<Stored<'_>>, now_ms: i64) -> Result<Refund, CmdError> {
        match &self.limiter {
            Limiter::TokenBucket(l) => l.refund(stored, now_ms, self.cost),
            Limiter::FixedWindow(l) => l.refund(stored, now_ms, self.cost),
            Limiter::SlidingWindow(l) => l.refund(stored, now_ms, self.cost),
            Limiter::Exact(_) => Err(CmdError::Internal),
        }
    }
}

/// The limits of an `RL.ALL` or `RL.REFUND` call (`args`: every argument after the name):
/// each with its key's index in `args`, in order.
pub fn parse_limits(def: &CommandDef, args: &[&[u8]]) -> Result<Vec<(usize, Limit)>, CmdError> {
    let Keys::Blocks { kinds, .. } = def.key_positions else {
        return Err(CmdError::Internal);
    };
    let blocks = def.blocks(args)?;
    // Every limit's arguments are checked (their count first, as the server checks its own
    // command's) before any limiter is made, so a bad argument of a later limit is reported
    // before an earlier limit's span (the Lua twin's order, too).
    let parsed = blocks
        .iter()
        .map(|b| kinds[b.kind].def.parse_block(b.args))
        .collect::<Result<Vec<_>, _>>()?;
    blocks
        .iter()
        .zip(&parsed)
        .map(|(b, a)| Ok((b.key, Limit::of(&kinds[b.kind], a)?)))
        .collect()
}

/// `RL.ALL`'s verdict on its limits' replies, in order: (allowed, the 1-based position of the
/// first that denied or 0). The caller writes every limit's state only when allowed.
pub fn all_admit(replies: &[RateReply]) -> (bool, i64) {
    match replies.iter().position(|r| !r.allowed) {
        Some(at) => (false, at as i64 + 1),
        None => (true, 0),
    }
}

/// What a refund does to a string state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundWrite {
    Set(StringWrite),
    /// The limiter is full again: the key goes (as it would have expired).
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// The limit's remaining after the refund.
    pub remaining: i64,
    /// `None` when nothing changes (a missing key, nothing consumed, `COST 0`).
    pub write: Option<RefundWrite>,
}

/// A refund's write: nothing when nothing moved, the key gone when the state is empty again,
/// else `value()`.
fn refund_write(
    moved: bool,
    empty: bool,
    value: impl FnOnce() -> StringWrite,
) -> Option<RefundWrite> {
    match (moved, empty) {
        (false, _) => None,
        (true, true) => Some(RefundWrite::Delete),
        (true, false) => Some(RefundWrite::Set(value())),
    }
}

impl TokenBucket {
    /// Moves the TAT back by `cost` emission intervals, but not before now (a full bucket).
    pub fn refund(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Refund, CmdError> {
        let debt = self.debt(stored, now_ms)?;
        let period = self.period_ms;
        let back = i128::from(cost).checked_mul(period).unwrap_or(i128::MAX);
        let new_debt = (debt - back.min(debt)).max(0);
        let value = || self.write(stored, now_ms, new_debt);
        Ok(Refund {
            remaining: ((self.tau() - new_debt) / period) as i64,
            write: refund_write(new_debt != debt, new_debt == 0, value),
        })
    }
}

impl FixedWindow {
    /// Takes `cost` off the current window's count, not below 0; a past window gets nothing.
    pub fn refund(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Refund, CmdError> {
        let end = window_start(now_ms, self.window_ms) + self.window_ms;
        let count = self.count(stored, now_ms, end)?;
        let new_count = count - cost.min(count);
        let value = || StringWrite::set(StateValue::Count(new_count), end);
        Ok(Refund {
            remaining: (self.limit - new_count).max(0),
            write: refund_write(new_count != count, new_count == 0, value),
        })
    }
}

impl SlidingWindow {
    /// Takes `cost` off the current window's count, not below 0 (the previous window's stays).
    pub fn refund(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Refund, CmdError> {
        let start = window_start(now_ms, self.window_ms);
        let (prev, curr) = self.counts(stored, start)?;
        let new_curr = curr - cost.min(curr);
        let w = i128::from(self.window_ms);
        let weighted_prev = i128::from(prev) * (w - i128::from(now_ms - start));
        let left = i128::from(self.limit) * w - weighted_prev - i128::from(new_curr) * w;
        let value = || {
            let value = StateValue::Windows {
                start,
                prev,
                curr: new_curr,
            };
            StringWrite::set(value, start + 2 * self.window_ms)
        };
        Ok(Refund {
            remaining: (left.max(0) / w) as i64,
            write: refund_write(new_curr != curr, new_curr == 0 && prev == 0, value),
        })
    }

    /// Removes the `cost` most recent admissions still in the window: every entry scored
    /// after `above_ms`, and the `at_count` entries at `above_ms` with the highest sequence
    /// numbers (so the next admission in that ms numbers its entries after the ones left).
    pub fn refund_exact(
        &self,
        log: &mut impl AdmissionLog,
        now_ms: i64,
        cost: i64,
    ) -> Result<(i64, Option<LogRefund>), CmdError> {
        if cost > MAX_EXACT_COST {
            return Err(CmdError::OutOfRange(EXACT_COST_TOO_HIGH));
        }
        let count = log.count_after(now_ms - self.window_ms)?;
        let taken = cost.min(count);
        let remaining = (self.limit - (count - taken)).max(0);
        if taken == 0 {
            return Ok((remaining, None));
        }
        let above_ms = log.time_at(now_ms - self.window_ms, count - taken)?;
        let at_count = taken - log.count_after(above_ms)?;
        Ok((remaining, Some(LogRefund { above_ms, at_count })))
    }
}

/// What a refund removes from the admission log (see [`SlidingWindow::refund_exact`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRefund {
    pub above_ms: i64,
    pub at_count: i64,
}

/// Of the log's members admitted at one ms (`<ms>:<seq>`), the indexes of the `n` with the
/// highest sequence numbers: those a refund removes.
pub fn newest_members(members: &[&[u8]], n: i64) -> Vec<usize> {
    let seq = |m: &[u8]| {
        let digits = m
            .iter()
            .rposition(|&b| b == b':')
            .map_or(m.len(), |c| c + 1);
        crate::command::parse_i64(&m[digits..]).unwrap_or(-1)
    };
    let mut by_seq: Vec<usize> = (0..members.len()).collect();
    by_seq.sort_by_key(|&i| std::cmp::Reverse(seq(members[i])));
    by_seq.truncate(usize::try_from(n).unwrap_or(0));
    by_seq
}

#[cfg(test)]
mod tests;

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
    arg_option, positive, Arg, ArgKind, CmdError, CommandDef, Flags, Keys, OptValue, OptionDef,
    Positional, WRITE,
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
    keys: "key: string `<tat_ms>` or `<tat_ms>+<num>/<rate>` (the theoretical arrival time, \
           exact to a fraction of a ms); expires when the bucket is full again",
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

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 4] = [&TOKENBUCKET, &FIXEDWINDOW, &SLIDINGWINDOW, &THROTTLE];

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

/// A stored string value and its absolute expiry (None when the key has no TTL).
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    pub value: &'a [u8],
    pub expire_at_ms: Option<i64>,
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
}

impl std::fmt::Display for StateValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            StateValue::Tat { ms, num: 0, .. } => write!(f, "{ms}"),
            StateValue::Tat { ms, num, den } => write!(f, "{ms}+{num}/{den}"),
            StateValue::Count(n) => write!(f, "{n}"),
            StateValue::Windows { start, prev, curr } => write!(f, "{start}:{prev}:{curr}"),
        }
    }
}

/// The new string value to store, with its absolute expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringWrite {
    pub value: StateValue,
    pub expire_at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub reply: RateReply,
    /// `None` when nothing changes (denied, or a peek).
    pub write: Option<StringWrite>,
}

/// A limiter whose whole state is one string.
pub trait StringLimiter {
    /// Whether `decide` looks at the stored expiry (so the binding reads it only then).
    const READS_EXPIRY: bool = false;

    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError>;
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
        let (tat_ms, num, den) = parse_tat(stored.value)?;
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
}

impl StringLimiter for TokenBucket {
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
        let write = (allowed && cost > 0).then(|| {
            let tat_ms = i128::from(now_ms) + new_debt / rate;
            let num = new_debt % rate;
            StringWrite {
                value: StateValue::Tat {
                    ms: tat_ms as i64,
                    num: num as i64,
                    den: self.rate,
                },
                expire_at_ms: now_ms + reset_after_ms,
            }
        });
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
}

impl StringLimiter for FixedWindow {
    const READS_EXPIRY: bool = true;

    fn decide(
        &self,
        stored: Option<Stored<'_>>,
        now_ms: i64,
        cost: i64,
    ) -> Result<Outcome, CmdError> {
        let end = window_start(now_ms, self.window_ms) + self.window_ms;
        let count = match stored {
            None => 0,
            Some(s) => {
                let count = state_int(s.value)?;
                match s.expire_at_ms {
                    Some(at) if at <= end => count,
                    _ => 0,
                }
            }
        };
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
            write: (allowed && cost > 0).then_some(StringWrite {
                value: StateValue::Count(new_count),
                expire_at_ms: end,
            }),
        })
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
            write: (allowed && cost > 0).then_some(StringWrite {
                value: StateValue::Windows {
                    start,
                    prev,
                    curr: new_curr,
                },
                expire_at_ms: start + 2 * self.window_ms,
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

#[cfg(test)]
mod tests;

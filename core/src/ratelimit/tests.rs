//! Table-driven tests with an injected clock: one line per behaviour.

use super::*;
use crate::command::Args;

mod mutants;

/// Runs a history against a string limiter, keeping the state as Redis would (expired keys
/// vanish), and checks each step's reply.
struct Harness<L: StringLimiter> {
    limiter: L,
    state: Option<StringWrite>,
}

/// (case, now_ms, cost, allowed, remaining, retry_after_ms, reset_after_ms)
type Case = (u32, i64, i64, bool, i64, i64, i64);

impl<L: StringLimiter> Harness<L> {
    fn new(limiter: L) -> Self {
        Self {
            limiter,
            state: None,
        }
    }

    fn step(&mut self, now_ms: i64, cost: i64) -> RateReply {
        if self
            .state
            .as_ref()
            .is_some_and(|s| s.expire_at_ms <= now_ms)
        {
            self.state = None;
        }
        let text = self.state.as_ref().map(|s| s.value.to_string());
        let stored = self
            .state
            .as_ref()
            .zip(text.as_ref())
            .map(|(s, text)| Stored {
                value: text.as_bytes(),
                expire_at_ms: Some(s.expire_at_ms),
            });
        let outcome = self.limiter.decide(stored, now_ms, cost).unwrap();
        if let Some(text) = &text {
            // The binding reads a state in place only when this promise holds.
            assert!(
                !self.limiter.writes_over_any(text.len(), cost) || outcome.write.is_some(),
                "a state {text} that writes_over_any({}, {cost}) promised to write over",
                text.len()
            );
        }
        assert_eq!(
            outcome.write.is_some(),
            outcome.reply.allowed && cost > 0,
            "writes exactly when a positive cost is admitted"
        );
        if let Some(w) = outcome.write {
            assert!(
                w.expire_at_ms > now_ms,
                "every write carries a future expiry"
            );
            self.state = Some(w);
        }
        outcome.reply
    }

    fn run(&mut self, limit: i64, cases: &[Case]) {
        for &(case, now, cost, allowed, remaining, retry, reset) in cases {
            let want = rate_reply(allowed, limit, remaining, retry, reset);
            assert_eq!(self.step(now, cost), want, "case {case}");
        }
    }
}

/// A reply, its fields in the order of the RL commands' reply array.
fn rate_reply(
    allowed: bool,
    limit: i64,
    remaining: i64,
    retry_after_ms: i64,
    reset_after_ms: i64,
) -> RateReply {
    RateReply {
        allowed,
        limit,
        remaining,
        retry_after_ms,
        reset_after_ms,
    }
}

const T0: i64 = 1_700_000_000_000;
/// The start of a 10 s window (a multiple of 10_000).
const W0: i64 = 1_700_000_040_000;

#[test]
fn token_bucket_matches_redis_cell_documented_cases() {
    // redis-cell's own table: max_burst 4 (limit 5), 1 per second.
    let mut h = Harness::new(TokenBucket::from_cell(4, 1, 1).unwrap());
    h.run(
        5,
        &[
            (0, T0, 6, false, 5, -1, 0), // never fits
            (1, T0, 1, true, 4, -1, 1000),
            (2, T0, 1, true, 3, -1, 2000),
            (3, T0, 1, true, 2, -1, 3000),
            (4, T0, 1, true, 1, -1, 4000),
            (5, T0, 1, true, 0, -1, 5000),
            (6, T0, 1, false, 0, 1000, 5000),
            (7, T0 + 3000, 1, true, 2, -1, 3000),
            (8, T0 + 3100, 1, true, 1, -1, 3900),
            (9, T0 + 4000, 1, true, 1, -1, 4000),
            (10, T0 + 8000, 1, true, 4, -1, 1000),
            (11, T0 + 9500, 1, true, 4, -1, 1000),
            (12, T0 + 9500, 0, true, 4, -1, 1000), // peek
            (13, T0 + 9500, 2, true, 2, -1, 3000),
            (14, T0 + 9500, 5, false, 2, 3000, 3000),
        ],
    );
}

#[test]
fn cell_reply_matches_redis_cell_readme() {
    // `CL.THROTTLE user123 15 30 60 1` on a fresh key → 0 16 15 -1 2.
    let b = TokenBucket::from_cell(15, 30, 60).unwrap();
    let out = b.decide(None, T0, 1).unwrap();
    assert_eq!(out.reply.to_cell_array(), [0, 16, 15, -1, 2]);
    // Seconds round up: 3900 ms → 4 s; a denial's retry rounds up too.
    let r = rate_reply(false, 5, 0, 1, 3900);
    assert_eq!(r.to_cell_array(), [1, 5, 0, 1, 4]);
}

#[test]
fn token_bucket_fractional_emission_is_exact() {
    // 3 tokens per 1000 ms: T = 333⅓ ms. Three admissions cost exactly 1000 ms, no drift.
    let b = TokenBucket::new(3, 3, 1000).unwrap();
    let mut h = Harness::new(b);
    h.run(
        3,
        &[
            (0, T0, 1, true, 2, -1, 334),
            (1, T0, 1, true, 1, -1, 667),
            (2, T0, 1, true, 0, -1, 1000),
            (3, T0, 1, false, 0, 334, 1000),
            (4, T0 + 333, 1, false, 0, 1, 667),
            (5, T0 + 334, 1, true, 0, -1, 1000),
        ],
    );
    assert_eq!(
        h.state.as_ref().unwrap().value.to_string(),
        format!("{}+1/3", T0 + 1333)
    );
    let s = h.limiter.decide(None, T0, 2).unwrap().write.unwrap();
    assert_eq!(s.value.to_string(), format!("{}+2/3", T0 + 666));
    assert_eq!(s.expire_at_ms, T0 + 667);
}

#[test]
fn token_bucket_state_round_trips_and_rejects_garbage() {
    let b = TokenBucket::new(10, 3, 1000).unwrap();
    let read = |v: &str| {
        b.decide(
            Some(Stored {
                value: v.as_bytes(),
                expire_at_ms: None,
            }),
            T0,
            0,
        )
    };
    // Debt of 1000⅔ ms = 3 tokens spent (1000 ms) plus ⅔ ms: 6 tokens left, not 7.
    assert_eq!(
        read(&format!("{}+2/3", T0 + 1000)).unwrap().reply.remaining,
        6
    );
    // A fraction stored for another rate rounds the TAT up to the next ms.
    assert_eq!(
        read(&format!("{}+1/7", T0 + 999))
            .unwrap()
            .reply
            .reset_after_ms,
        1000
    );
    for bad in [
        // (A one-byte value is the marker of a TAT kept in the expiry: see below.)
        "", "xy", "-5", "12+", "12+1", "12+0/3", "12+3/3", "12+1/0", "1+2/3/4", "01",
    ] {
        assert_eq!(
            read(bad).unwrap_err(),
            CmdError::BadState(NOT_LIMITER_STATE),
            "{bad:?}"
        );
    }
    // A redis-cell key (TAT in ns) counts as an empty bucket, not a ban for ages.
    let ns = (T0 + 5000) * 1_000_000;
    let r = read(&ns.to_string()).unwrap().reply;
    assert_eq!((r.remaining, r.reset_after_ms), (0, 3334));
}

#[test]
fn token_bucket_whole_ms_state_is_the_key_expiry() {
    // 1 token per 1000 ms, capacity 5: every TAT is a whole ms.
    let b = TokenBucket::new(5, 1, 1000).unwrap();
    let at = |value: &'static str, expire_at_ms| {
        Some(Stored {
            value: value.as_bytes(),
            expire_at_ms,
        })
    };
    let decide = |stored, now| b.decide(stored, now, 1).unwrap();
    // A new key is created holding the marker, expiring at the TAT.
    let first = decide(None, T0).write.unwrap();
    assert_eq!(first, StringWrite::set(StateValue::TatAtExpiry, T0 + 1000));
    assert_eq!(first.value.to_string(), "0");
    // On the marker the state is the expiry, and only the expiry moves.
    let next = decide(at("0", Some(T0 + 1000)), T0 + 200);
    assert_eq!((next.reply.remaining, next.reply.reset_after_ms), (3, 1800));
    let want = StringWrite {
        value: StateValue::TatAtExpiry,
        expire_at_ms: T0 + 2000,
        effect: Effect::Expire,
    };
    assert_eq!(next.write, Some(want));
    // Any one-byte value reads as the marker (the binding does not read the byte).
    for one_byte in ["7", "x"] {
        assert_eq!(decide(at(one_byte, Some(T0 + 1000)), T0 + 200), next);
    }
    // A marker without an expiry (PERSIST) is TAT 0: an empty bucket, as the old "0" was.
    let persisted = decide(at("0", None), T0);
    assert_eq!(persisted.reply.remaining, 4);
    assert_eq!(persisted.write.unwrap().effect, Effect::Expire);
    // The earlier layout, a whole TAT in the value, is read, and migrated on its next write.
    let old = format!("{}", T0 + 1000);
    let stored = Some(Stored {
        value: old.as_bytes(),
        expire_at_ms: Some(T0 + 1000),
    });
    let migrated = decide(stored, T0 + 200);
    assert_eq!(migrated.reply, next.reply);
    assert_eq!(
        migrated.write,
        Some(StringWrite::set(StateValue::TatAtExpiry, T0 + 2000))
    );
    // A peek or a denial writes nothing, on the marker as on any state.
    assert_eq!(
        b.decide(at("0", Some(T0 + 1000)), T0, 0).unwrap().write,
        None
    );
    assert_eq!(
        b.decide(at("0", Some(T0 + 5000)), T0, 1).unwrap().write,
        None
    );
}

#[test]
fn token_bucket_fraction_stays_in_the_value() {
    // 3 per 1000 ms: TATs fall on thirds of a ms.
    let b = TokenBucket::new(3, 3, 1000).unwrap();
    let marker = Stored {
        value: b"0",
        expire_at_ms: Some(T0 + 1000),
    };
    // From a whole TAT (the marker) to a fraction: the value is set again.
    let out = b.decide(Some(marker), T0 + 500, 1).unwrap();
    let want = StateValue::Tat {
        ms: T0 + 1333,
        num: 1,
        den: 3,
    };
    assert_eq!(out.write, Some(StringWrite::set(want, T0 + 1334)));
    // From a fraction back to a whole ms: the marker is set again (not only the expiry).
    let text = want.to_string();
    let stored = Stored {
        value: text.as_bytes(),
        expire_at_ms: Some(T0 + 1334),
    };
    let out = b.decide(Some(stored), T0 + 1000, 2).unwrap();
    assert_eq!(
        out.write,
        Some(StringWrite::set(StateValue::TatAtExpiry, T0 + 2000))
    );
    // A refund to a fraction, from the marker, sets the value too.
    let r = b.refund(Some(marker), T0 + 500, 1).unwrap();
    let want = StateValue::Tat {
        ms: T0 + 666,
        num: 2,
        den: 3,
    };
    assert_eq!(
        r.write,
        Some(RefundWrite::Set(StringWrite::set(want, T0 + 667)))
    );
}

#[test]
fn token_bucket_extremes_do_not_overflow() {
    let max = i64::MAX;
    // Capacity near i64::MAX refilled as fast: τ = 1 ms.
    let b = TokenBucket::new(max, max, 1).unwrap();
    let out = b.decide(None, T0, max).unwrap();
    assert_eq!(out.reply.remaining, 0);
    assert_eq!(out.reply.reset_after_ms, 1);
    let out = b.decide(None, T0, max - 1).unwrap();
    assert_eq!(out.reply.remaining, 1);
    // Huge cost on a small bucket never fits.
    let small = TokenBucket::new(1, 1, 1).unwrap();
    assert_eq!(
        small.decide(None, T0, max).unwrap().reply.retry_after_ms,
        -1
    );
    // Spans past 2^52 ms are refused with a clear error.
    assert_eq!(
        TokenBucket::new(max, 1, 1).unwrap_err().to_string(),
        "ERR the limiter's time span is too long (over 2^52 ms)"
    );
    assert!(TokenBucket::new(1, 1, MAX_MS).is_ok());
    assert!(TokenBucket::new(1, 1, MAX_MS + 1).is_err());
    assert_eq!(
        TokenBucket::from_cell(max, 1, 1).unwrap_err().to_string(),
        "ERR max_burst is too large"
    );
    assert!(TokenBucket::from_cell(1, 1, max / 999).is_err());
}

/// Issue 11, defect 4: `period_s * 1000` passes i64, yet the refill time is short.
#[test]
fn cl_throttle_periods_past_i64_in_ms_work() {
    let max = i64::MAX;
    // CL.THROTTLE e3 1 9223372036854775807 4611686018427387904: τ = 2·2^62 s / (2^63 − 1),
    // about 1 s.
    let b = TokenBucket::from_cell(1, max, 1 << 62).unwrap();
    assert_eq!(b.period_ms, (1i128 << 62) * 1000);
    let mut h = Harness::new(b);
    h.run(
        2,
        &[
            (1, T0, 1, true, 1, -1, 501),
            (2, T0, 1, true, 0, -1, 1001),
            (3, T0, 1, false, 0, 501, 1001),
            (4, T0 + 501, 1, true, 0, -1, 1000),
        ],
    );
    // Every i64 period_s: refused only for a refill time past 2^52 ms, never an overflow.
    for period_s in [1, 1 << 32, 1 << 62, max - 1, max] {
        for (max_burst, count) in [(0, 1), (0, max), (1, max), (max - 1, max), (max - 1, 1)] {
            // capacity·period_ms <= 2^52·count, the product taken in f64 (far from the bound).
            let refill_ms = (max_burst as f64 + 1.0) * period_s as f64 * 1000.0 / count as f64;
            let got = TokenBucket::from_cell(max_burst, count, period_s);
            assert_eq!(
                got.is_ok(),
                refill_ms <= MAX_MS as f64,
                "{max_burst} {count} {period_s}: {got:?}"
            );
            if let Ok(b) = got {
                for cost in [0, 1, max_burst, max] {
                    let out = b.decide(None, T0, cost).unwrap();
                    assert_eq!(out.reply.allowed, cost <= max_burst + 1, "{cost}");
                    assert!(out.reply.reset_after_ms <= MAX_MS);
                }
            }
        }
    }
    // The largest product: capacity and period both at i64's end, past i128 in ms.
    assert_eq!(
        TokenBucket::from_cell(max - 1, 1, max)
            .unwrap_err()
            .to_string(),
        "ERR the limiter's time span is too long (over 2^52 ms)"
    );
    // A bucket of one token refilled every period, with a cost far past it: denied for good.
    let b = TokenBucket::from_cell(0, max, max).unwrap();
    let out = b.decide(None, T0, max).unwrap();
    assert_eq!((out.reply.allowed, out.reply.retry_after_ms), (false, -1));
}

#[test]
fn fixed_window_counts_per_aligned_window() {
    Harness::new(FixedWindow::new(3, 10_000).unwrap()).run(
        3,
        &[
            (0, W0 + 1000, 0, true, 3, -1, 0), // peek on an empty key
            (1, W0 + 1000, 2, true, 1, -1, 9000),
            (2, W0 + 2000, 2, false, 1, 8000, 8000), // denied consumes nothing
            (3, W0 + 2000, 1, true, 0, -1, 8000),
            (4, W0 + 9999, 1, false, 0, 1, 1),
            (5, W0 + 10_000, 1, true, 2, -1, 10_000), // new window
            (6, W0 + 10_000, 4, false, 2, -1, 10_000), // can never fit
        ],
    );
}

#[test]
fn fixed_window_writes_over_any_count_it_surely_admits() {
    let w = FixedWindow::new(100, 1000).unwrap();
    assert!(w.writes_over_any(2, 1)); // 99 + 1 fits
    assert!(!w.writes_over_any(2, 2)); // 99 + 2 does not
    assert!(!w.writes_over_any(3, 1));
    assert!(!w.writes_over_any(2, 0)); // a peek writes nothing
    assert!(!w.writes_over_any(19, 1));
    assert!(!w.writes_over_any(40, 1));
    let wide = FixedWindow::new(i64::MAX, 1000).unwrap();
    assert!(wide.writes_over_any(18, i64::MAX - (10_i64.pow(18) - 1)));
    // Whenever it says so, decide agrees for every count of that length.
    let now = 1_700_000_000_500;
    for (len, cost) in [(1, 91), (2, 1), (1, 1)] {
        assert!(w.writes_over_any(len, cost));
        let top = 10_i64.pow(len as u32) - 1;
        for count in [top / 10, top] {
            let text = count.to_string();
            let stored = Stored {
                value: text.as_bytes(),
                expire_at_ms: Some(now + 500),
            };
            assert!(w.decide(Some(stored), now, cost).unwrap().write.is_some());
        }
    }
}

#[test]
fn fixed_window_ignores_state_from_other_parameters() {
    let w = FixedWindow::new(5, 1000).unwrap();
    let now = 1_700_000_000_500;
    let stored = |expire_at_ms| Stored {
        value: b"4",
        expire_at_ms,
    };
    let remaining = |s| w.decide(Some(s), now, 0).unwrap().reply.remaining;
    assert_eq!(remaining(stored(Some(now + 500))), 1); // this window's counter
    assert_eq!(remaining(stored(Some(now + 501))), 5); // outlives this window: not ours
    assert_eq!(remaining(stored(None)), 5); // no TTL: not ours
                                            // The previous window's counter, which the server keeps through the ms it expires in.
    let start = now - 500;
    let first_ms = w.decide(Some(stored(Some(start))), start, 0).unwrap();
    assert_eq!(first_ms.reply.remaining, 5);
    assert!(w.decide(Some(stored(Some(now + 1))), now, i64::MAX).is_ok());
    let bad = Stored {
        value: b"-1",
        expire_at_ms: Some(now + 1),
    };
    assert!(w.decide(Some(bad), now, 1).is_err());
    assert!(FixedWindow::new(1, MAX_MS + 1).is_err());
}

#[test]
fn sliding_window_weights_the_previous_window() {
    let mut h = Harness::new(SlidingWindow::new(10, 10_000).unwrap());
    h.run(
        10,
        &[
            (0, W0, 6, true, 4, -1, 20_000),
            (1, W0 + 5000, 4, true, 0, -1, 15_000),
            (2, W0 + 5000, 1, false, 0, 6000, 15_000),
            // Next window, 25% in: previous 10 weigh 7.5, so 2 more fit.
            (3, W0 + 12_500, 2, true, 0, -1, 17_500),
            // 7.5 + 3 > 10: wait until prev·(W−e) <= 7·W, at e = 3000.
            (4, W0 + 12_500, 1, false, 0, 500, 17_500),
            // Two windows later everything is forgotten.
            (5, W0 + 30_000, 10, true, 0, -1, 20_000),
        ],
    );
    assert_eq!(
        h.state.as_ref().unwrap().value.to_string(),
        format!("{}:0:10", W0 + 30_000)
    );
}

#[test]
fn sliding_window_retry_is_the_least_wait() {
    // Check retry_after against brute force: the first ms at which the cost fits.
    let w = SlidingWindow::new(7, 100).unwrap();
    let start = 1_700_000_000_000;
    for prev in 0..=8 {
        for curr in 0..=8 {
            for elapsed in [0, 1, 37, 99] {
                for cost in 1..=7 {
                    let value = format!("{start}:{prev}:{curr}");
                    let now = start + elapsed;
                    let stored = Stored {
                        value: value.as_bytes(),
                        expire_at_ms: None,
                    };
                    let reply = w.decide(Some(stored), now, cost).unwrap().reply;
                    if reply.allowed {
                        continue;
                    }
                    let fits_at = (1..=300)
                        .find(|&t| {
                            let stored = Stored {
                                value: value.as_bytes(),
                                expire_at_ms: None,
                            };
                            w.decide(Some(stored), now + t, cost).unwrap().reply.allowed
                        })
                        .unwrap();
                    assert_eq!(
                        reply.retry_after_ms, fits_at,
                        "{prev} {curr} {elapsed} {cost}"
                    );
                }
            }
        }
    }
}

/// An in-memory admission log, as a sorted list of (time, seq).
#[derive(Default)]
struct MemLog(Vec<(i64, i64)>);

impl AdmissionLog for MemLog {
    fn entries(&mut self) -> Result<i64, CmdError> {
        Ok(self.0.len() as i64)
    }
    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError> {
        Ok(self.0.iter().filter(|e| e.0 > after_ms).count() as i64)
    }
    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError> {
        Ok(self
            .0
            .iter()
            .filter(|e| e.0 > after_ms)
            .nth(index as usize)
            .unwrap()
            .0)
    }
    fn newest(&mut self) -> Result<Option<i64>, CmdError> {
        Ok(self.0.last().map(|e| e.0))
    }
    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError> {
        Ok(self.0.iter().filter(|e| e.0 == at_ms).count() as i64)
    }
}

impl MemLog {
    fn apply(&mut self, w: &LogWrite) {
        if let Some(through) = w.prune_through_ms {
            self.0.retain(|e| e.0 > through);
        }
        for seq in w.first_seq..w.first_seq + w.count {
            assert!(!self.0.contains(&(w.at_ms, seq)), "members are unique");
            self.0.push((w.at_ms, seq));
        }
    }
}

#[test]
fn sliding_exact_is_a_true_log() {
    let w = SlidingWindow::new(3, 1000).unwrap();
    let mut log = MemLog::default();
    // (now, cost, allowed, remaining, retry, reset)
    let cases: &[(i64, i64, bool, i64, i64, i64)] = &[
        (T0, 0, true, 3, -1, 0),
        (T0, 1, true, 2, -1, 1000),
        (T0 + 400, 2, true, 0, -1, 1000),
        (T0 + 500, 1, false, 0, 500, 900),
        (T0 + 500, 4, false, 0, -1, 900),
        (T0 + 500, 3, false, 0, 900, 900),
        (T0 + 1000, 1, true, 0, -1, 1000), // the first entry left at T0 + 1000
        (T0 + 1000, 1, false, 0, 400, 1000),
        (T0 + 5000, 3, true, 0, -1, 1000),
    ];
    for (i, &(now, cost, allowed, remaining, retry, reset)) in cases.iter().enumerate() {
        let (reply, write) = w.decide_exact(&mut log, now, cost).unwrap();
        let want = rate_reply(allowed, 3, remaining, retry, reset);
        assert_eq!(reply, want, "case {i}");
        if let Some(write) = write {
            log.apply(&write);
        }
    }
    assert_eq!(log.0, vec![(T0 + 5000, 0), (T0 + 5000, 1), (T0 + 5000, 2)]);
}

#[test]
fn sliding_exact_refuses_a_cost_it_cannot_write_in_one_call() {
    // One member per unit of cost: COST 2^52 once asked the allocator for 72 PB and aborted
    // the server.
    let w = SlidingWindow::new(i64::MAX, 1000).unwrap();
    let mut log = MemLog::default();
    let (_, write) = w.decide_exact(&mut log, T0, MAX_EXACT_COST).unwrap();
    assert_eq!(write.map(|w| w.count), Some(MAX_EXACT_COST));
    let err = w.decide_exact(&mut log, T0, 1 << 52).unwrap_err();
    assert_eq!(err.to_string(), format!("ERR {EXACT_COST_TOO_HIGH}"));
    assert!(w.decide_exact(&mut log, T0, MAX_EXACT_COST + 1).is_err());
}

#[test]
fn sliding_exact_prunes_in_batches_and_stays_bounded() {
    let w = SlidingWindow::new(100, 1000).unwrap();
    let mut log = MemLog::default();
    let mut prunes = 0;
    for i in 0..5000 {
        let now = T0 + i * 7; // about 143 requests per window: some are denied
        let (_, write) = w.decide_exact(&mut log, now, 1).unwrap();
        if let Some(write) = write {
            prunes += usize::from(write.prune_through_ms.is_some());
            log.apply(&write);
        }
        assert!(
            log.0.len() as i64 <= 100 + PRUNE_BATCH,
            "log grew to {}",
            log.0.len()
        );
    }
    // About one prune per PRUNE_BATCH admissions, not one per admission.
    assert!(prunes > 0 && prunes < 5000 / 6, "{prunes} prunes");
}

#[test]
fn definitions_parse_their_arguments() {
    let args = |s: &str| -> Vec<Vec<u8>> { s.split(' ').map(|a| a.as_bytes().to_vec()).collect() };
    // The value `read` takes from the parsed arguments, or the error.
    let read = |def: &CommandDef, s: &str, read: fn(&Args) -> i64| {
        let owned = args(s);
        let raw: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        def.parse(&raw).map(|a| read(&a))
    };
    let parse = |def: &CommandDef, s: &str| read(def, s, |_| 0);
    let cost = |a: &Args| a.int("COST");
    assert_eq!(read(&TOKENBUCKET, "10 1 1000", cost), Ok(1));
    assert_eq!(read(&TOKENBUCKET, "10 1 1000 cost 0", cost), Ok(0));
    assert_eq!(
        parse(&TOKENBUCKET, "10 0 1000").unwrap_err().to_string(),
        "ERR rate must be a positive integer"
    );
    assert_eq!(
        parse(&TOKENBUCKET, "10 1 1000 COST -1")
            .unwrap_err()
            .to_string(),
        "ERR COST must be a non-negative integer"
    );
    let exact = |a: &Args| i64::from(a.flag("EXACT"));
    assert_eq!(read(&SLIDINGWINDOW, "5 100 EXACT", exact), Ok(1));
    let quantity = |a: &Args| a.int("quantity");
    assert_eq!(read(&THROTTLE, "0 1 1", quantity), Ok(1));
    assert_eq!(read(&THROTTLE, "0 1 1 0", quantity), Ok(0));
    assert_eq!(parse(&THROTTLE, "0 1 1 1 1").unwrap_err(), CmdError::Syntax);
    assert_eq!(TOKENBUCKET.arity(), -5);
    assert_eq!(THROTTLE.arity(), -5);
    assert_eq!(FIXEDWINDOW.arity(), -4);
}

/// A small deterministic generator, so property tests need no dependency.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: i64) -> i64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as i64
    }
}

/// The first ms from `now` (inclusive) at which `cost` fits, by trying every ms.
fn first_fit(limiter: &impl StringLimiter, state: &StringWrite, now: i64, cost: i64) -> i64 {
    let text = state.value.to_string();
    (0..)
        .find(|t| {
            let stored = (state.expire_at_ms > now + t).then_some(Stored {
                value: text.as_bytes(),
                expire_at_ms: Some(state.expire_at_ms),
            });
            limiter.decide(stored, now + t, cost).unwrap().reply.allowed
        })
        .unwrap()
}

#[test]
fn token_bucket_replies_agree_with_brute_force() {
    let mut rng = Lcg(42);
    for _ in 0..300 {
        let b = TokenBucket::new(1 + rng.below(8), 1 + rng.below(7), 1 + rng.below(300)).unwrap();
        let mut h = Harness::new(b);
        let mut now = T0 + rng.below(1000);
        for _ in 0..30 {
            now += rng.below(80);
            let cost = rng.below(b.capacity + 2);
            let before = h.state.clone();
            let reply = h.step(now, cost);
            // `remaining` more unit requests fit right now, and not one more.
            if let Some(state) = &h.state {
                let left = (0..=reply.remaining + 1)
                    .take_while(|&n| {
                        let text = state.value.to_string();
                        let stored = (state.expire_at_ms > now).then_some(Stored {
                            value: text.as_bytes(),
                            expire_at_ms: Some(state.expire_at_ms),
                        });
                        b.decide(stored, now, n).unwrap().reply.allowed
                    })
                    .count() as i64
                    - 1;
                assert_eq!(left, reply.remaining, "{b:?} at {now}");
                // reset_after_ms is when the bucket is full again.
                assert_eq!(first_fit(&b, state, now, b.capacity), reply.reset_after_ms);
            }
            if !reply.allowed && cost <= b.capacity {
                let state = before.expect("a denial needs state");
                assert_eq!(
                    first_fit(&b, &state, now, cost),
                    reply.retry_after_ms,
                    "{b:?}"
                );
            }
        }
    }
}

#[test]
fn sliding_exact_agrees_with_a_naive_log() {
    let mut rng = Lcg(7);
    for _ in 0..200 {
        let w = SlidingWindow::new(1 + rng.below(6), 1 + rng.below(200)).unwrap();
        let mut log = MemLog::default();
        let mut naive: Vec<i64> = Vec::new(); // every admitted unit, forever
        let mut now = T0;
        for _ in 0..40 {
            now += rng.below(60);
            let cost = rng.below(w.limit + 2);
            let (reply, write) = w.decide_exact(&mut log, now, cost).unwrap();
            let live = naive.iter().filter(|&&t| t > now - w.window_ms).count() as i64;
            assert_eq!(reply.allowed, live + cost <= w.limit, "{w:?} at {now}");
            if let Some(write) = write {
                log.apply(&write);
                naive.extend(std::iter::repeat_n(now, cost as usize));
            }
            let live_after = naive.iter().filter(|&&t| t > now - w.window_ms).count() as i64;
            assert_eq!(reply.remaining, (w.limit - live_after).max(0));
            if !reply.allowed && cost <= w.limit {
                // The least wait: once enough of the oldest live units have left the window.
                let wait = (1..)
                    .find(|t| {
                        let n = naive.iter().filter(|&&u| u > now + t - w.window_ms).count() as i64;
                        n + cost <= w.limit
                    })
                    .unwrap();
                assert_eq!(reply.retry_after_ms, wait);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RL.ALL and RL.REFUND

fn words(args: &[&'static str]) -> Vec<&'static [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

/// A command line's words, written as one space-separated line.
fn split(line: &'static str) -> Vec<&'static str> {
    line.split_whitespace().collect()
}

#[test]
fn limits_are_blocks_parsed_by_their_own_commands() {
    assert_eq!((ALL.arity(), REFUND.arity()), (-5, -5));
    let args = words(&split(
        "tokenbucket a 10 1 1000 COST 2 FIXEDWINDOW b 5 60000 SlidingWindow c 3 60000 EXACT cost 0",
    ));
    let limits = parse_limits(&ALL, &args).unwrap();
    let keys: Vec<usize> = limits.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, [1, 8, 12]);
    assert_eq!(ALL.block_keys(&args), keys);
    let expected = [
        Limit {
            limiter: Limiter::TokenBucket(TokenBucket::new(10, 1, 1000).unwrap()),
            cost: 2,
        },
        Limit {
            limiter: Limiter::FixedWindow(FixedWindow::new(5, 60000).unwrap()),
            cost: 1,
        },
        Limit {
            limiter: Limiter::Exact(SlidingWindow::new(3, 60000).unwrap()),
            cost: 0,
        },
    ];
    let parsed: Vec<Limit> = limits.iter().map(|(_, l)| *l).collect();
    assert_eq!(parsed, expected);
    // Each limit's own command's errors; the call's own: a bad token, a key twice.
    let cases = [
        ("BUCKET a 1 1 1", "ERR syntax error".to_string()),
        (
            "FIXEDWINDOW a 1 1000 TOKENBUCKET",
            "ERR wrong number of arguments for 'rl.tokenbucket' command".to_string(),
        ),
        (
            "FIXEDWINDOW a 1 1000 TOKENBUCKET b 1 1",
            "ERR wrong number of arguments for 'rl.tokenbucket' command".to_string(),
        ),
        (
            "FIXEDWINDOW a 0 1000",
            "ERR limit must be a positive integer".to_string(),
        ),
        ("FIXEDWINDOW a 1 1000 COST", "ERR syntax error".to_string()),
        (
            "FIXEDWINDOW a 1 1000 FIXEDWINDOW a 1 1000",
            "ERR a key may appear only once in a call".to_string(),
        ),
        (
            "FIXEDWINDOW a 1 4503599627370497",
            format!("ERR {SPAN_TOO_LONG}"),
        ),
    ];
    for (line, want) in cases {
        let got = parse_limits(&REFUND, &words(&split(line))).unwrap_err();
        assert_eq!(got.to_string(), want, "{line}");
    }
    // Key positions: as far as the blocks can be told apart.
    assert_eq!(
        ALL.block_keys(&words(&["FIXEDWINDOW", "a", "1", "1", "BOGUS", "b"])),
        [1]
    );
    assert!(ALL.block_keys(&words(&["FIXEDWINDOW"])).is_empty());
}

#[test]
fn all_admits_only_when_every_limit_does() {
    let reply = |allowed| rate_reply(allowed, 1, 0, -1, 0);
    assert_eq!(all_admit(&[reply(true), reply(true)]), (true, 0));
    assert_eq!(
        all_admit(&[reply(true), reply(false), reply(false)]),
        (false, 2)
    );
}

fn stored(w: &StringWrite) -> (String, Option<i64>) {
    (w.value.to_string(), Some(w.expire_at_ms))
}

fn refund_of(
    limit: &impl Fn(Option<Stored<'_>>) -> Result<Refund, CmdError>,
    state: Option<&StringWrite>,
) -> Refund {
    let text = state.map(stored);
    let s = text.as_ref().map(|(v, at)| Stored {
        value: v.as_bytes(),
        expire_at_ms: *at,
    });
    limit(s).unwrap()
}

#[test]
fn token_bucket_refund_moves_the_tat_back_never_past_now() {
    let b = TokenBucket::new(5, 1, 1000).unwrap();
    let taken = b.decide(None, T0, 3).unwrap().write.unwrap();
    assert_eq!(
        taken,
        StringWrite::set(StateValue::TatAtExpiry, T0 + 3000),
        "a whole-ms TAT is the new key's expiry"
    );
    let r = refund_of(&|s| b.refund(s, T0 + 500, 2), Some(&taken));
    let want = StringWrite {
        value: StateValue::TatAtExpiry,
        expire_at_ms: T0 + 1000,
        effect: Effect::Expire,
    };
    assert_eq!(
        r,
        Refund {
            remaining: 4,
            write: Some(RefundWrite::Set(want))
        }
    );
    // Past full: the key goes; a missing key or COST 0: nothing written.
    let r = refund_of(&|s| b.refund(s, T0 + 500, 10), Some(&taken));
    assert_eq!(
        r,
        Refund {
            remaining: 5,
            write: Some(RefundWrite::Delete)
        }
    );
    assert_eq!(refund_of(&|s| b.refund(s, T0, 1), None).write, None);
    assert_eq!(refund_of(&|s| b.refund(s, T0, 0), Some(&taken)).write, None);
    // A fractional TAT stays exact: 3 per second, two taken, one given back.
    let b = TokenBucket::new(3, 3, 1000).unwrap();
    let taken = b.decide(None, T0, 2).unwrap().write.unwrap();
    let r = refund_of(&|s| b.refund(s, T0, 1), Some(&taken));
    let Some(RefundWrite::Set(w)) = r.write else {
        panic!("{r:?}")
    };
    assert_eq!(
        (w.value.to_string(), w.expire_at_ms),
        (format!("{}+1/3", T0 + 333), T0 + 334)
    );
    // No overflow at the ends of i64.
    let b = TokenBucket::new(2, i64::MAX, 1 << 52).unwrap();
    let taken = b.decide(None, T0, 2).unwrap().write.unwrap();
    let r = refund_of(&|s| b.refund(s, T0, i64::MAX), Some(&taken));
    assert_eq!(
        r,
        Refund {
            remaining: 2,
            write: Some(RefundWrite::Delete)
        }
    );
}

#[test]
fn window_refunds_take_off_the_current_count_only() {
    let f = FixedWindow::new(5, 1000).unwrap();
    let four = StringWrite::set(StateValue::Count(4), T0 + 1000);
    let r = refund_of(&|s| f.refund(s, T0 + 10, 1), Some(&four));
    let three = StringWrite {
        value: StateValue::Count(3),
        ..four.clone()
    };
    assert_eq!(
        r,
        Refund {
            remaining: 2,
            write: Some(RefundWrite::Set(three))
        }
    );
    let r = refund_of(&|s| f.refund(s, T0 + 10, 9), Some(&four));
    assert_eq!(
        r,
        Refund {
            remaining: 5,
            write: Some(RefundWrite::Delete)
        }
    );
    // A counter outliving this window was written with other parameters: nothing to refund.
    let other = StringWrite {
        expire_at_ms: T0 + 5000,
        ..four.clone()
    };
    assert_eq!(
        refund_of(&|s| f.refund(s, T0 + 10, 1), Some(&other)).write,
        None
    );

    let w = SlidingWindow::new(5, 1000).unwrap();
    let windows = StateValue::Windows {
        start: T0,
        prev: 2,
        curr: 3,
    };
    let state = StringWrite::set(windows, T0 + 2000);
    let r = refund_of(&|s| w.refund(s, T0 + 500, 5), Some(&state));
    let kept = StringWrite {
        value: StateValue::Windows {
            start: T0,
            prev: 2,
            curr: 0,
        },
        ..state.clone()
    };
    // 5 - 2 weighted by half a window.
    assert_eq!(
        r,
        Refund {
            remaining: 4,
            write: Some(RefundWrite::Set(kept))
        }
    );
    // After the rollover the count is the previous window's: nothing comes back.
    let r = refund_of(&|s| w.refund(s, T0 + 1500, 3), Some(&state));
    assert_eq!(
        r,
        Refund {
            remaining: 3,
            write: None
        }
    );
    let only = StringWrite {
        value: StateValue::Windows {
            start: T0,
            prev: 0,
            curr: 3,
        },
        ..state
    };
    let r = refund_of(&|s| w.refund(s, T0 + 500, 3), Some(&only));
    assert_eq!(r.write, Some(RefundWrite::Delete));
}

#[test]
fn exact_refund_removes_the_newest_admissions() {
    let w = SlidingWindow::new(10, 1000).unwrap();
    let mut log = MemLog::default();
    for (now, cost) in [(T0, 3), (T0 + 10, 2)] {
        let (_, write) = w.decide_exact(&mut log, now, cost).unwrap();
        log.apply(&write.unwrap());
    }
    let (remaining, r) = w.refund_exact(&mut log, T0 + 20, 3).unwrap();
    assert_eq!(remaining, 8);
    assert_eq!(
        r,
        Some(LogRefund {
            above_ms: T0,
            at_count: 1
        })
    );
    // Of the members at one ms, the highest sequence numbers go (numerically, not as text).
    let members = words(&["5:9", "5:10", "5:2"]);
    assert_eq!(newest_members(&members, 2), [1, 0]);
    // Past everything in the window: all of it, never below empty; outside the window nothing.
    assert_eq!(w.refund_exact(&mut log, T0 + 20, 100).unwrap().0, 10);
    assert_eq!(w.refund_exact(&mut log, T0 + 5000, 1).unwrap(), (10, None));
    let err = w
        .refund_exact(&mut log, T0, MAX_EXACT_COST + 1)
        .unwrap_err();
    assert_eq!(err.to_string(), format!("ERR {EXACT_COST_TOO_HIGH}"));
}

#[test]
fn a_key_twice_is_found_among_few_and_many_limits() {
    for n in [2usize, 16, 17, 40] {
        let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
        let mut args: Vec<&[u8]> = Vec::new();
        for key in &keys {
            args.extend(words(&["FIXEDWINDOW"]));
            args.push(key.as_bytes());
            args.extend(words(&["1", "1000"]));
        }
        assert_eq!(parse_limits(&ALL, &args).unwrap().len(), n);
        // The last key repeats the first; an empty name is a key like any other.
        let last = args.len() - 3;
        args[last] = b"k0";
        assert!(parse_limits(&ALL, &args).is_err(), "{n}");
        args[last] = b"";
        args[1] = b"";
        assert!(parse_limits(&ALL, &args).is_err(), "{n}");
    }
}

#[test]
fn every_limits_arguments_are_checked_before_any_span() {
    // The first limit's span is too long, the second's limit is bad: the argument error wins.
    let args = words(&split(
        "TOKENBUCKET a 4503599627370497 1 1000 FIXEDWINDOW b x 1000",
    ));
    assert_eq!(
        parse_limits(&ALL, &args).unwrap_err().to_string(),
        "ERR limit must be a positive integer"
    );
}

#[test]
fn a_short_limit_gets_its_own_commands_arity_error_first() {
    // `RL.TOKENBUCKET k x` is refused by the server for its count before `x` is read.
    let args = words(&["FIXEDWINDOW", "a", "1", "1000", "TOKENBUCKET", "b", "x"]);
    assert_eq!(
        parse_limits(&REFUND, &args).unwrap_err().to_string(),
        "ERR wrong number of arguments for 'rl.tokenbucket' command"
    );
}

//! Binds the rate-limiting family (`patterns_core::ratelimit`) to Redis:
//! parse → decide → write state → replicate the effect → reply.

use std::ffi::c_int;

use patterns_core::command::CmdError;
use patterns_core::ratelimit::{
    self as rl, AdmissionLog, LogWrite, RateReply, SlidingWindow, Stored, StringLimiter,
    TokenBucket,
};
use redis_module::raw::{self, KeyType};

use crate::command;
use crate::shared::{
    now_ms, replicate_set_pxat, replicate_with_key, Call, Key, OwnedString, Reply, StackText,
};

// RL.TOKENBUCKET key capacity rate period_ms [COST n]
command!(tokenbucket, rl::TOKENBUCKET, |call| {
    let p = rl::TOKENBUCKET.parse(call.rest())?;
    let [capacity, rate, period_ms, ..] = p.positionals;
    let bucket = TokenBucket::new(capacity, rate, period_ms)?;
    Ok(Reply::Ints(
        run_string(call, &bucket, p.options[0])?.to_array(),
    ))
});

// RL.FIXEDWINDOW key limit window_ms [COST n]
command!(fixedwindow, rl::FIXEDWINDOW, |call| {
    let p = rl::FIXEDWINDOW.parse(call.rest())?;
    let [limit, window_ms, ..] = p.positionals;
    let window = rl::FixedWindow::new(limit, window_ms)?;
    Ok(Reply::Ints(
        run_string(call, &window, p.options[0])?.to_array(),
    ))
});

// RL.SLIDINGWINDOW key limit window_ms [COST n] [EXACT]
command!(slidingwindow, rl::SLIDINGWINDOW, |call| {
    let p = rl::SLIDINGWINDOW.parse(call.rest())?;
    let [limit, window_ms, ..] = p.positionals;
    let [cost, exact, ..] = p.options;
    let window = SlidingWindow::new(limit, window_ms)?;
    let reply = if exact == 1 {
        run_exact(call, &window, cost)?
    } else {
        run_string(call, &window, cost)?
    };
    Ok(Reply::Ints(reply.to_array()))
});

// CL.THROTTLE key max_burst count_per_period period_s [quantity]
command!(throttle, rl::THROTTLE, |call| {
    let p = rl::THROTTLE.parse(call.rest())?;
    let [max_burst, count_per_period, period_s, quantity, ..] = p.positionals;
    let bucket = TokenBucket::from_cell(max_burst, count_per_period, period_s)?;
    Ok(Reply::Ints(
        run_string(call, &bucket, quantity)?.to_cell_array(),
    ))
});

const STRING_EVENTS: [(c_int, &std::ffi::CStr); 2] = [
    (raw::REDISMODULE_NOTIFY_STRING, c"set"),
    (raw::REDISMODULE_NOTIFY_GENERIC, c"expire"),
];

/// Runs a limiter whose state is one string: read it, decide, and when something was
/// admitted write the new value with its absolute expiry and replicate `SET ... PXAT`.
fn run_string<L: StringLimiter>(
    call: &Call,
    limiter: &L,
    cost: i64,
) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let key = Key::open(call);
    let stored = key.string()?.map(|value| Stored {
        value,
        expire_at_ms: if L::READS_EXPIRY {
            key.expire_at_ms()
        } else {
            None
        },
    });
    let outcome = limiter.decide(stored, now, cost)?;
    if let Some(write) = outcome.write {
        let value = StackText::of(write.value);
        key.write_string(value.as_bytes());
        key.set_expire_at(write.expire_at_ms);
        key.modified(&STRING_EVENTS);
        replicate_set_pxat(call, value.as_bytes(), write.expire_at_ms);
    }
    Ok(outcome.reply)
}

/// The exact sliding window, on the sorted set through the module's zset API.
fn run_exact(call: &Call, window: &SlidingWindow, cost: i64) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let key = Key::open(call);
    key.expect(KeyType::ZSet)?;
    let mut log = ZsetLog { key: &key };
    let (reply, write) = window.decide_exact(&mut log, now, cost)?;
    if let Some(write) = write {
        log.apply(call, &write);
    }
    Ok(reply)
}

/// The admission log as a sorted set: members `<ms>:<seq>` scored by admission time.
struct ZsetLog<'a> {
    key: &'a Key<'a>,
}

/// A score range: bounds and whether each is exclusive.
#[derive(Clone, Copy)]
struct Range {
    min: f64,
    max: f64,
    min_exclusive: bool,
    max_exclusive: bool,
}

impl Range {
    fn through(max_ms: i64) -> Self {
        Self {
            min: f64::NEG_INFINITY,
            max: max_ms as f64,
            min_exclusive: false,
            max_exclusive: false,
        }
    }

    fn after(min_ms: i64) -> Self {
        Self {
            min: min_ms as f64,
            max: f64::INFINITY,
            min_exclusive: true,
            max_exclusive: false,
        }
    }

    fn at(ms: i64) -> Self {
        Self {
            min: ms as f64,
            max: ms as f64,
            min_exclusive: false,
            max_exclusive: false,
        }
    }
}

impl ZsetLog<'_> {
    /// Starts a range iteration; false when the range is empty.
    fn start(&self, r: Range) -> bool {
        let k = self.key.raw();
        unsafe {
            raw::RedisModule_ZsetFirstInScoreRange.unwrap()(
                k,
                r.min,
                r.max,
                c_int::from(r.min_exclusive),
                c_int::from(r.max_exclusive),
            ) == raw::REDISMODULE_OK as c_int
                && raw::RedisModule_ZsetRangeEndReached.unwrap()(k) == 0
        }
    }

    fn stop(&self) {
        unsafe { raw::RedisModule_ZsetRangeStop.unwrap()(self.key.raw()) };
    }

    fn next(&self) -> bool {
        unsafe { raw::RedisModule_ZsetRangeNext.unwrap()(self.key.raw()) != 0 }
    }

    /// The element under the iterator and its score.
    fn current(&self) -> (OwnedString, f64) {
        let mut score = 0.0;
        let inner = unsafe {
            raw::RedisModule_ZsetRangeCurrentElement.unwrap()(self.key.raw(), &mut score)
        };
        (OwnedString::adopt(self.key.ctx(), inner), score)
    }

    fn count(&self, r: Range) -> i64 {
        let mut n = 0;
        if self.start(r) {
            n = 1;
            while self.next() {
                n += 1;
            }
        }
        self.stop();
        n
    }

    /// Prunes, adds and sets the expiry, replicating each step as the command Redis would run.
    fn apply(&self, call: &Call, w: &LogWrite) {
        let k = self.key.raw();
        let mut stale = Vec::new();
        if let Some(through) = w.prune_through_ms {
            if self.start(Range::through(through)) {
                loop {
                    stale.push(self.current().0);
                    if !self.next() {
                        break;
                    }
                }
            }
            self.stop();
            for member in &stale {
                unsafe { raw::RedisModule_ZsetRem.unwrap()(k, member.inner, std::ptr::null_mut()) };
            }
            let bound = OwnedString::new(call.ctx, StackText::of(through).as_bytes());
            let neg_inf = OwnedString::new(call.ctx, b"-inf");
            replicate_with_key(call, c"ZREMRANGEBYSCORE", &[neg_inf.inner, bound.inner]);
        }
        let score = OwnedString::new(call.ctx, StackText::of(w.at_ms).as_bytes());
        let members: Vec<OwnedString> = (w.first_seq..w.first_seq + w.count)
            .map(|seq| {
                OwnedString::new(
                    call.ctx,
                    StackText::of(format_args!("{}:{seq}", w.at_ms)).as_bytes(),
                )
            })
            .collect();
        let mut zadd = Vec::with_capacity(members.len() * 2);
        for m in &members {
            let mut flags: c_int = 0;
            unsafe { raw::RedisModule_ZsetAdd.unwrap()(k, w.at_ms as f64, m.inner, &mut flags) };
            zadd.push(score.inner);
            zadd.push(m.inner);
        }
        replicate_with_key(call, c"ZADD", &zadd);
        self.key.set_expire_at(w.expire_at_ms);
        let at = OwnedString::new(call.ctx, StackText::of(w.expire_at_ms).as_bytes());
        replicate_with_key(call, c"PEXPIREAT", &[at.inner]);
        let mut events = vec![(raw::REDISMODULE_NOTIFY_ZSET, c"zadd")];
        if !stale.is_empty() {
            events.push((raw::REDISMODULE_NOTIFY_ZSET, c"zremrangebyscore"));
        }
        events.push((raw::REDISMODULE_NOTIFY_GENERIC, c"expire"));
        self.key.modified(&events);
    }
}

impl AdmissionLog for ZsetLog<'_> {
    fn entries(&mut self) -> Result<i64, CmdError> {
        Ok(unsafe { raw::RedisModule_ValueLength.unwrap()(self.key.raw()) } as i64)
    }

    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError> {
        // Live entries are most of the set: count the stale ones instead.
        Ok(self.entries()? - self.count(Range::through(after_ms)))
    }

    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError> {
        if !self.start(Range::after(after_ms)) {
            self.stop();
            return Err(CmdError::Internal);
        }
        for _ in 0..index {
            self.next();
        }
        let (_, score) = self.current();
        self.stop();
        Ok(score.floor() as i64)
    }

    fn newest(&mut self) -> Result<Option<i64>, CmdError> {
        let k = self.key.raw();
        let found = unsafe {
            raw::RedisModule_ZsetLastInScoreRange.unwrap()(
                k,
                f64::NEG_INFINITY,
                f64::INFINITY,
                0,
                0,
            ) == raw::REDISMODULE_OK as c_int
                && raw::RedisModule_ZsetRangeEndReached.unwrap()(k) == 0
        };
        let newest = found.then(|| self.current().1.floor() as i64);
        self.stop();
        Ok(newest)
    }

    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError> {
        Ok(self.count(Range::at(at_ms)))
    }
}

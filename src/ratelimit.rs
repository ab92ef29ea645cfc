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
    now_ms, replicate_set_pxat, replicate_with_key, Call, Key, OwnedString, Reply, ScoreRange,
    StackText,
};

// RL.TOKENBUCKET key capacity rate period_ms [COST n]
command!(tokenbucket, rl::TOKENBUCKET, |call| {
    let a = rl::TOKENBUCKET.parse(call.rest())?;
    let bucket = TokenBucket::new(a.int("capacity"), a.int("rate"), a.int("period_ms"))?;
    Ok(Reply::Ints(
        run_string(call, &bucket, a.int("COST"))?.to_array(),
    ))
});

// RL.FIXEDWINDOW key limit window_ms [COST n]
command!(fixedwindow, rl::FIXEDWINDOW, |call| {
    let a = rl::FIXEDWINDOW.parse(call.rest())?;
    let window = rl::FixedWindow::new(a.int("limit"), a.int("window_ms"))?;
    Ok(Reply::Ints(
        run_string(call, &window, a.int("COST"))?.to_array(),
    ))
});

// RL.SLIDINGWINDOW key limit window_ms [COST n] [EXACT]
command!(slidingwindow, rl::SLIDINGWINDOW, |call| {
    let a = rl::SLIDINGWINDOW.parse(call.rest())?;
    let window = SlidingWindow::new(a.int("limit"), a.int("window_ms"))?;
    let cost = a.int("COST");
    let reply = if a.flag("EXACT") {
        run_exact(call, &window, cost)?
    } else {
        run_string(call, &window, cost)?
    };
    Ok(Reply::Ints(reply.to_array()))
});

// CL.THROTTLE key max_burst count_per_period period_s [quantity]
command!(throttle, rl::THROTTLE, |call| {
    let a = rl::THROTTLE.parse(call.rest())?;
    let (max_burst, period_s) = (a.int("max_burst"), a.int("period_s"));
    let bucket = TokenBucket::from_cell(max_burst, a.int("count_per_period"), period_s)?;
    Ok(Reply::Ints(
        run_string(call, &bucket, a.int("quantity"))?.to_cell_array(),
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

impl ZsetLog<'_> {
    /// Prunes, adds and sets the expiry, replicating each step as the command Redis would run.
    fn apply(&self, call: &Call, w: &LogWrite) {
        let key = self.key;
        let mut events = vec![(raw::REDISMODULE_NOTIFY_ZSET, c"zadd")];
        if let Some(through) = w.prune_through_ms {
            key.zset_remove(&key.zset_members(ScoreRange::through(through)));
            let bound = OwnedString::new(call.ctx, StackText::of(through).as_bytes());
            let neg_inf = OwnedString::new(call.ctx, b"-inf");
            replicate_with_key(call, c"ZREMRANGEBYSCORE", &[neg_inf.inner, bound.inner]);
            events.push((raw::REDISMODULE_NOTIFY_ZSET, c"zremrangebyscore"));
        }
        let score = OwnedString::new(call.ctx, StackText::of(w.at_ms).as_bytes());
        let members: Vec<OwnedString> = (w.first_seq..w.first_seq + w.count)
            .map(|seq| {
                let member = StackText::of(format_args!("{}:{seq}", w.at_ms));
                OwnedString::new(call.ctx, member.as_bytes())
            })
            .collect();
        let mut zadd = Vec::with_capacity(members.len() * 2);
        for m in &members {
            key.zset_add(w.at_ms as f64, m.inner);
            zadd.push(score.inner);
            zadd.push(m.inner);
        }
        replicate_with_key(call, c"ZADD", &zadd);
        key.set_expire_at(w.expire_at_ms);
        let at = OwnedString::new(call.ctx, StackText::of(w.expire_at_ms).as_bytes());
        replicate_with_key(call, c"PEXPIREAT", &[at.inner]);
        events.push((raw::REDISMODULE_NOTIFY_GENERIC, c"expire"));
        key.modified(&events);
    }
}

impl AdmissionLog for ZsetLog<'_> {
    fn entries(&mut self) -> Result<i64, CmdError> {
        Ok(self.key.len())
    }

    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError> {
        // Live entries are most of the set: count the stale ones instead.
        Ok(self.key.len() - self.key.zset_count(ScoreRange::through(after_ms)))
    }

    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError> {
        let key = self.key;
        let found = key.zset_start(ScoreRange::after(after_ms), false)
            && (0..index).all(|_| key.zset_next());
        let score = found.then(|| key.zset_current().1);
        key.zset_stop();
        score.map(|s| s.floor() as i64).ok_or(CmdError::Internal)
    }

    fn newest(&mut self) -> Result<Option<i64>, CmdError> {
        Ok(self.key.zset_top_score().map(|s| s.floor() as i64))
    }

    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError> {
        Ok(self.key.zset_count(ScoreRange::at(at_ms)))
    }
}

//! Binds the rate-limiting family (`patterns_core::ratelimit`) to Redis:
//! parse → decide → write state → replicate the effect → reply.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::ratelimit::{
    self as rl, AdmissionLog, LogWrite, RateReply, SlidingWindow, StateValue, Stored,
    StringLimiter, TokenBucket,
};

use crate::command;
use crate::ffi::{
    now_ms, Call, Command, Key, KeyType, Notify, OwnedString, Reply, ScoreRange, Token,
};
use crate::stats::{self, Stat};
use crate::text::StackText;

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(rl::TOKENBUCKET, tokenbucket),
    command!(rl::FIXEDWINDOW, fixedwindow),
    command!(rl::SLIDINGWINDOW, slidingwindow),
    command!(rl::THROTTLE, throttle),
];

// RL.TOKENBUCKET key capacity rate period_ms [COST n]
fn tokenbucket(call: &Call) -> Result<Reply, CmdError> {
    let a = rl::TOKENBUCKET.parse(call.rest())?;
    let bucket = TokenBucket::new(a.int("capacity"), a.int("rate"), a.int("period_ms"))?;
    let reply = run_string(call, &bucket, a.int("COST"))?;
    stats::admission(
        Stat::TokenbucketAllowed,
        Stat::TokenbucketDenied,
        reply.allowed,
    );
    Ok(Reply::Ints(reply.to_array().into()))
}

// RL.FIXEDWINDOW key limit window_ms [COST n]
fn fixedwindow(call: &Call) -> Result<Reply, CmdError> {
    let a = rl::FIXEDWINDOW.parse(call.rest())?;
    let window = rl::FixedWindow::new(a.int("limit"), a.int("window_ms"))?;
    let reply = run_string(call, &window, a.int("COST"))?;
    stats::admission(
        Stat::FixedwindowAllowed,
        Stat::FixedwindowDenied,
        reply.allowed,
    );
    Ok(Reply::Ints(reply.to_array().into()))
}

// RL.SLIDINGWINDOW key limit window_ms [COST n] [EXACT]
fn slidingwindow(call: &Call) -> Result<Reply, CmdError> {
    let a = rl::SLIDINGWINDOW.parse(call.rest())?;
    let window = SlidingWindow::new(a.int("limit"), a.int("window_ms"))?;
    let cost = a.int("COST");
    let reply = if a.flag("EXACT") {
        run_exact(call, &window, cost)?
    } else {
        run_string(call, &window, cost)?
    };
    stats::admission(
        Stat::SlidingwindowAllowed,
        Stat::SlidingwindowDenied,
        reply.allowed,
    );
    Ok(Reply::Ints(reply.to_array().into()))
}

// CL.THROTTLE key max_burst count_per_period period_s [quantity]
fn throttle(call: &Call) -> Result<Reply, CmdError> {
    let a = rl::THROTTLE.parse(call.rest())?;
    let (max_burst, period_s) = (a.int("max_burst"), a.int("period_s"));
    let bucket = TokenBucket::from_cell(max_burst, a.int("count_per_period"), period_s)?;
    let reply = run_string(call, &bucket, a.int("quantity"))?;
    stats::admission(Stat::ThrottleAllowed, Stat::ThrottleDenied, reply.allowed);
    Ok(Reply::Ints(reply.to_cell_array().into()))
}

/// The replicated effects' option tokens, made once.
static PXAT: Token = Token::new(c"PXAT");
static MINUS_INF: Token = Token::new(c"-inf");

const STRING_EVENTS: [(Notify, &std::ffi::CStr); 2] =
    [(Notify::STRING, c"set"), (Notify::GENERIC, c"expire")];

/// Runs a limiter whose state is one string: read it, decide, and when something was
/// admitted write the new value with its absolute expiry and replicate `SET ... PXAT`.
fn run_string<L: StringLimiter>(
    call: &Call,
    limiter: &L,
    cost: i64,
) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let mut key = Key::open(call);
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
        let value = state_text(write.value);
        key.write_string(value.as_bytes());
        key.set_expire_at(write.expire_at_ms);
        key.modified(&STRING_EVENTS);
        // The primary's time travels in the effect, never the caller's command.
        let set = (call.key(), value.as_c_str(), &PXAT, write.expire_at_ms);
        call.ctx().replicate(c"SET", set);
    }
    Ok(outcome.reply)
}

/// A state's text: a whole-ms TAT or a count is one integer, formatted without `fmt`.
fn state_text(value: StateValue) -> StackText {
    match value {
        StateValue::Tat { ms, num: 0, .. } => StackText::int(ms),
        StateValue::Count(n) => StackText::int(n),
        other => StackText::of(other),
    }
}

/// The exact sliding window, on the sorted set through the module's zset API.
fn run_exact(call: &Call, window: &SlidingWindow, cost: i64) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let mut key = Key::open(call);
    key.expect(KeyType::ZSet)?;
    let mut log = ZsetLog { key: &mut key };
    let (reply, write) = window.decide_exact(&mut log, now, cost)?;
    if let Some(write) = write {
        log.apply(call, &write);
    }
    Ok(reply)
}

/// The admission log as a sorted set: members `<ms>:<seq>` scored by admission time.
struct ZsetLog<'k, 'a> {
    key: &'k mut Key<'a>,
}

impl ZsetLog<'_, '_> {
    /// Prunes, adds and sets the expiry, replicating each step as the command Redis would run.
    fn apply(&mut self, call: &Call, w: &LogWrite) {
        let (ctx, key) = (call.ctx(), &mut *self.key);
        let mut events = vec![(Notify::ZSET, c"zadd")];
        if let Some(through) = w.prune_through_ms {
            let stale = key.zset_members(ScoreRange::through(through));
            key.zset_remove(&stale);
            ctx.replicate(c"ZREMRANGEBYSCORE", (call.key(), &MINUS_INF, through));
            events.push((Notify::ZSET, c"zremrangebyscore"));
        }
        let score = OwnedString::from_i64(ctx, w.at_ms);
        let members: Vec<OwnedString> = (w.first_seq..w.first_seq + w.count)
            .map(|seq| {
                let member = StackText::of(format_args!("{}:{seq}", w.at_ms));
                OwnedString::new(ctx, member.as_bytes())
            })
            .collect();
        let mut zadd = Vec::with_capacity(1 + members.len() * 2);
        zadd.push(call.key());
        for m in &members {
            key.zset_add(w.at_ms as f64, m.as_str());
            zadd.extend([score.as_str(), m.as_str()]);
        }
        ctx.replicate_list(c"ZADD", &zadd);
        key.set_expire_at(w.expire_at_ms);
        ctx.replicate(c"PEXPIREAT", (call.key(), w.expire_at_ms));
        events.push((Notify::GENERIC, c"expire"));
        key.modified(&events);
    }
}

impl AdmissionLog for ZsetLog<'_, '_> {
    fn entries(&mut self) -> Result<i64, CmdError> {
        Ok(self.key.len())
    }

    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError> {
        // Live entries are most of the set: count the stale ones instead.
        Ok(self.key.len() - self.key.zset_count(ScoreRange::through(after_ms)))
    }

    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError> {
        let score = self.key.zset_nth_score(ScoreRange::after(after_ms), index);
        score.map(|s| s.floor() as i64).ok_or(CmdError::Internal)
    }

    fn newest(&mut self) -> Result<Option<i64>, CmdError> {
        Ok(self.key.zset_top_score().map(|s| s.floor() as i64))
    }

    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError> {
        Ok(self.key.zset_count(ScoreRange::at(at_ms)))
    }
}

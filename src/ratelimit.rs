//! Binds the rate-limiting family (`patterns_core::ratelimit`) to Redis:
//! parse → decide → write state → replicate the effect → reply.

use patterns_core::command::CmdError;
use patterns_core::ratelimit::{
    self as rl, AdmissionLog, LogWrite, RateReply, SlidingWindow, Stored, StringLimiter,
    TokenBucket,
};
use redis_module::raw::KeyType;
use redis_module::{Context, RedisResult, RedisString, RedisValue};

use crate::shared::{guarded, int_array, now_ms, replicate_effect, Invocation, Key};

/// `RL.TOKENBUCKET key capacity rate period_ms [COST n]`
pub fn tokenbucket(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, |ctx, args| {
        let inv = Invocation::new(&rl::TOKENBUCKET, args)?;
        let p = rl::TOKENBUCKET.parse(&inv.rest)?;
        let [capacity, rate, period_ms, ..] = p.positionals;
        let bucket = TokenBucket::new(capacity, rate, period_ms)?;
        Ok(int_array(
            run_string(ctx, &inv, &bucket, p.options[0])?.to_array(),
        ))
    })
}

/// `RL.FIXEDWINDOW key limit window_ms [COST n]`
pub fn fixedwindow(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, |ctx, args| {
        let inv = Invocation::new(&rl::FIXEDWINDOW, args)?;
        let p = rl::FIXEDWINDOW.parse(&inv.rest)?;
        let [limit, window_ms, ..] = p.positionals;
        let window = rl::FixedWindow::new(limit, window_ms)?;
        Ok(int_array(
            run_string(ctx, &inv, &window, p.options[0])?.to_array(),
        ))
    })
}

/// `RL.SLIDINGWINDOW key limit window_ms [COST n] [EXACT]`
pub fn slidingwindow(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, |ctx, args| {
        let inv = Invocation::new(&rl::SLIDINGWINDOW, args)?;
        let p = rl::SLIDINGWINDOW.parse(&inv.rest)?;
        let [limit, window_ms, ..] = p.positionals;
        let [cost, exact, ..] = p.options;
        let window = SlidingWindow::new(limit, window_ms)?;
        let reply = if exact == 1 {
            run_exact(ctx, inv.key, &window, cost)?
        } else {
            run_string(ctx, &inv, &window, cost)?
        };
        Ok(int_array(reply.to_array()))
    })
}

/// `CL.THROTTLE key max_burst count_per_period period_s [quantity]`
pub fn throttle(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    guarded(ctx, args, |ctx, args| {
        let inv = Invocation::new(&rl::THROTTLE, args)?;
        let p = rl::THROTTLE.parse(&inv.rest)?;
        let [max_burst, count_per_period, period_s, quantity, ..] = p.positionals;
        let bucket = TokenBucket::from_cell(max_burst, count_per_period, period_s)?;
        Ok(int_array(
            run_string(ctx, &inv, &bucket, quantity)?.to_cell_array(),
        ))
    })
}

/// Runs a limiter whose state is one string: read it, decide, write and replicate the new
/// value with its absolute expiry when something was admitted.
fn run_string(
    ctx: &Context,
    inv: &Invocation,
    limiter: &impl StringLimiter,
    cost: i64,
) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let key = Key::open(ctx, inv.key);
    let stored = key.string()?.map(|value| Stored {
        value,
        expire_at_ms: key.expire_at_ms(),
    });
    let outcome = limiter.decide(stored, now, cost)?;
    if let Some(write) = outcome.write {
        key.set_string(inv.key, &write.value, write.expire_at_ms);
    }
    Ok(outcome.reply)
}

/// The exact sliding window: reads the log with queries, writes with commands that are
/// replicated exactly as run (their times are explicit, so replicas reach the same set).
fn run_exact(
    ctx: &Context,
    key: &RedisString,
    window: &SlidingWindow,
    cost: i64,
) -> Result<RateReply, CmdError> {
    let now = now_ms();
    Key::open(ctx, key).expect(KeyType::ZSet)?;
    let mut log = ZsetLog {
        ctx,
        key: key.as_slice(),
    };
    let (reply, write) = window.decide_exact(&mut log, now, cost)?;
    if let Some(write) = write {
        log.apply(&write)?;
    }
    Ok(reply)
}

/// The admission log as a sorted set: members `<ms>:<seq>` scored by admission time.
struct ZsetLog<'a> {
    ctx: &'a Context,
    key: &'a [u8],
}

impl ZsetLog<'_> {
    fn query(&self, command: &str, args: &[&[u8]]) -> Result<RedisValue, CmdError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.key);
        all.extend_from_slice(args);
        self.ctx
            .call(command, all.as_slice())
            .map_err(|_| CmdError::Internal)
    }

    fn count(&self, min: &str, max: &str) -> Result<i64, CmdError> {
        match self.query("ZCOUNT", &[min.as_bytes(), max.as_bytes()])? {
            RedisValue::Integer(n) => Ok(n),
            _ => Err(CmdError::Internal),
        }
    }

    /// The score of the only entry a `ZRANGE ... WITHSCORES` query returns.
    fn score(&self, args: &[&[u8]]) -> Result<Option<i64>, CmdError> {
        let RedisValue::Array(items) = self.query("ZRANGE", args)? else {
            return Err(CmdError::Internal);
        };
        let Some(score) = items.get(1) else {
            return Ok(None);
        };
        let text = match score {
            RedisValue::SimpleString(s) => s.clone(),
            RedisValue::BulkString(s) => s.clone(),
            RedisValue::BulkRedisString(s) => s.to_string_lossy(),
            RedisValue::StringBuffer(b) => String::from_utf8_lossy(b).into_owned(),
            RedisValue::Float(f) => f.to_string(),
            _ => return Err(CmdError::Internal),
        };
        let score: f64 = text.parse().map_err(|_| CmdError::Internal)?;
        Ok(Some(score.floor() as i64))
    }

    /// Runs a write and replicates it as the same command.
    fn write(&self, command: &str, args: &[&[u8]]) -> Result<(), CmdError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.key);
        all.extend_from_slice(args);
        self.ctx
            .call(command, all.as_slice())
            .map_err(|_| CmdError::Internal)?;
        replicate_effect(self.ctx, command, &all);
        Ok(())
    }

    fn apply(&self, w: &LogWrite) -> Result<(), CmdError> {
        let prune = w.prune_through_ms.to_string();
        self.write("ZREMRANGEBYSCORE", &[b"-inf", prune.as_bytes()])?;
        let at = w.at_ms.to_string();
        let members: Vec<String> = w.members().collect();
        let mut zadd: Vec<&[u8]> = Vec::with_capacity(members.len() * 2);
        for m in &members {
            zadd.push(at.as_bytes());
            zadd.push(m.as_bytes());
        }
        self.write("ZADD", &zadd)?;
        self.write("PEXPIREAT", &[w.expire_at_ms.to_string().as_bytes()])
    }
}

impl AdmissionLog for ZsetLog<'_> {
    fn count_after(&mut self, after_ms: i64) -> Result<i64, CmdError> {
        self.count(&format!("({after_ms}"), "+inf")
    }

    fn time_at(&mut self, after_ms: i64, index: i64) -> Result<i64, CmdError> {
        let min = format!("({after_ms}");
        let offset = index.to_string();
        let args: [&[u8]; 7] = [
            min.as_bytes(),
            b"+inf",
            b"BYSCORE",
            b"LIMIT",
            offset.as_bytes(),
            b"1",
            b"WITHSCORES",
        ];
        self.score(&args)?.ok_or(CmdError::Internal)
    }

    fn newest(&mut self) -> Result<Option<i64>, CmdError> {
        self.score(&[b"-1", b"-1", b"WITHSCORES"])
    }

    fn count_at(&mut self, at_ms: i64) -> Result<i64, CmdError> {
        let at = at_ms.to_string();
        self.count(&at, &at)
    }
}

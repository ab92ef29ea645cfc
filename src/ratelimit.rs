//! Binds the rate-limiting family (`patterns_core::ratelimit`) to Redis:
//! parse → decide → write state → replicate the effect → reply.
#![deny(unsafe_code)]

use std::borrow::Cow;
use std::ffi::CStr;

use patterns_core::command::{CmdError, CommandDef};
use patterns_core::ratelimit::{
    self as rl, AdmissionLog, Effect, Limit, Limiter, LogRefund, LogWrite, Outcome, RateReply,
    Reads, Refund, RefundWrite, SlidingWindow, StateValue, Stored, StringLimiter, StringWrite,
    TokenBucket,
};

use crate::command;
use crate::ffi::{
    now_ms, Call, Command, Ctx, Key, KeyType, Notify, OwnedString, ReplArg, Reply, ScoreRange, Str,
    Token, Value,
};
use crate::stats::{self, Stat};
use crate::text::StackText;

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(rl::TOKENBUCKET, tokenbucket),
    command!(rl::FIXEDWINDOW, fixedwindow),
    command!(rl::SLIDINGWINDOW, slidingwindow),
    command!(rl::THROTTLE, throttle),
    command!(rl::ALL, all),
    command!(rl::REFUND, refund),
];

// RL.TOKENBUCKET key capacity rate period_ms [COST n]
fn tokenbucket(call: &Call) -> Result<Reply, CmdError> {
    let stats = (Stat::TokenbucketAllowed, Stat::TokenbucketDenied);
    own_string(call, rl::token_bucket(call.rest())?, stats)
}

// RL.FIXEDWINDOW key limit window_ms [COST n]
fn fixedwindow(call: &Call) -> Result<Reply, CmdError> {
    let stats = (Stat::FixedwindowAllowed, Stat::FixedwindowDenied);
    own_string(call, rl::fixed_window(call.rest())?, stats)
}

/// A string limiter's own command: its decision on `(limiter, cost)`, counted in `stats`
/// (allowed, denied).
fn own_string<L: StringLimiter>(
    call: &Call,
    (limiter, cost): (L, i64),
    stats: (Stat, Stat),
) -> Result<Reply, CmdError> {
    Ok(counted(run_string(call, &limiter, cost)?, stats))
}

// RL.SLIDINGWINDOW key limit window_ms [COST n] [EXACT]
fn slidingwindow(call: &Call) -> Result<Reply, CmdError> {
    let (window, cost, exact) = rl::sliding_window(call.rest())?;
    let reply = if exact {
        run_exact(call, &window, cost)?
    } else {
        run_string(call, &window, cost)?
    };
    let stats = (Stat::SlidingwindowAllowed, Stat::SlidingwindowDenied);
    Ok(counted(reply, stats))
}

/// An own command's reply, its verdict counted in the family's stats.
fn counted(reply: RateReply, (allowed, denied): (Stat, Stat)) -> Reply {
    stats::admission(allowed, denied, reply.allowed);
    Reply::Ints(reply.to_array().into())
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

/// The replicated effects' option tokens, and the token bucket's value, made once.
static PXAT: Token = Token::new(c"PXAT");
static MINUS_INF: Token = Token::new(c"-inf");
/// `rl::TAT_AT_EXPIRY`: replicated as a token, passed to `SET` as a client's text.
const TAT_AT_EXPIRY_TEXT: &CStr = c"0";
static TAT_AT_EXPIRY: Token = Token::new(TAT_AT_EXPIRY_TEXT);

const STRING_EVENTS: [(Notify, &CStr); 2] =
    [(Notify::STRING, c"set"), (Notify::GENERIC, c"expire")];
const EXPIRE_EVENT: [(Notify, &CStr); 1] = [(Notify::GENERIC, c"expire")];

/// Runs a limiter whose state is one string: read it, decide, and when something was
/// admitted write the new state with its absolute expiry and replicate the effect.
fn run_string<L: StringLimiter>(
    call: &Call,
    limiter: &L,
    cost: i64,
) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let mut key = Key::open(call);
    let written_over = |len| limiter.writes_over_any(len, cost);
    let state = StringState::read(&key, L::READS, written_over)?;
    let outcome = limiter.decide(state.as_ref().map(StringState::stored), now, cost)?;
    if let Some(write) = outcome.write {
        write_state(call.ctx(), &mut key, write)?;
    }
    Ok(outcome.reply)
}

/// A string state as read, with what else the limiter reads: its value borrowed from the key
/// (read in place, or the TAT-at-expiry marker) or a copy that `GET` replied.
struct StringState<'k> {
    value: Cow<'k, [u8]>,
    expire_at_ms: Option<i64>,
}

impl<'k> StringState<'k> {
    /// Reads the state; None for no key. The value is copied as `GET` replies it: a read in
    /// place would turn the integer or embedded string `SET` stores (the twin's sizes) into a
    /// raw string of the key's own, unless a value of its length is sure to be
    /// `written_over` (reading in place is cheaper). A one-byte value the limiter takes for
    /// the TAT-at-expiry marker is not read at all.
    fn read(
        key: &'k Key,
        reads: Reads,
        written_over: impl Fn(usize) -> bool,
    ) -> Result<Option<Self>, CmdError> {
        let value = match key.string_len()? {
            None => return Ok(None),
            Some(1) if reads.tat_at_expiry => Cow::Borrowed(rl::TAT_AT_EXPIRY.as_bytes()),
            Some(len) if !written_over(len) => Cow::Owned(key.string_by_command()),
            Some(_) => Cow::Borrowed(key.string()?.ok_or(CmdError::Internal)?),
        };
        let expire_at_ms = if reads.expiry {
            key.expire_at_ms()
        } else {
            None
        };
        Ok(Some(Self {
            value,
            expire_at_ms,
        }))
    }

    /// The state as core's limiters take it.
    fn stored(&self) -> Stored<'_> {
        Stored {
            value: &self.value,
            expire_at_ms: self.expire_at_ms,
        }
    }
}

/// Writes a string state with its absolute expiry and replicates the effect: `PEXPIREAT`
/// when only the expiry moves, else `SET ... PXAT`. The primary's time travels in the effect,
/// never the caller's command.
fn write_state(ctx: Ctx, key: &mut Key, write: StringWrite) -> Result<(), CmdError> {
    let at = write.expire_at_ms;
    match (write.effect, write.value) {
        (Effect::Expire, _) => {
            key.set_expire_at(at);
            key.modified(&EXPIRE_EVENT);
            ctx.replicate(c"PEXPIREAT", (key.name(), at));
        }
        (Effect::Set, StateValue::TatAtExpiry) => {
            set_by_server(ctx, key, TAT_AT_EXPIRY_TEXT, &TAT_AT_EXPIRY, at)?;
        }
        (Effect::Set, StateValue::Count(n)) => {
            let count = StackText::int(n);
            set_by_server(ctx, key, count.as_c_str(), count.as_c_str(), at)?;
        }
        (Effect::Set, value) => {
            let value = StackText::of(value);
            // A new string, embedded as `SET` stores a client's (a value written in place
            // stays a raw string: 8 B more on Valkey 8.1).
            key.set_string(&OwnedString::new(ctx, value.as_bytes()));
            key.set_expire_at(at);
            key.modified(&STRING_EVENTS);
            ctx.replicate(c"SET", (key.name(), value.as_c_str(), &PXAT, at));
        }
    }
    Ok(())
}

/// `SET key <value> PXAT <at>` through `SET` itself, which encodes the value as a client's:
/// the TAT-at-expiry marker and a count stay integers (shared below 10,000 where the server
/// shares them), as the twin's `SET` stores them (the key API would write a raw string, 8 B
/// more); the effect replicates with the value as `replicated` (a retained token where one is).
fn set_by_server(
    ctx: Ctx,
    key: &mut Key,
    value: &CStr,
    replicated: impl ReplArg,
    at: i64,
) -> Result<(), CmdError> {
    let at_text = OwnedString::from_i64(ctx, at);
    if !key.set_by_command(value, [PXAT.as_str(), at_text.as_str()]) {
        // The old value went first: replicas drop theirs too.
        ctx.replicate(c"DEL", (key.name(),));
        return Err(CmdError::Internal);
    }
    ctx.replicate(c"SET", (key.name(), replicated, &PXAT, at));
    Ok(())
}

/// The exact sliding window, on the sorted set through the module's zset API.
fn run_exact(call: &Call, window: &SlidingWindow, cost: i64) -> Result<RateReply, CmdError> {
    let now = now_ms();
    let mut key = Key::open(call);
    key.expect(KeyType::ZSet)?;
    let mut log = ZsetLog { key: &mut key };
    let (reply, write) = window.decide_exact(&mut log, now, cost)?;
    if let Some(write) = write {
        log.apply(call.ctx(), &write);
    }
    Ok(reply)
}

/// The admission log as a sorted set: members `<ms>:<seq>` scored by admission time.
struct ZsetLog<'k, 'a> {
    key: &'k mut Key<'a>,
}

impl ZsetLog<'_, '_> {
    /// Prunes, adds and sets the expiry, replicating each step as the command Redis would run.
    fn apply(&mut self, ctx: Ctx, w: &LogWrite) {
        let key = &mut *self.key;
        let name = key.name();
        let mut events = vec![(Notify::ZSET, c"zadd")];
        if let Some(through) = w.prune_through_ms {
            let stale = key.zset_members(ScoreRange::through(through));
            key.zset_remove(&stale);
            ctx.replicate(c"ZREMRANGEBYSCORE", (name, &MINUS_INF, through));
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
        zadd.push(name);
        for m in &members {
            key.zset_put(w.at_ms as f64, m.as_str());
            zadd.extend([score.as_str(), m.as_str()]);
        }
        ctx.replicate_list(c"ZADD", &zadd);
        key.set_expire_at(w.expire_at_ms);
        ctx.replicate(c"PEXPIREAT", (name, w.expire_at_ms));
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

// ---------------------------------------------------------------------------------------------
// Several limits at once, and refunds: every limit decided (or refunded) with one clock reading
// before any is written, each written and replicated as its own command would.

// RL.ALL limit [limit ...]
fn all(call: &Call) -> Result<Reply, CmdError> {
    let (decisions, mut keys) = step_each(call, &rl::ALL, decide)?;
    let replies: Vec<RateReply> = decisions.iter().map(Decision::reply).collect();
    let (allowed, denied) = rl::all_admit(&replies);
    stats::admission(Stat::AllAllowed, Stat::AllDenied, allowed);
    if allowed {
        for (decision, key) in decisions.into_iter().zip(&mut keys) {
            decision.apply(call.ctx(), key)?;
        }
    }
    let mut reply = vec![Value::Int(i64::from(allowed)), Value::Int(denied)];
    reply.extend(replies.iter().map(|r| ints(&r.to_array())));
    Ok(Reply::Value(Value::Array(reply)))
}

// RL.REFUND limit [limit ...]
fn refund(call: &Call) -> Result<Reply, CmdError> {
    let (refunds, mut keys) = step_each(call, &rl::REFUND, refund_one)?;
    let mut remaining = Vec::with_capacity(refunds.len());
    for (r, key) in refunds.into_iter().zip(&mut keys) {
        remaining.push(r.apply(call.ctx(), key)?);
    }
    stats::bump(Stat::Refunds);
    Ok(Reply::Value(ints(&remaining)))
}

/// The limits of an `RL.ALL` or `RL.REFUND` call (`def`), each with `step` taken on its key
/// (stopping at the first error), all with one clock reading and before anything is written.
fn step_each<'a, T>(
    call: &Call<'a>,
    def: &CommandDef,
    step: fn(&Limit, &mut Key, i64) -> Result<T, CmdError>,
) -> Result<(Vec<T>, Vec<Key<'a>>), CmdError> {
    let words = call.words();
    let limits = rl::parse_limits(def, &words)?;
    let now = now_ms();
    let mut keys = open_keys(call, &limits)?;
    let steps = limits
        .iter()
        .zip(&mut keys)
        .map(|((_, limit), key)| step(limit, key, now))
        .collect::<Result<_, _>>()?;
    Ok((steps, keys))
}

fn ints(values: &[i64]) -> Value {
    Value::Array(values.iter().map(|&v| Value::Int(v)).collect())
}

/// Each limit's key, opened (the keys are distinct: `CommandDef::blocks` checks).
fn open_keys<'a>(call: &Call<'a>, limits: &[(usize, Limit)]) -> Result<Vec<Key<'a>>, CmdError> {
    limits
        .iter()
        .map(|&(at, _)| {
            let name: Str<'a> = call.arg(at).ok_or(CmdError::Internal)?;
            Ok(Key::open_arg(call.ctx(), name))
        })
        .collect()
}

/// One limit's step on its key, not yet written: on a string state or on the EXACT log.
enum Step<S, L> {
    String(S),
    Log(L),
}

/// One limit's decision, not yet written.
type Decision = Step<Outcome, (RateReply, Option<LogWrite>)>;

/// Runs `exact` on the limit's admission log (`EXACT`, a sorted set), else `string` on its
/// stored string: what `RL.ALL` and `RL.REFUND` do with each limit's key.
fn on_state<S, L>(
    limit: &Limit,
    key: &mut Key,
    exact: impl FnOnce(SlidingWindow, &mut ZsetLog) -> Result<L, CmdError>,
    string: impl FnOnce(Option<Stored<'_>>) -> Result<S, CmdError>,
) -> Result<Step<S, L>, CmdError> {
    Ok(match limit.limiter {
        Limiter::Exact(window) => {
            key.expect(KeyType::ZSet)?;
            Step::Log(exact(window, &mut ZsetLog { key })?)
        }
        // Written only if every limit admits: no value is sure to be written over.
        _ => {
            let state = StringState::read(key, limit.reads(), |_| false)?;
            Step::String(string(state.as_ref().map(StringState::stored))?)
        }
    })
}

fn decide(limit: &Limit, key: &mut Key, now: i64) -> Result<Decision, CmdError> {
    let exact = |w: SlidingWindow, log: &mut ZsetLog| w.decide_exact(log, now, limit.cost);
    on_state(limit, key, exact, |s| limit.decide(s, now))
}

impl Decision {
    fn reply(&self) -> RateReply {
        match self {
            Decision::String(outcome) => outcome.reply,
            Decision::Log((reply, _)) => *reply,
        }
    }

    fn apply(self, ctx: Ctx, key: &mut Key) -> Result<(), CmdError> {
        match self {
            Decision::String(Outcome {
                write: Some(write), ..
            }) => write_state(ctx, key, write)?,
            Decision::Log((_, Some(write))) => ZsetLog { key }.apply(ctx, &write),
            _ => {}
        }
        Ok(())
    }
}

/// One limit's refund, not yet written.
type RefundOf = Step<Refund, (i64, Option<LogRefund>)>;

fn refund_one(limit: &Limit, key: &mut Key, now: i64) -> Result<RefundOf, CmdError> {
    let exact = |w: SlidingWindow, log: &mut ZsetLog| w.refund_exact(log, now, limit.cost);
    on_state(limit, key, exact, |s| limit.refund(s, now))
}

impl RefundOf {
    /// Writes and replicates the refund; the limit's remaining.
    fn apply(self, ctx: Ctx, key: &mut Key) -> Result<i64, CmdError> {
        match self {
            RefundOf::String(Refund { remaining, write }) => {
                match write {
                    Some(RefundWrite::Set(write)) => write_state(ctx, key, write)?,
                    Some(RefundWrite::Delete) => {
                        key.delete();
                        key.modified(&[(Notify::GENERIC, c"del")]);
                        ctx.replicate(c"DEL", (key.name(),));
                    }
                    None => {}
                }
                Ok(remaining)
            }
            RefundOf::Log((remaining, write)) => {
                if let Some(w) = write {
                    ZsetLog { key }.remove_newest(ctx, w);
                }
                Ok(remaining)
            }
        }
    }
}

impl ZsetLog<'_, '_> {
    /// Removes what a refund takes from the log and replicates `ZREM` of those members.
    fn remove_newest(&mut self, ctx: Ctx, w: LogRefund) {
        let key = &mut *self.key;
        let mut members = key.zset_members(ScoreRange::after(w.above_ms));
        let at = key.zset_members(ScoreRange::at(w.above_ms));
        let names: Vec<&[u8]> = at.iter().map(OwnedString::bytes).collect();
        let newest = rl::newest_members(&names, w.at_count);
        members.extend(newest.into_iter().map(|i| OwnedString::new(ctx, names[i])));
        key.zset_remove(&members);
        let mut zrem = Vec::with_capacity(1 + members.len());
        zrem.push(key.name());
        zrem.extend(members.iter().map(OwnedString::as_str));
        ctx.replicate_list(c"ZREM", &zrem);
        key.modified(&[(Notify::ZSET, c"zrem")]);
    }
}

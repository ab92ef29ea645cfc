//! The queue family's waiters (`QUEUE.POP ... BLOCK`), on the module's generic waiting
//! (`crate::wait`): one queue of consumers per queue and group, first come first served, given
//! jobs when there are some, nil when the deadline passes.
//!
//! A group's waiters are served by the command that makes jobs deliverable (`QUEUE.PUSH`,
//! `QUEUE.NACK`, `QUEUE.REDRIVE`), by a timer at the group's next due time (a lease's end, a
//! delayed job falling due) and by the group's next `QUEUE.POP`, before it tries for itself.
//! Like a lock's waiters, they are served at once when the queue is deleted, expires, is
//! overwritten or flushed behind the module's back: a queue deleted (or flushed) leaves them
//! waiting for the next push, which starts it again; a queue overwritten with another type
//! fails them with `WRONGTYPE`.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::queue::{queue_key, Pop, LEASES_SUFFIX};

use super::{read, try_pop};
use crate::ffi::{key_type, CallValue, Ctx, KeyType, Value};
use crate::stats::Stat;
use crate::wait::{self, Family, Waiters};

/// The queue family's waits; a queue's sub is the group.
pub struct Consumers;

static WAITERS: Waiters<Consumers> = Waiters::new();

impl Family for Consumers {
    type Sub = Vec<u8>;
    type Wanted = Pop;

    fn waiters() -> &'static Waiters<Self> {
        &WAITERS
    }

    fn try_grant(
        ctx: Ctx,
        queue: &[u8],
        _group: &Vec<u8>,
        pop: &Pop,
    ) -> Result<Option<Value>, CmdError> {
        let jobs = try_pop(ctx, queue, pop)?;
        Ok((!jobs.is_empty()).then_some(Value::Array(jobs)))
    }

    /// The group's next due time: its first lease's end, or the first delayed job falling due.
    /// None when the queue does not exist (its lease set is then stale: only a push helps).
    fn next_chance(ctx: Ctx, queue: &[u8], group: &Vec<u8>) -> Option<i64> {
        if key_type(ctx, queue) != KeyType::Stream {
            return None;
        }
        let leases = queue_key(queue, LEASES_SUFFIX, group).ok()?;
        let first = read(ctx, c"ZRANGE", &[&leases, b"0", b"0", b"WITHSCORES"]);
        first
            .items()
            .get(1)
            .and_then(CallValue::bytes)
            .and_then(score)
    }

    fn nothing(_group: &Vec<u8>) -> Value {
        Value::Null
    }

    fn counters(_group: &Vec<u8>) -> (Stat, Stat) {
        (Stat::QueueWaits, Stat::QueueWaitTimeouts)
    }
}

/// A score as ZRANGE writes it (an integer number of ms here).
fn score(raw: &[u8]) -> Option<i64> {
    std::str::from_utf8(raw)
        .ok()?
        .parse::<f64>()
        .ok()
        .map(|s| s as i64)
}

/// Blocks the calling client until it is given jobs or its timeout passes (0: no limit);
/// false when the server would not block it.
#[must_use]
pub fn block(ctx: Ctx, queue: &[u8], pop: Pop) -> bool {
    let (group, timeout_ms) = (pop.group.clone(), pop.block_ms);
    wait::block::<Consumers>(ctx, queue, group, pop, timeout_ms)
}

/// Serves the waiters of the queue's `group` (every group's when None).
pub fn wake(ctx: Ctx, queue: &[u8], group: Option<&[u8]>) {
    wait::serve_matching::<Consumers>(ctx, queue, |g| group.is_none_or(|want| want == g));
}

/// How many consumers wait now, over every queue.
pub fn waiting() -> u64 {
    wait::total::<Consumers>(|_| true)
}

/// The family's hooks on server events.
pub const HOOKS: wait::Hooks = wait::hooks::<Consumers>();

//! Waiting on the server: `QUEUE.POP ... BLOCK` blocks the client (RedisModule_BlockClient,
//! with its timeout) and queues it, first come first served, per queue and group, in module
//! memory, as the lock family's waiters are (the same `ffi` blocked clients, timers and FIFO).
//!
//! A group's waiters are served (the head given jobs, then the next, while there are jobs)
//! when jobs may have become deliverable:
//! - by the command that makes them so (`QUEUE.PUSH`, `QUEUE.NACK`, `QUEUE.REDRIVE`), in its
//!   own context, so the delivery replicates with it;
//! - by a timer set for the group's next due time (a lease's end, a delayed job falling due):
//!   no sweep, no polling;
//! - by the next `QUEUE.POP` of the group, before it tries for itself.
//!
//! Each waiter keeps its absolute deadline: one whose deadline has passed is never given jobs
//! (its timeout, which Redis 7.0 may fire up to ~100 ms late, answers nil), so no delivery is
//! ever made to a client that was already told nothing came. A server that stops being a
//! primary fails its waiters with a READONLY error instead of writing.
//! All of this runs on Redis's main thread; the mutex only makes the statics sound.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::sync::{Mutex, MutexGuard};

use patterns_core::lock::WaitQueue;
use patterns_core::queue::{queue_key, Pop, LEASES_SUFFIX};

use super::{read, try_pop};
use crate::ffi::{
    self, now_ms, BlockedClient, CallValue, ClientId, Ctx, Fires, Reply, Timer, TimerToken, Value,
    Waits,
};

/// What an unblocked client is told.
pub enum Outcome {
    Jobs(Vec<Value>),
    Error(String),
}

const NOT_PRIMARY: &str =
    "READONLY the server is no longer a primary while the client waited; the wait is cancelled";

struct Waiter {
    client: BlockedClient<Outcome>,
    pop: Pop,
    /// When its wait ends (ms), None without a limit.
    deadline: Option<i64>,
}

struct Armed {
    timer: Timer<Name>,
    at_ms: i64,
}

struct Group {
    waiters: WaitQueue<Waiter>,
    timer: Option<Armed>,
}

/// A group's waiters' key: the database, the queue, the group.
type Name = (c_int, Vec<u8>, Vec<u8>);

static GROUPS: Mutex<BTreeMap<Name, Group>> = Mutex::new(BTreeMap::new());

fn groups() -> MutexGuard<'static, BTreeMap<Name, Group>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Blocks the calling client until it is given jobs or its timeout passes (0: no limit).
pub fn block(ctx: Ctx, queue: &[u8], pop: Pop) {
    let timeout = pop.block_ms;
    let deadline = (timeout > 0).then(|| now_ms().saturating_add(timeout));
    let client = ffi::block::<Waiting>(ctx, timeout);
    let key = (ctx.selected_db(), queue.to_vec(), pop.group.clone());
    groups()
        .entry(key.clone())
        .or_insert_with(|| Group {
            waiters: WaitQueue::default(),
            timer: None,
        })
        .waiters
        .push(Waiter {
            client,
            pop,
            deadline,
        });
    arm(ctx, &key);
}

/// Serves the waiters of the queue's `group` (every group's when None).
pub fn wake(ctx: Ctx, queue: &[u8], group: Option<&[u8]>) {
    let db = ctx.selected_db();
    let names: Vec<Name> = groups()
        .keys()
        .filter(|(d, q, g)| *d == db && q == queue && group.is_none_or(|want| want == g))
        .cloned()
        .collect();
    for name in names {
        serve(ctx, &name);
    }
}

/// Gives jobs to the group's waiters, in order, while there are some; then sets the timer for
/// the group's next due time.
fn serve(ctx: Ctx, name: &Name) {
    if !ctx.is_primary() {
        cancel(ctx, name, NOT_PRIMARY);
        return;
    }
    loop {
        let now = now_ms();
        // The first waiter whose deadline has not passed (the others await their timeout).
        let head = groups().get(name).and_then(|g| {
            g.waiters
                .iter()
                .find(|w| w.deadline.is_none_or(|at| now < at))
                .map(|w| (w.client.id(), w.pop.clone()))
        });
        // None left but those awaiting their timeout: no timer until another waits.
        let Some((client, pop)) = head else { return };
        match try_pop(ctx, &name.1, &pop) {
            Ok(jobs) if jobs.is_empty() => break,
            Ok(jobs) => {
                if let Some(waiter) = take_waiter(ctx, client) {
                    waiter.client.unblock(Outcome::Jobs(jobs));
                }
            }
            Err(err) => {
                cancel(ctx, name, &err.to_string());
                return;
            }
        }
    }
    arm(ctx, name);
}

/// Sets the group's timer for its next due time.
fn arm(ctx: Ctx, name: &Name) {
    let Ok(leases) = queue_key(&name.1, LEASES_SUFFIX, &name.2) else {
        return;
    };
    let first = read(ctx, c"ZRANGE", &[&leases, b"0", b"0", b"WITHSCORES"]);
    let Some(at_ms) = first
        .items()
        .get(1)
        .and_then(CallValue::bytes)
        .and_then(score)
    else {
        return;
    };
    let mut groups = groups();
    let Some(group) = groups.get_mut(name) else {
        return;
    };
    if group.timer.as_ref().is_some_and(|t| t.at_ms <= at_ms) {
        return;
    }
    let old = group.timer.take();
    let period = at_ms.saturating_sub(now_ms()).max(0);
    let timer = Timer::start(ctx, period, name.clone());
    group.timer = Some(Armed { timer, at_ms });
    drop(groups);
    if let Some(old) = old {
        old.timer.stop(ctx);
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

/// Takes the waiter `client` out of its group (dropping the group, and its timer, when it
/// empties).
fn take_waiter(ctx: Ctx, client: ClientId) -> Option<Waiter> {
    let mut groups = groups();
    let (name, waiter) = groups.iter_mut().find_map(|(name, g)| {
        let waiter = g.waiters.remove(|w: &Waiter| w.client.id() == client)?;
        Some((name.clone(), waiter))
    })?;
    if groups.get(&name).is_some_and(|g| g.waiters.is_empty()) {
        let timer = groups.remove(&name).and_then(|g| g.timer);
        drop(groups);
        if let Some(armed) = timer {
            armed.timer.stop(ctx);
        }
    }
    Some(waiter)
}

/// Fails every waiter of the group with `error`.
fn cancel(ctx: Ctx, name: &Name, error: &str) {
    let Some(mut group) = groups().remove(name) else {
        return;
    };
    if let Some(armed) = group.timer.take() {
        armed.timer.stop(ctx);
    }
    for w in group.waiters.drain() {
        w.client.unblock(Outcome::Error(error.to_string()));
    }
}

/// The queue family's waits, as the server calls back about them.
struct Waiting;

impl Waits for Waiting {
    type Outcome = Outcome;

    fn reply(outcome: Option<&Outcome>) -> Result<Reply, String> {
        match outcome {
            Some(Outcome::Jobs(jobs)) => Ok(Reply::Value(Value::Array(jobs.clone()))),
            Some(Outcome::Error(text)) => Err(text.clone()),
            None => Ok(Reply::Null),
        }
    }

    /// Leave the queue and reply nil.
    fn timed_out(ctx: Ctx, client: ClientId) -> (Reply, Option<BlockedClient<Outcome>>) {
        (Reply::Null, take_waiter(ctx, client).map(|w| w.client))
    }

    fn disconnected(ctx: Ctx, client: ClientId) -> Option<BlockedClient<Outcome>> {
        take_waiter(ctx, client).map(|w| w.client)
    }
}

/// A group's timer fired: serve it.
impl Fires for Name {
    fn fired(self, ctx: Ctx, timer: TimerToken) {
        let queued = groups().get_mut(&self).map(|group| {
            if group
                .timer
                .as_ref()
                .is_some_and(|t| t.timer.token() == timer)
            {
                group.timer = None;
            }
        });
        if queued.is_some() {
            ctx.select_db(self.0);
            serve(ctx, &self);
        }
    }
}

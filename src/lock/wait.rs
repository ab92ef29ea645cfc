//! Waiting on the server: `LOCK.ACQUIRE ... WAIT` and `SEM.ACQUIRE ... WAIT` block the client
//! (RedisModule_BlockClient, with its timeout) and queue it, first come first served, in
//! module memory: one [`WaitQueue`] per key.
//!
//! A queue is served (its head granted, then the next, while they can be) whenever the key
//! may have become free:
//! - by the command that frees it (`LOCK.RELEASE`, `SEM.RELEASE`), in its own context, so the
//!   grant replicates with the release;
//! - by a timer set for the moment the lease (or the first permit) ends: no sweep, no polling;
//! - by a timer set for right away when the key is deleted, expires, is evicted, renamed or
//!   overwritten behind the module's back (keyspace events, which must not write themselves;
//!   watched from the first wait on, see [`watch_keyspace`]);
//! - by the next acquisition on the key, before it tries for itself, so nobody overtakes a
//!   waiter.
//!
//! A grant writes the waiter's lease (or permit) at once, then unblocks the client with its
//! token; the reply is sent by `Waiting::reply`. A waiter that disconnects leaves its queue.
//!
//! The module keeps each waiter's deadline itself (its absolute time in ms on the server's
//! clock) and blocks the client with no server timeout: a queue is served only with its expired
//! waiters taken out first (replied nil, or 0 for a semaphore, with nothing written), and its
//! timer also fires at the earliest deadline. Left to the server, the timeout raced the grant:
//! Redis 7.0 handles blocking timeouts in `beforeSleep` up to 100 ms late and before the
//! replies of clients the module unblocked, so a waiter granted after its deadline but before
//! its timeout was handled lost its reply (the timeout skips a client already unblocked, then
//! detaches it, and its reply callback never runs) and hung while holding the lock.
//!
//! When the server becomes a replica, every waiter is unblocked with an error: Redis and
//! Valkey do it themselves (`UNBLOCKED ...`, which reaches `Waiting::disconnected`), and the
//! module cancels whatever is left with a READONLY error.
//! All of this runs on Redis's main thread; the mutex only makes the statics sound.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{c_int, CStr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use patterns_core::lock::WaitQueue;

use super::{deadline, try_grant};
use crate::ffi::{
    self, now_ms, BlockedClient, ClientId, Ctx, Fires, KeyspaceWatch, Notify, Reply, RoleWatch,
    Timer, TimerToken, Waits,
};

/// What a queue waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Lock,
    Sem,
}

/// What a waiter asked for.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub owner: Vec<u8>,
    pub ttl_ms: i64,
    /// A semaphore's permits (1 for a lock).
    pub limit: i64,
}

/// What an unblocked client is told.
pub enum Outcome {
    /// The lock, with its fencing token.
    Token(i64),
    /// A permit.
    Permit,
    /// The wait was cancelled.
    Error(String),
    /// The deadline passed first: nil for a lock, 0 for a semaphore.
    Expired(Kind),
}

impl Outcome {
    /// The reply to a grant (a cancelled wait's error is sent by `Waiting::reply`).
    pub fn reply(&self) -> Reply {
        match self {
            Outcome::Token(token) => Reply::Integer(*token),
            Outcome::Permit => Reply::Integer(1),
            Outcome::Error(_) | Outcome::Expired(Kind::Lock) => Reply::Null,
            Outcome::Expired(Kind::Sem) => Reply::Integer(0),
        }
    }
}

/// The error a waiter gets when the server stops being a primary.
const NOW_REPLICA: &str =
    "READONLY the server became a replica while the client waited; the wait is cancelled";

struct Waiter {
    client: BlockedClient<Outcome>,
    wanted: Wanted,
    /// When the wait ends unserved (ms, server clock); None for `WAIT 0`.
    deadline_ms: Option<i64>,
}

impl Waiter {
    fn expired(&self, now_ms: i64) -> bool {
        self.deadline_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A timer set to serve a queue at `at_ms`.
struct Armed {
    timer: Timer<Name>,
    at_ms: i64,
}

struct Queue {
    waiters: WaitQueue<Waiter>,
    timer: Option<Armed>,
}

/// A queue's key: the database, what its clients wait for, and the key's name.
type Name = (c_int, Kind, Vec<u8>);

fn name_of(ctx: Ctx, kind: Kind, name: &[u8]) -> Name {
    (ctx.selected_db(), kind, name.to_vec())
}

struct Queues(BTreeMap<Name, Queue>);

static QUEUES: Mutex<Queues> = Mutex::new(Queues(BTreeMap::new()));

fn queues() -> MutexGuard<'static, Queues> {
    QUEUES.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many clients wait for lock `name` (in the context's database).
pub fn waiters(ctx: Ctx, name: &[u8]) -> usize {
    let key = name_of(ctx, Kind::Lock, name);
    queues().0.get(&key).map_or(0, |q| q.waiters.len())
}

/// Blocks the calling client until `wanted` is granted or `timeout_ms` passes (0: no limit).
/// The deadline is the module's, not the server's (see the module's documentation).
pub fn block(ctx: Ctx, kind: Kind, name: &[u8], wanted: Wanted, timeout_ms: i64) {
    let deadline_ms = (timeout_ms > 0).then(|| now_ms().saturating_add(timeout_ms));
    let client = ffi::block::<Waiting>(ctx, 0);
    watch_keyspace(ctx);
    queues()
        .0
        .entry(name_of(ctx, kind, name))
        .or_insert_with(|| Queue {
            waiters: WaitQueue::default(),
            timer: None,
        })
        .waiters
        .push(Waiter {
            client,
            wanted,
            deadline_ms,
        });
    arm(ctx, kind, name);
}

/// Grants the key's waiters what they wait for, in order, while the head can have it; then
/// sets the timer for when it can next. Waiters whose deadline has passed leave first, granted
/// nothing. A key left in a state no waiter can use (another type) fails them all with the
/// error they would get.
pub fn serve(ctx: Ctx, kind: Kind, name: &[u8]) {
    if queues().0.is_empty() {
        return;
    }
    let key = name_of(ctx, kind, name);
    expire(&key);
    loop {
        let head = queues()
            .0
            .get(&key)
            .and_then(|q| q.waiters.peek().map(|w| (w.client.id(), w.wanted.clone())));
        let Some((client, wanted)) = head else {
            break;
        };
        match try_grant(ctx, kind, name, &wanted) {
            Ok(Some(outcome)) => {
                if let Some((_, waiter)) = take_waiter(ctx, client) {
                    waiter.client.unblock(outcome);
                }
            }
            Ok(None) => break,
            Err(err) => {
                let waiting = remove_queue(ctx, &key);
                for w in waiting {
                    w.client.unblock(Outcome::Error(err.to_string()));
                }
                return;
            }
        }
    }
    arm(ctx, kind, name);
}

/// Ends the wait of the queue's waiters whose deadline has passed: nil (0 for a semaphore),
/// nothing written. The queue stays, even empty, for the caller to serve and arm.
fn expire(key: &Name) {
    let now = now_ms();
    let expired: Vec<Waiter> = match queues().0.get_mut(key) {
        Some(queue) => std::iter::from_fn(|| queue.waiters.remove(|w| w.expired(now))).collect(),
        None => return,
    };
    for w in expired {
        w.client.unblock(Outcome::Expired(key.1));
    }
}

/// Sets the queue's timer for the moment the key's lease (or first permit) ends or the first
/// waiter's deadline passes, whichever comes first; drops the queue when it is empty.
fn arm(ctx: Ctx, kind: Kind, name: &[u8]) {
    // Redis keeps a key until its expiry time has passed: serve 1 ms after it.
    let lease_end = deadline(ctx, kind, name).map(|at| at.saturating_add(1));
    let key = name_of(ctx, kind, name);
    let mut queues = queues();
    let Some(queue) = queues.0.get_mut(&key) else {
        return;
    };
    if queue.waiters.is_empty() {
        let timer = queues.0.remove(&key).and_then(|q| q.timer);
        drop(queues);
        stop_timer(ctx, timer);
        return;
    }
    let first_deadline = queue.waiters.iter().filter_map(|w| w.deadline_ms).min();
    if let Some(at_ms) = lease_end.into_iter().chain(first_deadline).min() {
        set_timer(ctx, queue, &key, at_ms);
    }
}

/// The longest period a timer is set for: RM_CreateTimer computes its end in µs, which a period
/// near i64's end (`WAIT 9223372036854775807`) would overflow. A timer cut short re-arms.
const MAX_TIMER_MS: i64 = 1 << 40;

/// Makes sure the queue's timer fires by `at_ms`.
fn set_timer(ctx: Ctx, queue: &mut Queue, key: &Name, at_ms: i64) {
    if queue.timer.as_ref().is_some_and(|t| t.at_ms <= at_ms) {
        return;
    }
    stop_timer(ctx, queue.timer.take());
    let period = at_ms.saturating_sub(now_ms()).clamp(0, MAX_TIMER_MS);
    let timer = Timer::start(ctx, period, key.clone());
    queue.timer = Some(Armed { timer, at_ms });
}

fn stop_timer(ctx: Ctx, armed: Option<Armed>) {
    if let Some(armed) = armed {
        armed.timer.stop(ctx);
    }
}

/// Takes the waiter `client` out of its queue (dropping the queue, and its timer, when it
/// empties), with the queue's kind; None when no queue holds it.
fn take_waiter(ctx: Ctx, client: ClientId) -> Option<(Kind, Waiter)> {
    let mut queues = queues();
    let (key, queue, waiter) = queues.0.iter_mut().find_map(|(key, q)| {
        let waiter = q.waiters.remove(|w: &Waiter| w.client.id() == client)?;
        Some((key.clone(), q, waiter))
    })?;
    if queue.waiters.is_empty() {
        let timer = queues.0.remove(&key).and_then(|q| q.timer);
        drop(queues);
        stop_timer(ctx, timer);
    }
    Some((key.1, waiter))
}

/// Drops a queue and its timer, handing back its waiters.
fn remove_queue(ctx: Ctx, key: &Name) -> Vec<Waiter> {
    let Some(mut queue) = queues().0.remove(key) else {
        return Vec::new();
    };
    stop_timer(ctx, queue.timer.take());
    queue.waiters.drain().collect()
}

// ---------------------------------------------------------------------------------------------
// What the server calls back

/// The lock family's waits, as the server calls back about them.
struct Waiting;

impl Waits for Waiting {
    type Outcome = Outcome;

    /// A grant's reply, or the error that cancelled the wait.
    fn reply(outcome: Option<&Outcome>) -> Result<Reply, String> {
        match outcome {
            Some(Outcome::Error(text)) => Err(text.clone()),
            Some(outcome) => Ok(outcome.reply()),
            None => Ok(Reply::Null),
        }
    }

    /// CLIENT UNBLOCK (the only server timeout: the module keeps the deadlines): leave the
    /// queue and reply nil (a lock) or 0 (a semaphore).
    fn timed_out(ctx: Ctx, client: ClientId) -> (Reply, Option<BlockedClient<Outcome>>) {
        let taken = take_waiter(ctx, client);
        let reply = match taken {
            Some((Kind::Sem, _)) => Reply::Integer(0),
            _ => Reply::Null,
        };
        (reply, taken.map(|(_, w)| w.client))
    }

    /// Leave the queue. (A client already granted is no longer queued: its grant stands until
    /// its lease ends.)
    fn disconnected(ctx: Ctx, client: ClientId) -> Option<BlockedClient<Outcome>> {
        take_waiter(ctx, client).map(|(_, w)| w.client)
    }
}

/// A queue's timer fired: serve it.
impl Fires for Name {
    fn fired(self, ctx: Ctx, timer: TimerToken) {
        let queued = queues().0.get_mut(&self).map(|queue| {
            if queue
                .timer
                .as_ref()
                .is_some_and(|t| t.timer.token() == timer)
            {
                queue.timer = None;
            }
        });
        if queued.is_some() {
            let (db, kind, name) = &self;
            ctx.select_db(*db);
            serve(ctx, *kind, name);
        }
    }
}

/// Keyspace events that may free a key behind the module's back.
const FREEING_EVENTS: [&CStr; 7] = [
    c"del",
    c"expired",
    c"evicted",
    c"set",
    c"restore",
    c"rename_from",
    c"move_from",
];

impl KeyspaceWatch for Waiting {
    /// A key may have been freed: when clients wait on it, serve them right after this event
    /// (a keyspace callback must not write).
    fn event(ctx: Ctx, event: &CStr, name: &[u8]) {
        // Held only when this event comes from the module's own write: it serves by itself.
        let mut queues = match QUEUES.try_lock() {
            Ok(queues) => queues,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if queues.0.is_empty() || !FREEING_EVENTS.contains(&event) {
            return;
        }
        for kind in [Kind::Lock, Kind::Sem] {
            let key = name_of(ctx, kind, name);
            if let Some(queue) = queues.0.get_mut(&key) {
                set_timer(ctx, queue, &key, now_ms());
            }
        }
    }
}

impl RoleWatch for Waiting {
    /// The server became a replica: no grant can be written here any more.
    fn became_replica(ctx: Ctx) {
        let keys: Vec<Name> = queues().0.keys().cloned().collect();
        for key in keys {
            for w in remove_queue(ctx, &key) {
                w.client.unblock(Outcome::Error(NOW_REPLICA.into()));
            }
        }
    }
}

/// Subscribes to the role changes waiters depend on (at module load).
pub fn subscribe(ctx: Ctx) -> Result<(), String> {
    ffi::watch_role::<Waiting>(ctx)
}

/// Whether the module watches keyspace events.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Watches the keyspace events that may free a key, from the first wait on: every such event
/// then costs the server a call into the module (Redis 7.0 and Valkey 8.0 cannot unsubscribe),
/// so a server that never waits never pays it.
fn watch_keyspace(ctx: Ctx) {
    if WATCHING.swap(true, Ordering::Relaxed) {
        return;
    }
    let classes = Notify::GENERIC
        .and(Notify::EXPIRED)
        .and(Notify::EVICTED)
        .and(Notify::STRING);
    ffi::watch_keyspace::<Waiting>(ctx, classes);
}

//! Waiting on the server, for every family whose clients can wait (`LOCK.ACQUIRE ... WAIT`,
//! `SEM.ACQUIRE ... WAIT`, `QUEUE.POP ... BLOCK`): the client is blocked and queued, first come
//! first served, in module memory, one queue per [`Slot`] (a database, a key, and what on that
//! key is waited for: a lock or a semaphore, a queue's group). A family says how to grant a
//! waiter and when its queue may next be served by implementing [`Family`].
//!
//! A queue is served (its head granted, then the next, while they can be) whenever what it
//! waits for may have become available:
//! - by the command that makes it so (`LOCK.RELEASE`, `QUEUE.PUSH`...), in its own context, so
//!   the grant replicates with it;
//! - by a timer set for the family's next chance (a lease's end, a job falling due) or the first
//!   waiter's deadline, whichever is first: no sweep, no polling;
//! - by a timer set for right away when the key is deleted, expires, is evicted, renamed,
//!   overwritten or flushed behind the module's back (keyspace and flush events, which must not
//!   write themselves; watched from the first wait on, see [`watch_keyspace`]);
//! - by the family's next command on the slot, before it tries for itself, so nobody overtakes
//!   a waiter.
//!
//! A grant is written by the family at once, then the client is unblocked with its reply. A
//! waiter that disconnects leaves its queue.
//!
//! The module keeps each waiter's deadline itself (its absolute time in ms on the server's
//! clock) and blocks the client with no server timeout: a queue is served only with its expired
//! waiters taken out first (given the family's "nothing" reply, with nothing written). Left to
//! the server, the timeout raced the grant: Redis 7.0 handles blocking timeouts in
//! `beforeSleep` up to 100 ms late and before the replies of clients the module unblocked, so a
//! waiter granted after its deadline but before its timeout was handled lost its reply (the
//! timeout skips a client already unblocked, then detaches it, and its reply callback never
//! runs) and hung while holding what it was granted.
//!
//! When the server becomes a replica, every waiter is unblocked with an error: Redis and Valkey
//! do it themselves (`UNBLOCKED ...`, which reaches `Waiting::disconnected`), and the module
//! cancels whatever is left with a READONLY error.
//! All of this runs on Redis's main thread; the mutexes only make the statics sound.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};

use patterns_core::command::CmdError;
use patterns_core::lock::WaitQueue;

use crate::ffi::{
    self, now_ms, BlockedClient, ClientId, Ctx, Fires, KeyspaceWatch, Notify, Reply, ServerWatch,
    Timer, TimerToken, Value, Waits,
};
use crate::stats::{self, Stat};

/// A family whose clients wait on the server.
pub trait Family: Sized + 'static {
    /// What on a key is waited for (a lock or a semaphore; a queue's group). Its `default()`
    /// must order first, so a key's queues are found as one range.
    type Sub: Ord + Clone + Default + Send + 'static;
    /// What a waiter asked for.
    type Wanted: Clone + Send + 'static;

    /// The family's queues of waiters (a static).
    fn waiters() -> &'static Waiters<Self>;
    /// Grants `wanted` if it can be had now, written and replicated: the waiter's reply; None
    /// when it cannot yet. An error fails every waiter of the queue with it.
    fn try_grant(
        ctx: Ctx,
        key: &[u8],
        sub: &Self::Sub,
        wanted: &Self::Wanted,
    ) -> Result<Option<Value>, CmdError>;
    /// When the queue may next be served with no command's help (ms; a lease's end, a job
    /// falling due); None when only a command can help.
    fn next_chance(ctx: Ctx, key: &[u8], sub: &Self::Sub) -> Option<i64>;
    /// The reply to a waiter whose deadline passed, or that `CLIENT UNBLOCK` ended.
    fn nothing(sub: &Self::Sub) -> Value;
    /// The counters of waits started and waits timed out.
    fn counters(sub: &Self::Sub) -> (Stat, Stat);
}

/// A queue's place: the database, the key, what on the key is waited for.
pub type Slot<S> = (c_int, Vec<u8>, S);

/// What an unblocked client is told: a reply, or the error that cancelled its wait.
type Outcome = Result<Value, String>;

/// The error a waiter gets when the server stops being a primary.
const NOW_REPLICA: &str =
    "READONLY the server became a replica while the client waited; the wait is cancelled";

struct Waiter<F: Family> {
    client: BlockedClient<Outcome>,
    wanted: F::Wanted,
    /// When the wait ends unserved (ms, server clock); None without a limit.
    deadline_ms: Option<i64>,
}

impl<F: Family> Waiter<F> {
    fn expired(&self, now_ms: i64) -> bool {
        self.deadline_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A timer set to serve a queue at `at_ms`.
struct Armed<F: Family> {
    timer: Timer<Due<F>>,
    at_ms: i64,
}

struct Queue<F: Family> {
    waiters: WaitQueue<Waiter<F>>,
    timer: Option<Armed<F>>,
}

/// A family's queues, by slot.
pub struct Waiters<F: Family> {
    queues: Mutex<BTreeMap<Slot<F::Sub>, Queue<F>>>,
    /// Whether the family watches keyspace events.
    watching: AtomicBool,
}

impl<F: Family> Waiters<F> {
    pub const fn new() -> Self {
        Self {
            queues: Mutex::new(BTreeMap::new()),
            watching: AtomicBool::new(false),
        }
    }
}

type Queues<F> = BTreeMap<Slot<<F as Family>::Sub>, Queue<F>>;

fn queues<F: Family>() -> MutexGuard<'static, Queues<F>> {
    F::waiters()
        .queues
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn slot<F: Family>(ctx: Ctx, key: &[u8], sub: &F::Sub) -> Slot<F::Sub> {
    (ctx.selected_db(), key.to_vec(), sub.clone())
}

/// How many clients wait on `key`'s `sub` (in the context's database).
pub fn count<F: Family>(ctx: Ctx, key: &[u8], sub: &F::Sub) -> usize {
    let slot = slot::<F>(ctx, key, sub);
    queues::<F>().get(&slot).map_or(0, |q| q.waiters.len())
}

/// How many clients wait now on every slot whose `sub` matches.
pub fn total<F: Family>(matches: impl Fn(&F::Sub) -> bool) -> u64 {
    let queues = queues::<F>();
    let of = queues.iter().filter(|((_, _, sub), _)| matches(sub));
    of.map(|(_, q)| q.waiters.len() as u64).sum()
}

/// Blocks the calling client until it is granted `wanted` or `timeout_ms` passes (0: no
/// limit). The deadline is the module's, not the server's (see the module's documentation).
/// False when the server would not block the client: nothing is queued, the caller replies.
#[must_use]
pub fn block<F: Family>(
    ctx: Ctx,
    key: &[u8],
    sub: F::Sub,
    wanted: F::Wanted,
    timeout_ms: i64,
) -> bool {
    let deadline_ms = (timeout_ms > 0).then(|| now_ms().saturating_add(timeout_ms));
    let Some(client) = ffi::block::<Waiting<F>>(ctx) else {
        return false;
    };
    stats::bump(F::counters(&sub).0);
    watch_keyspace::<F>(ctx);
    queues::<F>()
        .entry(slot::<F>(ctx, key, &sub))
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
    arm::<F>(ctx, key, &sub);
    true
}

/// Serves the queues on `key` (in the context's database) whose `sub` matches.
pub fn serve_matching<F: Family>(ctx: Ctx, key: &[u8], matches: impl Fn(&F::Sub) -> bool) {
    let subs: Vec<F::Sub> = on_key::<F>(&queues::<F>(), ctx.selected_db(), key)
        .filter(|sub| matches(sub))
        .collect();
    for sub in subs {
        serve::<F>(ctx, key, &sub);
    }
}

/// The subs of the queues on `key` in database `db`.
fn on_key<'q, F: Family>(
    queues: &'q Queues<F>,
    db: c_int,
    key: &'q [u8],
) -> impl Iterator<Item = F::Sub> + 'q {
    let from = (db, key.to_vec(), F::Sub::default());
    queues
        .range(from..)
        .take_while(move |((d, k, _), _)| *d == db && k == key)
        .map(|((_, _, sub), _)| sub.clone())
}

/// Grants the queue's waiters what they wait for, in order, while the head can have it; then
/// sets the timer for when it can next. Waiters whose deadline has passed leave first, granted
/// nothing. An error (the key left in a state no waiter can use) fails them all with it.
pub fn serve<F: Family>(ctx: Ctx, key: &[u8], sub: &F::Sub) {
    if queues::<F>().is_empty() {
        return;
    }
    let slot = slot::<F>(ctx, key, sub);
    if !ctx.is_primary() {
        cancel::<F>(ctx, &slot, NOW_REPLICA);
        return;
    }
    expire::<F>(&slot);
    loop {
        // Cloned: the queues are not locked while the family writes (its writes fire events).
        let head = queues::<F>()
            .get(&slot)
            .and_then(|q| q.waiters.peek().map(|w| (w.client.id(), w.wanted.clone())));
        let Some((client, wanted)) = head else {
            break;
        };
        let granted = (client, F::try_grant(ctx, key, sub, &wanted));
        match granted {
            (client, Ok(Some(reply))) => {
                if let Some((_, waiter)) = take_waiter::<F>(ctx, client) {
                    waiter.client.unblock(Ok(reply));
                }
            }
            (_, Ok(None)) => break,
            (_, Err(err)) => {
                cancel::<F>(ctx, &slot, &err.to_string());
                return;
            }
        }
    }
    arm::<F>(ctx, key, sub);
}

/// Ends the wait of the queue's waiters whose deadline has passed: the family's "nothing",
/// nothing written. The queue stays, even empty, for the caller to serve and arm.
fn expire<F: Family>(slot: &Slot<F::Sub>) {
    let now = now_ms();
    let expired: Vec<Waiter<F>> = match queues::<F>().get_mut(slot) {
        Some(queue) => std::iter::from_fn(|| queue.waiters.remove(|w| w.expired(now))).collect(),
        None => return,
    };
    stats::add(F::counters(&slot.2).1, expired.len() as u64);
    for w in expired {
        w.client.unblock(Ok(F::nothing(&slot.2)));
    }
}

/// Sets the queue's timer for the family's next chance or the first waiter's deadline,
/// whichever comes first; drops the queue when it is empty.
fn arm<F: Family>(ctx: Ctx, key: &[u8], sub: &F::Sub) {
    let chance = F::next_chance(ctx, key, sub);
    let slot = slot::<F>(ctx, key, sub);
    let mut queues = queues::<F>();
    let Some(queue) = queues.get_mut(&slot) else {
        return;
    };
    if queue.waiters.is_empty() {
        let timer = queues.remove(&slot).and_then(|q| q.timer);
        drop(queues);
        stop_timer(ctx, timer);
        return;
    }
    let first_deadline = queue.waiters.iter().filter_map(|w| w.deadline_ms).min();
    if let Some(at_ms) = chance.into_iter().chain(first_deadline).min() {
        set_timer(ctx, queue, &slot, at_ms);
    }
}

/// The longest period a timer is set for: RM_CreateTimer computes its end in µs, which a period
/// near i64's end (`WAIT 9223372036854775807`) would overflow. A timer cut short re-arms.
const MAX_TIMER_MS: i64 = 1 << 40;

/// Makes sure the queue's timer fires by `at_ms`.
fn set_timer<F: Family>(ctx: Ctx, queue: &mut Queue<F>, slot: &Slot<F::Sub>, at_ms: i64) {
    if queue.timer.as_ref().is_some_and(|t| t.at_ms <= at_ms) {
        return;
    }
    stop_timer(ctx, queue.timer.take());
    let period = at_ms.saturating_sub(now_ms()).clamp(0, MAX_TIMER_MS);
    let due = Due {
        slot: slot.clone(),
        family: PhantomData,
    };
    let timer = Timer::start(ctx, period, due);
    queue.timer = Some(Armed { timer, at_ms });
}

fn stop_timer<F: Family>(ctx: Ctx, armed: Option<Armed<F>>) {
    if let Some(armed) = armed {
        armed.timer.stop(ctx);
    }
}

/// Takes the waiter `client` out of its queue (dropping the queue, and its timer, when it
/// empties), with the queue's sub; None when no queue holds it.
fn take_waiter<F: Family>(ctx: Ctx, client: ClientId) -> Option<(F::Sub, Waiter<F>)> {
    let mut queues = queues::<F>();
    let (slot, queue, waiter) = queues.iter_mut().find_map(|(slot, q)| {
        let waiter = q.waiters.remove(|w: &Waiter<F>| w.client.id() == client)?;
        Some((slot.clone(), q, waiter))
    })?;
    if queue.waiters.is_empty() {
        let timer = queues.remove(&slot).and_then(|q| q.timer);
        drop(queues);
        stop_timer(ctx, timer);
    }
    Some((slot.2, waiter))
}

/// Drops a queue and its timer, failing its waiters with `error`.
fn cancel<F: Family>(ctx: Ctx, slot: &Slot<F::Sub>, error: &str) {
    let Some(mut queue) = queues::<F>().remove(slot) else {
        return;
    };
    stop_timer(ctx, queue.timer.take());
    for w in queue.waiters.drain() {
        w.client.unblock(Err(error.to_string()));
    }
}

/// Serves every queue of the family right after this callback (for events that must not
/// write), those on `key` in database `db` only when given.
fn serve_soon<F: Family>(ctx: Ctx, only: Option<(c_int, &[u8])>) {
    // Never held here (no write happens under it); were it, a blocking lock would hang the
    // server, so the event is skipped instead.
    let mut queues = match F::waiters().queues.try_lock() {
        Ok(queues) => queues,
        Err(TryLockError::Poisoned(e)) => e.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    if queues.is_empty() {
        return;
    }
    let slots: Vec<Slot<F::Sub>> = match only {
        Some((db, key)) => on_key::<F>(&queues, db, key)
            .map(|sub| (db, key.to_vec(), sub))
            .collect(),
        None => queues.keys().cloned().collect(),
    };
    let now = now_ms();
    for slot in slots {
        if let Some(queue) = queues.get_mut(&slot) {
            set_timer(ctx, queue, &slot, now);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What the server calls back

/// A family's waits, as the server calls back about them.
struct Waiting<F>(PhantomData<fn() -> F>);

impl<F: Family> Waits for Waiting<F> {
    type Outcome = Outcome;

    /// A grant's reply, or the error that cancelled the wait.
    fn reply(outcome: Option<&Outcome>) -> Result<Reply, String> {
        match outcome {
            Some(Ok(value)) => Ok(Reply::Value(value.clone())),
            Some(Err(text)) => Err(text.clone()),
            None => Ok(Reply::Null),
        }
    }

    /// CLIENT UNBLOCK (the only server timeout: the module keeps the deadlines): leave the
    /// queue and reply the family's "nothing".
    fn timed_out(ctx: Ctx, client: ClientId) -> (Reply, Option<BlockedClient<Outcome>>) {
        match take_waiter::<F>(ctx, client) {
            Some((sub, w)) => (Reply::Value(F::nothing(&sub)), Some(w.client)),
            None => (Reply::Null, None),
        }
    }

    /// Leave the queue. (A client already granted is no longer queued: its grant stands.)
    fn disconnected(ctx: Ctx, client: ClientId) -> Option<BlockedClient<Outcome>> {
        take_waiter::<F>(ctx, client).map(|(_, w)| w.client)
    }
}

/// What a queue's timer carries: the queue to serve.
struct Due<F: Family> {
    slot: Slot<F::Sub>,
    family: PhantomData<fn() -> F>,
}

impl<F: Family> Fires for Due<F> {
    fn fired(self, ctx: Ctx, timer: TimerToken) {
        let queued = queues::<F>().get_mut(&self.slot).map(|queue| {
            if queue
                .timer
                .as_ref()
                .is_some_and(|t| t.timer.token() == timer)
            {
                queue.timer = None;
            }
        });
        if queued.is_some() {
            let (db, key, sub) = &self.slot;
            ctx.select_db(*db);
            serve::<F>(ctx, key, sub);
        }
    }
}

/// Keyspace events that may free a key, or change it, behind the module's back.
const CHANGING_EVENTS: [&CStr; 7] = [
    c"del",
    c"expired",
    c"evicted",
    c"set",
    c"restore",
    c"rename_from",
    c"move_from",
];

impl<F: Family> KeyspaceWatch for Waiting<F> {
    /// A key may have been freed or changed: when clients wait on it, serve them right after
    /// this event (a keyspace callback must not write).
    fn event(ctx: Ctx, event: &CStr, key: &[u8]) {
        if CHANGING_EVENTS.contains(&event) {
            serve_soon::<F>(ctx, Some((ctx.selected_db(), key)));
        }
    }
}

/// What a family's waiters do on the server events every family shares.
pub struct Hooks {
    became_replica: fn(Ctx),
    flushed: fn(Ctx),
}

/// A family's [`Hooks`].
pub const fn hooks<F: Family>() -> Hooks {
    Hooks {
        became_replica: became_replica::<F>,
        flushed: flushed::<F>,
    }
}

/// The server became a replica: no grant can be written here any more.
fn became_replica<F: Family>(ctx: Ctx) {
    let slots: Vec<Slot<F::Sub>> = queues::<F>().keys().cloned().collect();
    for slot in slots {
        cancel::<F>(ctx, &slot, NOW_REPLICA);
    }
}

/// `FLUSHALL`/`FLUSHDB` fire no keyspace event: serve every queue right after it.
fn flushed<F: Family>(ctx: Ctx) {
    serve_soon::<F>(ctx, None);
}

/// Every blocking family's hooks, set at load.
static FAMILIES: OnceLock<&'static [Hooks]> = OnceLock::new();

/// The server events, dispatched to every family (a module has one callback per server event:
/// subscribing again replaces it).
struct ServerEvents;

impl ServerWatch for ServerEvents {
    fn became_replica(ctx: Ctx) {
        for hooks in FAMILIES.get().copied().unwrap_or_default() {
            (hooks.became_replica)(ctx);
        }
    }

    fn flushed(ctx: Ctx) {
        for hooks in FAMILIES.get().copied().unwrap_or_default() {
            (hooks.flushed)(ctx);
        }
    }
}

/// Subscribes the blocking families to the role changes and flushes their waiters depend on
/// (at module load).
pub fn subscribe(ctx: Ctx, families: &'static [Hooks]) -> Result<(), String> {
    FAMILIES
        .set(families)
        .map_err(|_| "waiters subscribed twice".to_string())?;
    ffi::watch_server::<ServerEvents>(ctx)
}

/// Watches the keyspace events that may free or change a key, from the family's first wait
/// on: every such event then costs the server a call into the module (Redis 7.0 and Valkey 8.0
/// cannot unsubscribe), so a server whose clients never wait never pays it.
fn watch_keyspace<F: Family>(ctx: Ctx) {
    if F::waiters().watching.swap(true, Ordering::Relaxed) {
        return;
    }
    let classes = Notify::GENERIC
        .and(Notify::EXPIRED)
        .and(Notify::EVICTED)
        .and(Notify::STRING);
    ffi::watch_keyspace::<Waiting<F>>(ctx, classes);
}

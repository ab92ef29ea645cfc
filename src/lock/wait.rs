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
//! token; the reply is sent by `on_reply`. A waiter that disconnects leaves its queue.
//!
//! The module keeps each waiter's deadline itself (its absolute time in ms on the server's
//! clock) and blocks the client with no server timeout: a queue is served only with its expired
//! waiters taken out first (replied nil, or 0 for a semaphore, with nothing written), and its
//! timer also fires at the earliest deadline. Left to the server, the timeout raced the grant:
//! Redis 7.0 handles blocking timeouts in `beforeSleep` up to 100 ms late and before the
//! replies of clients the module unblocked, so a waiter granted after its deadline but before
//! its timeout was handled lost its reply (the timeout skips a client already unblocked, then
//! detaches it, and its reply callback never runs) and hung while holding the lock. When the server becomes a replica, every waiter is unblocked with an error: Redis
//! and Valkey do it themselves (`UNBLOCKED ...`, which reaches `on_disconnect`), and the module
//! cancels whatever is left with a READONLY error.
//! All of this runs on Redis's main thread; the mutex only makes the statics sound.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use patterns_core::lock::WaitQueue;
use redis_module::raw::{
    self, RedisModuleBlockedClient, RedisModuleCtx, RedisModuleEvent, RedisModuleString,
    RedisModuleTimerID,
};

use super::{deadline, try_grant, Ctx};
use crate::shared::{bytes, now_ms, send, send_error, Reply};

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
    /// The reply to a grant (a cancelled wait's error is sent by `on_reply`).
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
    client: *mut RedisModuleBlockedClient,
    wanted: Wanted,
    /// When the wait ends unserved (ms, server clock); None for `WAIT 0`.
    deadline_ms: Option<i64>,
}

impl Waiter {
    fn expired(&self, now_ms: i64) -> bool {
        self.deadline_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A timer set to serve a queue at `at_ms`; `data` is its boxed [`Name`].
#[derive(Clone, Copy)]
struct Timer {
    id: RedisModuleTimerID,
    at_ms: i64,
    data: *mut Name,
}

struct Queue {
    waiters: WaitQueue<Waiter>,
    timer: Option<Timer>,
}

/// A queue's key: the database, what its clients wait for, and the key's name.
type Name = (c_int, Kind, Vec<u8>);

fn name_of(ctx: Ctx, kind: Kind, name: &[u8]) -> Name {
    (selected_db(ctx), kind, name.to_vec())
}

struct Queues(BTreeMap<Name, Queue>);

// Raw pointers to blocked clients and timer data: only Redis's main thread touches them.
unsafe impl Send for Queues {}

static QUEUES: Mutex<Queues> = Mutex::new(Queues(BTreeMap::new()));

fn queues() -> MutexGuard<'static, Queues> {
    QUEUES.lock().unwrap_or_else(|e| e.into_inner())
}

fn selected_db(ctx: Ctx) -> c_int {
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx) }
}

/// Whether the client may be blocked: not inside MULTI/EXEC, a script, or a module's call.
pub fn can_block(ctx: Ctx) -> bool {
    let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(ctx) } as u32;
    let deny = raw::REDISMODULE_CTX_FLAGS_MULTI
        | raw::REDISMODULE_CTX_FLAGS_LUA
        | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING;
    flags & deny == 0
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
    let client = unsafe {
        let client = raw::RedisModule_BlockClient.unwrap()(
            ctx,
            Some(on_reply),
            Some(on_timeout),
            Some(free_outcome),
            0,
        );
        raw::RedisModule_SetDisconnectCallback.unwrap()(client, Some(on_disconnect));
        client
    };
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
            .and_then(|q| q.waiters.peek().map(|w| (w.client, w.wanted.clone())));
        let Some((client, wanted)) = head else {
            break;
        };
        match try_grant(ctx, kind, name, &wanted) {
            Ok(Some(outcome)) => {
                take_waiter(ctx, |w| w.client == client);
                unblock(client, outcome);
            }
            Ok(None) => break,
            Err(err) => {
                let waiting = remove_queue(ctx, &key);
                for w in waiting {
                    unblock(w.client, Outcome::Error(err.to_string()));
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
        unblock(w.client, Outcome::Expired(key.1));
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
    if queue.timer.is_some_and(|t| t.at_ms <= at_ms) {
        return;
    }
    stop_timer(ctx, queue.timer.take());
    let data = Box::into_raw(Box::new(key.clone()));
    let period = at_ms.saturating_sub(now_ms()).clamp(0, MAX_TIMER_MS);
    let id = unsafe {
        raw::RedisModule_CreateTimer.unwrap()(ctx, period, Some(on_timer), data.cast::<c_void>())
    };
    queue.timer = Some(Timer { id, at_ms, data });
}

fn stop_timer(ctx: Ctx, timer: Option<Timer>) {
    if let Some(t) = timer {
        let mut data: *mut c_void = ptr::null_mut();
        let stopped = unsafe { raw::RedisModule_StopTimer.unwrap()(ctx, t.id, &mut data) };
        if stopped == raw::REDISMODULE_OK as c_int {
            drop(unsafe { Box::from_raw(t.data) });
        }
    }
}

/// Takes the first waiter matching `is_it` out of its queue (dropping the queue, and its
/// timer, when it empties): the queue's kind, or None when no queue holds it.
fn take_waiter(ctx: Ctx, is_it: impl Fn(&Waiter) -> bool) -> Option<Kind> {
    let mut queues = queues();
    let (key, queue) = queues
        .0
        .iter_mut()
        .find_map(|(key, q)| q.waiters.remove(&is_it).map(|_| (key.clone(), q)))?;
    if queue.waiters.is_empty() {
        let timer = queues.0.remove(&key).and_then(|q| q.timer);
        drop(queues);
        stop_timer(ctx, timer);
    }
    Some(key.1)
}

/// Drops a queue and its timer, handing back its waiters.
fn remove_queue(ctx: Ctx, key: &Name) -> Vec<Waiter> {
    let Some(mut queue) = queues().0.remove(key) else {
        return Vec::new();
    };
    stop_timer(ctx, queue.timer.take());
    queue.waiters.drain().collect()
}

fn unblock(client: *mut RedisModuleBlockedClient, outcome: Outcome) {
    let data = Box::into_raw(Box::new(outcome));
    unsafe { raw::RedisModule_UnblockClient.unwrap()(client, data.cast::<c_void>()) };
}

/// Runs a callback body with panics caught: Redis must never see an unwind.
fn guarded(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

// ---------------------------------------------------------------------------------------------
// Callbacks

/// Replies to a client whose wait ended with a grant or an error.
unsafe extern "C" fn on_reply(
    ctx: *mut RedisModuleCtx,
    _argv: *mut *mut RedisModuleString,
    _argc: c_int,
) -> c_int {
    guarded(|| {
        let outcome = unsafe { raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx) };
        match unsafe { outcome.cast::<Outcome>().as_ref() } {
            Some(Outcome::Error(text)) => send_error(ctx, text),
            Some(outcome) => send(ctx, outcome.reply()),
            None => send(ctx, Reply::Null),
        }
    });
    raw::REDISMODULE_OK as c_int
}

unsafe extern "C" fn free_outcome(_ctx: *mut RedisModuleCtx, data: *mut c_void) {
    if !data.is_null() {
        drop(unsafe { Box::from_raw(data.cast::<Outcome>()) });
    }
}

/// CLIENT UNBLOCK (the only server timeout: the module keeps the deadlines): leave the queue,
/// reply nil (a lock) or 0 (a semaphore), and release the handle.
unsafe extern "C" fn on_timeout(
    ctx: *mut RedisModuleCtx,
    _argv: *mut *mut RedisModuleString,
    _argc: c_int,
) -> c_int {
    guarded(|| {
        let client = unsafe { raw::RedisModule_GetBlockedClientHandle.unwrap()(ctx) };
        let kind = take_waiter(ctx, |w| w.client == client);
        send(
            ctx,
            match kind {
                Some(Kind::Sem) => Reply::Integer(0),
                _ => Reply::Null,
            },
        );
        if kind.is_some() {
            unsafe { raw::RedisModule_UnblockClient.unwrap()(client, ptr::null_mut()) };
        }
    });
    raw::REDISMODULE_OK as c_int
}

/// The client went away while waiting: leave the queue and release the handle. (A client
/// already granted is no longer queued: its grant stands until its lease ends.)
unsafe extern "C" fn on_disconnect(
    ctx: *mut RedisModuleCtx,
    client: *mut RedisModuleBlockedClient,
) {
    guarded(|| {
        if take_waiter(ctx, |w| w.client == client).is_some() {
            unsafe { raw::RedisModule_UnblockClient.unwrap()(client, ptr::null_mut()) };
        }
    });
}

/// A queue's timer fired: serve it.
unsafe extern "C" fn on_timer(ctx: *mut RedisModuleCtx, data: *mut c_void) {
    let key = unsafe { Box::from_raw(data.cast::<Name>()) };
    guarded(|| {
        let queued = queues().0.get_mut(&*key).map(|queue| {
            if queue.timer.is_some_and(|t| t.data == data.cast::<Name>()) {
                queue.timer = None;
            }
        });
        if queued.is_some() {
            let (db, kind, name) = &*key;
            unsafe { raw::RedisModule_SelectDb.unwrap()(ctx, *db) };
            serve(ctx, *kind, name);
        }
    });
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

/// A key may have been freed: when clients wait on it, serve them right after this event
/// (a keyspace callback must not write).
unsafe extern "C" fn on_keyspace_event(
    ctx: *mut RedisModuleCtx,
    _class: c_int,
    event: *const c_char,
    name: *mut RedisModuleString,
) -> c_int {
    guarded(|| {
        // Held only when this event comes from the module's own write: it serves by itself.
        let mut queues = match QUEUES.try_lock() {
            Ok(queues) => queues,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if queues.0.is_empty() {
            return;
        }
        let event = unsafe { CStr::from_ptr(event) };
        if !FREEING_EVENTS.contains(&event) {
            return;
        }
        for kind in [Kind::Lock, Kind::Sem] {
            let key = name_of(ctx, kind, bytes(name));
            if let Some(queue) = queues.0.get_mut(&key) {
                set_timer(ctx, queue, &key, now_ms());
            }
        }
    });
    raw::REDISMODULE_OK as c_int
}

/// The server became a replica: no grant can be written here any more.
unsafe extern "C" fn on_role_change(
    ctx: *mut RedisModuleCtx,
    _event: RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_REPLICA {
        return;
    }
    guarded(|| {
        let keys: Vec<Name> = queues().0.keys().cloned().collect();
        for key in keys {
            for w in remove_queue(ctx, &key) {
                unblock(w.client, Outcome::Error(NOW_REPLICA.into()));
            }
        }
    });
}

/// Subscribes to the role changes waiters depend on (at module load).
pub fn subscribe(ctx: Ctx) -> Result<(), String> {
    let role_changed = RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        dataver: 1,
    };
    let status = unsafe {
        raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, role_changed, Some(on_role_change))
    };
    if status != raw::REDISMODULE_OK as c_int {
        return Err("could not subscribe to role changes".into());
    }
    Ok(())
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
    let classes = raw::REDISMODULE_NOTIFY_GENERIC
        | raw::REDISMODULE_NOTIFY_EXPIRED
        | raw::REDISMODULE_NOTIFY_EVICTED
        | raw::REDISMODULE_NOTIFY_STRING;
    unsafe {
        raw::RedisModule_SubscribeToKeyspaceEvents.unwrap()(
            ctx,
            classes as c_int,
            Some(on_keyspace_event),
        )
    };
}

//! The counters `INFO patterns` shows: one cell per event, bumped by the command (or callback)
//! that makes the event, on the server's main thread. They count from module load; the server
//! tells a module nothing of `CONFIG RESETSTAT`, so they survive it (README, Operations).
#![deny(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Every counter, in the order `INFO patterns` lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    TokenbucketAllowed,
    TokenbucketDenied,
    FixedwindowAllowed,
    FixedwindowDenied,
    SlidingwindowAllowed,
    SlidingwindowDenied,
    ThrottleAllowed,
    ThrottleDenied,
    AllAllowed,
    AllDenied,
    Refunds,
    LockGrants,
    LockReleases,
    LockWaits,
    LockWaitTimeouts,
    LockExpiries,
    LockForcedUnlocks,
    SemGrants,
    SemReleases,
    SemWaits,
    SemWaitTimeouts,
    RwGrants,
    RwReleases,
    RwWaits,
    RwWaitTimeouts,
    CacheHit,
    CacheRefresh,
    CacheMiss,
    CacheStale,
    CacheWait,
    CacheFillsAccepted,
    CacheFillsRefused,
    CacheInvalidations,
    CacheKeysInvalidated,
    SessionsCreated,
    SessionsRotated,
    SessionsDestroyed,
    LeaderboardWrites,
    QueuePushed,
    QueueDelivered,
    QueueRedelivered,
    QueueDead,
    QueueAcked,
    QueueWaits,
    QueueWaitTimeouts,
}

/// Each counter's field name in `INFO patterns` (the module's name is the prefix the server
/// adds: `patterns_lock_grants`).
pub const FIELDS: [(Stat, &str); 45] = [
    (Stat::TokenbucketAllowed, "rl_tokenbucket_allowed"),
    (Stat::TokenbucketDenied, "rl_tokenbucket_denied"),
    (Stat::FixedwindowAllowed, "rl_fixedwindow_allowed"),
    (Stat::FixedwindowDenied, "rl_fixedwindow_denied"),
    (Stat::SlidingwindowAllowed, "rl_slidingwindow_allowed"),
    (Stat::SlidingwindowDenied, "rl_slidingwindow_denied"),
    (Stat::ThrottleAllowed, "cl_throttle_allowed"),
    (Stat::ThrottleDenied, "cl_throttle_denied"),
    (Stat::AllAllowed, "rl_all_allowed"),
    (Stat::AllDenied, "rl_all_denied"),
    (Stat::Refunds, "rl_refunds"),
    (Stat::LockGrants, "lock_grants"),
    (Stat::LockReleases, "lock_releases"),
    (Stat::LockWaits, "lock_waits"),
    (Stat::LockWaitTimeouts, "lock_wait_timeouts"),
    (Stat::LockExpiries, "lock_expiries"),
    (Stat::LockForcedUnlocks, "lock_forced_unlocks"),
    (Stat::SemGrants, "sem_grants"),
    (Stat::SemReleases, "sem_releases"),
    (Stat::SemWaits, "sem_waits"),
    (Stat::SemWaitTimeouts, "sem_wait_timeouts"),
    (Stat::RwGrants, "rwlock_grants"),
    (Stat::RwReleases, "rwlock_releases"),
    (Stat::RwWaits, "rwlock_waits"),
    (Stat::RwWaitTimeouts, "rwlock_wait_timeouts"),
    (Stat::CacheHit, "cache_hit"),
    (Stat::CacheRefresh, "cache_refresh"),
    (Stat::CacheMiss, "cache_miss"),
    (Stat::CacheStale, "cache_stale"),
    (Stat::CacheWait, "cache_wait"),
    (Stat::CacheFillsAccepted, "cache_fills_accepted"),
    (Stat::CacheFillsRefused, "cache_fills_refused"),
    (Stat::CacheInvalidations, "cache_invalidations"),
    (Stat::CacheKeysInvalidated, "cache_keys_invalidated"),
    (Stat::SessionsCreated, "session_created"),
    (Stat::SessionsRotated, "session_rotated"),
    (Stat::SessionsDestroyed, "session_destroyed"),
    (Stat::LeaderboardWrites, "lb_writes"),
    (Stat::QueuePushed, "queue_pushed"),
    (Stat::QueueDelivered, "queue_delivered"),
    (Stat::QueueRedelivered, "queue_redelivered"),
    (Stat::QueueDead, "queue_dead"),
    (Stat::QueueAcked, "queue_acked"),
    (Stat::QueueWaits, "queue_waits"),
    (Stat::QueueWaitTimeouts, "queue_wait_timeouts"),
];

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
static COUNTS: [AtomicU64; FIELDS.len()] = [ZERO; FIELDS.len()];

/// Counts `n` events of `stat`. Only the main thread writes, so a plain load and store (no
/// locked read-modify-write) is exact and costs a memory increment.
pub fn add(stat: Stat, n: u64) {
    let cell = &COUNTS[stat as usize];
    cell.store(cell.load(Relaxed).wrapping_add(n), Relaxed);
}

/// Counts one event of `stat`.
pub fn bump(stat: Stat) {
    add(stat, 1);
}

/// One allowed or denied request of a limiter.
pub fn admission(allowed: Stat, denied: Stat, was_allowed: bool) {
    bump(if was_allowed { allowed } else { denied });
}

/// Every counter with its field name, in order.
pub fn snapshot() -> impl Iterator<Item = (&'static str, u64)> {
    FIELDS
        .iter()
        .map(|(stat, name)| (*name, COUNTS[*stat as usize].load(Relaxed)))
}

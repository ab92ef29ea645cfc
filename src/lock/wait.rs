//! The lock family's waiters (`LOCK.ACQUIRE ... WAIT`, `SEM.ACQUIRE ... WAIT`), on the
//! module's generic waiting (`crate::wait`): one queue per key and kind, granted the lock (its
//! token) or a permit (1) when the key frees, nil (0 for a semaphore) when the deadline passes.
//! Read/write locks (`RWLOCK.ACQUIRE ... WAIT`) queue both modes in one queue per key.
//! A lock's or semaphore's queue is served by the release, by a timer at the lease's (or first
//! permit's) end, and when the key is deleted, expires or is overwritten behind the module's
//! back.
#![deny(unsafe_code)]

use patterns_core::command::CmdError;
use patterns_core::lock::rw::Mode;

use super::{deadline, try_grant};
use crate::ffi::{Ctx, Value};
use crate::stats::Stat;
use crate::wait::{self, Family, Waiters};

/// What a queue waits for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// (First in order, as `Family::Sub` requires.)
    #[default]
    Lock,
    Sem,
    /// A read/write lock: both modes in one queue.
    Rw,
}

/// What a waiter asked for.
#[derive(Clone, Debug)]
pub struct Wanted {
    pub owner: Vec<u8>,
    pub ttl_ms: i64,
    /// A semaphore's permits (1 for a lock).
    pub limit: i64,
    /// A read/write lock's mode (None for a lock or a semaphore).
    pub mode: Option<Mode>,
}

/// The lock family's waits.
pub struct Locks;

static WAITERS: Waiters<Locks> = Waiters::new();

impl Family for Locks {
    type Sub = Kind;
    type Wanted = Wanted;

    fn waiters() -> &'static Waiters<Self> {
        &WAITERS
    }

    fn try_grant(
        ctx: Ctx,
        key: &[u8],
        kind: &Kind,
        wanted: &Wanted,
    ) -> Result<Option<Value>, CmdError> {
        // Served from the queue: the head overtakes nobody.
        try_grant(ctx, *kind, key, wanted, false)
    }

    fn next_chance(ctx: Ctx, key: &[u8], kind: &Kind) -> Option<i64> {
        // Redis keeps a key until its expiry time has passed: serve 1 ms after it.
        deadline(ctx, *kind, key).map(|at| at.saturating_add(1))
    }

    /// nil for a lock (either kind), 0 for a semaphore.
    fn nothing(kind: &Kind) -> Value {
        match kind {
            Kind::Lock | Kind::Rw => Value::Null,
            Kind::Sem => Value::Int(0),
        }
    }

    fn counters(kind: &Kind) -> (Stat, Stat) {
        match kind {
            Kind::Lock => (Stat::LockWaits, Stat::LockWaitTimeouts),
            Kind::Sem => (Stat::SemWaits, Stat::SemWaitTimeouts),
            Kind::Rw => (Stat::RwWaits, Stat::RwWaitTimeouts),
        }
    }
}

/// How many clients wait on `name`'s `kind` (in the context's database).
pub fn count(ctx: Ctx, kind: Kind, name: &[u8]) -> usize {
    wait::count::<Locks>(ctx, name, &kind)
}

/// How many clients wait now: (for locks, for semaphores, for read/write locks).
pub fn waiting() -> (u64, u64, u64) {
    let of = |kind: Kind| wait::total::<Locks>(|k| *k == kind);
    (of(Kind::Lock), of(Kind::Sem), of(Kind::Rw))
}

/// Blocks the calling client until `wanted` is granted or `timeout_ms` passes (0: no limit);
/// false when the server would not block it.
#[must_use]
pub fn block(ctx: Ctx, kind: Kind, name: &[u8], wanted: Wanted, timeout_ms: i64) -> bool {
    wait::block::<Locks>(ctx, name, kind, wanted, timeout_ms)
}

/// Grants the key's waiters what they wait for, in order, while the head can have it.
pub fn serve(ctx: Ctx, kind: Kind, name: &[u8]) {
    wait::serve::<Locks>(ctx, name, &kind);
}

/// The family's hooks on server events.
pub const HOOKS: wait::Hooks = wait::hooks::<Locks>();

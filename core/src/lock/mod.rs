//! Locks with fencing tokens, semaphores with expiring permits, and the FIFO queue their
//! blocked waiters stand in.
//!
//! A **lease** is a lock held by one owner (any string the caller picks, e.g. a host and thread
//! id) until its TTL passes. Every grant to a new owner carries a **fencing token**: a number
//! larger than any token granted for that key before, so a resource that remembers the newest
//! token it has seen can refuse a write from a former holder whose lease expired while it was
//! paused (Kleppmann's storage-side check, [`fence_admits`]). The lock is **reentrant**: its
//! owner may acquire it again (the same token, one more hold, a fresh TTL) and releases one hold
//! at a time.
//!
//! State, in plain Redis types:
//! - the lock `key`: a hash `owner`, `token`, `holds` that expires when the lease ends; absent
//!   when the lock is free;
//! - its fencing counter [`fence_key`] (`{key}:fence`, or `key:fence` when the name has a
//!   hashtag; the key's slot either way): a string holding the last token granted, with no
//!   TTL, so tokens keep increasing across expiry, `DEL key`, restarts and failover;
//! - a semaphore `key`: a sorted set, member = owner, score = when that owner's permit expires
//!   (ms); it expires with its last permit.
//!
//! Everything here is pure (`now_ms` in, decision out). The binding (`src/lock.rs`) adds the
//! server-side waiting: a [`WaitQueue`] per key, served on release and at the lease's end.

pub mod lua;
pub mod rw;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use crate::command::{
    arg_option, parse_i64, positive, text, ArgKind, CmdError, CommandDef, Flags, Keys, OptionDef,
    Trailing, WRITE,
};
use crate::keys::{derived_key, MAX_MS};

pub const OWNER_FIELD: &str = "owner";
pub const TOKEN_FIELD: &str = "token";
pub const HOLDS_FIELD: &str = "holds";
/// The suffix of the fencing counter's key.
pub const FENCE_SUFFIX: &str = "fence";
/// The field of a fenced resource that holds the newest token it has accepted.
pub const RESOURCE_FENCE_FIELD: &str = "__fence";

pub const TTL_TOO_LONG: &str = "ttl_ms must be at most 2^52";
pub const BAD_NAME: &str = "lock name cannot carry its fencing counter in its slot";
pub const NOT_LOCK: &str = "key does not hold a lock";
pub const NOT_FENCE: &str = "the fencing counter is not a non-negative integer";
pub const NOT_FENCED: &str = "the resource's __fence is not a positive integer";
pub const TOKENS_EXHAUSTED: &str = "the fencing counter is exhausted";
pub const HOLDS_EXHAUSTED: &str = "the lock's hold count is exhausted";

// ---------------------------------------------------------------------------------------------
// Definitions

/// `WAIT timeout_ms`: absent is -1 (one try), 0 waits without a deadline.
const WAIT: OptionDef = arg_option("WAIT", "timeout_ms", ArgKind::NonNegative, NO_WAIT);
/// The `WAIT` slot when the option is absent.
pub const NO_WAIT: i64 = -1;
const LOCK_KEYS: &str = "key: a hash `owner`, `token`, `holds`, expiring when the lease ends \
     (absent when free)";
const SEM_KEYS: &str = "key: a sorted set, member = owner, score = when its permit expires \
     (ms); expires with its last permit";

pub static ACQUIRE: CommandDef = CommandDef {
    name: "LOCK.ACQUIRE",
    syntax: "key owner ttl_ms [WAIT timeout_ms]",
    summary: "Takes the lock for owner for ttl_ms, or one more hold of it if owner has it already (same token, fresh TTL); with WAIT, queues on the server (FIFO) until granted or timeout_ms passes (0: no limit).",
    complexity: "O(1)",
    reply: "Integer: the fencing token (larger than every token granted for key before) when granted; nil when not",
    keys: "key: a hash `owner`, `token`, `holds`, expiring when the lease ends; its fencing \
           counter `{key}:fence` (or `key:fence` when key has a hashtag): a string, the last \
           token granted, never expiring",
    flags: WRITE.and(Flags::BLOCKING),
    positionals: &[text("owner"), positive("ttl_ms")],
    options: &[WAIT],
    trailing: None,
    key_positions: Keys::First,
};

pub static RELEASE: CommandDef = CommandDef {
    name: "LOCK.RELEASE",
    syntax: "key owner",
    summary: "Drops one of owner's holds; the lock is free when none remain, and goes to the next waiter.",
    complexity: "O(1)",
    reply: "Integer: 1 when a hold was dropped, 0 when owner holds nothing",
    keys: LOCK_KEYS,
    flags: Flags::WRITE.and(Flags::FAST),
    positionals: &[text("owner")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static EXTEND: CommandDef = CommandDef {
    name: "LOCK.EXTEND",
    syntax: "key owner ttl_ms",
    summary: "Sets the lease of owner's lock to end ttl_ms from now.",
    complexity: "O(1)",
    reply: "Integer: 1 when owner holds the lock, else 0",
    keys: LOCK_KEYS,
    flags: WRITE.and(Flags::FAST),
    positionals: &[text("owner"), positive("ttl_ms")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static INFO: CommandDef = CommandDef {
    name: "LOCK.INFO",
    syntax: "key",
    summary: "Who holds the lock, with which token, for how long, how many holds and how many clients wait.",
    complexity: "O(1)",
    reply: "Map (RESP2: a flat array) `owner`, owner, `token`, integer, `ttl` (ms left, -1 without expiry), integer, `holds`, integer, `waiters`, integer; nil when free",
    keys: LOCK_KEYS,
    flags: Flags::READONLY.and(Flags::FAST),
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static FENCEDHSET: CommandDef = CommandDef {
    name: "LOCK.FENCEDHSET",
    syntax: "resource token field value [field value ...]",
    summary: "Sets fields of the resource hash only when token is not older than the newest token the resource has accepted (the storage-side fencing check).",
    complexity: "O(N), N the fields",
    reply: "Integer: 1 when written, 0 when token is older (nothing written)",
    keys: "resource: a hash of your fields plus `__fence`, the newest token it accepted",
    flags: WRITE,
    positionals: &[positive("token")],
    options: &[],
    trailing: Some(Trailing {
        names: &["field", "value"],
        min: 1,
    }),
    key_positions: Keys::First,
};

pub static SEM_ACQUIRE: CommandDef = CommandDef {
    name: "SEM.ACQUIRE",
    syntax: "key owner limit ttl_ms [WAIT timeout_ms]",
    summary: "Grants owner one of limit permits for ttl_ms (refreshing the one it has); with WAIT, queues on the server (FIFO) until granted or timeout_ms passes (0: no limit).",
    complexity: "O(log N + M), N the permits, M the expired ones pruned",
    reply: "Integer: 1 when owner holds a permit, 0 when all are taken",
    keys: SEM_KEYS,
    flags: WRITE.and(Flags::BLOCKING),
    positionals: &[text("owner"), positive("limit"), positive("ttl_ms")],
    options: &[WAIT],
    trailing: None,
    key_positions: Keys::First,
};

pub static SEM_RELEASE: CommandDef = CommandDef {
    name: "SEM.RELEASE",
    syntax: "key owner",
    summary: "Returns owner's permit; the next waiter gets it.",
    complexity: "O(log N + M), M the expired permits pruned",
    reply: "Integer: 1 when owner held a live permit, else 0",
    keys: SEM_KEYS,
    flags: Flags::WRITE,
    positionals: &[text("owner")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static SEM_COUNT: CommandDef = CommandDef {
    name: "SEM.COUNT",
    syntax: "key",
    summary: "The number of permits in use (expired ones not counted; read only, so it runs on replicas).",
    complexity: "O(log N + M), M the expired permits not yet pruned",
    reply: "Integer",
    keys: SEM_KEYS,
    flags: Flags::READONLY.and(Flags::FAST),
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 12] = [
    &ACQUIRE,
    &RELEASE,
    &EXTEND,
    &INFO,
    &FENCEDHSET,
    &SEM_ACQUIRE,
    &SEM_RELEASE,
    &SEM_COUNT,
    &rw::RW_ACQUIRE,
    &rw::RW_RELEASE,
    &rw::RW_EXTEND,
    &rw::RW_INFO,
];

// ---------------------------------------------------------------------------------------------
// Keys and validation

/// The key of `lock`'s fencing counter, in the lock's Cluster slot.
pub fn fence_key(lock: &[u8]) -> Result<Vec<u8>, CmdError> {
    derived_key(lock, FENCE_SUFFIX.as_bytes()).ok_or(CmdError::BadState(BAD_NAME))
}

/// Fails unless `ttl_ms` (already >= 1) is at most [`MAX_MS`].
pub fn check_ttl(ttl_ms: i64) -> Result<i64, CmdError> {
    if ttl_ms > MAX_MS {
        return Err(CmdError::OutOfRange(TTL_TOO_LONG));
    }
    Ok(ttl_ms)
}

/// The last token granted, from the fencing counter's value (0 when there is none yet).
pub fn parse_fence(value: Option<&[u8]>) -> Result<i64, CmdError> {
    match value {
        None => Ok(0),
        Some(v) => parse_i64(v)
            .filter(|n| *n >= 0)
            .ok_or(CmdError::BadState(NOT_FENCE)),
    }
}

// ---------------------------------------------------------------------------------------------
// Locks

/// A held lock, as stored in its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease<'a> {
    pub owner: &'a [u8],
    pub token: i64,
    pub holds: i64,
}

impl<'a> Lease<'a> {
    /// Reads the hash's three fields; `BadState` unless they make a lease.
    pub fn parse(
        owner: Option<&'a [u8]>,
        token: Option<&[u8]>,
        holds: Option<&[u8]>,
    ) -> Result<Self, CmdError> {
        let positive = |v: Option<&[u8]>| {
            v.and_then(parse_i64)
                .filter(|n| *n >= 1)
                .ok_or(CmdError::BadState(NOT_LOCK))
        };
        Ok(Self {
            owner: owner.ok_or(CmdError::BadState(NOT_LOCK))?,
            token: positive(token)?,
            holds: positive(holds)?,
        })
    }
}

/// What an acquisition does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire<'a> {
    /// The owner holds the lock: write `lease`, expiring at `expire_at_ms`; when `fence` is
    /// set, the counter moves to it (a new owner's token).
    Granted {
        lease: Lease<'a>,
        expire_at_ms: i64,
        fence: Option<i64>,
    },
    /// Another owner holds it.
    Busy,
}

/// Acquires for `owner` at `now_ms`: a free lock goes to it with the token after `fence` (the
/// newest one granted); its own lock gains a hold, keeps its token and gets a fresh TTL;
/// another owner's lock is busy.
pub fn acquire<'a>(
    held: Option<Lease<'a>>,
    fence: i64,
    owner: &'a [u8],
    ttl_ms: i64,
    now_ms: i64,
) -> Result<Acquire<'a>, CmdError> {
    let expire_at_ms = now_ms + ttl_ms;
    match held {
        Some(lease) if lease.owner != owner => Ok(Acquire::Busy),
        Some(lease) => Ok(Acquire::Granted {
            lease: Lease {
                holds: lease
                    .holds
                    .checked_add(1)
                    .ok_or(CmdError::OutOfRange(HOLDS_EXHAUSTED))?,
                ..lease
            },
            expire_at_ms,
            fence: None,
        }),
        None => {
            let token = fence
                .checked_add(1)
                .ok_or(CmdError::OutOfRange(TOKENS_EXHAUSTED))?;
            Ok(Acquire::Granted {
                lease: Lease {
                    owner,
                    token,
                    holds: 1,
                },
                expire_at_ms,
                fence: Some(token),
            })
        }
    }
}

/// What a release does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release<'a> {
    /// The owner holds nothing: reply 0, write nothing.
    NotHeld,
    /// One hold dropped, others remain: write `lease` (same TTL).
    Kept(Lease<'a>),
    /// The last hold dropped: delete the lock, hand it to the next waiter.
    Freed,
}

pub fn release<'a>(held: Option<Lease<'a>>, owner: &[u8]) -> Release<'a> {
    match held {
        Some(lease) if lease.owner == owner => match lease.holds {
            1 => Release::Freed,
            n => Release::Kept(Lease {
                holds: n - 1,
                ..lease
            }),
        },
        _ => Release::NotHeld,
    }
}

/// The new expiry when `owner` holds the lock, else None.
pub fn extend(held: Option<&Lease>, owner: &[u8], ttl_ms: i64, now_ms: i64) -> Option<i64> {
    held.filter(|l| l.owner == owner).map(|_| now_ms + ttl_ms)
}

// ---------------------------------------------------------------------------------------------
// Semaphores

/// Whether `owner` gets a permit: it already has one (which is refreshed), or fewer than
/// `limit` live permits are out.
pub fn permit_granted(live_permits: i64, holds_one: bool, limit: i64) -> bool {
    holds_one || live_permits < limit
}

// ---------------------------------------------------------------------------------------------
// Fenced writes

/// Whether a resource that has seen `newest` (None: never fenced) accepts a write presented with
/// `token`: only when the token is not older.
pub fn fence_admits(newest: Option<i64>, token: i64) -> bool {
    newest.is_none_or(|n| token >= n)
}

/// The resource's newest token, from its `__fence` field.
pub fn parse_resource_fence(value: Option<&[u8]>) -> Result<Option<i64>, CmdError> {
    value
        .map(|v| {
            parse_i64(v)
                .filter(|n| *n >= 1)
                .ok_or(CmdError::BadState(NOT_FENCED))
        })
        .transpose()
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// The clients blocked on one key, first come first served. `W` is the binding's waiter (a
/// blocked client with its owner and arguments).
#[derive(Debug)]
pub struct WaitQueue<W> {
    waiters: VecDeque<W>,
}

impl<W> Default for WaitQueue<W> {
    fn default() -> Self {
        Self {
            waiters: VecDeque::new(),
        }
    }
}

impl<W> WaitQueue<W> {
    pub fn push(&mut self, waiter: W) {
        self.waiters.push_back(waiter);
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Takes out the first waiter matching `is_it` (one that timed out or disconnected).
    pub fn remove(&mut self, is_it: impl Fn(&W) -> bool) -> Option<W> {
        let at = self.waiters.iter().position(is_it)?;
        self.waiters.remove(at)
    }

    /// Every waiter, first come first.
    pub fn iter(&self) -> impl Iterator<Item = &W> {
        self.waiters.iter()
    }

    /// The waiter to serve next: the first to come.
    pub fn peek(&self) -> Option<&W> {
        self.waiters.front()
    }

    /// Every waiter, emptying the queue (the server stopped being a primary).
    pub fn drain(&mut self) -> impl Iterator<Item = W> + '_ {
        self.waiters.drain(..)
    }
}

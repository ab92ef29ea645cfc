//! Reliable queues on Streams: jobs are entries of a real stream (so `XINFO`, `XPENDING` and
//! `XRANGE` keep working), each group of workers a real consumer group, created by its first
//! `QUEUE.POP` from the oldest job.
//!
//! What the module adds around the stream, in keys of the queue's Cluster slot:
//! - `{q}:leases:<group>`, a sorted set: every job pending in the group, scored by when it may
//!   be delivered again (its lease's end; or, for a delayed or nacked job, when it falls due).
//!   A delayed or nacked job is held in the group's pending list by the reserved consumer
//!   [`PARKED`], so no worker holds it meanwhile and its delivery count is kept.
//! - `{q}:dead`, a stream: the dead letters (`job`, `payload`, `deliveries`, `group`,
//!   `consumer`, `time`).
//! - `{q}:dedupe:<dedupe_id>`, a string: the job id a dedupe id was first pushed as, expiring
//!   `ttl_ms` after that push.
//!
//! This module holds the definitions and the pure decisions (which job goes where, a lease's
//! end, how far the stream may be trimmed); `src/queue.rs` runs them with the stream commands.

use crate::command::{
    arg_option, positive, text, ArgKind, CmdError, CommandDef, Flags, Keys, OptValue, OptionDef,
    Trailing, WRITE,
};
use crate::keys::derived_key;

pub mod lua;
#[cfg(test)]
mod tests;

/// The longest lease or delay: 2^52 ms (scores and Lua numbers hold every due time exactly).
pub const MAX_MS: i64 = 1 << 52;
pub const DEFAULT_LEASE_MS: i64 = 30_000;
pub const DEFAULT_MAX_DELIVERIES: i64 = 10;
/// How many dead letters `QUEUE.REDRIVE` moves when `COUNT` is absent.
pub const DEFAULT_REDRIVE: i64 = 100;
/// The `BLOCK` slot when the option is absent (one try).
pub const NO_BLOCK: i64 = -1;
/// The consumer holding a group's delayed and nacked jobs until they fall due.
pub const PARKED: &str = "(delayed)";

pub const LEASES_SUFFIX: &str = "leases:";
pub const DEAD_SUFFIX: &str = "dead";
pub const DEDUPE_SUFFIX: &str = "dedupe:";
/// A job's fields: its payload; when pushed with `DELAY`, when it falls due; when redriven,
/// the one group it is for.
pub const PAYLOAD_FIELD: &str = "payload";
pub const DUE_FIELD: &str = "due";
pub const GROUP_FIELD: &str = "group";

pub const BAD_NAME: &str = "queue name cannot carry its derived keys in its slot";
pub const BAD_JOB_ID: &str = "job_id must be a stream id (ms-seq)";
pub const TOO_LONG: &str = "delay_ms, lease_ms and ttl_ms must be at most 2^52";
pub const RESERVED_CONSUMER: &str = "the consumer name (delayed) is reserved";
pub const BAD_TTL: &str = "ttl_ms must be a positive integer";
/// The refusal when the stream takes no more entries (its last id is the largest there is).
pub const STREAM_FULL: &str = "the queue's stream takes no more entries";

const QUEUE_KEYS: &str = "key: a stream, one entry per job (`payload`, and `due` when \
     delayed); `{key}:leases:<group>` (or `key:leases:<group>` when key has a hashtag): a \
     sorted set, job id -> when it may be delivered again (ms); `{key}:dead`: a stream of dead \
     letters";

const DELAY: OptionDef = arg_option("DELAY", "delay_ms", ArgKind::NonNegative, 0);

pub static PUSH: CommandDef = CommandDef {
    name: "QUEUE.PUSH",
    syntax: "key payload [DELAY delay_ms] [DEDUPE dedupe_id ttl_ms]",
    summary: "Adds a job (deliverable after delay_ms); with DEDUPE (last), a dedupe id pushed within the last ttl_ms adds nothing.",
    complexity: "O(1)",
    reply: "Bulk string: the job id (with DEDUPE, the first push's id when the dedupe id was pushed within ttl_ms)",
    keys: "key: a stream, one entry per job (`payload`, and `due` when delayed); \
           `{key}:dedupe:<dedupe_id>`: a string, the job id, expiring ttl_ms after the push",
    flags: WRITE,
    positionals: &[text("payload")],
    options: &[
        DELAY,
        OptionDef {
            token: "DEDUPE",
            value: OptValue::Rest { min: 2 },
            default: -1,
        },
    ],
    trailing: None,
    key_positions: Keys::First,
};

pub static POP: CommandDef = CommandDef {
    name: "QUEUE.POP",
    syntax: "key group consumer [COUNT n] [BLOCK timeout_ms] [LEASE lease_ms] [MAXDELIVERIES n]",
    summary: "Delivers up to n jobs to consumer for lease_ms: jobs whose lease ended or that fell due first (a job past MAXDELIVERIES goes to the dead letters instead), then new ones; with BLOCK, waits on the server (FIFO per group) until there is one or timeout_ms passes (0: no limit).",
    complexity: "O(n log N) plus, per new job, O(1)",
    reply: "Array of jobs, each `[job_id, payload, deliveries]`; nil when there is none",
    keys: QUEUE_KEYS,
    flags: Flags::WRITE.and(Flags::BLOCKING),
    positionals: &[text("group"), text("consumer")],
    options: &[
        arg_option("COUNT", "n", ArgKind::Positive, 1),
        arg_option("BLOCK", "timeout_ms", ArgKind::NonNegative, NO_BLOCK),
        arg_option("LEASE", "lease_ms", ArgKind::Positive, DEFAULT_LEASE_MS),
        arg_option("MAXDELIVERIES", "max_deliveries", ArgKind::Positive, DEFAULT_MAX_DELIVERIES),
    ],
    trailing: None,
    key_positions: Keys::First,
};

pub static ACK: CommandDef = CommandDef {
    name: "QUEUE.ACK",
    syntax: "key group job_id [job_id ...]",
    summary: "Completes jobs; a job every group has completed is trimmed from the stream.",
    complexity: "O(N log M) plus O(G) for the trim, G the groups",
    reply: "Integer: the jobs completed",
    keys: QUEUE_KEYS,
    flags: Flags::WRITE,
    positionals: &[text("group")],
    options: &[],
    trailing: Some(Trailing {
        names: &["job_id"],
        min: 1,
    }),
    key_positions: Keys::First,
};

pub static NACK: CommandDef = CommandDef {
    name: "QUEUE.NACK",
    syntax: "key group job_id [DELAY delay_ms]",
    summary:
        "Gives a pending job back, to be delivered again after delay_ms (counted as a delivery).",
    complexity: "O(log N)",
    reply: "Integer: 1 when the job was pending in the group, else 0",
    keys: QUEUE_KEYS,
    flags: Flags::WRITE,
    positionals: &[text("group"), text("job_id")],
    options: &[DELAY],
    trailing: None,
    key_positions: Keys::First,
};

pub static EXTEND: CommandDef = CommandDef {
    name: "QUEUE.EXTEND",
    syntax: "key group consumer job_id lease_ms",
    summary: "Sets the lease of a job consumer holds to end lease_ms from now.",
    complexity: "O(log N)",
    reply: "Integer: 1 when consumer holds the job, else 0",
    keys: QUEUE_KEYS,
    flags: Flags::WRITE,
    positionals: &[
        text("group"),
        text("consumer"),
        text("job_id"),
        positive("lease_ms"),
    ],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static REDRIVE: CommandDef = CommandDef {
    name: "QUEUE.REDRIVE",
    syntax: "key group [COUNT n]",
    summary: "Moves up to n of the group's dead letters back into the queue, as new jobs for that group only (deliveries start again).",
    complexity: "O(D), D the dead letters",
    reply: "Integer: the jobs moved back",
    keys: QUEUE_KEYS,
    flags: WRITE,
    positionals: &[text("group")],
    options: &[arg_option("COUNT", "n", ArgKind::Positive, DEFAULT_REDRIVE)],
    trailing: None,
    key_positions: Keys::First,
};

pub static STATS: CommandDef = CommandDef {
    name: "QUEUE.STATS",
    syntax: "key group",
    summary: "How many jobs are ready, delayed, pending (delivered, not completed) and dead for the group, and how many consumers it has.",
    complexity: "O(N + D), N the jobs the group has not read, D the dead letters",
    reply: "Map (RESP2: a flat array) `ready`, n, `delayed`, n, `pending`, n, `dead`, n, `consumers`, n",
    keys: QUEUE_KEYS,
    flags: Flags::READONLY,
    positionals: &[text("group")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

/// The family's commands, in registration order.
pub static COMMANDS: [&CommandDef; 7] = [&PUSH, &POP, &ACK, &NACK, &EXTEND, &REDRIVE, &STATS];

// ---------------------------------------------------------------------------------------------
// Arguments

/// `QUEUE.PUSH`'s arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Push<'a> {
    pub payload: &'a [u8],
    pub delay_ms: i64,
    /// The dedupe id and how long it holds (ms).
    pub dedupe: Option<(&'a [u8], i64)>,
}

pub fn parse_push<'a>(args: &'a [&'a [u8]]) -> Result<Push<'a>, CmdError> {
    let p = PUSH.parse(args)?;
    let dedupe = match p.list("DEDUPE") {
        [] => None,
        [id, ttl] => {
            let ttl = crate::command::parse_i64(ttl)
                .filter(|&t| t >= 1)
                .ok_or(CmdError::BadState(BAD_TTL))?;
            Some((*id, check_ms(ttl)?))
        }
        _ => return Err(CmdError::Syntax),
    };
    Ok(Push {
        payload: p.text("payload"),
        delay_ms: check_ms(p.int("DELAY"))?,
        dedupe,
    })
}

/// `QUEUE.POP`'s arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pop {
    pub group: Vec<u8>,
    pub consumer: Vec<u8>,
    pub count: i64,
    /// [`NO_BLOCK`], or how long to wait (0: no limit).
    pub block_ms: i64,
    pub lease_ms: i64,
    pub max_deliveries: i64,
}

pub fn parse_pop(args: &[&[u8]]) -> Result<Pop, CmdError> {
    let p = POP.parse(args)?;
    let consumer = p.text("consumer");
    if consumer == PARKED.as_bytes() {
        return Err(CmdError::BadState(RESERVED_CONSUMER));
    }
    Ok(Pop {
        group: p.text("group").to_vec(),
        consumer: consumer.to_vec(),
        count: p.int("COUNT"),
        block_ms: p.int("BLOCK"),
        lease_ms: check_ms(p.int("LEASE"))?,
        max_deliveries: p.int("MAXDELIVERIES"),
    })
}

/// Fails unless a time span is at most [`MAX_MS`].
pub fn check_ms(ms: i64) -> Result<i64, CmdError> {
    if ms > MAX_MS {
        return Err(CmdError::OutOfRange(TOO_LONG));
    }
    Ok(ms)
}

/// The queue's derived key `<suffix><name>`, in its slot.
pub fn queue_key(queue: &[u8], suffix: &str, name: &[u8]) -> Result<Vec<u8>, CmdError> {
    let mut s = suffix.as_bytes().to_vec();
    s.extend_from_slice(name);
    derived_key(queue, &s).ok_or(CmdError::BadState(BAD_NAME))
}

// ---------------------------------------------------------------------------------------------
// Stream ids

/// A stream entry id, `ms-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    /// `ms-seq`, each part decimal digits within u64 (leading zeros allowed, as Redis reads).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(raw).ok()?;
        let (ms, seq) = text.split_once('-')?;
        let part = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        Some(Self {
            ms: part(ms)?,
            seq: part(seq)?,
        })
    }

    /// The next id (the smallest id above this one), None past the last.
    pub fn next(self) -> Option<Self> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(Self { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| Self { ms, seq: 0 }),
        }
    }

    pub fn text(self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }
}

/// A job id argument, checked.
pub fn job_id(raw: &[u8]) -> Result<StreamId, CmdError> {
    StreamId::parse(raw).ok_or(CmdError::BadState(BAD_JOB_ID))
}

// ---------------------------------------------------------------------------------------------
// Decisions

/// What happens to a pending job whose lease ended (or that fell due), delivered `deliveries`
/// times so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redelivery {
    /// Delivered again: this is delivery number `n`.
    Deliver(i64),
    /// Over `max_deliveries`: to the dead letters, with the deliveries it had.
    Dead(i64),
}

pub fn redeliver(deliveries: i64, max_deliveries: i64) -> Redelivery {
    if deliveries >= max_deliveries {
        Redelivery::Dead(deliveries)
    } else {
        Redelivery::Deliver(deliveries + 1)
    }
}

/// What a group does with a job it reads for the first time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// Delivered now (delivery 1).
    Deliver,
    /// Delayed: parked until `due` (ms).
    Park(i64),
    /// A redriven job for another group: completed at once in this one.
    Skip,
}

/// A new job's fate for `group` at `now`, from its `due` and `group` fields.
pub fn fresh(due: Option<i64>, for_group: Option<&[u8]>, group: &[u8], now: i64) -> Fresh {
    match (due, for_group) {
        (_, Some(g)) if g != group => Fresh::Skip,
        (Some(due), _) if due > now => Fresh::Park(due),
        _ => Fresh::Deliver,
    }
}

/// A due time field as stored (None when absent or not a time).
pub fn parse_due(raw: Option<&[u8]>) -> Option<i64> {
    raw.and_then(crate::command::parse_i64)
}

/// A consumer group as the trim sees it: the last id it read, and its oldest pending job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub last_read: StreamId,
    pub oldest_pending: Option<StreamId>,
}

impl GroupView {
    /// The oldest job the group still needs: its oldest pending one, else the one after the
    /// last it read (None when that was the last id there is).
    pub fn needs(self) -> Option<StreamId> {
        self.oldest_pending.or_else(|| self.last_read.next())
    }
}

/// The lowest id any group still needs (`XTRIM MINID`): every job below it was read and
/// completed by every group. None when there is no group (jobs wait for the first).
pub fn trim_bound(groups: &[GroupView]) -> Option<StreamId> {
    groups.iter().map(|g| g.needs()).min().flatten()
}

/// Whether completing the jobs `acked` in a group (`after`: the group once they are
/// completed) can have moved the trim bound. Only a job older than what the group needs now
/// can have been the oldest it needed; completing newer ones leaves the group's need, and so
/// the bound, where they were.
pub fn ack_moves_bound(acked: &[StreamId], after: GroupView) -> bool {
    after
        .needs()
        .is_some_and(|need| acked.iter().any(|&id| id < need))
}

//! Read/write locks: many readers or one writer. Read holds coexist, each with its own lease; a
//! write hold excludes every other hold and gets a fencing token as `LOCK.ACQUIRE` does (from
//! the same kind of counter). Waiting is one FIFO per key for both modes (in the binding), so a
//! reader arriving behind a waiting writer waits: writers are never starved.
//!
//! State, in plain Redis types (derived keys in the key's slot, as for locks):
//! - the read holds `key`: a sorted set, member = owner, score = when its read lease ends (ms),
//!   pruned when touched and expiring with its last hold (a semaphore's layout);
//! - the write hold [`writer_key`] (`{key}:writer`): a lock's hash `owner`, `token`, `holds`
//!   expiring when the write lease ends, with that lock's fencing counter [`rw_fence_key`]
//!   (`{key}:writer:fence`, the last write token granted): the write hold is a lock, so the
//!   writer re-enters as a lock's owner does, and `INFO patterns` counts its expiry or deletion
//!   as a lock's. (`{key}:fence` would mark the read holds' key as a lock.)
//!
//! An owner holds at most one read hold (acquiring it again refreshes its lease). There is no
//! upgrade or downgrade: an owner asking for the other mode than the one it holds waits for its
//! own hold to end, like anyone else.

use super::{acquire, fence_key, Acquire, Lease, BAD_NAME, WAIT, WRITE};
use crate::command::{positive, text, CmdError, CommandDef, Flags, Keys};
use crate::keys::derived_key;

/// The suffix of the write hold's key.
pub const WRITER_SUFFIX: &str = "writer";
/// The modes, as `RWLOCK.ACQUIRE` takes them (any case).
pub const READ_MODE: &str = "READ";
pub const WRITE_MODE: &str = "WRITE";

const RW_KEYS: &str = "key: a sorted set of read holds, member = owner, score = when its lease \
     ends (ms); `{key}:writer` (or `key:writer` when key has a hashtag): a lock's hash `owner`, \
     `token`, `holds`, expiring when the write lease ends";

pub static RW_ACQUIRE: CommandDef = CommandDef {
    name: "RWLOCK.ACQUIRE",
    syntax: "key owner ttl_ms mode [WAIT timeout_ms]",
    summary: "Takes a READ hold (shared with other readers) or the WRITE hold (exclusive) for owner for ttl_ms; again in the same mode refreshes it (a writer gains one more hold, as LOCK.ACQUIRE); with WAIT, queues on the server (FIFO for both modes, so a reader behind a waiting writer waits) until granted or timeout_ms passes (0: no limit).",
    complexity: "O(log N + M), N the read holds, M the expired ones pruned",
    reply: "Integer: the fencing token (WRITE; larger than every token granted for key before) or 1 (READ) when granted; nil when not",
    keys: "key: a sorted set of read holds, member = owner, score = when its lease ends (ms); \
           `{key}:writer` (or `key:writer` when key has a hashtag): a lock's hash `owner`, \
           `token`, `holds`, expiring when the write lease ends; its fencing counter \
           `{key}:writer:fence`: a string, the last write token granted, never expiring",
    flags: WRITE.and(Flags::BLOCKING),
    positionals: &[text("owner"), positive("ttl_ms"), text("mode")],
    options: &[WAIT],
    trailing: None,
    key_positions: Keys::First,
};

pub static RW_RELEASE: CommandDef = CommandDef {
    name: "RWLOCK.RELEASE",
    syntax: "key owner",
    summary: "Drops owner's hold: one hold of the write lock (free when none remain), or its read hold; the next waiters get the lock.",
    complexity: "O(log N + M), M the expired read holds pruned",
    reply: "Integer: 1 when a hold was dropped, 0 when owner holds nothing",
    keys: RW_KEYS,
    flags: Flags::WRITE,
    positionals: &[text("owner")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static RW_EXTEND: CommandDef = CommandDef {
    name: "RWLOCK.EXTEND",
    syntax: "key owner ttl_ms",
    summary: "Sets the lease of owner's hold (write or read) to end ttl_ms from now.",
    complexity: "O(log N + M), M the expired read holds pruned",
    reply: "Integer: 1 when owner holds the lock, else 0",
    keys: RW_KEYS,
    flags: WRITE,
    positionals: &[text("owner"), positive("ttl_ms")],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static RW_INFO: CommandDef = CommandDef {
    name: "RWLOCK.INFO",
    syntax: "key",
    summary: "Who holds the lock: its mode, the writer and its token, the live read holds, the time left and how many clients wait.",
    complexity: "O(log N)",
    reply: "Map (RESP2: a flat array) `mode`, `read` or `write`, `owner`, the writer (nil when read), `token`, integer (nil when read), `readers`, integer, `ttl` (ms until the write lease or the last read lease ends), integer, `waiters`, integer; nil when free",
    keys: RW_KEYS,
    flags: Flags::READONLY,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

/// A mode of `RWLOCK.ACQUIRE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Read,
    Write,
}

/// `READ` or `WRITE`, in any case; anything else is a syntax error.
pub fn parse_mode(word: &[u8]) -> Result<Mode, CmdError> {
    if word.eq_ignore_ascii_case(READ_MODE.as_bytes()) {
        Ok(Mode::Read)
    } else if word.eq_ignore_ascii_case(WRITE_MODE.as_bytes()) {
        Ok(Mode::Write)
    } else {
        Err(CmdError::Syntax)
    }
}

/// The key of the write hold, in the key's slot.
pub fn writer_key(key: &[u8]) -> Result<Vec<u8>, CmdError> {
    derived_key(key, WRITER_SUFFIX.as_bytes()).ok_or(CmdError::BadState(BAD_NAME))
}

/// The write hold's fencing counter: its lock's, `{key}:writer:fence`.
pub fn rw_fence_key(key: &[u8]) -> Result<Vec<u8>, CmdError> {
    fence_key(&writer_key(key)?)
}

/// What the key holds now, as the decision sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holds<'a> {
    /// The write hold, if any.
    pub writer: Option<Lease<'a>>,
    /// The live read holds (expired ones pruned).
    pub readers: i64,
    /// Whether the asking owner has one of them.
    pub reads: bool,
}

/// What an acquisition does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RwAcquire<'a> {
    /// Write (or re-enter) the write hold, as a lock's grant.
    Write(Acquire<'a>),
    /// Add (or refresh) the owner's read hold, ending at `expire_at_ms`.
    Read { expire_at_ms: i64 },
    /// Another hold is in the way.
    Busy,
}

/// Acquires `mode` for `owner` at `now_ms`, given the holds and the last token granted. With
/// `waiters` queued, only a refresh of what the owner holds is granted at once: anything else
/// would overtake them.
pub fn rw_acquire<'a>(
    holds: Holds<'a>,
    fence: i64,
    mode: Mode,
    owner: &'a [u8],
    ttl_ms: i64,
    now_ms: i64,
    waiters: bool,
) -> Result<RwAcquire<'a>, CmdError> {
    let writer_is_owner = holds.writer.as_ref().is_some_and(|w| w.owner == owner);
    match mode {
        Mode::Write => {
            let refresh = writer_is_owner;
            if holds.readers > 0 || (waiters && !refresh) {
                return Ok(RwAcquire::Busy);
            }
            match acquire(holds.writer, fence, owner, ttl_ms, now_ms)? {
                Acquire::Busy => Ok(RwAcquire::Busy),
                granted => Ok(RwAcquire::Write(granted)),
            }
        }
        Mode::Read => {
            if holds.writer.is_some() || (waiters && !holds.reads) {
                return Ok(RwAcquire::Busy);
            }
            Ok(RwAcquire::Read {
                expire_at_ms: now_ms + ttl_ms,
            })
        }
    }
}

//! Sessions: secure ids, a sliding idle timeout capped by an absolute deadline, a per-index
//! sorted set that never leaks, and atomic rotation.
//!
//! Everything here is pure: key derivation (the session key shares its index's Cluster slot),
//! the id encoding, argument validation and the expiry arithmetic (`now_ms` in, deadlines out).
//! The binding (`src/session.rs`) and the Lua twin (`lua.rs`) run the same steps on Redis.
//!
//! State: the session is a hash holding the caller's fields plus the reserved `__idle_ms`,
//! `__absolute_at` (unix ms) and `__index`; its TTL is `min(now + idle_ms, absolute_at)`.
//! The index is a sorted set, member = session key, score = that session's expiry **or a little
//! later** (at most [`Deadlines::lead`], ≤ [`LOOKAHEAD_MS`], ahead of it: see
//! [`Deadlines::index_score`]), so most reads leave it alone. A member scored `now` or lower is
//! surely dead and pruned whenever the index is changed; its TTL is its highest score. One scored
//! within `LOOKAHEAD_MS` after `now` may be dead already: what counts or orders sessions reads
//! their keys' real expiries for those (COUNT) or for all (LIST, MAX, DESTROYALL).

pub mod lua;
pub mod ops;
#[cfg(test)]
mod tests;

use crate::command::{
    arg_option, positive, ArgKind, CmdError, CommandDef, Flags, Keys, OptionDef, Trailing, WRITE,
};
use crate::keys::{derived_key, MAX_MS};

pub const IDLE_FIELD: &str = "__idle_ms";
pub const ABSOLUTE_FIELD: &str = "__absolute_at";
pub const INDEX_FIELD: &str = "__index";

pub const ABSOLUTE_BELOW_IDLE: &str = "absolute_ms must be at least idle_ms";
pub const TOO_LONG: &str = "idle_ms and absolute_ms must be at most 2^52";
pub const BAD_INDEX: &str = "index name cannot carry a session key in its slot";
pub const NOT_SESSION: &str = "key does not hold a session";

// ---------------------------------------------------------------------------------------------
// Definitions

const FIELD_VALUES: Trailing = Trailing {
    names: &["field", "value"],
    min: 0,
};
const SESSION_KEYS: &str = "key: the session hash (its fields plus `__idle_ms`, `__absolute_at`, \
     `__index`), expiring at `min(last use + idle_ms, absolute deadline)`; its index (from \
     `__index`): a sorted set of session keys scored by expiry or up to `min(idle_ms / 8, 1 s)` \
     later, re-scored only when the slid expiry passes the score";

/// `MAX n`: at most n live sessions in the index once the new one is in (absent: no cap).
const MAX: OptionDef = arg_option("MAX", "MAX", ArgKind::Positive, 0);

pub static CREATE: CommandDef = CommandDef {
    name: "SESSION.CREATE",
    syntax: "index [MAX n] idle_ms absolute_ms [field value ...]",
    summary: "Creates a session in index's slot with a 128-bit CSPRNG id; it expires after idle_ms without use, and absolute_ms after creation at the latest. With MAX n, the index keeps at most n live sessions: the ones soonest to expire go first, destroyed in the same command.",
    complexity: "O(N + M), N the fields, M the expired sessions pruned from the index; with MAX, O(log S + W) more, W the sessions scored within 1 s of now, and O(S log S) when it destroys (S the index's sessions, ordered by their keys' expiries)",
    reply: "Bulk string: the new session's key",
    keys: "index: a sorted set, member = session key, score = its expiry (ms) or up to \
           `min(idle_ms / 8, 1 s)` later, expires with its last session; writes the new session \
           `<index>:<id>` (or `{<index>}:<id>`)",
    flags: WRITE,
    positionals: &[positive("idle_ms"), positive("absolute_ms")],
    options: &[MAX],
    trailing: Some(FIELD_VALUES),
    key_positions: Keys::First,
};

pub static GET: CommandDef = CommandDef {
    name: "SESSION.GET",
    syntax: "session",
    summary: "The session's fields, sliding its idle timeout (never past its absolute deadline).",
    complexity: "O(N + M), N the fields, M the expired sessions pruned from the index",
    reply: "Map of fields to values (RESP2: a flat array of field/value pairs; reserved fields excluded), nil when the session is gone",
    keys: SESSION_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static SET: CommandDef = CommandDef {
    name: "SESSION.SET",
    syntax: "session field value [field value ...]",
    summary: "Sets fields of a live session and slides its idle timeout.",
    complexity: "O(N + M), N the fields, M the expired sessions pruned from the index",
    reply: "Integer: the number of new fields; nil when the session is gone",
    keys: SESSION_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: Some(Trailing {
        min: 1,
        ..FIELD_VALUES
    }),
    key_positions: Keys::First,
};

pub static ROTATE: CommandDef = CommandDef {
    name: "SESSION.ROTATE",
    syntax: "session",
    summary: "Moves the session to a new id (same fields and deadlines) in one atomic step.",
    complexity: "O(log S + M), S the index's sessions, M the expired ones pruned",
    reply: "Bulk string: the new session key; nil when the session is gone",
    keys: SESSION_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static DESTROY: CommandDef = CommandDef {
    name: "SESSION.DESTROY",
    syntax: "session",
    summary: "Deletes the session and removes it from its index.",
    complexity: "O(log S + M), S the index's sessions, M the expired ones pruned",
    reply: "Integer: 1 when a live session was destroyed, else 0",
    keys: SESSION_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static DESTROYALL: CommandDef = CommandDef {
    name: "SESSION.DESTROYALL",
    syntax: "index",
    summary: "Deletes every session of the index, and the index.",
    complexity: "O(S), S the index's sessions",
    reply: "Integer: the number of live sessions destroyed",
    keys: "index: the sorted set; deletes every session key it lists that is alive by its own \
           expiry, then unlinks it (a large index is freed in the background)",
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static LIST: CommandDef = CommandDef {
    name: "SESSION.LIST",
    syntax: "index",
    summary: "The index's live session keys, soonest to expire first.",
    complexity: "O(S log S + M), S the live sessions, M the expired ones pruned",
    reply: "Array of session keys",
    keys: "index: the sorted set (expired members pruned); the expiry of each session key it lists",
    flags: Flags::WRITE,
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

pub static COUNT: CommandDef = CommandDef {
    name: "SESSION.COUNT",
    syntax: "index",
    summary: "The number of live sessions of the index: exact, without scanning the keyspace.",
    complexity: "O(log S + W), W the sessions scored within 1 s of now",
    reply: "Integer",
    keys: "index: the sorted set, read only (expired members are not counted, and left for the next write to prune); the expiry of each session key scored within 1 s of now",
    flags: Flags::READONLY.and(Flags::FAST),
    positionals: &[],
    options: &[],
    trailing: None,
    key_positions: Keys::First,
};

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 8] = [
    &CREATE,
    &GET,
    &SET,
    &ROTATE,
    &DESTROY,
    &DESTROYALL,
    &LIST,
    &COUNT,
];

// ---------------------------------------------------------------------------------------------
// Keys

/// The key of session `id` of `index`, in the index's slot (see [`derived_key`]).
pub fn session_key(index: &[u8], id: &[u8]) -> Result<Vec<u8>, CmdError> {
    derived_key(index, id).ok_or(CmdError::BadState(BAD_INDEX))
}

// ---------------------------------------------------------------------------------------------
// Validation and deadlines

/// A new session's timeouts, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub idle_ms: i64,
    pub absolute_ms: i64,
}

impl Timeouts {
    pub fn new(idle_ms: i64, absolute_ms: i64) -> Result<Self, CmdError> {
        if idle_ms > MAX_MS || absolute_ms > MAX_MS {
            return Err(CmdError::OutOfRange(TOO_LONG));
        }
        if absolute_ms < idle_ms {
            return Err(CmdError::OutOfRange(ABSOLUTE_BELOW_IDLE));
        }
        Ok(Self {
            idle_ms,
            absolute_ms,
        })
    }

    /// The session created at `now_ms`.
    pub fn start(self, now_ms: i64) -> Deadlines {
        Deadlines {
            idle_ms: self.idle_ms,
            absolute_at: now_ms + self.absolute_ms,
        }
    }
}

/// A session's stored timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub idle_ms: i64,
    pub absolute_at: i64,
}

impl Deadlines {
    /// The expiry after a use at `now_ms`: idle_ms later, never past the absolute deadline.
    pub fn expiry(self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.idle_ms).min(self.absolute_at)
    }

    /// How far ahead of the session's expiry its index score may be: an eighth of its idle
    /// timeout, at most [`LOOKAHEAD_MS`].
    pub fn lead(self) -> i64 {
        (self.idle_ms / 8).min(LOOKAHEAD_MS)
    }

    /// The index score written with expiry `at` (an [`Deadlines::expiry`], so at most the
    /// absolute deadline): `lead` later, never past the absolute deadline. Reads re-score the
    /// session only once its slid expiry passes this score, so with reads less than `lead`
    /// apart the index moves about once per `lead`.
    pub fn index_score(self, at: i64) -> i64 {
        at.saturating_add(self.lead()).min(self.absolute_at)
    }
}

/// The furthest an index score runs ahead of its session's expiry: members scored above
/// `now + LOOKAHEAD_MS` are surely alive; those scored within it may not be.
pub const LOOKAHEAD_MS: i64 = 1000;

/// A stored session's reserved fields, from its hash's field/value pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta<'a> {
    pub deadlines: Deadlines,
    pub index: &'a [u8],
}

impl<'a> Meta<'a> {
    /// Reads the reserved fields; `BadState` when a hash lacks them (not a session).
    pub fn parse(pairs: &[(&'a [u8], &'a [u8])]) -> Result<Self, CmdError> {
        Self::parse_iter(pairs.iter().copied())
    }

    /// [`Meta::parse`] over any list of pairs (a session read flat, without a copy), in one
    /// pass: a field seen twice counts as first seen (a hash has no such field).
    pub fn parse_iter<I>(pairs: I) -> Result<Self, CmdError>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])>,
    {
        let (mut idle, mut absolute, mut index) = (None, None, None);
        for (field, value) in pairs {
            let slot = match field {
                f if f == IDLE_FIELD.as_bytes() => &mut idle,
                f if f == ABSOLUTE_FIELD.as_bytes() => &mut absolute,
                f if f == INDEX_FIELD.as_bytes() => &mut index,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        let bad = || CmdError::BadState(NOT_SESSION);
        let int = |value: Option<&[u8]>| {
            value
                .and_then(crate::command::parse_i64)
                .filter(|v| *v >= 0)
                .ok_or_else(bad)
        };
        Ok(Self {
            deadlines: Deadlines {
                idle_ms: int(idle)?,
                absolute_at: int(absolute)?,
            },
            index: index.ok_or_else(bad)?,
        })
    }
}

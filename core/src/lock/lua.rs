//! The lock family's Lua twin: the non-blocking forms of the same commands, with the same
//! replies, key layout and write sequence as the module (`src/lock.rs`), so equal histories
//! leave byte-identical keys.
//!
//! Differences, documented in README: a script cannot block its client, so `WAIT` is refused
//! ([`NO_WAIT_IN_TWIN`]); with no queue, `LOCK.INFO` and `RWLOCK.INFO` always report 0
//! waiters; the fencing counter's key is checked with `redis.acl_check_cmd`.

use super::rw::{READ_MODE, WRITER_SUFFIX, WRITE_MODE};
use super::{
    BAD_NAME, COMMANDS, FENCE_SUFFIX, HOLDS_EXHAUSTED, HOLDS_FIELD, NOT_FENCE, NOT_FENCED,
    NOT_LOCK, NO_WAIT, OWNER_FIELD, RESOURCE_FENCE_FIELD, TOKENS_EXHAUSTED, TOKEN_FIELD,
    TTL_TOO_LONG,
};
use crate::lua::{lua_constants, twins, Family};

/// The twin's error for `WAIT`.
pub const NO_WAIT_IN_TWIN: &str =
    "ERR WAIT needs the redis-patterns module: the Lua twin cannot block (omit WAIT to try once)";

const SOURCE: &str = include_str!("../lua/lock.lua");

pub fn family() -> Family {
    Family {
        constants: lua_constants! {
            values: [
                NO_WAIT, NO_WAIT_IN_TWIN, OWNER_FIELD, TOKEN_FIELD, HOLDS_FIELD, FENCE_SUFFIX,
                RESOURCE_FENCE_FIELD, WRITER_SUFFIX, READ_MODE, WRITE_MODE,
            ],
            errors: [
                TTL_TOO_LONG, BAD_NAME, NOT_LOCK, NOT_FENCE, NOT_FENCED, TOKENS_EXHAUSTED,
                HOLDS_EXHAUSTED,
            ],
        },
        source: SOURCE,
        commands: twins(&COMMANDS, &[]),
    }
}

//! The session family's Lua twin: the same commands, replies, key layout and write sequence as
//! the module (`src/session.rs`), so equal histories leave byte-identical keys.
//!
//! Differences, documented in README: Lua cannot draw from a CSPRNG, so `session_create` and
//! `session_rotate` take the new id (22 base64url characters, which the caller draws) as an
//! extra argument after the key (`TwinCommand::leading`); derived keys are checked with
//! `redis.acl_check_cmd`.

use super::{
    ABSOLUTE_BELOW_IDLE, ABSOLUTE_FIELD, BAD_INDEX, COMMANDS, CREATE, IDLE_FIELD, INDEX_FIELD,
    LOOKAHEAD_MS, NOT_SESSION, ROTATE, TOO_LONG,
};
use crate::lua::{lua_constants, twins, Family};

/// The twin's error for an id argument that is not one.
pub const BAD_ID: &str = "ERR id must be 22 characters of base64url";
/// The twin's error when the caller's id is already a key.
pub const ID_TAKEN: &str = "ERR session id already in use";

const SOURCE: &str = include_str!("../lua/session.lua");

pub fn family() -> Family {
    Family {
        constants: lua_constants! {
            values: [IDLE_FIELD, ABSOLUTE_FIELD, INDEX_FIELD, BAD_ID, ID_TAKEN, LOOKAHEAD_MS],
            errors: [TOO_LONG, ABSOLUTE_BELOW_IDLE, BAD_INDEX, NOT_SESSION],
        },
        source: SOURCE,
        commands: twins(&COMMANDS, &[(&CREATE, &["id"]), (&ROTATE, &["id"])]),
    }
}

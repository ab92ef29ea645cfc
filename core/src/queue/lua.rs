//! The queue family's Lua twin (`core/src/lua/queue.lua`): the same commands with the same
//! stream commands in the same order as the module (`src/queue.rs`), so equal histories leave
//! equal queues.
//!
//! Difference, documented in README: a script cannot block its client, so `QUEUE.POP ...
//! BLOCK` tries once (as the module does inside MULTI or a script) and answers nil when there
//! is nothing.

use super::{
    BAD_JOB_ID, BAD_NAME, BAD_TTL, COMMANDS, DEAD_SUFFIX, DEDUPE_SUFFIX, DUE_FIELD, GROUP_FIELD,
    LEASES_SUFFIX, MAX_MS, PARKED, PAYLOAD_FIELD, RESERVED_CONSUMER, STREAM_FULL, TOO_LONG,
};
use crate::command::CmdError;
use crate::lua::{lua_error, lua_str, twins, Family};

const SOURCE: &str = include_str!("../lua/queue.lua");

pub fn family() -> Family {
    Family {
        constants: vec![
            ("Q_MAX_MS", MAX_MS.to_string()),
            ("Q_PARKED", lua_str(PARKED)),
            ("Q_LEASES_SUFFIX", lua_str(LEASES_SUFFIX)),
            ("Q_DEAD_SUFFIX", lua_str(DEAD_SUFFIX)),
            ("Q_DEDUPE_SUFFIX", lua_str(DEDUPE_SUFFIX)),
            ("Q_PAYLOAD_FIELD", lua_str(PAYLOAD_FIELD)),
            ("Q_DUE_FIELD", lua_str(DUE_FIELD)),
            ("Q_GROUP_FIELD", lua_str(GROUP_FIELD)),
            ("Q_BAD_NAME", lua_error(&CmdError::BadState(BAD_NAME))),
            ("Q_BAD_JOB_ID", lua_error(&CmdError::BadState(BAD_JOB_ID))),
            ("Q_BAD_TTL", lua_error(&CmdError::BadState(BAD_TTL))),
            ("Q_TOO_LONG", lua_error(&CmdError::OutOfRange(TOO_LONG))),
            (
                "Q_RESERVED_CONSUMER",
                lua_error(&CmdError::BadState(RESERVED_CONSUMER)),
            ),
            ("Q_STREAM_FULL", lua_error(&CmdError::BadState(STREAM_FULL))),
        ],
        source: SOURCE,
        commands: twins(&COMMANDS, &[]),
    }
}

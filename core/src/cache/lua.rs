//! The cache family's Lua twin: the same commands, replies, key layout and write sequence as
//! the module (`src/cache.rs`), so equal histories leave byte-identical keys.
//!
//! Differences, documented in README: keys go in `KEYS` (the key, then the tags; no `TAGS`
//! token in `ARGV`); Lua draws no random numbers, so `cache_get` takes XFetch's draw (an integer
//! in 1..2^53, `rand = draw / 2^53`) and the lease token to grant as two extra arguments after
//! the key (`TwinCommand::leading`); keys listed under a tag are checked with
//! `redis.acl_check_cmd`.

use super::{
    BAD_BETA, CHANNEL, COMMANDS, DELTA_FIELD, DRAW_MAX, FORMAT, FRESH_FIELD, GET, HAS_LEASE,
    HAS_VALUE, HEADER_LEN, LEASED_AT_FIELD, LEASE_FIELD, LEASE_TOO_LONG, LEASE_UNTIL_FIELD,
    MAX_LEASE_MS, NOT_CACHE, NO_VALUE, STALE_FIELD, TAG_IS_KEY, TOO_LONG, VALUE_FIELD,
    WAIT_RETRY_MS,
};
use crate::lua::{lua_constants, lua_str, twins, Family};

/// The twin's error for a draw argument that is not one.
pub const BAD_DRAW: &str = "ERR draw must be an integer from 1 to 2^53";

const SOURCE: &str = include_str!("../lua/cache.lua");

pub fn family() -> Family {
    let mut constants = lua_constants! {
        values: [
            DRAW_MAX, WAIT_RETRY_MS, MAX_LEASE_MS, CHANNEL, BAD_DRAW, FORMAT, HAS_VALUE,
            HAS_LEASE, HEADER_LEN,
            VALUE_FIELD, FRESH_FIELD, STALE_FIELD, DELTA_FIELD,
            LEASE_FIELD, LEASE_UNTIL_FIELD, LEASED_AT_FIELD,
        ],
        errors: [TOO_LONG, LEASE_TOO_LONG, BAD_BETA, NOT_CACHE, NO_VALUE, TAG_IS_KEY],
    };
    // 2^53 itself, as its argument is written (Lua's integer reader stops below it).
    constants.push(("DRAW_MAX_TEXT", lua_str(&DRAW_MAX.to_string())));
    Family {
        constants,
        source: SOURCE,
        commands: twins(&COMMANDS, &[(&GET, &["draw", "lease"])]),
    }
}

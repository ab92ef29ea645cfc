//! The rate-limiting family's Lua twin: the same algorithms as `ratelimit`, on the same keys,
//! written for Lua 5.1's doubles. Arguments and error texts come from the definitions.
//!
//! Exactness: every value the bodies compute stays at or below 2^53 when capacity·period_ms
//! (token bucket) or limit·window_ms (weighted sliding window) is at most 2^52, so the twin refuses
//! limiters beyond that with `TWIN_RANGE`; the module itself computes in i128 and has no
//! such bound.

use super::{
    COMMANDS, EXACT_COST_TOO_HIGH, MAX_EXACT_COST, NOT_LIMITER_STATE, PRUNE_BATCH, SPAN_TOO_LONG,
    TAT_AT_EXPIRY,
};
use crate::lua::{lua_constants, twins, Family};

/// The twin's own error for limiters whose products it cannot compute exactly.
pub const TWIN_RANGE: &str =
    "ERR the limiter's arguments exceed the Lua twin's exact integer range (2^52)";

const SOURCE: &str = include_str!("../lua/ratelimit.lua");

pub fn family() -> Family {
    Family {
        constants: lua_constants! {
            values: [PRUNE_BATCH, MAX_EXACT_COST, TWIN_RANGE, TAT_AT_EXPIRY],
            errors: [SPAN_TOO_LONG, NOT_LIMITER_STATE, EXACT_COST_TOO_HIGH],
        },
        source: SOURCE,
        commands: twins(&COMMANDS, &[]),
    }
}

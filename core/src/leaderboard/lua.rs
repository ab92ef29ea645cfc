//! The leaderboard family's Lua twin: the same steps as `leaderboard` (see its `Board`, `write`
//! and `remove`) with `redis.call` as the store, on the same keys, so equal histories leave
//! byte-identical boards and tie-break keys and give the same replies.
//!
//! Scores travel as the server formats them (ZRANGE ... WITHSCORES, ZSCORE, ZINCRBY replies),
//! never through Lua's own number formatting; the percentile is returned as `{double = x}`,
//! which the server formats as the module's `RedisModule_ReplyWithDouble` is.

use super::{
    BAD_BOARD, BATCH, COMMANDS, DENSE_MAX, DENSE_TOO_MANY, NAMES_SUFFIX, NAN_SCORE, ORDER_SUFFIX,
    OUT_OF_STEP, SCORES_SUFFIX, SCORE_ARG, SMALL_GROUP, STAMPS_SUFFIX, STAMP_DIGITS,
};
use crate::lua::{lua_constants, twins, Family};

const SOURCE: &str = include_str!("../lua/leaderboard.lua");

pub fn family() -> Family {
    Family {
        constants: lua_constants! {
            values: [
                STAMP_DIGITS, BATCH, DENSE_MAX, ORDER_SUFFIX, STAMPS_SUFFIX, SCORES_SUFFIX, NAMES_SUFFIX,
                SCORE_ARG, SMALL_GROUP,
            ],
            errors: [OUT_OF_STEP, BAD_BOARD, NAN_SCORE, DENSE_TOO_MANY],
        },
        source: SOURCE,
        commands: twins(&COMMANDS, &[]),
    }
}

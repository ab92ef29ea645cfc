//! redis-patterns' core: per pattern family, the pure algorithms (state and `now` in, decision
//! and new state out), the command definitions, and the Lua twin generated from them.
//! No Redis dependency: this crate also builds for `wasm32-unknown-unknown`.
#![forbid(unsafe_code)]

pub mod cache;
pub mod command;
pub mod keys;
pub mod leaderboard;
pub mod lock;
pub mod lua;
pub mod queue;
pub mod ratelimit;
pub mod session;
#[cfg(test)]
mod testing;
pub mod text;

/// Every command of every family, in README order.
pub fn all_commands() -> impl Iterator<Item = &'static command::CommandDef> {
    [
        &ratelimit::COMMANDS[..],
        &session::COMMANDS[..],
        &leaderboard::COMMANDS[..],
        &cache::COMMANDS[..],
        &lock::COMMANDS[..],
        &queue::COMMANDS[..],
    ]
    .into_iter()
    .flatten()
    .copied()
}

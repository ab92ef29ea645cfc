//! redis-patterns: rate limiting, sessions, leaderboards, tagged caching and locks as native,
//! atomic commands. This file only registers each family's list of commands; each family's
//! binding lives in the module of the same name as its core module, and every call into the
//! server goes through `ffi`, the one door to the C API (see ARCHITECTURE.md).

mod cache;
mod ffi;
mod index;
mod leaderboard;
mod lock;
mod queue;
mod ratelimit;
mod session;
mod text;

use redis_module::{redis_module, Context, RedisString, Status};

/// Every family's commands.
const FAMILIES: &[&[ffi::Command]] = &[
    ratelimit::COMMANDS,
    session::COMMANDS,
    leaderboard::COMMANDS,
    cache::COMMANDS,
    lock::COMMANDS,
    queue::COMMANDS,
];

/// Registers every command (its declared keys, so ACL key patterns and Cluster routing apply)
/// with its COMMAND DOCS entry and arity; lock and semaphore waiters are released when the
/// server becomes a replica.
fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    ffi::load(ctx, FAMILIES.iter().copied().flatten(), lock::subscribe)
}

// Default features, `redis_module!` for the module itself and raw RedisModule_CreateCommand
// (which Redis 7.0 has) for the commands keep Redis 7.0 loading us.
redis_module! {
    name: "patterns",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [],
}

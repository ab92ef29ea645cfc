//! redis-patterns: rate limiting (and, family by family, the other patterns backend teams
//! hand-write around Redis) as native, atomic commands. This file only registers commands;
//! each family's binding lives in the module of the same name as its core module.

mod docs;
mod ratelimit;
mod shared;

use patterns_core::ratelimit as rl;
use redis_module::{redis_module, Context, RedisString, Status};

/// Gives every command its COMMAND DOCS entry and arity, from its definition.
fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    for def in rl::COMMANDS {
        if let Err(e) = docs::describe(ctx, def) {
            ctx.log_warning(&e);
            return Status::Err;
        }
    }
    Status::Ok
}

// Every command's one key is its first argument (first = last = step = 1), so ACL key patterns
// and Cluster routing apply. Default features and `redis_module!` keep Redis 7.0 loading us.
redis_module! {
    name: "patterns",
    version: 1,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [
        [rl::TOKENBUCKET.name.to_ascii_lowercase(), ratelimit::tokenbucket, rl::TOKENBUCKET.flags, 1, 1, 1, ""],
        [rl::FIXEDWINDOW.name.to_ascii_lowercase(), ratelimit::fixedwindow, rl::FIXEDWINDOW.flags, 1, 1, 1, ""],
        [rl::SLIDINGWINDOW.name.to_ascii_lowercase(), ratelimit::slidingwindow, rl::SLIDINGWINDOW.flags, 1, 1, 1, ""],
        [rl::THROTTLE.name.to_ascii_lowercase(), ratelimit::throttle, rl::THROTTLE.flags, 1, 1, 1, ""],
    ],
}

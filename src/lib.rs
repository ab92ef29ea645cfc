//! redis-patterns: rate limiting (and, family by family, the other patterns backend teams
//! hand-write around Redis) as native, atomic commands. This file only registers commands;
//! each family's binding lives in the module of the same name as its core module.

mod docs;
mod lock;
mod ratelimit;
mod session;
mod shared;

use patterns_core::command::CommandDef;
use patterns_core::lock as lk;
use patterns_core::ratelimit as rl;
use patterns_core::session as sess;
use redis_module::{raw, redis_module, Context, RedisString, Status};

/// Every command with its C entry point.
const COMMANDS: [(&CommandDef, shared::Handler); 20] = [
    (&rl::TOKENBUCKET, ratelimit::tokenbucket),
    (&rl::FIXEDWINDOW, ratelimit::fixedwindow),
    (&rl::SLIDINGWINDOW, ratelimit::slidingwindow),
    (&rl::THROTTLE, ratelimit::throttle),
    (&sess::CREATE, session::create),
    (&sess::GET, session::get),
    (&sess::SET, session::set),
    (&sess::ROTATE, session::rotate),
    (&sess::DESTROY, session::destroy),
    (&sess::DESTROYALL, session::destroyall),
    (&sess::LIST, session::list),
    (&sess::COUNT, session::count),
    (&lk::ACQUIRE, lock::acquire),
    (&lk::RELEASE, lock::release),
    (&lk::EXTEND, lock::extend),
    (&lk::INFO, lock::info),
    (&lk::FENCEDHSET, lock::fencedhset),
    (&lk::SEM_ACQUIRE, lock::sem_acquire),
    (&lk::SEM_RELEASE, lock::sem_release),
    (&lk::SEM_COUNT, lock::sem_count),
];

/// Registers every command (its one key at position 1, so ACL key patterns and Cluster
/// routing apply) with its COMMAND DOCS entry and arity. Modified-key signals are sent
/// explicitly, only after real writes.
fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    unsafe {
        raw::RedisModule_SetModuleOptions.unwrap()(
            ctx.get_raw(),
            raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED as i32,
        )
    };
    for (def, handler) in COMMANDS {
        if let Err(e) =
            shared::register(ctx.get_raw(), def, handler).and_then(|()| docs::describe(ctx, def))
        {
            ctx.log_warning(&e);
            return Status::Err;
        }
    }
    // Lock and semaphore waiters are served when their key is freed behind the module's back,
    // and released when the server becomes a replica.
    if let Err(e) = lock::subscribe(ctx.get_raw()) {
        ctx.log_warning(&e);
        return Status::Err;
    }
    Status::Ok
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

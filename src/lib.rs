//! redis-patterns: rate limiting, sessions, leaderboards, tagged caching and locks as native,
//! atomic commands. This file only registers each family's list of commands; each family's
//! binding lives in the module of the same name as its core module, and every call into the
//! server goes through `ffi`, the one door to the C API (see ARCHITECTURE.md).

mod cache;
mod config;
mod ffi;
mod index;
mod leaderboard;
mod lock;
mod queue;
mod ratelimit;
mod session;
mod stats;
mod text;
mod wait;

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

/// Every family whose clients wait on the server.
const WAITING: &[wait::Hooks] = &[lock::HOOKS, queue::HOOKS];

/// Registers every command (its declared keys, so ACL key patterns and Cluster routing apply)
/// with its COMMAND DOCS entry and arity; waiters (locks, semaphores, queues) are released when
/// the server becomes a replica; the configs are loaded (the load arguments must name them);
/// `INFO patterns` shows the counters.
fn init(ctx: &Context, args: &[RedisString]) -> Status {
    let args: Vec<&[u8]> = args.iter().map(RedisString::as_slice).collect();
    ffi::load(ctx, FAMILIES.iter().copied().flatten(), |ctx| {
        config::load(ctx, &args)?;
        wait::subscribe(ctx, WAITING)?;
        ffi::register_info::<Counters>(ctx)
    })
}

/// `INFO patterns`: every counter, then the clients waiting now.
struct Counters;

impl ffi::InfoSection for Counters {
    fn fields() -> Vec<(&'static str, u64)> {
        let (lock_waiters, sem_waiters, rwlock_waiters) = lock::waiting();
        stats::snapshot()
            .chain([
                ("lock_waiters", lock_waiters),
                ("sem_waiters", sem_waiters),
                ("rwlock_waiters", rwlock_waiters),
                ("queue_waiters", queue::waiting()),
            ])
            .collect()
    }
}

/// The crate's version as `MODULE LIST` shows it, encoded as RedisJSON does:
/// major * 10000 + minor * 100 + patch (0.1.0 is 100).
const VERSION: i32 = number(env!("CARGO_PKG_VERSION_MAJOR")) * 10000
    + number(env!("CARGO_PKG_VERSION_MINOR")) * 100
    + number(env!("CARGO_PKG_VERSION_PATCH"));

/// A version component's decimal digits, at compile time.
const fn number(digits: &str) -> i32 {
    let bytes = digits.as_bytes();
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        value = value * 10 + (bytes[i] - b'0') as i32;
        i += 1;
    }
    value
}

// Default features, `redis_module!` for the module itself and raw RedisModule_CreateCommand
// (which Redis 7.0 has) for the commands keep Redis 7.0 loading us.
redis_module! {
    name: "patterns",
    version: VERSION,
    allocator: (redis_module::alloc::RedisAlloc, redis_module::alloc::RedisAlloc),
    data_types: [],
    init: init,
    commands: [],
}

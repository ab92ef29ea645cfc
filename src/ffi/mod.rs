//! The crate's one door to the server's C API, and the only place with `unsafe`: each raw
//! resource has a safe wrapper here (a context, a string, a key and its zset iteration, a
//! reply, a replicated command, a blocked client, a timer, an event subscription), and every
//! entry point the server calls runs under the panic guard. Family bindings use these wrappers
//! and never see a raw pointer.
//!
//! Commands are called through `redis_module::raw` directly: the hot path allocates nothing
//! but what Redis itself needs (see BENCHMARKS.md for why that matters).
#![warn(clippy::undocumented_unsafe_blocks)]

mod acl;
mod block;
mod call;
mod command;
mod config;
mod ctx;
mod docs;
mod event;
mod info;
mod key;
mod random;
mod replicate;
mod reply;
mod string;
mod timer;

pub use acl::{check_key_access, check_keys_access, CurrentUser};
pub use block::{block, BlockedClient, ClientId, Waits};
pub use call::{redis_call, redis_call_strs, CallReply, CallValue};
pub use command::{dispatch, Call, Command};
pub use config::{apply_module_args, register_configs, Config, Numeric, Text};
pub use ctx::{now_ms, precise_now_us, Ctx};
pub use event::{watch_keyspace, watch_server, KeyspaceWatch, ServerWatch};
pub use info::{register_info, InfoSection};
pub use key::{key_type, Key, Notify, OwnedKey, Put, ScoreRange};
pub use random::fill_random;
pub use redis_module::raw::{KeyType, RedisModuleCtx as RawCtx, RedisModuleString as RawString};
pub use replicate::ReplArg;
pub use reply::{Part, Reply, Value};
pub use string::{OwnedString, Str, Token};
pub use timer::{Fires, Timer, TimerToken};

use command::guard;
use redis_module::{raw, Context, Status};

/// The module's own ACL category, where the server lets a module add one.
const ACL_CATEGORY: &std::ffi::CStr = c"patterns";

/// Loads the module: turns implicit modified-key signals off (they are sent explicitly, only
/// after real writes), registers every command with its COMMAND DOCS entry, then runs `setup`;
/// a failure (or a panic) is logged and refuses the load.
pub fn load(
    context: &Context,
    commands: impl Iterator<Item = &'static Command>,
    setup: impl FnOnce(Ctx) -> Result<(), String>,
) -> Status {
    // SAFETY: the server passes the load context, live while the module loads.
    let ctx = unsafe { Ctx::from_raw(context.get_raw()) };
    let loaded = guard(Err("a panic while loading".to_string()), || {
        // SAFETY: the load context is live; the option is a flag set.
        unsafe {
            raw::RedisModule_SetModuleOptions.unwrap()(
                ctx.as_ptr(),
                raw::REDISMODULE_OPTION_NO_IMPLICIT_SIGNAL_MODIFIED as i32,
            )
        };
        let own_category = command::add_own_category(ctx, ACL_CATEGORY)?;
        for command in commands {
            command::register(ctx, command, own_category)
                .and_then(|()| docs::describe(ctx, command.def))?;
        }
        setup(ctx)
    });
    match loaded {
        Ok(()) => Status::Ok,
        Err(e) => {
            context.log_warning(&e);
            Status::Err
        }
    }
}

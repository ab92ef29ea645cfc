//! The module's `INFO` section (`INFO patterns`), through `RedisModule_RegisterInfoFunc`; its
//! callback runs under the panic guard.

use std::ffi::{c_int, CString};

use redis_module::raw::{self, RedisModuleInfoCtx};

use super::command::guard;
use super::ctx::Ctx;
use super::reply::OK;

/// Gives the fields of the module's INFO section.
pub trait InfoSection: 'static {
    /// Every field, as (name, value); the server prefixes the module's name.
    fn fields() -> Vec<(&'static str, u64)>;
}

/// Makes `S` the module's INFO section (`INFO patterns`, and `INFO modules`/`everything`).
pub fn register_info<S: InfoSection>(ctx: Ctx) -> Result<(), String> {
    // SAFETY: the load context is live and the callback matches the server's signature.
    let status =
        unsafe { raw::RedisModule_RegisterInfoFunc.unwrap()(ctx.as_ptr(), Some(on_info::<S>)) };
    if status != OK {
        return Err("could not register the INFO section".into());
    }
    Ok(())
}

extern "C" fn on_info<S: InfoSection>(ctx: *mut RedisModuleInfoCtx, _for_crash_report: c_int) {
    guard((), || {
        // SAFETY: the server calls back with a live info context, for this call only; an
        // empty section name is the module's own section.
        unsafe { raw::RedisModule_InfoAddSection.unwrap()(ctx, c"".as_ptr()) };
        for (name, value) in S::fields() {
            let Ok(name) = CString::new(name) else {
                continue;
            };
            // SAFETY: as above; the server copies the field's name.
            unsafe { raw::RedisModule_InfoAddFieldULongLong.unwrap()(ctx, name.as_ptr(), value) };
        }
    });
}

//! Subscriptions to keyspace events and server events; their callbacks run under the panic
//! guard.

use std::ffi::{c_char, c_int, c_void, CStr};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleEvent, RedisModuleString};

use super::command::callback;
use super::ctx::Ctx;
use super::key::Notify;
use super::reply::OK;
use super::string::Str;

/// Reacts to keyspace events (a callback that must not write).
pub trait KeyspaceWatch: 'static {
    fn event(ctx: Ctx, event: &CStr, key: &[u8]);
}

/// Calls `W::event` for every keyspace event of `classes` from now on.
pub fn watch_keyspace<W: KeyspaceWatch>(ctx: Ctx, classes: Notify) {
    // SAFETY: the context is live and the callback matches the server's signature.
    unsafe {
        raw::RedisModule_SubscribeToKeyspaceEvents.unwrap()(
            ctx.as_ptr(),
            classes.bits(),
            Some(on_keyspace_event::<W>),
        )
    };
}

extern "C" fn on_keyspace_event<W: KeyspaceWatch>(
    ctx: *mut RedisModuleCtx,
    _class: c_int,
    event: *const c_char,
    key: *mut RedisModuleString,
) -> c_int {
    callback(ctx, |ctx| {
        // SAFETY: the event's name is a C string and the key's name a string, both live for
        // the callback.
        let (event, key) = unsafe { (CStr::from_ptr(event), Str::from_raw(key)) };
        W::event(ctx, event, key.bytes());
    });
    OK
}

/// Reacts to the server becoming a replica.
pub trait RoleWatch: 'static {
    fn became_replica(ctx: Ctx);
}

/// A server event's callback, as the server calls it.
type ServerEventCallback = extern "C" fn(*mut RedisModuleCtx, RedisModuleEvent, u64, *mut c_void);

/// Subscribes `callback` to server event `id` (a module has one callback per event: this one
/// replaces any other); `what` names the event in the error.
fn subscribe(ctx: Ctx, id: u64, callback: ServerEventCallback, what: &str) -> Result<(), String> {
    let event = RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the context is live and the callback matches the server's signature.
    let status = unsafe {
        raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx.as_ptr(), event, Some(callback))
    };
    if status != OK {
        return Err(format!("could not subscribe to {what}"));
    }
    Ok(())
}

/// Calls `W::became_replica` whenever the server becomes a replica.
pub fn watch_role<W: RoleWatch>(ctx: Ctx) -> Result<(), String> {
    let id = raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED;
    subscribe(ctx, id, on_role_change::<W>, "role changes")
}

extern "C" fn on_role_change<W: RoleWatch>(
    ctx: *mut RedisModuleCtx,
    _event: RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_REPLICA {
        return;
    }
    callback(ctx, W::became_replica);
}

/// Reacts to the end of a `FLUSHALL` or `FLUSHDB` (which fire no keyspace event).
pub trait FlushWatch: 'static {
    fn flushed(ctx: Ctx);
}

/// Calls `W::flushed` after every flush.
pub fn watch_flush<W: FlushWatch>(ctx: Ctx) -> Result<(), String> {
    subscribe(
        ctx,
        raw::REDISMODULE_EVENT_FLUSHDB,
        on_flush::<W>,
        "flushes",
    )
}

extern "C" fn on_flush<W: FlushWatch>(
    ctx: *mut RedisModuleCtx,
    _event: RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_FLUSHDB_END {
        return;
    }
    callback(ctx, W::flushed);
}

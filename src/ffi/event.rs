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

/// Reacts to the server events waiters depend on: the server becoming a replica, and the end of
/// a `FLUSHALL` or `FLUSHDB` (which fire no keyspace event).
pub trait ServerWatch: 'static {
    fn became_replica(ctx: Ctx);
    fn flushed(ctx: Ctx);
}

/// Calls `W::became_replica` whenever the server becomes a replica, and `W::flushed` after
/// every flush (a module has one callback per server event: this one replaces any other).
pub fn watch_server<W: ServerWatch>(ctx: Ctx) -> Result<(), String> {
    for (id, what) in [
        (
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
            "role changes",
        ),
        (raw::REDISMODULE_EVENT_FLUSHDB, "flushes"),
    ] {
        let event = RedisModuleEvent { id, dataver: 1 };
        // SAFETY: the context is live and the callback matches the server's signature.
        let status = unsafe {
            raw::RedisModule_SubscribeToServerEvent.unwrap()(
                ctx.as_ptr(),
                event,
                Some(on_server_event::<W>),
            )
        };
        if status != OK {
            return Err(format!("could not subscribe to {what}"));
        }
    }
    Ok(())
}

extern "C" fn on_server_event<W: ServerWatch>(
    ctx: *mut RedisModuleCtx,
    event: RedisModuleEvent,
    subevent: u64,
    _data: *mut c_void,
) {
    match (event.id, subevent) {
        (
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
            raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_REPLICA,
        ) => callback(ctx, W::became_replica),
        (raw::REDISMODULE_EVENT_FLUSHDB, raw::REDISMODULE_SUBEVENT_FLUSHDB_END) => {
            callback(ctx, W::flushed)
        }
        _ => {}
    }
}

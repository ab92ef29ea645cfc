//! The context of one call from the server, and what it answers about the server itself.

use std::ffi::c_int;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, Ordering};

use redis_module::raw::{self, RedisModuleCtx};

use super::string::OwnedString;

/// The context the server passed to the running callback (a command, a timer, an event),
/// valid while it runs: `'a` is that call, so no context outlives it.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    raw: NonNull<RedisModuleCtx>,
    _call: PhantomData<&'a RedisModuleCtx>,
}

impl Ctx<'_> {
    /// # Safety
    /// `raw` is the context the server passed to the running callback, and the returned value
    /// does not outlive that callback.
    pub(super) unsafe fn from_raw(raw: *mut RedisModuleCtx) -> Self {
        Self {
            raw: NonNull::new(raw).expect("the server passes a context"),
            _call: PhantomData,
        }
    }

    pub(super) fn as_ptr(self) -> *mut RedisModuleCtx {
        self.raw.as_ptr()
    }

    /// The database the context works in.
    pub fn selected_db(self) -> c_int {
        // SAFETY: the context is live (the type's invariant).
        unsafe { raw::RedisModule_GetSelectedDb.unwrap()(self.as_ptr()) }
    }

    /// Switches the context to database `db` (a timer's context starts in database 0).
    pub fn select_db(self, db: c_int) {
        // SAFETY: the context is live; a bad index is refused by the server, not undefined.
        unsafe { raw::RedisModule_SelectDb.unwrap()(self.as_ptr(), db) };
    }

    /// Whether the client may be blocked: not inside MULTI/EXEC, a script, or a module's call.
    pub fn can_block(self) -> bool {
        // SAFETY: the context is live.
        let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(self.as_ptr()) } as u32;
        let deny = raw::REDISMODULE_CTX_FLAGS_MULTI
            | raw::REDISMODULE_CTX_FLAGS_LUA
            | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING;
        flags & deny == 0
    }

    /// Whether the server is a primary (a replica must not write on its own).
    pub fn is_primary(self) -> bool {
        // SAFETY: the context is live.
        let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(self.as_ptr()) } as u32;
        flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
    }

    /// Whether the server is loading an RDB or an AOF (its events then replay the past).
    pub fn is_loading(self) -> bool {
        // SAFETY: the context is live.
        let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(self.as_ptr()) } as u32;
        flags & raw::REDISMODULE_CTX_FLAGS_LOADING != 0
    }

    /// Publishes `message` on `channel` (as PUBLISH does; in Cluster, to every node).
    pub fn publish(self, channel: &[u8], message: &[u8]) {
        let channel = OwnedString::new(self, channel);
        let message = OwnedString::new(self, message);
        // SAFETY: the context is live and both strings live until the call returns.
        unsafe {
            raw::RedisModule_PublishMessage.unwrap()(
                self.as_ptr(),
                channel.as_str().as_ptr(),
                message.as_str().as_ptr(),
            )
        };
    }
}

/// The server's clock in ms: read once per command.
pub fn now_ms() -> i64 {
    // SAFETY: takes no argument; the module API is initialised before any command runs.
    unsafe { raw::RedisModule_Milliseconds.unwrap()() }
}

/// The server's clock in µs for ordering cache leases against invalidations: never the same
/// value twice in this process (the next microsecond when the clock has not moved on).
pub fn precise_now_us() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let clock = ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000;
    let now = clock.max(LAST.load(Ordering::Relaxed) + 1);
    LAST.store(now, Ordering::Relaxed);
    now
}

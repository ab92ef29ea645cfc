//! Blocked clients (`RedisModule_BlockClient`): a handle that must be unblocked exactly once,
//! and the server's callbacks (reply, timeout, free, disconnect), each under the panic guard.

use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use redis_module::raw::{self, RedisModuleBlockedClient, RedisModuleCtx, RedisModuleString};

use super::command::{callback, guard};
use super::ctx::Ctx;
use super::reply::{send, send_error, Reply, OK};

/// A blocked client's identity: what callbacks are told, to find the client's handle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ClientId(usize);

/// A client the module blocked, until [`unblock`](Self::unblock)ed with an outcome `T` or
/// [`release`](Self::release)d; either consumes the handle, so it happens once.
pub struct BlockedClient<T> {
    raw: NonNull<RedisModuleBlockedClient>,
    _outcome: PhantomData<T>,
}

// SAFETY: the handle is only ever used on the server's main thread (commands, timers and
// callbacks all run there); Send only lets a static's mutex hold it.
unsafe impl<T: Send> Send for BlockedClient<T> {}

impl<T: Send + 'static> BlockedClient<T> {
    pub fn id(&self) -> ClientId {
        ClientId(self.raw.as_ptr() as usize)
    }

    /// Ends the wait with `outcome`: the server then calls [`Waits::reply`] with it.
    pub fn unblock(self, outcome: T) {
        let data = Box::into_raw(Box::new(outcome));
        // SAFETY: the client is blocked (the handle is consumed here, so unblocked once); the
        // server passes `data` to the reply callback and then to `free_outcome`, which frees it.
        unsafe { raw::RedisModule_UnblockClient.unwrap()(self.raw.as_ptr(), data.cast()) };
    }

    /// Ends the wait with no outcome (after a timeout or a disconnection, whose callback has
    /// answered already).
    pub fn release(self) {
        // SAFETY: the client is blocked and the handle consumed here, so unblocked once.
        unsafe { raw::RedisModule_UnblockClient.unwrap()(self.raw.as_ptr(), ptr::null_mut()) };
    }
}

/// How a family answers its blocked clients.
pub trait Waits: 'static {
    type Outcome: Send + 'static;
    /// The reply to a client whose wait ended with `outcome` (None: without one).
    fn reply(outcome: Option<&Self::Outcome>) -> Result<Reply, String>;
    /// CLIENT UNBLOCK ended the wait (blocks have no server timeout): the reply, and the
    /// client's handle to release when it still waited.
    fn timed_out(ctx: Ctx, client: ClientId) -> (Reply, Option<BlockedClient<Self::Outcome>>);
    /// The client went away while waiting: its handle to release when it still waited.
    fn disconnected(ctx: Ctx, client: ClientId) -> Option<BlockedClient<Self::Outcome>>;
}

/// Blocks the calling client with no server timeout (the caller keeps the deadline), answered
/// by `W`; None when the server refuses to block it (Valkey 8.1 returns no handle for a client
/// that is not a plain one, e.g. a RESP3 client in subscribed mode), so it is not blocked.
///
/// Never with a server timeout: where `now + timeout` would overflow, Valkey 8.1 replies
/// "timeout is out of range" and returns a handle with the client not blocked, and unblocking
/// that handle then crashes the server ("Unknown btype in unblockClient()"). (The server does
/// the same inside MULTI or a script, which the caller rules out with `Ctx::can_block`, and in
/// a reply callback, which never blocks.)
pub fn block<W: Waits>(ctx: Ctx) -> Option<BlockedClient<W::Outcome>> {
    // SAFETY: the context is a command's, live; the callbacks match the server's signatures
    // and `free_outcome::<W>` frees exactly what `unblock` hands over.
    let raw = unsafe {
        raw::RedisModule_BlockClient.unwrap()(
            ctx.as_ptr(),
            Some(on_blocked::<W, false>),
            Some(on_blocked::<W, true>),
            Some(free_outcome::<W>),
            0,
        )
    };
    let raw = NonNull::new(raw)?;
    // SAFETY: the handle was just made and the callback matches the server's signature.
    unsafe {
        raw::RedisModule_SetDisconnectCallback.unwrap()(raw.as_ptr(), Some(on_disconnect::<W>))
    };
    Some(BlockedClient {
        raw,
        _outcome: PhantomData,
    })
}

fn answer(ctx: Ctx, reply: Result<Reply, String>) {
    match reply {
        Ok(reply) => send(ctx, reply),
        Err(text) => send_error(ctx, &text),
    }
}

/// The reply and the timeout callbacks, which the server calls with a command's signature:
/// `TIMEOUT` tells which this one is.
extern "C" fn on_blocked<W: Waits, const TIMEOUT: bool>(
    ctx: *mut RedisModuleCtx,
    _argv: *mut *mut RedisModuleString,
    _argc: c_int,
) -> c_int {
    callback(ctx, |ctx| {
        if TIMEOUT {
            time_out::<W>(ctx);
        } else {
            reply::<W>(ctx);
        }
    });
    OK
}

/// Replies to a client whose wait ended (in the reply callback).
fn reply<W: Waits>(ctx: Ctx) {
    // SAFETY: the context is the reply callback's; its data is what `unblock` passed.
    let data = unsafe { raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx.as_ptr()) };
    // SAFETY: `data` is null or a live `W::Outcome` from `unblock`, freed only after this.
    let outcome = unsafe { data.cast::<W::Outcome>().as_ref() };
    answer(ctx, W::reply(outcome));
}

extern "C" fn free_outcome<W: Waits>(_ctx: *mut RedisModuleCtx, data: *mut c_void) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` is the box `unblock` leaked, handed back once by the server.
    let outcome = unsafe { Box::from_raw(data.cast::<W::Outcome>()) };
    guard((), || drop(outcome));
}

/// Answers a client whose wait `CLIENT UNBLOCK` ended (in the timeout callback).
fn time_out<W: Waits>(ctx: Ctx) {
    // SAFETY: the context is the timeout callback's.
    let client = unsafe { raw::RedisModule_GetBlockedClientHandle.unwrap()(ctx.as_ptr()) };
    let (reply, handle) = W::timed_out(ctx, ClientId(client as usize));
    send(ctx, reply);
    if let Some(handle) = handle {
        handle.release();
    }
}

extern "C" fn on_disconnect<W: Waits>(
    ctx: *mut RedisModuleCtx,
    client: *mut RedisModuleBlockedClient,
) {
    callback(ctx, |ctx| {
        if let Some(handle) = W::disconnected(ctx, ClientId(client as usize)) {
            handle.release();
        }
    });
}

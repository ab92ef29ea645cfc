//! Timers (`RedisModule_CreateTimer`): data handed to the timer and back to its callback,
//! which runs under the panic guard.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use redis_module::raw::{self, RedisModuleCtx, RedisModuleTimerID};

use super::command::callback;
use super::ctx::Ctx;
use super::reply::OK;

/// What a timer carries, and what happens when it fires.
pub trait Fires: Sized + 'static {
    /// The timer `timer` fired with this data.
    fn fired(self, ctx: Ctx, timer: TimerToken);
}

/// A timer's identity, as its callback knows it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct TimerToken(usize);

/// A running timer; its data goes back to [`Fires::fired`], or is freed by [`Timer::stop`].
pub struct Timer<D> {
    id: RedisModuleTimerID,
    data: NonNull<D>,
}

// SAFETY: timers are only made, stopped and fired on the server's main thread; Send only lets
// a static's mutex hold one.
unsafe impl<D: Send> Send for Timer<D> {}

impl<D: Fires> Timer<D> {
    /// Fires `data` after `period_ms`.
    pub fn start(ctx: Ctx, period_ms: i64, data: D) -> Self {
        let data = NonNull::from(Box::leak(Box::new(data)));
        // SAFETY: the context is live; `on_timer::<D>` takes the data back exactly once.
        let id = unsafe {
            raw::RedisModule_CreateTimer.unwrap()(
                ctx.as_ptr(),
                period_ms,
                Some(on_timer::<D>),
                data.as_ptr().cast::<c_void>(),
            )
        };
        Self { id, data }
    }

    pub fn token(&self) -> TimerToken {
        TimerToken(self.data.as_ptr() as usize)
    }

    /// Stops the timer and frees its data, unless it already fired (its callback has the data).
    pub fn stop(self, ctx: Ctx) {
        let mut data: *mut c_void = ptr::null_mut();
        // SAFETY: the context is live; an id that already fired is refused, not undefined.
        let stopped =
            unsafe { raw::RedisModule_StopTimer.unwrap()(ctx.as_ptr(), self.id, &mut data) };
        if stopped == OK {
            // SAFETY: the stopped timer never fires: its data is ours again, freed once.
            drop(unsafe { Box::from_raw(self.data.as_ptr()) });
        }
    }
}

extern "C" fn on_timer<D: Fires>(ctx: *mut RedisModuleCtx, data: *mut c_void) {
    let token = TimerToken(data as usize);
    // SAFETY: `data` is the box `Timer::start` leaked; a fired timer cannot be stopped, so it
    // is taken back once.
    let data = unsafe { Box::from_raw(data.cast::<D>()) };
    callback(ctx, |ctx| data.fired(ctx, token));
}

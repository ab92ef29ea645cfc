//! What every family's binding shares: the command boundary (argument split, panic guard,
//! error replies), the clock, key access and effect replication.

use std::os::raw::c_longlong;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use patterns_core::command::{CmdError, CommandDef};
use redis_module::raw::{self, KeyType, RedisModuleKey};
use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

/// A command's arguments, split at the key: `args[0]` is the name, `args[1]` the key.
pub struct Invocation<'a> {
    pub key: &'a RedisString,
    /// The arguments after the key, as bytes.
    pub rest: Vec<&'a [u8]>,
}

impl<'a> Invocation<'a> {
    pub fn new(def: &CommandDef, args: &'a [RedisString]) -> Result<Self, CmdError> {
        match args {
            [_, key, rest @ ..] => Ok(Self {
                key,
                rest: rest.iter().map(RedisString::as_slice).collect(),
            }),
            _ => Err(CmdError::WrongArity(def.name)),
        }
    }
}

/// Runs a command body with panics caught: a bug replies with an error instead of taking the
/// server down. Bodies compute everything before they write, so an unwind leaves no half-write.
pub fn guarded(
    ctx: &Context,
    args: Vec<RedisString>,
    body: fn(&Context, &[RedisString]) -> Result<RedisValue, CmdError>,
) -> RedisResult {
    match catch_unwind(AssertUnwindSafe(|| body(ctx, &args))) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(RedisError::String(err.to_string())),
        Err(_) => Err(RedisError::String(CmdError::Internal.to_string())),
    }
}

/// The server's clock in ms: read once per command.
pub fn now_ms() -> i64 {
    unsafe { raw::RedisModule_Milliseconds.unwrap()() }
}

/// An integer array reply.
pub fn int_array(values: [i64; 5]) -> RedisValue {
    RedisValue::Array(values.into_iter().map(RedisValue::Integer).collect())
}

/// A key opened for reading and writing, closed on drop.
pub struct Key {
    ctx: *mut raw::RedisModuleCtx,
    inner: *mut RedisModuleKey,
}

impl Key {
    pub fn open(ctx: &Context, name: &RedisString) -> Self {
        let mode = raw::KeyMode::READ | raw::KeyMode::WRITE;
        Self {
            ctx: ctx.get_raw(),
            inner: raw::open_key(ctx.get_raw(), name.inner, mode),
        }
    }

    pub fn kind(&self) -> KeyType {
        unsafe { raw::RedisModule_KeyType.unwrap()(self.inner) }.into()
    }

    /// Fails with WRONGTYPE unless the key is absent or of type `kind`.
    pub fn expect(&self, kind: KeyType) -> Result<&Self, CmdError> {
        match self.kind() {
            KeyType::Empty => Ok(self),
            k if k == kind => Ok(self),
            _ => Err(CmdError::WrongType),
        }
    }

    /// The string value (read-only access: the stored encoding is left alone), None when
    /// absent; WRONGTYPE for another type.
    pub fn string(&self) -> Result<Option<&[u8]>, CmdError> {
        if self.expect(KeyType::String)?.kind() == KeyType::Empty {
            return Ok(None);
        }
        let mut len = 0;
        let ptr = raw::string_dma(self.inner, &mut len, raw::KeyMode::READ);
        if ptr.is_null() {
            return Err(CmdError::WrongType);
        }
        Ok(Some(unsafe {
            std::slice::from_raw_parts(ptr.cast::<u8>(), len)
        }))
    }

    /// The absolute expiry in ms, None when the key has none.
    pub fn expire_at_ms(&self) -> Option<i64> {
        let at = unsafe {
            match raw::RedisModule_GetAbsExpire {
                Some(get_abs) => get_abs(self.inner),
                // Redis 7.0 answers relative to its clock now: read ours at the same moment.
                None => match raw::RedisModule_GetExpire.unwrap()(self.inner) {
                    ttl if ttl >= 0 => now_ms() + ttl,
                    none => none,
                },
            }
        };
        (at >= 0).then_some(at)
    }

    /// Sets the expiry to the absolute `at_ms`: exactly where the server has an absolute API
    /// (Redis 7.2+, Valkey), else relative to the clock read just before (Redis 7.0).
    fn set_expire_at(&self, at_ms: i64) {
        unsafe {
            match raw::RedisModule_SetAbsExpire {
                Some(set_abs) => set_abs(self.inner, at_ms),
                None => raw::RedisModule_SetExpire.unwrap()(self.inner, (at_ms - now_ms()).max(1)),
            };
        }
    }

    /// Stores a string that expires at `expire_at_ms`, and replicates it as
    /// `SET key value PXAT expire_at_ms`: the primary's clock travels in the effect.
    pub fn set_string(&self, name: &RedisString, value: &str, expire_at_ms: i64) {
        let value = RedisString::create(NonNull::new(self.ctx), value);
        raw::string_set(self.inner, value.inner);
        self.set_expire_at(expire_at_ms);
        unsafe {
            raw::RedisModule_Replicate.unwrap()(
                self.ctx,
                c"SET".as_ptr(),
                c"sscl".as_ptr(),
                name.inner,
                value.inner,
                c"PXAT".as_ptr(),
                expire_at_ms as c_longlong,
            );
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        raw::close_key(self.inner);
    }
}

/// Replicates a command to replicas and the AOF as an effect (never the caller's verbatim
/// command).
pub fn replicate_effect(ctx: &Context, command: &str, args: &[&[u8]]) {
    ctx.replicate(command, args);
}

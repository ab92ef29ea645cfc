//! Replies: what a command answers, and sending it to the client.

use std::ffi::{c_int, CStr, CString};

use patterns_core::command::parse_f64;
use patterns_core::keys::Pairs;
use redis_module::raw;

use super::ctx::Ctx;

/// A successful reply.
pub enum Reply {
    /// A short array of integers, kept on the stack.
    Ints(Ints),
    Null,
    Integer(i64),
    Bulk(Vec<u8>),
    Bulks(Vec<Vec<u8>>),
    /// Any shape: nested arrays of integers, strings, doubles and nils.
    Value(Value),
    /// An array of three values, kept inline (a hot path's reply allocates no array).
    Three([Value; 3]),
    /// A record from flat pairs: a map under RESP3, `field, value, ...` under RESP2.
    Record(Pairs),
    /// A simple string such as `OK`.
    Simple(&'static CStr),
    /// No reply now: the client is blocked and a callback replies later.
    Blocked,
    /// Already sent, by [`Ctx::reply_now`]: a reply borrowing what the command still holds open.
    Sent(Sent),
}

/// Proof that a reply was sent ([`Ctx::reply_now`] alone makes one).
pub struct Sent(());

/// An element of a reply sent at once, borrowing its bytes (an open key's value, read in
/// place: no copy).
#[derive(Clone, Copy)]
pub enum Part<'b> {
    Bulk(&'b [u8]),
    Null,
}

impl Ctx<'_> {
    /// Sends `parts` as an array now, while what they borrow is alive. Inlined: the parts are
    /// known where it is called, so the loop unrolls into one server call per part.
    #[inline(always)]
    pub fn reply_now(self, parts: &[Part]) -> Reply {
        let ctx = self.as_ptr();
        // SAFETY: `ctx` is the live context of the call that replies.
        unsafe { raw::RedisModule_ReplyWithArray.unwrap()(ctx, parts.len() as _) };
        for part in parts {
            match part {
                Part::Bulk(b) => reply_bulk(ctx, b),
                Part::Null => {
                    // SAFETY: `ctx` is the live context of the call that replies.
                    unsafe { raw::RedisModule_ReplyWithNull.unwrap()(ctx) };
                }
            }
        }
        Reply::Sent(Sent(()))
    }
}

/// One element of a [`Reply::Value`].
#[derive(Clone)]
pub enum Value {
    Int(i64),
    Bulk(Vec<u8>),
    /// A bulk string of static bytes (allocates nothing).
    Static(&'static [u8]),
    /// A double, formatted by the server as its own replies are.
    Double(f64),
    /// A score kept as text: a double under RESP3, this text under RESP2 (as `ZSCORE`).
    Score(Vec<u8>),
    Array(Vec<Value>),
    /// A record: a map under RESP3, a flat array `key, value, ...` under RESP2.
    Map(Vec<(Value, Value)>),
    Null,
}

/// Up to [`Ints::MAX`] integers, inline (a hot path's reply allocates nothing).
pub struct Ints {
    values: [i64; Ints::MAX],
    len: usize,
}

impl Ints {
    pub const MAX: usize = 8;

    pub fn as_slice(&self) -> &[i64] {
        &self.values[..self.len]
    }
}

impl<const N: usize> From<[i64; N]> for Ints {
    fn from(array: [i64; N]) -> Self {
        const { assert!(N <= Ints::MAX) };
        let mut values = [0; Ints::MAX];
        values[..N].copy_from_slice(&array);
        Self { values, len: N }
    }
}

/// Sends a reply to the current client.
pub(super) fn send(ctx: Ctx, reply: Reply) {
    let ctx = ctx.as_ptr();
    match reply {
        Reply::Ints(ints) => {
            let values = ints.as_slice();
            // SAFETY: `ctx` is the live context of the call that replies.
            unsafe { raw::RedisModule_ReplyWithArray.unwrap()(ctx, values.len() as _) };
            for v in values {
                // SAFETY: `ctx` is the live context of the call that replies.
                unsafe { raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *v) };
            }
        }
        Reply::Null => Out::new(ctx).value(&Value::Null),
        Reply::Integer(n) => Out::new(ctx).value(&Value::Int(n)),
        Reply::Bulk(b) => reply_bulk(ctx, &b),
        Reply::Bulks(items) => {
            // SAFETY: `ctx` is the live context of the call that replies.
            unsafe { raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _) };
            for b in &items {
                reply_bulk(ctx, b);
            }
        }
        Reply::Value(v) => Out::new(ctx).value(&v),
        Reply::Three(values) => Out::new(ctx).array(&values),
        Reply::Record(pairs) => {
            // SAFETY: `ctx` is the live context of the call that replies; under RESP2 the
            // server sends an array of twice the length.
            unsafe { raw::RedisModule_ReplyWithMap.unwrap()(ctx, (pairs.len() / 2) as _) };
            pairs.strings().for_each(|s| reply_bulk(ctx, s));
            super::key::recycle_pairs(pairs);
        }
        Reply::Simple(text) => {
            // SAFETY: `ctx` is the live context of the call that replies.
            unsafe { raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, text.as_ptr()) };
        }
        Reply::Blocked | Reply::Sent(_) => {}
    }
}

fn reply_bulk(ctx: *mut raw::RedisModuleCtx, b: &[u8]) {
    // SAFETY: `ctx` is the replying call's live context; the server copies the buffer.
    unsafe { raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, b.as_ptr().cast(), b.len()) };
}

/// A reply being sent: its context, and whether the client speaks RESP3 once asked (asking
/// computes every context flag, so a reply of many scores asks once).
struct Out {
    ctx: *mut raw::RedisModuleCtx,
    resp3: Option<bool>,
}

impl Out {
    fn new(ctx: *mut raw::RedisModuleCtx) -> Self {
        Self { ctx, resp3: None }
    }

    fn resp3(&mut self) -> bool {
        *self.resp3.get_or_insert_with(|| resp3(self.ctx))
    }

    fn value(&mut self, value: &Value) {
        let ctx = self.ctx;
        match value {
            Value::Int(n) => {
                // SAFETY: `ctx` is the live context of the call that replies.
                unsafe { raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *n) };
            }
            Value::Bulk(b) => reply_bulk(ctx, b),
            Value::Static(b) => reply_bulk(ctx, b),
            Value::Double(d) => {
                // SAFETY: `ctx` is the live context of the call that replies.
                unsafe { raw::RedisModule_ReplyWithDouble.unwrap()(ctx, *d) };
            }
            Value::Null => {
                // SAFETY: `ctx` is the live context of the call that replies.
                unsafe { raw::RedisModule_ReplyWithNull.unwrap()(ctx) };
            }
            Value::Score(text) => match self.resp3().then(|| parse_f64(text)).flatten() {
                Some(d) => self.value(&Value::Double(d)),
                None => reply_bulk(ctx, text),
            },
            Value::Array(items) => self.array(items),
            Value::Map(pairs) => {
                // SAFETY: `ctx` is the live context of the call that replies; under RESP2 the
                // server sends an array of twice the length.
                unsafe { raw::RedisModule_ReplyWithMap.unwrap()(ctx, pairs.len() as _) };
                for (key, value) in pairs {
                    self.value(key);
                    self.value(value);
                }
            }
        }
    }

    fn array(&mut self, items: &[Value]) {
        // SAFETY: `ctx` is the live context of the call that replies.
        unsafe { raw::RedisModule_ReplyWithArray.unwrap()(self.ctx, items.len() as _) };
        for item in items {
            self.value(item);
        }
    }
}

/// Whether the client being answered speaks RESP3.
fn resp3(ctx: *mut raw::RedisModuleCtx) -> bool {
    // SAFETY: `ctx` is the live context of the call that replies.
    let flags = unsafe { raw::RedisModule_GetContextFlags.unwrap()(ctx) };
    flags as u32 & raw::REDISMODULE_CTX_FLAGS_RESP3 != 0
}

/// Sends an error reply (`text` starts with its code, e.g. `ERR ...`).
pub(super) fn send_error(ctx: Ctx, text: &str) {
    let text = CString::new(text).unwrap_or_default();
    // SAFETY: the context is live and the server copies the text.
    unsafe { raw::RedisModule_ReplyWithError.unwrap()(ctx.as_ptr(), text.as_ptr()) };
}

/// The status a callback returns to the server.
pub(super) const OK: c_int = raw::REDISMODULE_OK as c_int;

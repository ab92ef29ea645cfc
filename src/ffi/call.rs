//! Running a Redis command from the module (`RedisModule_Call`), its reply freed on drop.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::slice;

use redis_module::raw::{self, RedisModuleCallReply, RedisModuleString};

use super::ctx::Ctx;
use super::string::{OwnedString, Str};

/// A reply of a command run through `RedisModule_Call`, freed on drop; no reply when the
/// call failed.
pub struct CallReply(Option<NonNull<RedisModuleCallReply>>);

impl CallReply {
    fn kind(&self) -> i32 {
        match self.0 {
            // SAFETY: the reply is live until drop.
            Some(reply) => unsafe { raw::RedisModule_CallReplyType.unwrap()(reply.as_ptr()) },
            None => raw::REDISMODULE_REPLY_UNKNOWN as i32,
        }
    }

    /// Whether the reply is nil (or the call failed).
    pub fn is_null(&self) -> bool {
        let kind = self.kind();
        kind == raw::REDISMODULE_REPLY_NULL as i32 || kind == raw::REDISMODULE_REPLY_UNKNOWN as i32
    }

    /// The integer reply (0 for anything else, e.g. when the call failed).
    pub fn integer(&self) -> i64 {
        // SAFETY: the reply is live until drop; a non-integer reads as 0.
        self.0.map_or(0, |reply| unsafe {
            raw::RedisModule_CallReplyInteger.unwrap()(reply.as_ptr())
        })
    }

    /// Whether the call failed or replied with an error.
    pub fn is_error(&self) -> bool {
        let kind = self.kind();
        kind == raw::REDISMODULE_REPLY_ERROR as i32 || kind == raw::REDISMODULE_REPLY_UNKNOWN as i32
    }

    /// The whole reply as a tree (nested arrays of integers, strings and nils).
    pub fn value(&self) -> CallValue {
        self.0
            .map_or(CallValue::Null, |reply| value_of(reply.as_ptr()))
    }

    /// The bulk strings of an array reply (or of a single string reply); none when the call
    /// failed.
    pub fn strings(&self) -> Vec<Vec<u8>> {
        let Some(reply) = self.0 else {
            return Vec::new();
        };
        if self.kind() != raw::REDISMODULE_REPLY_ARRAY as i32 {
            return vec![string_of(reply.as_ptr())];
        }
        // SAFETY: the reply is a live array.
        let n = unsafe { raw::RedisModule_CallReplyLength.unwrap()(reply.as_ptr()) };
        let element = |i| {
            // SAFETY: `i` is within the live array, whose elements live as long as it does.
            unsafe { raw::RedisModule_CallReplyArrayElement.unwrap()(reply.as_ptr(), i) }
        };
        (0..n).map(|i| string_of(element(i))).collect()
    }
}

/// A reply of `RedisModule_Call`, copied out: what the family bindings read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallValue {
    Int(i64),
    /// A bulk, simple or error string.
    Bulk(Vec<u8>),
    Array(Vec<CallValue>),
    Null,
}

impl CallValue {
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            CallValue::Bulk(b) => Some(b),
            _ => None,
        }
    }

    pub fn items(&self) -> &[CallValue] {
        match self {
            CallValue::Array(items) => items,
            _ => &[],
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            CallValue::Int(n) => Some(*n),
            _ => None,
        }
    }
}

fn value_of(reply: *mut RedisModuleCallReply) -> CallValue {
    if reply.is_null() {
        return CallValue::Null;
    }
    // SAFETY: the reply is live (its owner is borrowed by the caller).
    let kind = unsafe { raw::RedisModule_CallReplyType.unwrap()(reply) };
    let is = |k: isize| kind == k as i32;
    if is(raw::REDISMODULE_REPLY_INTEGER) {
        // SAFETY: as above; the reply is an integer.
        CallValue::Int(unsafe { raw::RedisModule_CallReplyInteger.unwrap()(reply) })
    } else if is(raw::REDISMODULE_REPLY_ARRAY) {
        // SAFETY: as above; the reply is an array.
        let n = unsafe { raw::RedisModule_CallReplyLength.unwrap()(reply) };
        let element = |i| {
            // SAFETY: `i` is within the live array, whose elements live as long as it does.
            unsafe { raw::RedisModule_CallReplyArrayElement.unwrap()(reply, i) }
        };
        CallValue::Array((0..n).map(|i| value_of(element(i))).collect())
    } else if is(raw::REDISMODULE_REPLY_STRING) || is(raw::REDISMODULE_REPLY_ERROR) {
        CallValue::Bulk(string_of(reply))
    } else {
        CallValue::Null
    }
}

/// A string reply's bytes, copied (empty for anything else).
fn string_of(reply: *mut RedisModuleCallReply) -> Vec<u8> {
    if reply.is_null() {
        return Vec::new();
    }
    let mut len = 0;
    // SAFETY: the reply is live (its owner is borrowed by the caller).
    let p = unsafe { raw::RedisModule_CallReplyStringPtr.unwrap()(reply, &mut len) };
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: `p` is the reply's `len` bytes, live while the reply is; copied at once.
    unsafe { slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec()
}

impl Drop for CallReply {
    fn drop(&mut self) {
        if let Some(reply) = self.0 {
            // SAFETY: we own the reply, freed only here.
            unsafe { raw::RedisModule_FreeCallReply.unwrap()(reply.as_ptr()) };
        }
    }
}

/// Runs a read-only Redis command from the module on server strings the caller holds (no
/// copies made): replicates nothing.
pub fn redis_call_strs(ctx: Ctx, command: &CStr, args: &[Str]) -> CallReply {
    call_strs(ctx, command, args, false)
}

/// Runs `command key value rest...` from the module, the value passed as a client's would be
/// (a new string the command may encode: `SET` stores a small integer as the server's shared
/// one), the key and the rest borrowed; replicates nothing.
pub fn redis_call_value(
    ctx: Ctx,
    command: &CStr,
    key: Str,
    value: &CStr,
    rest: &[Str],
) -> CallReply {
    let mut argv: Vec<*mut RedisModuleString> = rest.iter().map(|s| s.as_ptr()).collect();
    // SAFETY: the context is live; "s" takes the key (borrowed by the caller until the call
    // returns), "c" a C string the server copies into a string of its own (refcount 1, so the
    // command can encode it), "v" a vector of `argv.len()` strings, borrowed as the key.
    let reply = unsafe {
        raw::RedisModule_Call.unwrap()(
            ctx.as_ptr(),
            command.as_ptr(),
            c"scv".as_ptr(),
            key.as_ptr(),
            value.as_ptr(),
            argv.as_mut_ptr(),
            argv.len(),
        )
    };
    CallReply(NonNull::new(reply))
}

/// Runs a Redis command from the module. With `replicate`, the command is a write whose exact
/// arguments (absolute times, generated keys) replicate and reach the AOF as the effect, wrapped
/// with the command's other effects in one MULTI/EXEC; a command that changes nothing replicates
/// nothing.
pub fn redis_call(ctx: Ctx, command: &CStr, args: &[&[u8]], replicate: bool) -> CallReply {
    let strings: Vec<OwnedString> = args.iter().map(|a| OwnedString::new(ctx, a)).collect();
    call_strs(ctx, command, &strings, replicate)
}

/// A server string an argument of `RedisModule_Call` can be: borrowed or owned.
trait Arg {
    fn ptr(&self) -> *mut RedisModuleString;
}

impl Arg for Str<'_> {
    fn ptr(&self) -> *mut RedisModuleString {
        self.as_ptr()
    }
}

impl Arg for OwnedString {
    fn ptr(&self) -> *mut RedisModuleString {
        self.as_str().as_ptr()
    }
}

/// `RedisModule_Call` on strings the caller holds until it returns. Up to three go one per
/// `s` of the format: the server then sizes its argument vector once (a `v` vector makes it
/// grow it), and no vector of pointers is collected here.
fn call_strs(ctx: Ctx, command: &CStr, args: &[impl Arg], replicate: bool) -> CallReply {
    // SAFETY: the field is a function pointer the module API filled in at load.
    let call = unsafe { raw::RedisModule_Call.unwrap() };
    let (c, name) = (ctx.as_ptr(), command.as_ptr());
    let format = |plain: &'static CStr, replicated: &'static CStr| {
        if replicate { replicated } else { plain }.as_ptr()
    };
    let reply = match args {
        // SAFETY: the context is live; each `s` takes one string, which the caller holds
        // until the call returns (so for the next two arms).
        [a] => unsafe { call(c, name, format(c"s", c"!s"), a.ptr()) },
        // SAFETY: as above.
        [a, b] => unsafe { call(c, name, format(c"ss", c"!ss"), a.ptr(), b.ptr()) },
        // SAFETY: as above.
        [a, b, d] => unsafe {
            let f = format(c"sss", c"!sss");
            call(c, name, f, a.ptr(), b.ptr(), d.ptr())
        },
        _ => {
            let mut argv: Vec<*mut RedisModuleString> = args.iter().map(Arg::ptr).collect();
            // SAFETY: the context is live; "v" takes a vector of `argv.len()` strings, each
            // held by the caller until the call returns.
            unsafe { call(c, name, format(c"v", c"!v"), argv.as_mut_ptr(), argv.len()) }
        }
    };
    CallReply(NonNull::new(reply))
}

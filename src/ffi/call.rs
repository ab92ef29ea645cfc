//! Running a Redis command from the module (`RedisModule_Call`), its reply freed on drop.

use std::ffi::{c_char, c_void, CStr};
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

/// Runs a Redis command from the module. With `replicate`, the command is a write whose exact
/// arguments (absolute times, generated keys) replicate and reach the AOF as the effect, wrapped
/// with the command's other effects in one MULTI/EXEC; a command that changes nothing replicates
/// nothing.
pub fn redis_call(ctx: Ctx, command: &CStr, args: &[&[u8]], replicate: bool) -> CallReply {
    let strings: Vec<OwnedString> = args.iter().map(|a| OwnedString::new(ctx, a)).collect();
    call_strs(ctx, command, &strings, replicate)
}

/// An argument of `RedisModule_Call`: a server string (`s`), or a C string (`c`) the server
/// copies into a new string of its own, which the command may then encode as a client's
/// argument (`SET` stores a small integer as the server's shared one; a string the module
/// passes is shared with it, so never encoded).
trait Arg {
    fn ptr(&self) -> *mut c_void;
    fn text(&self) -> Option<&CStr> {
        None
    }
}

impl Arg for Str<'_> {
    fn ptr(&self) -> *mut c_void {
        self.as_ptr().cast()
    }
}

impl Arg for OwnedString {
    fn ptr(&self) -> *mut c_void {
        self.as_str().as_ptr().cast()
    }
}

/// A server string the caller holds, or a client's text (see [`Arg`]).
pub enum CallArg<'a> {
    Str(Str<'a>),
    Text(&'a CStr),
}

impl Arg for CallArg<'_> {
    fn ptr(&self) -> *mut c_void {
        match self {
            CallArg::Str(s) => s.ptr(),
            CallArg::Text(t) => t.as_ptr().cast_mut().cast(),
        }
    }

    fn text(&self) -> Option<&CStr> {
        match self {
            CallArg::Str(_) => None,
            CallArg::Text(t) => Some(t),
        }
    }
}

/// Runs a Redis command from the module on `args` (strings borrowed until it returns, texts
/// passed as a client's); replicates nothing. With a text, at most four arguments (see
/// [`call_vector`]).
pub fn redis_call_args(ctx: Ctx, command: &CStr, args: &[CallArg]) -> CallReply {
    call_strs(ctx, command, args, false)
}

/// The format of `RedisModule_Call` for up to four `args`, one letter each (`!` first to
/// replicate), NUL-terminated.
fn format_of(args: &[impl Arg], replicate: bool) -> [u8; 6] {
    let mut format = [0; 6];
    let letters = args
        .iter()
        .map(|a| if a.text().is_some() { b'c' } else { b's' });
    if replicate {
        format[0] = b'!';
    }
    let slots = &mut format[usize::from(replicate)..5];
    for (slot, letter) in slots.iter_mut().zip(letters) {
        *slot = letter;
    }
    format
}

/// `RedisModule_Call` on strings the caller holds until it returns. Up to four go one per
/// letter of the format: the server then sizes its argument vector once (a `v` vector makes
/// it grow it), and no vector of pointers is collected here. Texts go only this way.
fn call_strs<A: Arg>(ctx: Ctx, command: &CStr, args: &[A], replicate: bool) -> CallReply {
    // SAFETY: the field is a function pointer the module API filled in at load.
    let call = unsafe { raw::RedisModule_Call.unwrap() };
    let (c, name) = (ctx.as_ptr(), command.as_ptr());
    let format = format_of(args, replicate);
    let f = format.as_ptr().cast::<c_char>();
    let reply = match args {
        // SAFETY: the context is live; the format has one letter per argument: `s` takes a
        // string, `c` a C string, each held by the caller until the call returns (so for the
        // next three arms).
        [a] => unsafe { call(c, name, f, a.ptr()) },
        // SAFETY: as above.
        [a, b] => unsafe { call(c, name, f, a.ptr(), b.ptr()) },
        // SAFETY: as above.
        [a, b, d] => unsafe { call(c, name, f, a.ptr(), b.ptr(), d.ptr()) },
        // SAFETY: as above.
        [a, b, d, e] => unsafe { call(c, name, f, a.ptr(), b.ptr(), d.ptr(), e.ptr()) },
        _ => return call_vector(ctx, command, args, replicate),
    };
    CallReply(NonNull::new(reply))
}

/// `RedisModule_Call` with a vector (`v`) of strings: none, or more than four. No text goes
/// here: a vector holds only strings, and the command never encodes a string of the module's
/// as it would a client's text (a `c` letter), so a text past four would be stored otherwise.
/// The one caller with a text, `Key::set_by_command`, passes four (`SET key value PXAT at`;
/// tests/ratelimit.rs checks the values are stored as integers).
fn call_vector<A: Arg>(ctx: Ctx, command: &CStr, args: &[A], replicate: bool) -> CallReply {
    assert!(
        args.iter().all(|a| a.text().is_none()),
        "a client's text goes only by a format letter: at most four arguments"
    );
    let mut argv: Vec<*mut RedisModuleString> = args.iter().map(|a| a.ptr().cast()).collect();
    let format = if replicate { c"!v" } else { c"v" };
    // SAFETY: the context is live; "v" takes a vector of `argv.len()` strings (no text: checked
    // above), each held by the caller until the call returns.
    let reply = unsafe {
        raw::RedisModule_Call.unwrap()(
            ctx.as_ptr(),
            command.as_ptr(),
            format.as_ptr(),
            argv.as_mut_ptr(),
            argv.len(),
        )
    };
    CallReply(NonNull::new(reply))
}

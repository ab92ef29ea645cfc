//! Typed replication: a command and its arguments as values, replicated to replicas and the
//! AOF through `RedisModule_Replicate`'s `v` format (one vector of strings), so no format
//! string is ever matched to its arguments by hand.

use std::ffi::CStr;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw::{self, RedisModuleString};

use super::ctx::Ctx;
use super::string::{OwnedString, Str};

/// One argument of a replicated command.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    /// A server string the caller holds (a key's name, an argument): passed as it is.
    Str(Str<'a>),
    Bytes(&'a [u8]),
    Int(i64),
    /// A token that never changes (`PXAT`, ...): one server string made once and kept.
    Retained(&'static Retained),
}

/// A string that never changes, made on first use and kept for the module's life: passing it
/// costs a reference count, where a fresh string costs an allocation, a copy and a free.
pub struct Retained {
    bytes: &'static [u8],
    raw: AtomicPtr<RedisModuleString>,
}

impl Retained {
    pub const fn new(bytes: &'static [u8]) -> Self {
        Self {
            bytes,
            raw: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn as_ptr(&self) -> *mut RedisModuleString {
        let made = self.raw.load(Ordering::Acquire);
        if !made.is_null() {
            return made;
        }
        // SAFETY: a null context makes a string outside automatic memory management, owned
        // here; the server copies the bytes.
        let raw = unsafe {
            raw::RedisModule_CreateString.unwrap()(
                ptr::null_mut(),
                self.bytes.as_ptr().cast(),
                self.bytes.len(),
            )
        };
        // Commands run on the main thread, so no other one can be racing here; still, a
        // loser of the exchange frees its copy and uses the winner's.
        match self
            .raw
            .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => raw,
            Err(winner) => {
                // SAFETY: `raw` is ours, never shared.
                unsafe { raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), raw) };
                winner
            }
        }
    }
}

/// Most replicated commands are short: their argument vector stays on the stack.
const INLINE: usize = 8;

impl Ctx<'_> {
    /// Replicates `command args...` to replicas and the AOF (wrapped with the command's other
    /// effects in one MULTI/EXEC): the effect, never the caller's command.
    pub fn replicate(self, command: &CStr, args: &[Arg]) {
        let n = args.len();
        if n <= INLINE {
            let mut argv = [ptr::null_mut(); INLINE];
            let mut held: [Option<OwnedString>; INLINE] = [const { None }; INLINE];
            self.strings_of(args, &mut argv[..n], &mut held[..n]);
            self.replicate_argv(command, &mut argv[..n]);
        } else {
            let mut argv = vec![ptr::null_mut(); n];
            let mut held: Vec<Option<OwnedString>> = (0..n).map(|_| None).collect();
            self.strings_of(args, &mut argv, &mut held);
            self.replicate_argv(command, &mut argv);
        }
    }

    /// Each argument as a server string: the caller's own, or one made and held in `held`.
    fn strings_of(
        self,
        args: &[Arg],
        argv: &mut [*mut RedisModuleString],
        held: &mut [Option<OwnedString>],
    ) {
        for ((arg, slot), hold) in args.iter().zip(argv).zip(held) {
            *slot = match *arg {
                Arg::Str(s) => s.as_ptr(),
                // The server takes its own reference; the string is never modified.
                Arg::Retained(r) => r.as_ptr(),
                Arg::Bytes(b) => hold.insert(OwnedString::new(self, b)).as_str().as_ptr(),
                Arg::Int(n) => hold
                    .insert(OwnedString::from_i64(self, n))
                    .as_str()
                    .as_ptr(),
            };
        }
    }

    fn replicate_argv(self, command: &CStr, argv: &mut [*mut RedisModuleString]) {
        // SAFETY: the context is live; "v" takes a vector of `argv.len()` strings, each live
        // until the call returns (borrowed by the caller or held by `replicate`); the server
        // takes its own references.
        unsafe {
            raw::RedisModule_Replicate.unwrap()(
                self.as_ptr(),
                command.as_ptr(),
                c"v".as_ptr(),
                argv.as_mut_ptr(),
                argv.len(),
            );
        }
    }
}

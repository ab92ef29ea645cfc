//! Typed replication: a command and its arguments as values, replicated to replicas and the
//! AOF through `RedisModule_Replicate`, so no format string is ever matched to its arguments
//! by hand. A fixed shape is a tuple (`(key, value, &PXAT, at_ms)`): its format is made from
//! its element types and the arguments passed as the server's own format reads them, so the hot
//! path costs what a hand-written call would; an option token that never changes is a
//! [`Token`], passed by reference. A list of any length is a slice of strings,
//! passed as one vector (the `v` format).

use std::ffi::{c_char, CStr};

use redis_module::raw::{self, RedisModuleString};

use super::ctx::Ctx;
use super::string::{OwnedString, Str, Token};
use crate::text::StackText;

/// One element of a replicated tuple: its format character and the one C argument it passes.
///
/// # Safety
/// `Word` must be the C type `RedisModule_Replicate` reads for `FORMAT` (`s`: a string
/// pointer, `c`: a C string pointer, `l`: a long long), and `word` a valid one while `Held`
/// lives.
pub unsafe trait ReplArg {
    const FORMAT: u8;
    /// What keeps the argument alive during the call.
    type Held;
    type Word;
    fn hold(self, ctx: Ctx) -> Self::Held;
    fn word(held: &Self::Held) -> Self::Word;
}

// SAFETY: `s` reads a RedisModuleString pointer; the borrowed string lives for 'a.
unsafe impl<'a> ReplArg for Str<'a> {
    const FORMAT: u8 = b's';
    type Held = Str<'a>;
    type Word = *mut RedisModuleString;
    fn hold(self, _ctx: Ctx) -> Str<'a> {
        self
    }
    fn word(held: &Str<'a>) -> *mut RedisModuleString {
        held.as_ptr()
    }
}

// SAFETY: `s` reads a RedisModuleString pointer; the string made is held until after the call.
unsafe impl ReplArg for &[u8] {
    const FORMAT: u8 = b's';
    type Held = OwnedString;
    type Word = *mut RedisModuleString;
    fn hold(self, ctx: Ctx) -> OwnedString {
        OwnedString::new(ctx, self)
    }
    fn word(held: &OwnedString) -> *mut RedisModuleString {
        held.as_str().as_ptr()
    }
}

// SAFETY: `s` reads a RedisModuleString pointer; a token's string lives as long as the module.
unsafe impl ReplArg for &'static Token {
    const FORMAT: u8 = b's';
    type Held = Str<'static>;
    type Word = *mut RedisModuleString;
    fn hold(self, _ctx: Ctx) -> Str<'static> {
        self.as_str()
    }
    fn word(held: &Str<'static>) -> *mut RedisModuleString {
        held.as_ptr()
    }
}

// SAFETY: `c` reads a NUL-terminated C string pointer, live for 'a.
unsafe impl<'a> ReplArg for &'a CStr {
    const FORMAT: u8 = b'c';
    type Held = &'a CStr;
    type Word = *const c_char;
    fn hold(self, _ctx: Ctx) -> &'a CStr {
        self
    }
    fn word(held: &&'a CStr) -> *const c_char {
        held.as_ptr()
    }
}

// SAFETY: `c` reads a NUL-terminated C string pointer; the text is held until after the call.
//
// An integer goes as its decimal text, not as `l`: `l` makes an int-encoded object, which the
// AOF feed (`catAppendOnlyGenericCommand`) decodes into a new string, and the replicas' feed
// formats again, for every write; the text is made once here, on the stack, and becomes an
// embedded string both use as it is (callgrind, CL.THROTTLE with an AOF and a replica: see
// BENCHMARKS.md). The replicated bytes are the same.
unsafe impl ReplArg for i64 {
    const FORMAT: u8 = b'c';
    type Held = StackText;
    type Word = *const c_char;
    fn hold(self, _ctx: Ctx) -> StackText {
        StackText::int(self)
    }
    fn word(held: &StackText) -> *const c_char {
        held.as_c_str().as_ptr()
    }
}

/// A replicated command's arguments of a fixed shape: a tuple of [`ReplArg`]s.
pub trait ReplArgs {
    fn replicate(self, ctx: Ctx, command: &CStr);
}

macro_rules! repl_args {
    ($($t:ident $v:ident $h:ident),+) => {
        impl<$($t: ReplArg),+> ReplArgs for ($($t,)+) {
            fn replicate(self, ctx: Ctx, command: &CStr) {
                let ($($v,)+) = self;
                $(let $h = $v.hold(ctx);)+
                let format = [$($t::FORMAT,)+ 0];
                // SAFETY: the context is live; the format has one character per argument, each
                // passed as the C type that character reads (`ReplArg`'s contract) and alive
                // until the call returns (held above); the format ends with a NUL.
                unsafe {
                    raw::RedisModule_Replicate.unwrap()(
                        ctx.as_ptr(),
                        command.as_ptr(),
                        format.as_ptr().cast::<c_char>(),
                        $($t::word(&$h)),+
                    );
                }
            }
        }
    };
}

repl_args!(A a ha);
repl_args!(A a ha, B b hb);
repl_args!(A a ha, B b hb, C c hc);
repl_args!(A a ha, B b hb, C c hc, D d hd);
repl_args!(A a ha, B b hb, C c hc, D d hd, E e he);
repl_args!(A a ha, B b hb, C c hc, D d hd, E e he, F f hf);
repl_args!(A a ha, B b hb, C c hc, D d hd, E e he, F f hf, G g hg);
repl_args!(A a ha, B b hb, C c hc, D d hd, E e he, F f hf, G g hg, H h hh);
repl_args!(A a ha, B b hb, C c hc, D d hd, E e he, F f hf, G g hg, H h hh, I i hi);

impl Ctx<'_> {
    /// Replicates `command args...` to replicas and the AOF (wrapped with the command's other
    /// effects in one MULTI/EXEC): the effect, never the caller's command. `args` is a tuple.
    pub fn replicate(self, command: &CStr, args: impl ReplArgs) {
        args.replicate(self, command);
    }

    /// Like [`Ctx::replicate`], for any number of strings, passed as one vector (`v`).
    pub fn replicate_list(self, command: &CStr, args: &[Str]) {
        let mut argv: Vec<*mut RedisModuleString> = args.iter().map(|s| s.as_ptr()).collect();
        // SAFETY: the context is live; "v" takes a vector of `argv.len()` strings, each
        // borrowed by the caller until the call returns; the server takes its own references.
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

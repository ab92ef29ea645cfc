//! Server strings: borrowed ([`Str`]) and owned ([`OwnedString`]), their bytes lent for no
//! longer than the string lives.

use std::ffi::CStr;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::OnceLock;

use redis_module::raw::{self, RedisModuleString};

use super::ctx::Ctx;

/// A server string borrowed for `'a`: an argument of the running command, a key's name, an
/// [`OwnedString`]. The module never modifies a string it borrows.
#[derive(Clone, Copy)]
pub struct Str<'a> {
    raw: NonNull<RedisModuleString>,
    _life: PhantomData<&'a RedisModuleString>,
}

impl<'a> Str<'a> {
    /// # Safety
    /// `raw` is a live string that stays alive and unmodified for `'a`.
    pub(super) unsafe fn from_raw(raw: *mut RedisModuleString) -> Self {
        Self {
            raw: NonNull::new(raw).expect("the server passes strings"),
            _life: PhantomData,
        }
    }

    pub(super) fn as_ptr(self) -> *mut RedisModuleString {
        self.raw.as_ptr()
    }

    /// The string's bytes, for as long as the string is borrowed.
    pub fn bytes(self) -> &'a [u8] {
        let mut len = 0;
        // SAFETY: the string is live for 'a (the type's invariant).
        let ptr = unsafe { raw::RedisModule_StringPtrLen.unwrap()(self.as_ptr(), &mut len) };
        if ptr.is_null() {
            return &[];
        }
        // SAFETY: `ptr` points at the string's `len` bytes, which live unmodified for 'a.
        unsafe { slice::from_raw_parts(ptr.cast::<u8>(), len) }
    }
}

/// A string the module owns, freed on drop. The module never enables automatic memory
/// management, so a string is not tied to the context that made it.
pub struct OwnedString {
    raw: NonNull<RedisModuleString>,
}

impl OwnedString {
    pub fn new(ctx: Ctx, bytes: &[u8]) -> Self {
        // SAFETY: the context is live; the server copies `bytes`.
        let raw = unsafe {
            raw::RedisModule_CreateString.unwrap()(ctx.as_ptr(), bytes.as_ptr().cast(), bytes.len())
        };
        // SAFETY: the server made the string for us to own.
        unsafe { Self::adopt(raw) }.expect("the server allocates strings")
    }

    pub fn from_i64(ctx: Ctx, n: i64) -> Self {
        // SAFETY: the context is live.
        let raw = unsafe { raw::RedisModule_CreateStringFromLongLong.unwrap()(ctx.as_ptr(), n) };
        // SAFETY: the server made the string for us to own.
        unsafe { Self::adopt(raw) }.expect("the server allocates strings")
    }

    /// Takes ownership of a string the server handed over (None for no string).
    ///
    /// # Safety
    /// `raw` is null or a string the caller owns (one reference to free).
    pub(super) unsafe fn adopt(raw: *mut RedisModuleString) -> Option<Self> {
        NonNull::new(raw).map(|raw| Self { raw })
    }

    pub fn as_str(&self) -> Str<'_> {
        // SAFETY: the string lives as long as `self`, and no one modifies it.
        unsafe { Str::from_raw(self.raw.as_ptr()) }
    }

    pub fn bytes(&self) -> &[u8] {
        self.as_str().bytes()
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: we own one reference; a null context is allowed for a string outside
        // automatic memory management.
        unsafe { raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), self.raw.as_ptr()) };
    }
}

/// A string that never changes (an option token such as `PXAT`), made on first use and kept
/// for the module's life: a replicated command takes it by reference, which costs a reference
/// count instead of making and freeing an object on every call.
pub struct Token {
    text: &'static CStr,
    made: OnceLock<Kept>,
}

struct Kept(NonNull<RedisModuleString>);

// SAFETY: a token's string is made and lent only by commands, on the server's main thread
// (the module runs no threads of its own), and nothing ever modifies it.
unsafe impl Send for Kept {}
// SAFETY: as above.
unsafe impl Sync for Kept {}

impl Token {
    pub const fn new(text: &'static CStr) -> Self {
        Self {
            text,
            made: OnceLock::new(),
        }
    }

    /// A token for a name defined elsewhere as text (a field name in `core`): in a `static`,
    /// a `text` that differs from `name` fails the build, so the two cannot drift apart.
    pub const fn named(text: &'static CStr, name: &str) -> Self {
        let (a, b) = (text.to_bytes(), name.as_bytes());
        assert!(
            a.len() == b.len(),
            "a token differs from the name it stands for"
        );
        let mut i = 0;
        while i < a.len() {
            assert!(a[i] == b[i], "a token differs from the name it stands for");
            i += 1;
        }
        Self::new(text)
    }

    /// The token's text, as a C string.
    pub const fn c_str(&self) -> &'static CStr {
        self.text
    }

    pub fn as_str(&'static self) -> Str<'static> {
        let kept = self.made.get_or_init(|| {
            let bytes = self.text.to_bytes();
            // SAFETY: a null context makes a string outside automatic memory management,
            // owned here and never freed (it lives as long as the module).
            let raw = unsafe {
                raw::RedisModule_CreateString.unwrap()(
                    ptr::null_mut(),
                    bytes.as_ptr().cast(),
                    bytes.len(),
                )
            };
            Kept(NonNull::new(raw).expect("the server allocates strings"))
        });
        // SAFETY: the string lives as long as the module and is never modified.
        unsafe { Str::from_raw(kept.0.as_ptr()) }
    }
}

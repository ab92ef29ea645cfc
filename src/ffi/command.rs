//! The command boundary: registration, the C entry point of every command, the panic guard,
//! key-position requests, and [`Call`] (one invocation's context, key and arguments).

use std::ffi::{c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::slice;

use patterns_core::command::{Args as Parsed, CmdError, CommandDef, Flags, Keys};
use redis_module::raw::{self, RedisModuleCtx, RedisModuleString};

use super::ctx::Ctx;
use super::reply::{send, send_error, Reply, OK};
use super::string::Str;

/// A command's C entry point (made by [`command!`](crate::command)).
pub type Entry = extern "C" fn(*mut RedisModuleCtx, *mut *mut RedisModuleString, c_int) -> c_int;

/// A command's body: the invocation in, the reply (or error) out.
pub type Body = fn(&Call) -> Result<Reply, CmdError>;

/// One command of a family's list: its definition and its entry point.
pub struct Command {
    pub def: &'static CommandDef,
    pub entry: Entry,
}

/// One entry of a family's command list: `command!(DEF, body)` pairs the definition with an
/// entry point that runs `body` through [`dispatch`].
#[macro_export]
macro_rules! command {
    ($def:path, $body:expr) => {{
        extern "C" fn entry(
            ctx: *mut $crate::ffi::RawCtx,
            argv: *mut *mut $crate::ffi::RawString,
            argc: std::ffi::c_int,
        ) -> std::ffi::c_int {
            $crate::ffi::dispatch(ctx, argv, argc, &$def, $body)
        }
        $crate::ffi::Command { def: &$def, entry }
    }};
}

/// Runs `body` with panics caught: the server must never see an unwind. A panic is logged
/// nowhere and leaves `fallback`.
pub fn guard<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Runs a server callback's body with the callback's context, under the panic guard.
pub(super) fn callback(ctx: *mut RedisModuleCtx, body: impl FnOnce(Ctx)) {
    guard((), || {
        // SAFETY: the server calls back with a live context, valid for this call only; the body
        // cannot keep it (it takes a context of any lifetime, so none it could store).
        body(unsafe { Ctx::from_raw(ctx) })
    })
}

/// Registers a command under its definition's name (lower case) with its flags and key
/// positions (for keys after an option token, the range covers the first key; the key specs
/// of `docs::describe` then give Redis the rest), and its ACL categories where the server
/// takes them (`@patterns` too when `own_category`).
pub(super) fn register(ctx: Ctx, command: &Command, own_category: bool) -> Result<(), String> {
    let def = command.def;
    let name = CString::new(def.name.to_ascii_lowercase()).map_err(|e| e.to_string())?;
    // Keys after a token: Redis 7.0's Cluster routing reads only the legacy key range, so the
    // command also answers key-position requests (see `dispatch`).
    // Keys in blocks: no range holds them, so Redis asks the command for their positions.
    let flags = match def.key_positions {
        Keys::FirstAndAfter { .. } | Keys::Blocks { .. } => def.flags.and(Flags::GETKEYS_API),
        _ => def.flags,
    };
    let flags = CString::new(flags.to_string()).map_err(|e| e.to_string())?;
    let (first, last) = match def.key_positions {
        Keys::All => (1, -1),
        Keys::First | Keys::FirstAndAfter { .. } => (1, 1),
        Keys::Blocks { .. } => (0, 0),
    };
    // SAFETY: the load context is live; the server copies the name and the flags.
    let status = unsafe {
        raw::RedisModule_CreateCommand.unwrap()(
            ctx.as_ptr(),
            name.as_ptr(),
            Some(command.entry),
            flags.as_ptr(),
            first,
            last,
            first,
        )
    };
    if status != OK {
        return Err(format!("could not register {}", def.name));
    }
    set_categories(ctx, def, &name, own_category)
}

/// Puts the command in its ACL categories; a server without
/// `RedisModule_SetCommandACLCategories` (Redis 7.0) has only the categories of its flags.
fn set_categories(
    ctx: Ctx,
    def: &CommandDef,
    name: &CString,
    own_category: bool,
) -> Result<(), String> {
    // SAFETY: the field is a function pointer the module API filled in at load.
    let Some(set) = (unsafe { raw::RedisModule_SetCommandACLCategories }) else {
        return Ok(());
    };
    let categories = CString::new(def.acl_categories(own_category)).map_err(|e| e.to_string())?;
    // SAFETY: the load context is live; the name is a C string the call only reads.
    let command = unsafe { raw::RedisModule_GetCommand.unwrap()(ctx.as_ptr(), name.as_ptr()) };
    // SAFETY: `command` is registered (checked non-null); the server copies the categories.
    if command.is_null() || unsafe { set(command, categories.as_ptr()) } != OK {
        return Err(format!("could not set the ACL categories of {}", def.name));
    }
    Ok(())
}

/// Adds the module's own ACL category (`@patterns`) where the server lets a module add one
/// (`RedisModule_AddACLCategory`, only during OnLoad); whether the category exists. A category
/// outlives `MODULE UNLOAD`, so a module loaded again finds it there (`EBUSY`).
pub(super) fn add_own_category(ctx: Ctx, name: &CStr) -> Result<bool, String> {
    // SAFETY: the field is a function pointer the module API filled in at load.
    let Some(add) = (unsafe { raw::RedisModule_AddACLCategory }) else {
        return Ok(false);
    };
    // SAFETY: the load context is live (we are in OnLoad); the server copies the name.
    if unsafe { add(ctx.as_ptr(), name.as_ptr()) } == OK {
        return Ok(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EBUSY) => Ok(true),
        _ => Err(format!("could not add the ACL category {name:?}")),
    }
}

/// The command boundary: parses nothing itself, runs `body` with panics caught (a bug
/// replies with an error instead of taking the server down; bodies compute everything before
/// they write, so an unwind leaves no half-write), and replies. Key-position requests and the
/// reply itself run under the guard too.
pub fn dispatch(
    ctx: *mut RedisModuleCtx,
    argv: *mut *mut RedisModuleString,
    argc: c_int,
    def: &'static CommandDef,
    body: Body,
) -> c_int {
    guard((), || {
        // SAFETY: the server calls a command with its live context, for this call only.
        let ctx = unsafe { Ctx::from_raw(ctx) };
        let argv: &[*mut RedisModuleString] = match argv.is_null() {
            true => &[],
            // SAFETY: the server passes `argc` live arguments, alive for the whole call.
            false => unsafe { slice::from_raw_parts(argv, argc as usize) },
        };
        // SAFETY: as above, each argument is a live string for the whole call.
        let args = || argv.iter().map(|a| unsafe { Str::from_raw(*a) });
        let asks_keys = matches!(
            def.key_positions,
            Keys::FirstAndAfter { .. } | Keys::Blocks { .. }
        );
        // SAFETY: the context is live.
        let position_request =
            || unsafe { raw::RedisModule_IsKeysPositionRequest.unwrap()(ctx.as_ptr()) };
        if asks_keys && position_request() != 0 {
            report_keys(ctx, def, args());
            return;
        }
        let result = guard(Err(CmdError::Internal), || {
            let mut args = args();
            let (Some(_name), Some(key)) = (args.next(), args.next()) else {
                return Err(CmdError::WrongArity(def.name));
            };
            body(&Call::new(ctx, key, argv, args))
        });
        match result {
            // Sent by the body (`Ctx::reply_now`); bound by value, so nothing is left to drop.
            Ok(Reply::Sent(_sent)) => {}
            Ok(reply) => send(ctx, reply),
            Err(err) => send_error(ctx, &err.to_string()),
        }
    });
    OK
}

/// Answers a key-position request as the definition reads the arguments: for keys after a
/// token, the first argument and every argument after the first `token` found from position
/// `from` on (as the key specs do); for blocks, each block's key.
fn report_keys<'a>(ctx: Ctx, def: &CommandDef, args: impl Iterator<Item = Str<'a>>) {
    let args: Vec<&[u8]> = args.map(Str::bytes).collect();
    // SAFETY: the context is live and answering a key-position request.
    let key_at =
        |pos: usize| unsafe { raw::RedisModule_KeyAtPos.unwrap()(ctx.as_ptr(), pos as c_int) };
    match def.key_positions {
        Keys::FirstAndAfter { token, from } => {
            if args.len() > 1 {
                key_at(1);
            }
            let from = usize::try_from(from).unwrap_or(0).max(2);
            let found = args
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, a)| a.eq_ignore_ascii_case(token.as_bytes()));
            if let Some((at, _)) = found {
                (at + 1..args.len()).for_each(key_at);
            }
        }
        Keys::Blocks { .. } => {
            let after_name = args.get(1..).unwrap_or_default();
            for key in def.block_keys(after_name) {
                key_at(key + 1);
            }
        }
        Keys::First | Keys::All => {}
    }
}

/// Most commands have few arguments: keep them on the stack.
const INLINE_ARGS: usize = 12;

/// One invocation: the context, the key and the arguments after it, all alive for `'a`.
pub struct Call<'a> {
    ctx: Ctx<'a>,
    key: Str<'a>,
    rest: Args<'a>,
    /// Every argument, the name first, for a command with keys in several places.
    argv: &'a [*mut RedisModuleString],
}

enum Args<'a> {
    Inline([&'a [u8]; INLINE_ARGS], usize),
    Heap(Vec<&'a [u8]>),
}

impl<'a> Call<'a> {
    /// The invocation of `key` with the arguments after it (`args`). They are written where
    /// the call lies, not built apart and moved: the inline array is most of its size.
    fn new(
        ctx: Ctx<'a>,
        key: Str<'a>,
        argv: &'a [*mut RedisModuleString],
        args: impl ExactSizeIterator<Item = Str<'a>>,
    ) -> Self {
        let mut call = Self {
            ctx,
            key,
            rest: Args::Inline([&[]; INLINE_ARGS], args.len()),
            argv,
        };
        match &mut call.rest {
            Args::Inline(inline, _) if args.len() <= INLINE_ARGS => {
                for (slot, arg) in inline.iter_mut().zip(args) {
                    *slot = arg.bytes();
                }
            }
            rest => *rest = Args::Heap(args.map(Str::bytes).collect()),
        }
        call
    }

    pub fn ctx(&self) -> Ctx<'a> {
        self.ctx
    }

    /// The command's key (its first argument).
    pub fn key(&self) -> Str<'a> {
        self.key
    }

    /// The key's name.
    pub fn key_name(&self) -> &'a [u8] {
        self.key.bytes()
    }

    /// The `i`-th argument after the command's name (0: the key), as a server string: a key
    /// of a command whose keys are in several places ([`Keys::Blocks`]).
    pub fn arg(&self, i: usize) -> Option<Str<'a>> {
        // SAFETY: the server passed these arguments live for the whole call ('a).
        self.argv.get(i + 1).map(|a| unsafe { Str::from_raw(*a) })
    }

    /// Every argument after the command's name, the key first.
    pub fn words(&self) -> Vec<&'a [u8]> {
        let mut words = Vec::with_capacity(1 + self.rest().len());
        words.push(self.key.bytes());
        words.extend_from_slice(self.rest());
        words
    }

    /// The arguments after the key.
    pub fn rest(&self) -> &[&'a [u8]] {
        match &self.rest {
            Args::Inline(args, len) => &args[..*len],
            Args::Heap(args) => args,
        }
    }

    /// The arguments after the key, parsed by `def` (its command's definition) to be read by
    /// name. Inlined like `CommandDef::parse`, so each name still resolves at compile time.
    #[inline(always)]
    pub fn parse(&self, def: &'static CommandDef) -> Result<Parsed<'_>, CmdError> {
        def.parse(self.rest())
    }
}

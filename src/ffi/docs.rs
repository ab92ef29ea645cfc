//! `COMMAND DOCS` / `COMMAND INFO` for every command, from its one `CommandDef`: summary,
//! complexity, arity (so Redis itself rejects a wrong argument count), key spec and arguments.
//! Uses `RedisModule_SetCommandInfo`, which Redis 7.0 has.

use std::ffi::{c_char, CString};
use std::ptr;

use patterns_core::command::{ArgKind, Block, CommandDef, Keys, OptValue, OptionDef};
use redis_module::raw;

use super::ctx::Ctx;

/// The release every command so far first appeared in (`MODULE LIST` shows the crate's
/// version, encoded; they agree while the crate is 0.1.0, and tests check it).
const SINCE: &str = "0.1.0";

/// Keeps the C strings alive until `SetCommandInfo` has copied them.
#[derive(Default)]
struct Strings(Vec<CString>);

impl Strings {
    fn add(&mut self, s: &str) -> *const c_char {
        let c = CString::new(s).expect("definitions hold no NUL");
        let p = c.as_ptr();
        self.0.push(c);
        p
    }
}

fn arg(
    strings: &mut Strings,
    name: &str,
    kind: raw::RedisModuleCommandArgType,
    token: Option<&str>,
    optional: bool,
) -> raw::RedisModuleCommandArg {
    let mut a = zeroed_arg();
    a.name = strings.add(name);
    a.type_ = kind;
    a.key_spec_index = if kind == raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY {
        0
    } else {
        -1
    };
    a.token = token.map_or(ptr::null(), |t| strings.add(t));
    if optional {
        a.flags = raw::REDISMODULE_CMD_ARG_OPTIONAL as i32;
    }
    a
}

/// An argument with every field empty: also the list terminator.
fn zeroed_arg() -> raw::RedisModuleCommandArg {
    // SAFETY: a C struct of pointers, integers and flags, for which all zeros means empty.
    unsafe { std::mem::zeroed() }
}

/// A key spec with every field empty: also the list terminator.
fn zeroed_spec() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: a C struct of pointers, integers, flags and unions of them, for which all zeros
    // means empty.
    unsafe { std::mem::zeroed() }
}

fn arg_type(kind: ArgKind) -> raw::RedisModuleCommandArgType {
    match kind {
        ArgKind::Text => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        ArgKind::Float => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_DOUBLE,
        _ => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
    }
}

/// A `oneof` block of pure tokens (`ASC|DESC`), its list pushed to `lists` to stay alive.
fn one_of(
    strings: &mut Strings,
    lists: &mut Vec<Vec<raw::RedisModuleCommandArg>>,
    name: &str,
    token: Option<&str>,
    words: &[&str],
) -> raw::RedisModuleCommandArg {
    let pure = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN;
    let mut list: Vec<raw::RedisModuleCommandArg> = words
        .iter()
        .map(|w| arg(strings, &w.to_ascii_lowercase(), pure, Some(w), false))
        .collect();
    list.push(zeroed_arg());
    let oneof = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF;
    let mut a = arg(strings, name, oneof, token, true);
    a.subargs = list.as_mut_ptr();
    lists.push(list);
    a
}

fn option_arg(
    strings: &mut Strings,
    lists: &mut Vec<Vec<raw::RedisModuleCommandArg>>,
    o: &OptionDef,
) -> raw::RedisModuleCommandArg {
    let name = o.token.to_ascii_lowercase();
    match o.value {
        OptValue::Flag => {
            let pure = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN;
            arg(strings, &name, pure, Some(o.token), true)
        }
        OptValue::Arg(v) => {
            let name = v.name.to_ascii_lowercase();
            arg(strings, &name, arg_type(v.kind), Some(o.token), true)
        }
        OptValue::Choice(words) => one_of(strings, lists, &name, Some(o.token), words),
        OptValue::Word(words) => one_of(
            strings,
            lists,
            &words.join("_").to_ascii_lowercase(),
            None,
            words,
        ),
        OptValue::Rest { .. } => {
            let string = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING;
            let mut a = arg(strings, &name, string, Some(o.token), true);
            a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as i32;
            a
        }
    }
}

/// A key spec: keys from a begin search to `lastkey` (0: that one key; -1: every argument
/// after it), read and updated in place, or only read by a `readonly` command (so ACL
/// read-only key patterns admit it).
fn key_spec(
    def: &CommandDef,
    begin: raw::RedisModuleKeySpecBeginSearchType,
    lastkey: i32,
) -> raw::RedisModuleCommandKeySpec {
    let mut spec = zeroed_spec();
    spec.flags = u64::from(if def.is_readonly() {
        raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS
    } else {
        raw::REDISMODULE_CMD_KEY_RW
            | raw::REDISMODULE_CMD_KEY_ACCESS
            | raw::REDISMODULE_CMD_KEY_UPDATE
    });
    spec.begin_search_type = begin;
    spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
    spec.fk.range.lastkey = lastkey;
    spec.fk.range.keystep = 1;
    spec.fk.range.limit = 0;
    spec
}

/// The key specs of `def.key_positions` (zero-terminated): the first argument, then for keys
/// after an option token, every argument after that token.
fn key_specs(def: &CommandDef, strings: &mut Strings) -> Vec<raw::RedisModuleCommandKeySpec> {
    let index = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    let first = |lastkey| {
        let mut spec = key_spec(def, index, lastkey);
        spec.bs.index.pos = 1;
        spec
    };
    let mut specs = match def.key_positions {
        Keys::First => vec![first(0)],
        Keys::All => vec![first(-1)],
        // Keys in blocks: no search finds them, so Redis asks the command (getkeys-api).
        Keys::Blocks { .. } => {
            let mut spec = key_spec(
                def,
                raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_UNKNOWN,
                0,
            );
            spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_UNKNOWN;
            vec![spec]
        }
        Keys::FirstAndAfter { token, from } => {
            let keyword = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
            let mut after = key_spec(def, keyword, -1);
            after.bs.keyword.keyword = strings.add(token);
            after.bs.keyword.startfrom = from;
            vec![first(0), after]
        }
    };
    specs.push(zeroed_spec());
    specs
}

/// The arguments of a command of blocks (`limit [limit ...]`): one repeated `oneof` of blocks,
/// each its token, its key and its kind's arguments. Lists are pushed to `lists` to stay alive.
fn blocks_args(
    strings: &mut Strings,
    lists: &mut Vec<Vec<raw::RedisModuleCommandArg>>,
    name: &str,
    kinds: &[Block],
) -> raw::RedisModuleCommandArg {
    let key = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY;
    let block = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK;
    let mut blocks: Vec<raw::RedisModuleCommandArg> = Vec::new();
    for kind in kinds {
        let def = kind.def;
        let key_name = def.syntax.split_whitespace().next().unwrap_or("key");
        let mut sub = vec![arg(strings, key_name, key, None, false)];
        for p in def.positionals {
            sub.push(arg(strings, p.arg.name, arg_type(p.arg.kind), None, false));
        }
        for o in def.options {
            sub.push(option_arg(strings, lists, o));
        }
        sub.push(zeroed_arg());
        let name = kind.token.to_ascii_lowercase();
        let mut a = arg(strings, &name, block, Some(kind.token), false);
        a.subargs = sub.as_mut_ptr();
        lists.push(sub);
        blocks.push(a);
    }
    blocks.push(zeroed_arg());
    let oneof = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF;
    let mut a = arg(strings, name, oneof, None, false);
    a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as i32;
    a.subargs = blocks.as_mut_ptr();
    lists.push(blocks);
    a
}

/// Describes one registered command to Redis.
pub(super) fn describe(ctx: Ctx, def: &CommandDef) -> Result<(), String> {
    let mut strings = Strings::default();
    let name = strings.add(&def.name.to_ascii_lowercase());
    // SAFETY: the load context is live and `name` a C string kept in `strings`.
    let command = unsafe { raw::RedisModule_GetCommand.unwrap()(ctx.as_ptr(), name) };
    if command.is_null() {
        return Err(format!("{} is not registered", def.name));
    }
    let key_name = def.syntax.split_whitespace().next().unwrap_or("key");
    let mut args = vec![arg(
        &mut strings,
        key_name,
        raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
        None,
        false,
    )];
    for p in def.positionals {
        let kind = arg_type(p.arg.kind);
        args.push(arg(
            &mut strings,
            p.arg.name,
            kind,
            None,
            p.default.is_some(),
        ));
    }
    // The `oneof` blocks' words, kept alive until SetCommandInfo has copied them.
    let mut word_lists: Vec<Vec<raw::RedisModuleCommandArg>> = Vec::new();
    if let Keys::Blocks { name, kinds } = def.key_positions {
        args = vec![blocks_args(&mut strings, &mut word_lists, name, kinds)];
    }
    // Before a trailing group, the options come right after the key (`CommandDef::options`).
    let first = if def.trailing.is_some() {
        1
    } else {
        args.len()
    };
    for (at, o) in (first..).zip(def.options) {
        let mut a = option_arg(&mut strings, &mut word_lists, o);
        // `TAGS tag [tag ...]`: the items are the keys of the second key spec.
        if matches!(def.key_positions, Keys::FirstAndAfter { token, .. } if token == o.token) {
            a.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY;
            a.key_spec_index = 1;
        }
        args.insert(at, a);
    }
    // A trailing variadic group (`[field value ...]`): one repeated block of string arguments.
    let mut group: Vec<raw::RedisModuleCommandArg>;
    if let Some(t) = def.trailing {
        // With every argument a key (`tag [tag ...]`), the group's items are keys too.
        let string = match def.key_positions {
            Keys::All => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
            _ => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        };
        group = t
            .names
            .iter()
            .map(|n| arg(&mut strings, n, string, None, false))
            .collect();
        group.push(zeroed_arg());
        let block = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK;
        let mut a = arg(&mut strings, &t.names.join("_"), block, None, t.min == 0);
        a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as i32;
        a.subargs = group.as_mut_ptr();
        args.push(a);
    }
    args.push(zeroed_arg());
    let mut key_specs = key_specs(def, &mut strings);
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: strings.add(def.summary),
        complexity: strings.add(def.complexity),
        since: strings.add(SINCE),
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: def.arity(),
        key_specs: key_specs.as_mut_ptr(),
        args: args.as_mut_ptr(),
    };
    // SAFETY: `command` is registered; every pointer in `info` (strings, argument and key spec
    // lists, each zero-terminated) lives until the call returns, and the server copies them.
    let status = unsafe { raw::RedisModule_SetCommandInfo.unwrap()(command, &info) };
    if status == raw::Status::Ok as i32 {
        Ok(())
    } else {
        Err(format!("SetCommandInfo refused {}", def.name))
    }
}

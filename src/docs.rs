//! `COMMAND DOCS` / `COMMAND INFO` for every command, from its one `CommandDef`: summary,
//! complexity, arity (so Redis itself rejects a wrong argument count), key spec and arguments.
//! Uses `RedisModule_SetCommandInfo`, which Redis 7.0 has.

use std::ffi::{c_char, CString};
use std::ptr;

use patterns_core::command::{CommandDef, Keys};
use redis_module::raw;
use redis_module::Context;

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
    let mut a: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
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

/// A key spec: keys from a begin search to `lastkey` (0: that one key; -1: every argument
/// after it), read and updated in place (and deleted, for tags).
fn key_spec(
    begin: raw::RedisModuleKeySpecBeginSearchType,
    lastkey: i32,
    delete: bool,
) -> raw::RedisModuleCommandKeySpec {
    let mut spec: raw::RedisModuleCommandKeySpec = unsafe { std::mem::zeroed() };
    let mut flags = raw::REDISMODULE_CMD_KEY_RW
        | raw::REDISMODULE_CMD_KEY_ACCESS
        | raw::REDISMODULE_CMD_KEY_UPDATE;
    if delete {
        flags |= raw::REDISMODULE_CMD_KEY_DELETE;
    }
    spec.flags = u64::from(flags);
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
        let mut spec = key_spec(index, lastkey, lastkey != 0);
        spec.bs.index.pos = 1;
        spec
    };
    let mut specs = match def.key_positions {
        Keys::First => vec![first(0)],
        Keys::All => vec![first(-1)],
        Keys::FirstAndAfter { token, from } => {
            let keyword = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
            let mut after = key_spec(keyword, -1, false);
            after.bs.keyword.keyword = strings.add(token);
            after.bs.keyword.startfrom = from;
            vec![first(0), after]
        }
    };
    specs.push(unsafe { std::mem::zeroed() });
    specs
}

/// Describes one registered command to Redis.
pub fn describe(ctx: &Context, def: &CommandDef) -> Result<(), String> {
    let mut strings = Strings::default();
    let name = strings.add(&def.name.to_ascii_lowercase());
    let command = unsafe { raw::RedisModule_GetCommand.unwrap()(ctx.get_raw(), name) };
    if command.is_null() {
        return Err(format!("{} is not registered", def.name));
    }
    let integer = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER;
    let key_name = def.syntax.split_whitespace().next().unwrap_or("key");
    let mut args = vec![arg(
        &mut strings,
        key_name,
        raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
        None,
        false,
    )];
    for p in def.positionals {
        args.push(arg(
            &mut strings,
            p.arg.name,
            integer,
            None,
            p.default.is_some(),
        ));
    }
    for o in def.options {
        let lower = o.token.to_ascii_lowercase();
        args.push(match o.value {
            Some(v) => arg(
                &mut strings,
                &v.name.to_ascii_lowercase(),
                integer,
                Some(o.token),
                true,
            ),
            None => arg(
                &mut strings,
                &lower,
                raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
                Some(o.token),
                true,
            ),
        });
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
        group.push(unsafe { std::mem::zeroed() });
        let block = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK;
        let mut a = arg(&mut strings, &t.names.join("_"), block, None, t.min == 0);
        a.flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE as i32;
        a.subargs = group.as_mut_ptr();
        args.push(a);
    }
    args.push(unsafe { std::mem::zeroed() });
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
    let status = unsafe { raw::RedisModule_SetCommandInfo.unwrap()(command, &info) };
    if status == raw::Status::Ok as i32 {
        Ok(())
    } else {
        Err(format!("SetCommandInfo refused {}", def.name))
    }
}

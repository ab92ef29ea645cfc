//! The Lua twin: a Redis Functions library (`FUNCTION LOAD`) and one plain script per command
//! (`EVAL`/`EVALSHA`), generated from the same [`CommandDef`]s the module registers.
//!
//! What is generated: every command's argument table (names, order, defaults, minimums, option
//! tokens) and every error text, straight from the Rust definitions and `CmdError`'s Display;
//! the glue that parses and dispatches. What is written per target: the algorithm bodies of
//! each family (`<family>::lua`), guarded by the differential tests.
//!
//! Lua 5.1 numbers are doubles, exact only up to 2^53. The twin refuses (with its own error)
//! any integer argument above 2^53 and any limiter whose intermediate products could pass it,
//! instead of answering inexactly.

use crate::command::{
    Arg, ArgKind, CmdError, CommandDef, Keys, OptValue, OptionDef, LUA_EXACT_MAX,
};

/// The Functions library's name (`#!lua name=patterns`).
pub const LIBRARY: &str = "patterns";

/// A family's contribution to the twin.
pub struct Family {
    /// Lua constants the bodies use: (name, value as a Lua expression).
    pub constants: Vec<(&'static str, String)>,
    /// The algorithm bodies: Lua source defining local functions.
    pub source: &'static str,
    pub commands: Vec<TwinCommand>,
}

/// One command of the twin.
pub struct TwinCommand {
    pub def: &'static CommandDef,
    /// The Lua call that runs it; in scope are `key` (KEYS[1]), `p` (the positionals) and `o`
    /// (the options), as parsed from the definition, and for commands with twin-only leading
    /// arguments or a trailing variadic group, also `x` and `r` (their lists).
    pub call: &'static str,
    /// Arguments only the twin takes, between the key and the positionals: what Lua cannot
    /// produce itself (a random id), which the caller passes.
    pub leading: &'static [&'static str],
}

/// A twin command that takes exactly the module command's arguments.
pub fn twin(def: &'static CommandDef, call: &'static str) -> TwinCommand {
    TwinCommand {
        def,
        call,
        leading: &[],
    }
}

/// Every family's twin, in registration order.
pub fn families() -> Vec<Family> {
    vec![
        crate::ratelimit::lua::family(),
        crate::session::lua::family(),
        crate::leaderboard::lua::family(),
        crate::cache::lua::family(),
        crate::lock::lua::family(),
        crate::queue::lua::family(),
    ]
}

/// The error a twin gives for an integer argument it cannot hold exactly.
pub fn beyond_lua(arg: &Arg) -> String {
    format!(
        "ERR {} exceeds the Lua twin's exact integer range (below 2^53)",
        arg.name
    )
}

/// A Lua string literal.
pub fn lua_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// An error reply constant, as the module would send it.
pub fn lua_error(err: &CmdError) -> String {
    lua_str(&err.to_string())
}

/// Helpers every family uses: the clock, Redis's integer syntax, exact integer division,
/// the generic argument parser that reads the generated definition tables.
const PRELUDE: &str = r#"
local EXACT_MAX = __EXACT_MAX__
local SYNTAX_ERROR = __SYNTAX_ERROR__
local WRONGTYPE = __WRONGTYPE__
local NOPERM = __NOPERM__

local function err(msg)
  return redis.error_reply(msg)
end

-- The server's clock in ms, read once per command.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Redis's integer syntax (string2ll). Returns the value; or nil when it is not an integer
-- within i64; or (sign, true) when it is one but lies at or beyond 2^53 (where doubles stop
-- telling neighbours apart).
local function parse_int(s)
  local sign, digits = string.match(s, '^(%-?)(%d+)$')
  if not digits then return nil end
  if digits == '0' then
    if sign == '-' then return nil end
    return 0
  end
  if string.sub(digits, 1, 1) == '0' or #digits > 19 then return nil end
  if #digits == 19 then
    local bound = (sign == '-') and '9223372036854775808' or '9223372036854775807'
    if digits > bound then return nil end
  end
  local n = tonumber(digits)
  if n >= EXACT_MAX then return (sign == '-') and -1 or 1, true end
  if sign == '-' then n = -n end
  return n
end

-- A non-negative integer kept in a state value (approximate beyond 2^53), or nil.
local function state_int(s)
  if s == nil then return nil end
  local n, big = parse_int(s)
  if big then
    if n < 0 then return nil end
    n = tonumber(s)
  end
  if n == nil or n < 0 then return nil end
  return n
end

-- Exact floor division and remainder of non-negative integers below 2^53 (fmod is exact).
local function divmod(a, b)
  local r = math.fmod(a, b)
  return (a - r) / b, r
end

local function ceil_div(a, b)
  local q, r = divmod(a, b)
  if r > 0 then q = q + 1 end
  return q
end

local function int(n)
  return string.format('%d', n)
end

-- A value stored at key as a string, nil when absent; a WRONGTYPE error as the second result.
local function get_string(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then return nil, v end
  if v == false then return nil end
  return v
end

local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

-- Whether the current user may read and write a key the command derives.
local function key_allowed(key)
  return redis.acl_check_cmd('HSET', key, 'f', 'v') and redis.acl_check_cmd('HGET', key, 'f')
end

-- Redis's hashtag: between the first '{' and the first '}' after it, when not empty.
local function hashtag(k)
  local open = string.find(k, '{', 1, true)
  if not open then return nil end
  local close = string.find(k, '}', open + 1, true)
  if not close or close == open + 1 then return nil end
  return string.sub(k, open + 1, close - 1)
end

-- A key in name's slot (session::derived_key): nil when there is none.
local function derived_key(name, suffix)
  if hashtag(name) then return name .. ':' .. suffix end
  if name == '' or string.find(name, '[{}]') then return nil end
  return '{' .. name .. '}:' .. suffix
end

-- Whether a field name among field/value pairs starts with the reserved `__`.
local function reserved_fields(pairs)
  for i = 1, #pairs, 2 do
    if string.sub(pairs[i], 1, 2) == __RESERVED_PREFIX__ then return true end
  end
  return false
end

-- An index that never leaks (sessions of a user, entries of a tag): a sorted set of keys
-- scored by their expiry. Drops the members that expired before now.
local function index_prune(index, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now))
end

-- The index expires with its last member: its TTL is its highest score.
local function index_fix(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] == nil then return end
  local at = tonumber(top[2])
  if redis.call('PEXPIRETIME', index) ~= at then
    redis.call('PEXPIREAT', index, int(at))
  end
end

-- A number as a sorted-set score is written (command::parse_f64's rules), or nil.
local function parse_float(s)
  local unsigned = string.lower(string.match(s, '^[+-]?(.*)$'))
  if unsigned == 'inf' or unsigned == 'infinity' then
    if string.sub(s, 1, 1) == '-' then return -math.huge end
    return math.huge
  end
  local whole, fraction, exponent = string.match(unsigned, '^(%d*)%.?(%d*)(.*)$')
  if whole == nil or (whole == '' and fraction == '') then return nil end
  if exponent ~= '' and not string.match(exponent, '^[eE][+-]?%d+$') then return nil end
  local v = tonumber(s)
  if v == nil or v ~= v or v == math.huge or v == -math.huge then return nil end
  if v == 0 and string.match(whole .. fraction, '[1-9]') then return nil end
  return v
end

local function parse_value(raw, spec)
  if spec.kind == 'text' then return raw end
  if spec.kind == 'float' then
    local v = parse_float(raw)
    if v == nil then return nil, err(spec.error) end
    return v
  end
  local v, big = parse_int(raw)
  if big then
    if v < 0 then return nil, err(spec.error) end
    return nil, err(spec.beyond)
  end
  if v == nil or v < spec.min then return nil, err(spec.error) end
  return v
end

-- One option after its token (argv[i] onwards): its value and the next index; or an error.
local function parse_option(spec, word, argv, i)
  if spec.flag then return 1, i end
  if spec.word then return spec.word[word], i end
  if spec.rest then
    if #argv - i + 1 < spec.rest then return nil, nil, err(SYNTAX_ERROR) end
    local list = {}
    for j = i, #argv do list[#list + 1] = argv[j] end
    return list, #argv + 1
  end
  if argv[i] == nil then return nil, nil, err(SYNTAX_ERROR) end
  if spec.choice then
    local c = spec.choice[string.upper(argv[i])]
    if c == nil then return nil, nil, err(SYNTAX_ERROR) end
    return c, i + 1
  end
  local v, e = parse_value(argv[i], spec)
  if e then return nil, nil, e end
  return v, i + 1
end

-- Parses arguments against a generated definition table, as CommandDef::parse does.
local function parse(def, keys, argv)
  -- KEYS: the one key; or with min_keys, keys only (tag [tag ...]); or with key_rest, the key
  -- and then the items of the option numbered key_rest (key [tag ...] for TAGS tag ...).
  -- Redis checks a module command's arity before the command parses anything: the same
  -- check, on the module's argument count (the twin's leading arguments out, a TAGS-like
  -- token back in).
  local argc = 1 + #keys + #argv - (def.lead or 0)
  if def.key_rest and #keys > 1 then argc = argc + 1 end
  if (def.arity > 0 and argc ~= def.arity) or argc < -def.arity then
    return nil, err(def.arity_error)
  end
  if #keys < (def.min_keys or 1) or (#keys > 1 and not def.min_keys and not def.key_rest) then
    return nil, err(def.arity_error)
  end
  local a = {pos = {}, opt = {}, lead = {}, rest = {}}
  local i = 1
  for n = 1, def.lead or 0 do
    if argv[i] == nil then return nil, err(def.arity_error) end
    a.lead[n] = argv[i]
    i = i + 1
  end
  for n, spec in ipairs(def.pos) do
    local raw = argv[i]
    if raw == nil then
      if spec.default == nil then return nil, err(def.arity_error) end
      a.pos[n] = spec.default
    else
      local v, e = parse_value(raw, spec)
      if e then return nil, e end
      a.pos[n] = v
      i = i + 1
    end
  end
  if def.group then
    local left = #argv - i + 1
    if math.fmod(left, def.group) ~= 0 or left < def.group_min * def.group then
      return nil, err(def.arity_error)
    end
    for j = i, #argv do a.rest[#a.rest + 1] = argv[j] end
    return a
  end
  for n, spec in ipairs(def.opts) do
    if spec.rest then a.opt[n] = {} else a.opt[n] = spec.default end
  end
  while argv[i] ~= nil do
    local word = string.upper(argv[i])
    local n = def.tokens[word]
    if n == nil then return nil, err(SYNTAX_ERROR) end
    local v, next_i, e = parse_option(def.opts[n], word, argv, i + 1)
    if e then return nil, e end
    a.opt[n] = v
    i = next_i
  end
  if def.key_rest and #keys > 1 then
    a.opt[def.key_rest] = {unpack(keys, 2)}
  end
  return a
end
"#;

/// The Lua parser's table for one argument.
fn arg_spec(arg: &Arg, default: Option<i64>) -> String {
    let default = default.map_or(String::new(), |d| match arg.kind {
        // A float's default is kept as its bits: Lua gets the number.
        ArgKind::Float => format!(", default = {:?}", crate::command::float(d)),
        _ => format!(", default = {d}"),
    });
    let error = lua_error(&CmdError::BadArg(*arg));
    match arg.kind {
        ArgKind::Text => format!("{{kind = 'text'{default}}}"),
        ArgKind::Float => format!("{{kind = 'float', error = {error}{default}}}"),
        kind => format!(
            "{{kind = 'int', min = {}, error = {error}, beyond = {}{default}}}",
            kind.min(),
            lua_str(&beyond_lua(arg)),
        ),
    }
}

/// `{['WORD'] = index, ...}`: 0-based, as the module's parser numbers them.
fn word_table(words: &[&str]) -> String {
    let entries: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("[{}] = {i}", lua_str(&w.to_ascii_uppercase())))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn option_spec(o: &OptionDef) -> String {
    let default = o.default;
    match o.value {
        OptValue::Flag => format!("{{flag = true, default = {default}}}"),
        OptValue::Arg(arg) => arg_spec(&arg, Some(default)),
        OptValue::Choice(words) => {
            format!("{{choice = {}, default = {default}}}", word_table(words))
        }
        OptValue::Word(words) => format!("{{word = {}, default = {default}}}", word_table(words)),
        OptValue::Rest { min } => format!("{{rest = {}}}", min.max(1)),
    }
}

/// The definition table the Lua parser reads, generated from the CommandDef.
fn def_table(cmd: &TwinCommand) -> String {
    let def = cmd.def;
    let pos: Vec<String> = def
        .positionals
        .iter()
        .map(|p| format!("    {},\n", arg_spec(&p.arg, p.default)))
        .collect();
    let opts: Vec<String> = def
        .options
        .iter()
        .map(|o| format!("    {},\n", option_spec(o)))
        .collect();
    // Keys after a token come in KEYS, never after the token in ARGV.
    let keys_token = match def.key_positions {
        Keys::FirstAndAfter { token, .. } => Some(token),
        _ => None,
    };
    let tokens: Vec<String> = def
        .options
        .iter()
        .enumerate()
        .filter(|(_, o)| Some(o.token) != keys_token)
        .flat_map(|(i, o)| {
            let words = match o.value {
                OptValue::Word(words) => words.to_vec(),
                _ => vec![o.token],
            };
            words
                .into_iter()
                .map(move |w| format!("[{}] = {}", lua_str(&w.to_ascii_uppercase()), i + 1))
        })
        .collect();
    let mut extra = String::new();
    if !cmd.leading.is_empty() {
        extra.push_str(&format!("  lead = {},\n", cmd.leading.len()));
    }
    match (def.key_positions, def.trailing) {
        (Keys::All, t) => {
            let min = 1 + t.map_or(0, |t| t.min * t.names.len());
            extra.push_str(&format!("  min_keys = {min},\n"));
        }
        (Keys::FirstAndAfter { token, .. }, _) => {
            let n = def.options.iter().position(|o| o.token == token);
            extra.push_str(&format!("  key_rest = {},\n", n.map_or(0, |n| n + 1)));
        }
        (Keys::First, Some(t)) => extra.push_str(&format!(
            "  group = {},\n  group_min = {},\n",
            t.names.len(),
            t.min
        )),
        (Keys::First, None) => {}
    }
    format!(
        "local DEF_{name} = {{\n  arity = {redis_arity},\n  arity_error = {arity},\n{extra}  pos = {{\n{pos}  }},\n  opts = {{\n{opts}  }},\n  tokens = {{{tokens}}},\n}}\n",
        name = def.lua_name(),
        redis_arity = def.arity(),
        arity = lua_error(&CmdError::WrongArity(def.name)),
        pos = pos.concat(),
        opts = opts.concat(),
        tokens = tokens.join(", "),
    )
}

fn command_glue(cmd: &TwinCommand) -> String {
    let (def, call) = (cmd.def, cmd.call);
    let name = def.lua_name();
    // `x`: the twin-only leading arguments; `r`: the trailing variadic arguments.
    let scope = if cmd.leading.is_empty() && def.trailing.is_none() {
        "local key, p, o = keys[1], a.pos, a.opt"
    } else {
        "local key, p, o, x, r = keys[1], a.pos, a.opt, a.lead, a.rest"
    };
    let leading: String = cmd.leading.iter().map(|a| format!(" {a}")).collect();
    let syntax = match def.syntax.split_once(' ') {
        Some((key, rest)) if !leading.is_empty() => format!("{key}{leading} {rest}"),
        _ => def.syntax.to_string(),
    };
    format!(
        "-- {} {syntax}\nlocal function {name}(keys, argv)\n  local a, e = parse(DEF_{name}, keys, argv)\n  if e then return e end\n  {scope}\n  return {call}\nend\n",
        def.name
    )
}

/// The helpers every twin script starts with (clock, integer and float syntax, argument parser).
pub fn prelude() -> String {
    PRELUDE
        .replace("__EXACT_MAX__", &LUA_EXACT_MAX.to_string())
        .replace("__SYNTAX_ERROR__", &lua_error(&CmdError::Syntax))
        .replace("__WRONGTYPE__", &lua_error(&CmdError::WrongType))
        .replace("__NOPERM__", &lua_error(&CmdError::NoPerm))
        .replace(
            "__RESERVED_PREFIX__",
            &lua_str(crate::session::RESERVED_PREFIX),
        )
}

/// One family's code: constants, bodies, definition tables and glue, for the named commands.
fn family_code(family: &Family, only: Option<&CommandDef>) -> String {
    let mut out = String::new();
    for (name, value) in &family.constants {
        out.push_str(&format!("local {name} = {value}\n"));
    }
    out.push_str(family.source);
    for cmd in &family.commands {
        if only.is_none_or(|d| std::ptr::eq(d, cmd.def)) {
            out.push('\n');
            out.push_str(&def_table(cmd));
            out.push_str(&command_glue(cmd));
        }
    }
    out
}

const HEADER: &str =
    "-- Generated by patterns-lua from redis-patterns' command definitions. Do not edit.\n";

/// The Functions library: `FUNCTION LOAD REPLACE "$(cat dist/patterns.lua)"`. Each family's
/// code and registrations sit in a `do ... end` block: Lua allows 200 local variables per
/// function, the library's main chunk included, and a block's locals end with it.
pub fn library() -> String {
    let mut out = format!("#!lua name={LIBRARY}\n{HEADER}{}", prelude());
    for family in &families() {
        out.push_str("\ndo\n");
        out.push_str(&family_code(family, None));
        out.push('\n');
        for TwinCommand { def, .. } in &family.commands {
            out.push_str(&registration(def));
        }
        out.push_str("end\n");
    }
    out
}

/// Registers a command's function; a read-only command's with `no-writes`, so `FCALL_RO`,
/// read-only ACL users and replicas may call it.
fn registration(def: &CommandDef) -> String {
    let name = def.lua_name();
    if def.is_readonly() {
        format!(
            "redis.register_function{{function_name = '{name}', callback = {name}, flags = {{'no-writes'}}}}\n"
        )
    } else {
        format!("redis.register_function('{name}', {name})\n")
    }
}

/// One `EVAL` script per command: (function name, source).
pub fn scripts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for family in families() {
        for TwinCommand { def, .. } in &family.commands {
            let name = def.lua_name();
            let source = format!(
                "{HEADER}-- EVAL/EVALSHA form of {}: KEYS[1] = key, ARGV = the arguments after it (and any twin-only ones before them).\n{}{}\nreturn {name}(KEYS, ARGV)\n",
                def.name,
                prelude(),
                family_code(&family, Some(def)),
            );
            out.push((name, source));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_of_the_library_stays_under_luas_200_locals() {
        let top_level = |code: &str| code.lines().filter(|l| l.starts_with("local ")).count();
        let shared = top_level(&prelude());
        for family in families() {
            let n = shared + top_level(&family_code(&family, None));
            assert!(n < 200, "{n} locals in one block");
        }
    }

    #[test]
    fn keys_after_a_token_and_all_keys_come_in_keys() {
        // CACHE.SET's tags: KEYS[2..] fill the TAGS option, whose token ARGV may not carry.
        let set = def_table(&twin(&crate::cache::SET, "x"));
        assert!(set.contains("  key_rest = 3,\n"), "{set}");
        assert!(!set.contains("'TAGS'"), "{set}");
        // Every argument a key: no ARGV group, a least number of KEYS instead.
        let invalidate = def_table(&twin(&crate::cache::INVALIDATE, "x"));
        assert!(invalidate.contains("  min_keys = 1,\n") && !invalidate.contains("group"));
        let tag = def_table(&twin(&crate::cache::TAG, "x"));
        assert!(tag.contains("  min_keys = 2,\n"), "{tag}");
        // One key: neither.
        let get = def_table(&twin(&crate::cache::GET, "x"));
        assert!(!get.contains("min_keys") && !get.contains("key_rest"));
    }

    #[test]
    fn the_parser_knows_the_arity_redis_checks_first() {
        // Redis refuses `LOCK.INFO k extra` or `CL.THROTTLE k 1` for their arity before the
        // module parses anything; the twin checks the same number.
        let info = def_table(&twin(&crate::lock::INFO, "x"));
        assert!(info.contains("  arity = 2,\n"), "{info}");
        let throttle = def_table(&twin(&crate::ratelimit::THROTTLE, "x"));
        assert!(throttle.contains("  arity = -5,\n"), "{throttle}");
    }

    #[test]
    fn library_registers_every_command() {
        let lib = library();
        assert!(lib.starts_with("#!lua name=patterns\n"));
        for family in families() {
            for TwinCommand { def, .. } in &family.commands {
                assert!(lib.contains(&registration(def)));
                assert!(lib.contains(&lua_error(&CmdError::WrongArity(def.name))));
            }
        }
        let commands = families().iter().map(|f| f.commands.len()).sum::<usize>();
        assert_eq!(scripts().len(), commands);
    }

    #[test]
    fn locals_in_scope_stay_under_lua_s_limit() {
        // Lua 5.1 refuses a chunk with more than 200 locals in scope: the prelude's plus one
        // family's (each family is a block of its own).
        let count = |code: &str| code.lines().filter(|l| l.starts_with("local ")).count();
        for family in families() {
            let in_scope = count(&prelude()) + count(&family_code(&family, None));
            assert!(in_scope < 200, "{in_scope} locals in scope");
        }
        assert_eq!(library().matches("\ndo\n").count(), families().len());
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(lua_str("it's a \\ test"), "'it\\'s a \\\\ test'");
    }
}

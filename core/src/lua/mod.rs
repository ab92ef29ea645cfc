//! The Lua twin: a Redis Functions library (`FUNCTION LOAD`) and one plain script per command
//! (`EVAL`/`EVALSHA`), generated from the same [`CommandDef`]s the module registers.
//!
//! The Lua is written as Lua: `prelude.lua` (helpers and the argument parser every family
//! uses) and one `<family>.lua` per family, each running its commands as `<command>_run`
//! functions. What is generated around them, from the Rust definitions:
//! - the constants the Lua names in capitals, from the Rust constants of the same name
//!   ([`lua_constants!`]) and `CmdError`'s texts;
//! - every command's argument table (names, order, defaults, minimums, option tokens);
//! - the glue that parses a command's arguments and calls its `_run` function, binding each of
//!   that function's parameters by name ([`Family`] lists the rules), so reordering a
//!   definition cannot silently break the twin;
//! - per EVAL script, only the definitions its command reaches (functions and constants,
//!   followed transitively).
//!
//! Lua 5.1 numbers are doubles, exact only up to 2^53. The twin refuses (with its own error)
//! any integer argument above 2^53 and any limiter whose intermediate products could pass it,
//! instead of answering inexactly.

use std::collections::BTreeSet;

use crate::command::{
    Arg, ArgKind, Block, CmdError, CommandDef, Keys, OptValue, OptionDef, KEY_TWICE, LUA_EXACT_MAX,
};
use crate::keys::{MAX_MS, RESERVED, RESERVED_PREFIX};

/// The Functions library's name (`#!lua name=patterns`).
pub const LIBRARY: &str = "patterns";

/// A family's contribution to the twin.
///
/// Each command runs as `<lua_name>_run` in `source`; the glue binds that function's
/// parameters by name:
/// - `keys`: every key (`KEYS`); otherwise the first parameter is the key (`KEYS[1]`);
/// - a twin-only leading argument (`TwinCommand::leading`), by its name;
/// - a positional, by its name (`capacity`, `ttl_ms`);
/// - an option, by its token in lower case with `|` as `_` (`cost`, `exact`, `asc_desc`,
///   `tags`), or by its value's name (`lease_ms`);
/// - the trailing group: `pairs` for a group of two (`field value`), else its word plus `s`
///   (`members`).
pub struct Family {
    /// Lua constants the code uses: (name, value as a Lua expression).
    pub constants: Vec<(&'static str, String)>,
    /// The family's Lua: local functions (and tables), among them one `_run` per command.
    pub source: &'static str,
    pub commands: Vec<TwinCommand>,
}

/// One command of the twin.
pub struct TwinCommand {
    pub def: &'static CommandDef,
    /// Arguments only the twin takes, between the key and the positionals: what Lua cannot
    /// produce itself (a random id), which the caller passes.
    pub leading: &'static [&'static str],
}

/// The twins of a family's commands: each takes exactly the module command's arguments,
/// except those listed in `leading` with the twin-only arguments they take first.
pub fn twins(
    defs: &[&'static CommandDef],
    leading: &[(&'static CommandDef, &'static [&'static str])],
) -> Vec<TwinCommand> {
    defs.iter()
        .map(|&def| TwinCommand {
            def,
            leading: leading
                .iter()
                .find(|(d, _)| std::ptr::eq(*d, def))
                .map_or(&[], |(_, l)| l),
        })
        .collect()
}

/// A Rust constant's value as a Lua expression.
pub trait LuaValue {
    fn lua(&self) -> String;
}

/// Integers: their decimal digits.
macro_rules! integer_lua_value {
    ($($int:ty),*) => {
        $(impl LuaValue for $int {
            fn lua(&self) -> String {
                self.to_string()
            }
        })*
    };
}

integer_lua_value!(i64, u8, u64, usize);

impl LuaValue for &str {
    fn lua(&self) -> String {
        lua_str(self)
    }
}

/// An argument: the error a bad value of it gets.
impl LuaValue for Arg {
    fn lua(&self) -> String {
        lua_error(&CmdError::BadArg(*self))
    }
}

impl LuaValue for CmdError {
    fn lua(&self) -> String {
        lua_error(self)
    }
}

/// Lua constants named as the Rust constants they come from: `values` as they are (numbers,
/// strings; an [`Arg`] as its error), `errors` as the error reply of a message (`ERR ...`).
macro_rules! lua_constants {
    (values: [$($value:ident),* $(,)?], errors: [$($error:ident),* $(,)?] $(,)?) => {
        vec![
            $((stringify!($value), $crate::lua::LuaValue::lua(&$value)),)*
            $((
                stringify!($error),
                $crate::lua::LuaValue::lua(&$crate::command::CmdError::BadState($error)),
            ),)*
        ]
    };
}
pub(crate) use lua_constants;

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

/// Helpers every family uses, and the argument parser that reads the generated definitions.
const PRELUDE: &str = include_str!("prelude.lua");

/// The prelude's constants.
fn prelude_constants() -> Vec<(&'static str, String)> {
    let mut constants = lua_constants! {
        values: [LUA_EXACT_MAX, MAX_MS, RESERVED_PREFIX],
        errors: [RESERVED],
    };
    constants.extend([
        ("SYNTAX_ERROR", CmdError::Syntax.lua()),
        ("WRONGTYPE", CmdError::WrongType.lua()),
        ("NOPERM", CmdError::NoPerm.lua()),
        ("KEY_TWICE", CmdError::Invalid(KEY_TWICE).lua()),
    ]);
    constants
}

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
        (Keys::Blocks { kinds, .. }, _) => extra.push_str(&blocks_table(kinds)),
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

/// `blocks = {['TOKEN'] = {def = DEF_<kind>, names = {...}, opts = {...}}, ...}`: each kind's
/// own definition table, and the names its positionals and options are bound by (as its own
/// `_run` function's parameters are).
fn blocks_table(kinds: &[Block]) -> String {
    let names = |words: Vec<String>| {
        let quoted: Vec<String> = words.iter().map(|w| lua_str(w)).collect();
        format!("{{{}}}", quoted.join(", "))
    };
    let entries: Vec<String> = kinds
        .iter()
        .map(|b| {
            let pos = b.def.positionals.iter().map(|p| p.arg.name.to_string());
            let opts = b.def.options.iter().map(option_param);
            format!(
                "    [{}] = {{def = DEF_{}, names = {}, opts = {}}},\n",
                lua_str(b.token),
                b.def.lua_name(),
                names(pos.collect()),
                names(opts.collect())
            )
        })
        .collect();
    format!("  blocks = {{\n{}  }},\n", entries.concat())
}

/// The parameter name an option binds to: its token in lower case, `|` as `_`.
fn option_param(o: &OptionDef) -> String {
    o.token.to_ascii_lowercase().replace('|', "_")
}

/// What the glue passes for one parameter of a command's `_run` function (see [`Family`]).
fn bind(cmd: &TwinCommand, param: &str, first: bool) -> String {
    let def = cmd.def;
    if param == "keys" {
        return "keys".into();
    }
    if let Keys::Blocks { name, .. } = def.key_positions {
        if param == format!("{name}s") {
            return "a.blocks".into();
        }
    }
    if first {
        return "keys[1]".into();
    }
    if let Some(i) = cmd.leading.iter().position(|&l| l == param) {
        return format!("a.lead[{}]", i + 1);
    }
    if let Some(i) = def.positionals.iter().position(|p| p.arg.name == param) {
        return format!("a.pos[{}]", i + 1);
    }
    let option_named = |o: &OptionDef| {
        option_param(o) == param
            || matches!(o.value, OptValue::Arg(arg) if arg.name.eq_ignore_ascii_case(param))
    };
    if let Some(i) = def.options.iter().position(option_named) {
        return format!("a.opt[{}]", i + 1);
    }
    let trailing = def.trailing.map(|t| match t.names {
        [_, _] => "pairs".to_string(),
        names => format!("{}s", names.join("_")),
    });
    if trailing.as_deref() == Some(param) {
        return "a.rest".into();
    }
    panic!(
        "{}: the twin's {}_run takes `{param}`, which names no argument of the definition",
        def.name,
        def.lua_name()
    )
}

/// The parameters of `local function <name>(...)` in `source`.
fn params<'s>(source: &'s str, name: &str) -> Vec<&'s str> {
    let head = format!("local function {name}(");
    let at = source
        .find(&head)
        .unwrap_or_else(|| panic!("the twin has no `{head}...)`"))
        + head.len();
    let list = &source[at..at + source[at..].find(')').expect("a parameter list")];
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// The command's Lua function: parses its arguments, then calls its `_run` function.
fn command_glue(cmd: &TwinCommand, source: &str) -> String {
    let def = cmd.def;
    let name = def.lua_name();
    let run = format!("{name}_run");
    let args: Vec<String> = params(source, &run)
        .iter()
        .enumerate()
        .map(|(i, p)| bind(cmd, p, i == 0))
        .collect();
    let syntax = twin_syntax(cmd);
    let parser = match def.key_positions {
        Keys::Blocks { .. } => "parse_blocks",
        _ => "parse",
    };
    format!(
        "-- {} {syntax}\nlocal function {name}(keys, argv)\n  local a, e = {parser}(DEF_{name}, keys, argv)\n  if e then return e end\n  return {run}({})\nend\n",
        def.name,
        args.join(", ")
    )
}

/// The command's syntax as its twin takes it: the key, then the items of the option that
/// names keys (`TAGS tag [tag ...]`: they come in KEYS, without the token), then the twin-only
/// leading arguments, then the module's other arguments.
fn twin_syntax(cmd: &TwinCommand) -> String {
    let mut syntax = cmd.def.syntax.to_string();
    let mut keys = String::new();
    if let Keys::FirstAndAfter { token, .. } = cmd.def.key_positions {
        let open = format!(" [{token} ");
        let start = syntax.find(&open).expect("the key option in the syntax");
        let end = start + 1 + closing_bracket(&syntax[start + 1..]);
        keys = format!(" [{}]", &syntax[start + open.len()..end]);
        syntax.replace_range(start..=end, "");
    }
    let leading: String = cmd.leading.iter().map(|a| format!(" {a}")).collect();
    match syntax.split_once(' ') {
        Some((key, rest)) => format!("{key}{keys}{leading} {rest}"),
        None => format!("{syntax}{keys}{leading}"),
    }
}

/// Where the bracket `text` opens with closes.
fn closing_bracket(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' if depth == 1 => return i,
            ']' => depth -= 1,
            _ => {}
        }
    }
    panic!("an unclosed bracket in `{text}`")
}

// ---------------------------------------------------------------------------------------------
// Pieces of Lua, and which of them a script needs

/// One top-level definition of the generated Lua: a constant, a local function or table (with
/// the comment above it), a command's definition table or glue.
#[derive(Clone, Debug)]
struct Piece {
    /// The local it defines.
    name: String,
    text: String,
}

impl Piece {
    fn constant((name, value): &(&str, String)) -> Self {
        Piece {
            name: name.to_string(),
            text: format!("local {name} = {value}\n"),
        }
    }
}

/// The definitions of a Lua source, each with the comment lines right above it; the file's
/// own header comment (before the first definition's) is left out. Every top-level statement
/// starts with `local` at the line's start.
fn pieces(source: &str) -> Vec<Piece> {
    let lines: Vec<&str> = source.split_inclusive('\n').collect();
    let mut starts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("local ") {
            let mut start = i;
            while start > 0 && lines[start - 1].starts_with("--") {
                start -= 1;
            }
            starts.push(start);
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(lines.len());
            let text = lines[start..end].concat();
            let line = text
                .lines()
                .find(|l| l.starts_with("local "))
                .expect("a definition");
            let rest = line
                .trim_start_matches("local ")
                .trim_start_matches("function ");
            let name = rest
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default();
            Piece {
                name: name.to_string(),
                text,
            }
        })
        .collect()
}

/// The names a piece of Lua uses: identifiers outside comments and strings, not after a `.`
/// or `:` (a field or method).
fn names_used(code: &str) -> BTreeSet<&str> {
    let bytes = code.as_bytes();
    let mut used = BTreeSet::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let field = match &bytes[..start] {
                    [.., b'.', b'.'] => false,
                    [.., b'.' | b':'] => true,
                    _ => false,
                };
                if !field {
                    used.insert(&code[start..i]);
                }
            }
            _ => i += 1,
        }
    }
    used
}

/// The names of `pieces` that `roots` reach, following every name each piece uses.
fn reached(pieces: &[&Piece], roots: &[String]) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(name) = todo.pop() {
        let Some(piece) = pieces.iter().find(|p| p.name == name) else {
            continue;
        };
        if kept.insert(name) {
            todo.extend(names_used(&piece.text).into_iter().map(String::from));
        }
    }
    kept
}

/// The text of the pieces kept, in their order.
fn render(pieces: &[Piece], kept: &BTreeSet<String>) -> String {
    pieces
        .iter()
        .filter(|p| kept.contains(&p.name))
        .map(|p| p.text.as_str())
        .collect()
}

/// The prelude's pieces: its constants, then its definitions.
fn prelude_pieces() -> Vec<Piece> {
    let constants = prelude_constants();
    constants
        .iter()
        .map(Piece::constant)
        .chain(pieces(PRELUDE))
        .collect()
}

/// A family's pieces: its constants, its definitions, then each command's definition table
/// and glue.
fn family_pieces(family: &Family) -> Vec<Piece> {
    let mut out: Vec<Piece> = family.constants.iter().map(Piece::constant).collect();
    out.extend(pieces(family.source));
    for cmd in &family.commands {
        let name = cmd.def.lua_name();
        out.push(Piece {
            name: format!("DEF_{name}"),
            text: format!("\n{}", def_table(cmd)),
        });
        out.push(Piece {
            text: command_glue(cmd, family.source),
            name,
        });
    }
    out
}

/// The whole prelude, with its constants: what a family's code may call.
pub fn prelude() -> String {
    let pieces = prelude_pieces();
    pieces.iter().map(|p| p.text.as_str()).collect()
}

const HEADER: &str =
    "-- Generated by patterns-lua from redis-patterns' command definitions. Do not edit.\n";

/// The Functions library: `FUNCTION LOAD REPLACE "$(cat dist/patterns.lua)"`. Each family's
/// code and registrations sit in a `do ... end` block: Lua allows 200 local variables per
/// function, the library's main chunk included, and a block's locals end with it. Only what
/// some command reaches is kept.
pub fn library() -> String {
    let prelude = prelude_pieces();
    let mut prelude_kept = BTreeSet::new();
    let mut blocks = String::new();
    for family in families() {
        let pieces = family_pieces(&family);
        let every: Vec<&Piece> = prelude.iter().chain(&pieces).collect();
        let roots: Vec<String> = family.commands.iter().map(|c| c.def.lua_name()).collect();
        let kept = reached(&every, &roots);
        blocks.push_str("\ndo\n");
        blocks.push_str(&render(&pieces, &kept));
        blocks.push('\n');
        for TwinCommand { def, .. } in &family.commands {
            blocks.push_str(&registration(def));
        }
        blocks.push_str("end\n");
        prelude_kept.extend(kept);
    }
    format!(
        "#!lua name={LIBRARY}\n{HEADER}{}{blocks}",
        render(&prelude, &prelude_kept)
    )
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

/// One `EVAL` script per command: (function name, source), carrying only what the command
/// reaches.
pub fn scripts() -> Vec<(String, String)> {
    let prelude = prelude_pieces();
    let mut out = Vec::new();
    for family in families() {
        let pieces = family_pieces(&family);
        let every: Vec<&Piece> = prelude.iter().chain(&pieces).collect();
        for TwinCommand { def, .. } in &family.commands {
            let name = def.lua_name();
            let kept = reached(&every, std::slice::from_ref(&name));
            let source = format!(
                "{HEADER}-- EVAL/EVALSHA form of {}: KEYS[1] = key, ARGV = the arguments after it (and any twin-only ones before them).\n{}{}\nreturn {name}(KEYS, ARGV)\n",
                def.name,
                render(&prelude, &kept),
                render(&pieces, &kept),
            );
            out.push((name, source));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level locals of a piece of generated Lua.
    fn locals(code: &str) -> usize {
        code.lines().filter(|l| l.starts_with("local ")).count()
    }

    #[test]
    fn locals_in_scope_stay_under_lua_s_limit() {
        // Lua 5.1 refuses a chunk with more than 200 locals in scope: the prelude's plus one
        // family's (each family is a block of its own).
        for family in families() {
            let code: String = family_pieces(&family)
                .iter()
                .map(|p| p.text.as_str())
                .collect();
            let in_scope = locals(&prelude()) + locals(&code);
            assert!(in_scope < 200, "{in_scope} locals in scope");
        }
        assert_eq!(library().matches("\ndo\n").count(), families().len());
    }

    #[test]
    fn keys_after_a_token_and_all_keys_come_in_keys() {
        let table = |def| def_table(&twins(&[def], &[])[0]);
        // CACHE.SET's tags: KEYS[2..] fill the TAGS option, whose token ARGV may not carry.
        let set = table(&crate::cache::SET);
        assert!(set.contains("  key_rest = 3,\n"), "{set}");
        assert!(!set.contains("'TAGS'"), "{set}");
        // Every argument a key: no ARGV group, a least number of KEYS instead.
        let invalidate = table(&crate::cache::INVALIDATE);
        assert!(invalidate.contains("  min_keys = 1,\n") && !invalidate.contains("group"));
        let tag = table(&crate::cache::TAG);
        assert!(tag.contains("  min_keys = 2,\n"), "{tag}");
        // One key: neither.
        let get = table(&crate::cache::GET);
        assert!(!get.contains("min_keys") && !get.contains("key_rest"));
    }

    #[test]
    fn the_parser_knows_the_arity_redis_checks_first() {
        // Redis refuses `LOCK.INFO k extra` or `CL.THROTTLE k 1` for their arity before the
        // module parses anything; the twin checks the same number.
        let info = def_table(&twins(&[&crate::lock::INFO], &[])[0]);
        assert!(info.contains("  arity = 2,\n"), "{info}");
        let throttle = def_table(&twins(&[&crate::ratelimit::THROTTLE], &[])[0]);
        assert!(throttle.contains("  arity = -5,\n"), "{throttle}");
    }

    #[test]
    fn library_registers_every_command() {
        let lib = library();
        assert!(lib.starts_with("#!lua name=patterns\n"));
        for family in families() {
            for TwinCommand { def, .. } in &family.commands {
                assert!(lib.contains(&lua_error(&CmdError::WrongArity(def.name))));
            }
        }
        let commands = families().iter().map(|f| f.commands.len()).sum::<usize>();
        assert_eq!(scripts().len(), commands);
        // A read-only command's function may be called by FCALL_RO, read-only users, replicas.
        assert!(lib.contains("\nredis.register_function('rl_tokenbucket', rl_tokenbucket)\n"));
        assert!(lib.contains(
            "\nredis.register_function{function_name = 'lb_top', callback = lb_top, flags = {'no-writes'}}\n"
        ));
        let readonly = crate::all_commands().filter(|d| d.is_readonly()).count();
        assert_eq!(lib.matches("\nredis.register_function").count(), commands);
        assert_eq!(lib.matches("flags = {'no-writes'}}\n").count(), readonly);
    }

    #[test]
    fn glue_binds_run_parameters_by_name() {
        use crate::{cache, leaderboard as lb, ratelimit as rl};
        // (definition, twin-only arguments, the `_run` function's parameters, its call)
        let cases: [(&'static CommandDef, &'static [&'static str], &str, &str); 7] = [
            (
                &rl::TOKENBUCKET,
                &[],
                "key, cost, period_ms, capacity, rate",
                "keys[1], a.opt[1], a.pos[3], a.pos[1], a.pos[2]",
            ),
            (
                &cache::GET,
                &["draw", "lease"],
                "key, lease_ms, lease, beta, draw",
                "keys[1], a.opt[2], a.lead[2], a.opt[1], a.lead[1]",
            ),
            (
                &lb::RANK,
                &[],
                "board, member, asc_desc, ranking",
                "keys[1], a.pos[1], a.opt[1], a.opt[2]",
            ),
            (&lb::ADD, &[], "board, pairs", "keys[1], a.rest"),
            (&lb::REM, &[], "board, members", "keys[1], a.rest"),
            (&cache::TAG, &[], "keys", "keys"),
            (&rl::ALL, &[], "limits", "a.blocks"),
        ];
        for (def, leading, params, call) in cases {
            let name = def.lua_name();
            let source = format!("local function {name}_run({params})");
            let glue = command_glue(&twins(&[def], &[(def, leading)])[0], &source);
            assert!(
                glue.contains(&format!("return {name}_run({call})")),
                "{glue}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "RL.TOKENBUCKET: the twin's rl_tokenbucket_run takes `period`")]
    fn a_parameter_naming_no_argument_fails_generation() {
        let cmd = &twins(&[&crate::ratelimit::TOKENBUCKET], &[])[0];
        command_glue(
            cmd,
            "local function rl_tokenbucket_run(key, capacity, rate, period, cost)",
        );
    }

    #[test]
    fn names_are_read_outside_comments_strings_and_fields() {
        let used = names_used("x = a.b .. c:d('e f') -- g\nreturn h['i'] .. \"j\\\"k\" .. l");
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["a", "c", "h", "l", "return", "x"]
        );
        // A minus is no comment, a name right after `..` no field; a last-line comment ends
        // the source.
        let used = names_used("y = m - n..o -- p");
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["m", "n", "o", "y"]);
    }

    #[test]
    fn pieces_carry_their_comments_and_scripts_only_what_they_reach() {
        let source = "-- header\n\n-- doc of f\nlocal function f()\n  return g()\nend\n\nlocal function g()\nend\n\nlocal T = {1,\n  2}\n";
        let p = pieces(source);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["f", "g", "T"]);
        assert_eq!(
            p[0].text,
            "-- doc of f\nlocal function f()\n  return g()\nend\n\n"
        );
        assert_eq!(p[2].text, "local T = {1,\n  2}\n");
        let refs: Vec<&Piece> = p.iter().collect();
        let kept = reached(&refs, &["f".to_string()]);
        assert_eq!(
            render(&p, &kept),
            [p[0].text.as_str(), p[1].text.as_str()].concat()
        );
        // A script carries its own command's functions, not its neighbours'.
        let scripts = scripts();
        let (_, fixed) = scripts.iter().find(|(n, _)| n == "rl_fixedwindow").unwrap();
        assert!(fixed.contains("local function rl_fixedwindow_run("));
        assert!(!fixed.contains("token_bucket"));
        assert!(!fixed.contains("local function index_fix("));
        assert!(!fixed.contains("local function derived_key("));
    }

    #[test]
    fn prelude_and_families_define_each_name_once() {
        let mut seen = BTreeSet::new();
        for piece in prelude_pieces() {
            assert!(seen.insert(piece.name.clone()), "{} twice", piece.name);
        }
        for family in families() {
            let mut own = seen.clone();
            for piece in family_pieces(&family) {
                assert!(own.insert(piece.name.clone()), "{} twice", piece.name);
            }
        }
    }

    #[test]
    fn every_constant_the_lua_names_is_generated() {
        let constant = |n: &str| {
            n.bytes().any(|b| b.is_ascii_uppercase())
                && n.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        };
        let prelude = prelude_pieces();
        for family in families() {
            let pieces = family_pieces(&family);
            let defined: BTreeSet<&str> = prelude
                .iter()
                .chain(&pieces)
                .map(|p| p.name.as_str())
                .collect();
            for piece in prelude.iter().chain(&pieces) {
                for name in names_used(&piece.text).into_iter().filter(|n| constant(n)) {
                    assert!(
                        defined.contains(name),
                        "{name} (in {}) is not defined",
                        piece.name
                    );
                }
            }
        }
    }

    /// A generated definition's text, by its local's name.
    fn piece(pieces: &[Piece], name: &str) -> String {
        let found = pieces.iter().find(|p| p.name == name);
        found.unwrap_or_else(|| panic!("no {name}")).text.clone()
    }

    #[test]
    fn constants_are_the_rust_values_and_error_replies() {
        let prelude = prelude_pieces();
        let leaderboard = family_pieces(&crate::leaderboard::lua::family());
        for (pieces, name, value) in [
            (&prelude, "RESERVED_PREFIX", "'__'"),
            (&prelude, "MAX_MS", "4503599627370496"),
            (&prelude, "SYNTAX_ERROR", "'ERR syntax error'"),
            (
                &prelude,
                "RESERVED",
                "'ERR field names starting with __ are reserved'",
            ),
            // An argument: the error a bad value of it gets.
            (&leaderboard, "SCORE_ARG", "'ERR score must be a number'"),
        ] {
            assert_eq!(piece(pieces, name), format!("local {name} = {value}\n"));
        }
    }

    #[test]
    fn the_prelude_carries_the_parsers_and_their_constants() {
        // What a family's code may call (tests/lua_twin runs the float reader on its own).
        let prelude = prelude();
        for line in [
            "local SYNTAX_ERROR = 'ERR syntax error'",
            "local function parse(def, keys, argv)",
            "local function parse_blocks(def, keys, argv)",
            "local function parse_float(s)",
        ] {
            assert!(prelude.lines().any(|l| l == line), "{line}");
        }
    }

    #[test]
    fn definition_tables_carry_each_arguments_rules_and_errors() {
        use crate::{cache, leaderboard as lb, ratelimit as rl};
        let table = |def, leading| def_table(&twins(&[def], &[(def, leading)])[0]);
        // (definition, twin-only arguments, lines of its table)
        let cases: [(&'static CommandDef, &'static [&'static str], &[&str]); 4] = [
            (
                &rl::TOKENBUCKET,
                &[],
                &[
                    "  arity_error = 'ERR wrong number of arguments for \\'rl.tokenbucket\\' command',",
                    "    {kind = 'int', min = 1, error = 'ERR capacity must be a positive integer', beyond = 'ERR capacity exceeds the Lua twin\\'s exact integer range (below 2^53)'},",
                    "    {kind = 'int', min = 0, error = 'ERR COST must be a non-negative integer', beyond = 'ERR COST exceeds the Lua twin\\'s exact integer range (below 2^53)', default = 1},",
                    "  tokens = {['COST'] = 1},",
                ],
            ),
            (
                // A float's default as a number; the twin-only arguments counted.
                &cache::GET,
                &["draw", "lease"],
                &[
                    "  lead = 2,",
                    "    {kind = 'float', error = 'ERR BETA must be a number', default = 1.0},",
                ],
            ),
            (
                // Each word of `ASC|DESC` a token of its own, numbered as the module numbers it.
                &lb::RANK,
                &[],
                &[
                    "    {kind = 'text'},",
                    "    {word = {['ASC'] = 0, ['DESC'] = 1}, default = 1},",
                    "    {choice = {['ORDINAL'] = 0, ['DENSE'] = 1, ['COMPETITION'] = 2, ['MODIFIED'] = 3}, default = 0},",
                    "  tokens = {['ASC'] = 1, ['DESC'] = 1, ['RANKING'] = 2},",
                ],
            ),
            (
                // Each kind of block: its own command's table, and the names its arguments bind.
                &rl::ALL,
                &[],
                &[
                    "    ['TOKENBUCKET'] = {def = DEF_rl_tokenbucket, names = {'capacity', 'rate', 'period_ms'}, opts = {'cost'}},",
                    "    ['SLIDINGWINDOW'] = {def = DEF_rl_slidingwindow, names = {'limit', 'window_ms'}, opts = {'cost', 'exact'}},",
                ],
            ),
        ];
        for (def, leading, lines) in cases {
            let table = table(def, leading);
            for line in lines {
                assert!(table.lines().any(|l| l == *line), "{line}\n{table}");
            }
            assert_eq!(table.contains("  lead = "), !leading.is_empty(), "{table}");
        }
    }

    #[test]
    fn all_keys_tables_want_the_keys_the_arity_requires() {
        // Every argument a key: the least number of KEYS is the arity's least count after the
        // name, groups of any width included.
        static PAIRS: CommandDef = CommandDef {
            name: "T.PAIRS",
            syntax: "key value [key value ...]",
            summary: "",
            complexity: "",
            reply: "",
            keys: "",
            flags: crate::command::WRITE,
            positionals: &[],
            options: &[],
            trailing: Some(crate::command::Trailing {
                names: &["key", "value"],
                min: 1,
            }),
            key_positions: Keys::All,
        };
        let all_keys = crate::all_commands().filter(|d| d.key_positions == Keys::All);
        for def in all_keys.chain([&PAIRS]) {
            let table = def_table(&twins(&[def], &[])[0]);
            let least = def.arity().abs() - 1;
            assert!(
                table.contains(&format!("  min_keys = {least},\n")),
                "{table}"
            );
        }
    }

    #[test]
    fn glue_shows_the_twins_syntax_and_parses_blocks_as_blocks() {
        use crate::{cache, ratelimit as rl, session};
        let glue = |def, leading, params| {
            let source = format!("local function {}_run({params})", CommandDef::lua_name(def));
            command_glue(&twins(&[def], &[(def, leading)])[0], &source)
        };
        let get = glue(&cache::GET, &["draw", "lease"], "key, draw");
        assert!(
            get.starts_with("-- CACHE.GET key draw lease [BETA "),
            "{get}"
        );
        assert!(get.contains("parse(DEF_cache_get, keys, argv)"), "{get}");
        // The tags come in KEYS after the key, without TAGS.
        let set = glue(&cache::SET, &[], "key, value");
        assert!(
            set.starts_with(
                "-- CACHE.SET key [tag [tag ...]] value ttl_ms [DELTA delta_ms] [GRACE grace_ms]\n"
            ),
            "{set}"
        );
        // A one-word syntax keeps its twin-only arguments too.
        let rotate = glue(&session::ROTATE, &["id"], "key, id");
        assert!(
            rotate.starts_with("-- SESSION.ROTATE session id\n"),
            "{rotate}"
        );
        let all = glue(&rl::ALL, &[], "limits");
        assert!(all.starts_with("-- RL.ALL limit [limit ...]"), "{all}");
        assert!(
            all.contains("parse_blocks(DEF_rl_all, keys, argv)"),
            "{all}"
        );
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(lua_str("it's a \\ test"), "'it\\'s a \\\\ test'");
    }
}

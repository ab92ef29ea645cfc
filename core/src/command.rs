//! Command definitions as data, and the one argument parser that reads them.
//!
//! Each command is described once ([`CommandDef`]): name, arity, flags, key positions,
//! arguments, summary, complexity and reply shape. That description drives the module's
//! registration and argument parsing, the README tables and the Lua twin's argument checks,
//! so they cannot disagree.

use std::fmt;

/// Largest integer a Lua 5.1 number (a double) holds exactly: the Lua twin's bound.
pub const LUA_EXACT_MAX: i64 = 1 << 53;

/// How a numeric argument is validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// An integer >= 1.
    Positive,
    /// An integer >= 0.
    NonNegative,
}

impl IntKind {
    pub fn min(self) -> i64 {
        match self {
            IntKind::Positive => 1,
            IntKind::NonNegative => 0,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            IntKind::Positive => "a positive integer",
            IntKind::NonNegative => "a non-negative integer",
        }
    }
}

/// A named integer argument (positional, or the value of an option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntArg {
    pub name: &'static str,
    pub kind: IntKind,
}

/// A positional argument after the key. Optional ones come last and may be omitted.
#[derive(Clone, Copy, Debug)]
pub struct Positional {
    pub arg: IntArg,
    /// `Some(default)` when the argument may be omitted.
    pub default: Option<i64>,
}

/// A trailing option, in any order after the positionals: `TOKEN value` or a bare flag.
#[derive(Clone, Copy, Debug)]
pub struct OptionDef {
    pub token: &'static str,
    /// `None` for a flag such as `EXACT`.
    pub value: Option<IntArg>,
    /// The value when the option is absent (flags: 0 absent, 1 present).
    pub default: i64,
}

/// One command, described once.
#[derive(Debug)]
pub struct CommandDef {
    /// Upper-case command name, e.g. `RL.TOKENBUCKET`.
    pub name: &'static str,
    /// Arguments after the name, as documented (`key capacity rate period_ms [COST n]`).
    pub syntax: &'static str,
    pub summary: &'static str,
    pub complexity: &'static str,
    /// The reply, as documented.
    pub reply: &'static str,
    /// What the command reads and writes, as documented in README's key layout.
    pub keys: &'static str,
    /// Redis command flags, e.g. `write deny-oom`.
    pub flags: &'static str,
    /// The one key is the first argument (first = last = 1, step 1) for every command so far.
    pub positionals: &'static [Positional],
    pub options: &'static [OptionDef],
    /// A trailing list of string groups, after the positionals (no options then).
    pub trailing: Option<Trailing>,
    /// Which arguments are keys.
    pub key_positions: Keys,
}

/// Which arguments of a command are keys: Redis checks them against ACL key patterns and
/// routes by them in Cluster (CROSSSLOT when they differ in slot); the Lua twin takes them in
/// `KEYS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// The first argument only (first = last = step = 1).
    First,
    /// Every argument (first = 1, last = -1, step = 1): `CACHE.INVALIDATE tag [tag ...]`.
    All,
    /// The first argument, and every argument after the option `token`, searched for from
    /// argument `from` on (past any argument that may be free text): `... [TAGS tag ...]`.
    FirstAndAfter { token: &'static str, from: i32 },
}

/// Most positionals or options any command has; parsed values live in fixed arrays.
pub const MAX_ARGS: usize = 6;

/// A required positive integer argument.
pub const fn positive(name: &'static str) -> Positional {
    Positional {
        arg: IntArg {
            name,
            kind: IntKind::Positive,
        },
        default: None,
    }
}

/// A trailing variadic list of string groups, e.g. `[field value ...]`: `names` are the words
/// of one group, `min` how many groups are required (1 for `field value [field value ...]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailing {
    pub names: &'static [&'static str],
    pub min: usize,
}

impl CommandDef {
    /// Redis arity: negative (a minimum) when anything is optional.
    pub fn arity(&self) -> i32 {
        let trailing = self.trailing;
        let required = 2
            + self
                .positionals
                .iter()
                .filter(|p| p.default.is_none())
                .count() as i32
            + trailing
                .as_ref()
                .map_or(0, |t| (t.min * t.names.len()) as i32);
        let has_optional = !self.options.is_empty()
            || trailing.is_some()
            || self.positionals.iter().any(|p| p.default.is_some());
        if has_optional {
            -required
        } else {
            required
        }
    }

    /// The function name of the Lua twin: `RL.TOKENBUCKET` → `rl_tokenbucket`.
    pub fn lua_name(&self) -> String {
        self.name.to_ascii_lowercase().replace('.', "_")
    }

    /// Parses the arguments after the key. `args` excludes the command name and the key.
    pub fn parse(&self, args: &[&[u8]]) -> Result<Parsed, CmdError> {
        let mut parsed = Parsed {
            positionals: [0; MAX_ARGS],
            options: [0; MAX_ARGS],
            trailing_at: args.len(),
        };
        let mut rest = args;
        for (i, p) in self.positionals.iter().enumerate() {
            match (rest.split_first(), p.default) {
                (Some((raw, tail)), _) => {
                    parsed.positionals[i] = parse_int_arg(raw, p.arg)?;
                    rest = tail;
                }
                (None, Some(default)) => parsed.positionals[i] = default,
                (None, None) => return Err(CmdError::WrongArity(self.name)),
            }
        }
        if let Some(t) = self.trailing {
            let group = t.names.len().max(1);
            if rest.len() % group != 0 || rest.len() < t.min * group {
                return Err(CmdError::WrongArity(self.name));
            }
            parsed.trailing_at = args.len() - rest.len();
            return Ok(parsed);
        }
        for (i, o) in self.options.iter().enumerate() {
            parsed.options[i] = o.default;
        }
        while let Some((token, tail)) = rest.split_first() {
            let (i, opt) = self
                .options
                .iter()
                .enumerate()
                .find(|(_, o)| o.token.as_bytes().eq_ignore_ascii_case(token))
                .ok_or(CmdError::Syntax)?;
            rest = tail;
            parsed.options[i] = match opt.value {
                None => 1,
                Some(arg) => {
                    let (raw, tail) = rest.split_first().ok_or(CmdError::Syntax)?;
                    rest = tail;
                    parse_int_arg(raw, arg)?
                }
            };
        }
        Ok(parsed)
    }
}

/// A family's command table for README, generated so it cannot drift from the definitions.
pub fn markdown_table(defs: &[&CommandDef]) -> String {
    let mut out = String::from("| Command | Reply | Complexity | Keys |\n|---|---|---|---|\n");
    for def in defs {
        out.push_str(&format!(
            "| `{} {}`<br>{} | {} | {} | {} |\n",
            def.name, def.syntax, def.summary, def.reply, def.complexity, def.keys
        ));
    }
    out
}

/// Parsed integer values, indexed like the definition's positionals and options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub positionals: [i64; MAX_ARGS],
    pub options: [i64; MAX_ARGS],
    /// Where the trailing variadic group starts in the arguments (their length when none).
    pub trailing_at: usize,
}

/// Every error a command can reply with. The texts are public API (README lists them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// `ERR wrong number of arguments for 'rl.tokenbucket' command` (Redis's own text).
    WrongArity(&'static str),
    /// `ERR syntax error` (an unknown option, or an option without its value).
    Syntax,
    /// `ERR capacity must be a positive integer`.
    BadInt(IntArg),
    /// `ERR the limiter's time span is too long (over 2^52 ms)` and similar range errors.
    OutOfRange(&'static str),
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    WrongType,
    /// The key holds a value of the right type that is not this family's state.
    BadState(&'static str),
    /// `NOPERM ...`: the user may not access a key the command derives (Redis's own text).
    NoPerm,
    /// A panic was caught at the command boundary.
    Internal,
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdError::WrongArity(name) => write!(
                f,
                "ERR wrong number of arguments for '{}' command",
                name.to_ascii_lowercase()
            ),
            CmdError::Syntax => f.write_str("ERR syntax error"),
            CmdError::BadInt(arg) => write!(f, "ERR {} must be {}", arg.name, arg.kind.describe()),
            CmdError::OutOfRange(what) => write!(f, "ERR {what}"),
            CmdError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            CmdError::BadState(what) => write!(f, "ERR {what}"),
            CmdError::NoPerm => f.write_str(
                "NOPERM this user has no permissions to access one of the keys used as arguments",
            ),
            CmdError::Internal => f.write_str("ERR internal error in the patterns module"),
        }
    }
}

impl std::error::Error for CmdError {}

/// Parses a decimal integer exactly as Redis does (`string2ll`): an optional `-`, digits,
/// no `+`, no spaces, no leading zeros, within i64.
pub fn parse_i64(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let valid = match digits {
        [] => false,
        [b'0'] => !negative,
        [first, ..] => (b'1'..=b'9').contains(first) && digits.iter().all(u8::is_ascii_digit),
    };
    if !valid || digits.len() > 19 {
        return None;
    }
    // Accumulate negatively so i64::MIN parses too.
    let mut value: i64 = 0;
    for d in digits {
        value = value.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

fn parse_int_arg(raw: &[u8], arg: IntArg) -> Result<i64, CmdError> {
    match parse_i64(raw) {
        Some(v) if v >= arg.kind.min() => Ok(v),
        _ => Err(CmdError::BadInt(arg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: IntArg = IntArg {
        name: "capacity",
        kind: IntKind::Positive,
    };
    const COST: IntArg = IntArg {
        name: "n",
        kind: IntKind::NonNegative,
    };
    const DEF: CommandDef = CommandDef {
        name: "T.CMD",
        syntax: "key capacity [extra] [COST n] [EXACT]",
        summary: "",
        complexity: "",
        reply: "",
        keys: "",
        flags: "write",
        positionals: &[
            Positional {
                arg: CAP,
                default: None,
            },
            Positional {
                arg: COST,
                default: Some(7),
            },
        ],
        options: &[
            OptionDef {
                token: "COST",
                value: Some(COST),
                default: 1,
            },
            OptionDef {
                token: "EXACT",
                value: None,
                default: 0,
            },
        ],
        trailing: None,
        key_positions: Keys::First,
    };

    fn parse(args: &[&str]) -> Result<Parsed, CmdError> {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        DEF.parse(&raw)
    }

    #[test]
    fn integers_follow_redis_rules() {
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            ("-42", Some(-42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("99999999999999999999", None),
            ("", None),
            ("-", None),
            ("-0", None),
            ("007", None),
            ("+5", None),
            (" 5", None),
            ("5 ", None),
            ("1.5", None),
            ("1e3", None),
            ("abc", None),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_i64(raw.as_bytes()), *want, "input {raw:?}");
        }
    }

    #[test]
    fn positionals_options_and_defaults() {
        let p = parse(&["10"]).unwrap();
        assert_eq!(&p.positionals[..2], &[10, 7]);
        assert_eq!(&p.options[..2], &[1, 0]);
        let p = parse(&["10", "3", "exact", "cost", "0"]).unwrap();
        assert_eq!(&p.positionals[..2], &[10, 3]);
        assert_eq!(&p.options[..2], &[0, 1]);
        // The last repeat of an option wins, as in Redis.
        let p = parse(&["10", "3", "COST", "4", "COST", "5"]).unwrap();
        assert_eq!(p.options[0], 5);
    }

    #[test]
    fn errors_name_the_argument() {
        assert_eq!(
            parse(&["0"]).unwrap_err().to_string(),
            "ERR capacity must be a positive integer"
        );
        assert_eq!(
            parse(&["x"]).unwrap_err().to_string(),
            "ERR capacity must be a positive integer"
        );
        assert_eq!(
            parse(&["1", "2", "COST", "-1"]).unwrap_err().to_string(),
            "ERR n must be a non-negative integer"
        );
        assert_eq!(parse(&["1", "2", "COST"]).unwrap_err(), CmdError::Syntax);
        assert_eq!(parse(&["1", "2", "BOGUS"]).unwrap_err(), CmdError::Syntax);
        assert_eq!(
            parse(&[]).unwrap_err().to_string(),
            "ERR wrong number of arguments for 't.cmd' command"
        );
    }

    #[test]
    fn trailing_groups() {
        const PAIRS: Trailing = Trailing {
            names: &["field", "value"],
            min: 0,
        };
        const N: [Positional; 1] = [positive("n")];
        let mut def = CommandDef {
            name: "T.PAIRS",
            syntax: "key n [field value ...]",
            positionals: &N,
            options: &[],
            trailing: Some(PAIRS),
            ..DEF
        };
        assert_eq!(def.arity(), -3);
        let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert_eq!(def.parse(&raw(&["1", "f", "v"])).unwrap().trailing_at, 1);
        assert_eq!(def.parse(&raw(&["1"])).unwrap().trailing_at, 1);
        assert_eq!(
            def.parse(&raw(&["1", "f"])).unwrap_err(),
            CmdError::WrongArity("T.PAIRS")
        );
        def.trailing = Some(Trailing { min: 1, ..PAIRS });
        assert_eq!(def.arity(), -5);
        assert!(def.parse(&raw(&["1"])).is_err());
        assert_eq!(DEF.parse(&raw(&["1"])).unwrap().trailing_at, 1);
    }

    #[test]
    fn arity_and_lua_name() {
        assert_eq!(DEF.arity(), -3);
        assert_eq!(DEF.lua_name(), "t_cmd");
    }
}

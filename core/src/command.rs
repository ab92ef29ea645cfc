//! Command definitions as data, and the one argument parser that reads them.
//!
//! Each command is described once ([`CommandDef`]): name, arity, flags, key positions,
//! arguments, summary, complexity and reply shape. That description drives the module's
//! registration and argument parsing, the README tables and the Lua twin's argument checks,
//! so they cannot disagree.

use std::fmt;

/// Largest integer a Lua 5.1 number (a double) holds exactly: the Lua twin's bound.
pub const LUA_EXACT_MAX: i64 = 1 << 53;

/// How an argument is validated, and what its parsed slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
    /// An integer >= 1.
    Positive,
    /// An integer >= 0.
    NonNegative,
    /// Any integer within i64.
    Integer,
    /// Any bytes; the slot holds the argument's index in the parsed arguments.
    Text,
    /// A decimal number or ±inf ([`parse_f64`]); the slot holds its bits ([`float`]).
    Float,
}

impl ArgKind {
    /// The smallest accepted value of an integer kind.
    pub fn min(self) -> i64 {
        match self {
            ArgKind::Positive => 1,
            ArgKind::NonNegative => 0,
            ArgKind::Integer | ArgKind::Text | ArgKind::Float => i64::MIN,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ArgKind::Positive => "a positive integer",
            ArgKind::NonNegative => "a non-negative integer",
            ArgKind::Integer => "an integer",
            ArgKind::Text => "a string",
            ArgKind::Float => "a number",
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            ArgKind::Positive | ArgKind::NonNegative | ArgKind::Integer
        )
    }
}

/// A named argument (positional, or the value of an option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: &'static str,
    pub kind: ArgKind,
}

/// A positional argument after the key. Optional ones come last and may be omitted.
#[derive(Clone, Copy, Debug)]
pub struct Positional {
    pub arg: Arg,
    /// `Some(default)` when the argument may be omitted.
    pub default: Option<i64>,
}

/// What follows an option's token, and what its parsed slot holds.
#[derive(Clone, Copy, Debug)]
pub enum OptValue {
    /// A bare token such as `EXACT`: 1 when present.
    Flag,
    /// `TOKEN value`: the value, as its [`ArgKind`] parses it.
    Arg(Arg),
    /// `TOKEN word`, one of these words (any case): the word's index.
    Choice(&'static [&'static str]),
    /// One of these bare words (any case), such as `ASC|DESC`: the word's index. The option's
    /// `token` is its documented form.
    Word(&'static [&'static str]),
    /// `TOKEN item [item ...]`, at least `min` items, running to the end of the arguments:
    /// the index of the first item (the default, when absent, must be negative).
    Rest { min: usize },
}

/// A trailing option, in any order after the positionals.
#[derive(Clone, Copy, Debug)]
pub struct OptionDef {
    pub token: &'static str,
    pub value: OptValue,
    /// The slot's value when the option is absent (flags: 0).
    pub default: i64,
}

impl OptionDef {
    /// Whether `word` introduces this option.
    fn matches(&self, word: &[u8]) -> bool {
        match self.value {
            OptValue::Word(words) => index_of(words, word).is_some(),
            _ => self.token.as_bytes().eq_ignore_ascii_case(word),
        }
    }
}

fn index_of(words: &[&str], word: &[u8]) -> Option<usize> {
    words
        .iter()
        .position(|w| w.as_bytes().eq_ignore_ascii_case(word))
}

/// A float argument's value, from its parsed slot.
pub fn float(slot: i64) -> f64 {
    f64::from_bits(slot as u64)
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
    pub flags: Flags,
    /// After the key (the first argument, first = last = 1, step 1 for every command so far).
    pub positionals: &'static [Positional],
    /// Options: after the positionals; with a trailing group, before them (right after the
    /// key, as XADD's), where no field of the group can be taken for a token.
    pub options: &'static [OptionDef],
    /// A trailing list of string groups, after the positionals.
    pub trailing: Option<Trailing>,
    /// Which arguments are keys.
    pub key_positions: Keys,
}

/// A command's flags as typed values; registration renders them as the server's flag string
/// (`Flags::WRITE.and(Flags::DENY_OOM)` is `write deny-oom`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(u8);

impl Flags {
    pub const WRITE: Self = Self(1);
    pub const READONLY: Self = Self(1 << 1);
    pub const DENY_OOM: Self = Self(1 << 2);
    /// The command answers key-position requests itself.
    pub const GETKEYS_API: Self = Self(1 << 3);
    /// O(1) or O(log N), never waits: the server's `fast` (ACL category `@fast`, else `@slow`).
    pub const FAST: Self = Self(1 << 4);
    /// May block the client (`WAIT`): the server's `blocking` (ACL category `@blocking`).
    pub const BLOCKING: Self = Self(1 << 5);
    /// Each flag's word, in the order the flag string lists them.
    const WORDS: [(Self, &'static str); 6] = [
        (Self::WRITE, "write"),
        (Self::READONLY, "readonly"),
        (Self::DENY_OOM, "deny-oom"),
        (Self::FAST, "fast"),
        (Self::BLOCKING, "blocking"),
        (Self::GETKEYS_API, "getkeys-api"),
    ];

    /// These flags and `other`'s.
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A command that writes and may grow memory (`write deny-oom`): refused under OOM, as the
/// server's own writes are. Most of every family's commands.
pub const WRITE: Flags = Flags::WRITE.and(Flags::DENY_OOM);

impl fmt::Display for Flags {
    /// The server's flag string: the words, space-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Self::WORDS.iter().filter(|(flag, _)| self.contains(*flag));
        if let Some((_, first)) = words.next() {
            f.write_str(first)?;
        }
        words.try_for_each(|(_, word)| write!(f, " {word}"))
    }
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
    /// A sequence of blocks `TOKEN key <arguments>` (`RL.ALL limit [limit ...]`), each block one
    /// of `kinds`: its token, its key, then the arguments that kind's command takes after its
    /// key. Each block's key is a key; `name` is the documented word for one block (`limit`).
    Blocks {
        name: &'static str,
        kinds: &'static [Block],
    },
}

/// One kind of block of a [`Keys::Blocks`] command: `token key` followed by the arguments `def`
/// takes after its key, parsed (and refused, with the same error texts) as `def` parses them.
/// `def` has no optional positional and no trailing group, so a block ends after its options.
#[derive(Debug)]
pub struct Block {
    pub token: &'static str,
    pub def: &'static CommandDef,
}

impl PartialEq for Block {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token && std::ptr::eq(self.def, other.def)
    }
}

impl Eq for Block {}

/// One block of a call, as found in its arguments.
#[derive(Clone, Copy, Debug)]
pub struct BlockAt<'a> {
    /// Its kind, as an index in [`Keys::Blocks`]' `kinds`.
    pub kind: usize,
    /// Its key's index in the arguments after the command's name.
    pub key: usize,
    /// The arguments after its key, for its kind's `def.parse`.
    pub args: &'a [&'a [u8]],
}

/// Whether no two of `keys` are equal: compared pairwise for the few keys of most calls
/// (cheaper than hashing them), through a set beyond that.
fn distinct<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]> + Clone) -> bool {
    const FEW: usize = 16;
    let n = keys.len();
    if n <= FEW {
        let mut all: [&[u8]; FEW] = [&[]; FEW];
        for (slot, key) in all.iter_mut().zip(keys) {
            *slot = key;
        }
        return (0..n).all(|i| !all[..i].contains(&all[i]));
    }
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.into_iter().all(|k| seen.insert(k))
}

/// A [`Keys::Blocks`] command names one key in two blocks.
pub const KEY_TWICE: &str = "a key may appear only once in a call";

/// Most positionals or options any command has; parsed values live in fixed arrays.
pub const MAX_ARGS: usize = 6;

/// A required positional argument.
pub const fn required(name: &'static str, kind: ArgKind) -> Positional {
    Positional {
        arg: Arg { name, kind },
        default: None,
    }
}

/// A required positive integer argument.
pub const fn positive(name: &'static str) -> Positional {
    required(name, ArgKind::Positive)
}

/// A required string argument.
pub const fn text(name: &'static str) -> Positional {
    required(name, ArgKind::Text)
}

/// A `TOKEN value` option whose value is an argument of this kind, `default` when absent.
pub const fn arg_option(
    token: &'static str,
    name: &'static str,
    kind: ArgKind,
    default: i64,
) -> OptionDef {
    OptionDef {
        token,
        value: OptValue::Arg(Arg { name, kind }),
        default,
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
        if let Keys::Blocks { kinds, .. } = self.key_positions {
            // The name, then at least one block: its token, its key and its required arguments
            // (as many as its own command's arity, the token in its name's place).
            let least = kinds.iter().map(|b| b.def.arity().abs()).min();
            return -(1 + least.unwrap_or(0));
        }
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

    /// Whether the command only reads (its flags include `readonly`).
    pub fn is_readonly(&self) -> bool {
        self.flags.contains(Flags::READONLY)
    }

    /// The command's ACL categories: `@read` or `@write`, `@fast` or `@slow`, `@blocking` when
    /// it can wait, and the module's own `@patterns` when `with_module` (servers that let a
    /// module add a category).
    pub fn acl_categories(&self, with_module: bool) -> String {
        let mut out = String::from(if self.is_readonly() { "read" } else { "write" });
        out.push_str(if self.flags.contains(Flags::FAST) {
            " fast"
        } else {
            " slow"
        });
        if self.flags.contains(Flags::BLOCKING) {
            out.push_str(" blocking");
        }
        if with_module {
            out.push_str(" patterns");
        }
        out
    }

    /// The function name of the Lua twin: `RL.TOKENBUCKET` → `rl_tokenbucket`.
    pub fn lua_name(&self) -> String {
        self.name.to_ascii_lowercase().replace('.', "_")
    }

    /// Parses the arguments after the key (`args` excludes the command name and the key), for
    /// the caller to read by name. Inlined, like the readers of [`Args`], so that each
    /// command's parse and reads by name fold to its definition's constants: a read by name
    /// costs what a read by position did.
    #[inline(always)]
    pub fn parse<'a>(&'a self, args: &'a [&'a [u8]]) -> Result<Args<'a>, CmdError> {
        let mut parsed = Args {
            def: self,
            argv: args,
            positionals: [0; MAX_ARGS],
            options: [0; MAX_ARGS],
            trailing_at: args.len(),
        };
        for (i, o) in self.options.iter().enumerate() {
            parsed.options[i] = o.default;
        }
        let mut rest = args;
        if self.trailing.is_some() {
            rest = self.parse_options(&mut parsed, rest, true)?;
        }
        for (i, p) in self.positionals.iter().enumerate() {
            match (rest.split_first(), p.default) {
                (Some((raw, tail)), _) => {
                    parsed.positionals[i] = parse_arg(raw, p.arg, args.len() - rest.len())?;
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
        self.parse_options(&mut parsed, rest, false)?;
        Ok(parsed)
    }

    /// Parses the options at the head of `rest` into `parsed`: all of it, a word that is no
    /// option's token being a syntax error; or with `leading`, up to the first such word.
    /// Returns what follows them.
    #[inline(always)]
    fn parse_options<'a>(
        &'a self,
        parsed: &mut Args<'a>,
        mut rest: &'a [&'a [u8]],
        leading: bool,
    ) -> Result<&'a [&'a [u8]], CmdError> {
        let args = parsed.argv;
        while let Some((word, tail)) = rest.split_first() {
            let Some((i, opt)) = self
                .options
                .iter()
                .enumerate()
                .find(|(_, o)| o.matches(word))
            else {
                if leading {
                    break;
                }
                return Err(CmdError::Syntax);
            };
            let at = args.len() - tail.len();
            rest = tail;
            parsed.options[i] = match opt.value {
                OptValue::Flag => 1,
                OptValue::Word(words) => index_of(words, word).unwrap_or(0) as i64,
                OptValue::Arg(arg) => {
                    let (raw, tail) = rest.split_first().ok_or(CmdError::Syntax)?;
                    rest = tail;
                    parse_arg(raw, arg, at)?
                }
                OptValue::Choice(words) => {
                    let (raw, tail) = rest.split_first().ok_or(CmdError::Syntax)?;
                    rest = tail;
                    index_of(words, raw).ok_or(CmdError::Syntax)? as i64
                }
                OptValue::Rest { min } => {
                    if rest.len() < min.max(1) {
                        return Err(CmdError::Syntax);
                    }
                    rest = &[];
                    at as i64
                }
            };
        }
        Ok(rest)
    }

    /// The blocks of a [`Keys::Blocks`] command, `args` being every argument after its name:
    /// a word that is no kind's token is a syntax error, a token without a key a wrong number
    /// of arguments for that kind's command, a key in two blocks [`KEY_TWICE`]. The blocks'
    /// own arguments are not parsed here.
    pub fn blocks<'a>(&self, args: &'a [&'a [u8]]) -> Result<Vec<BlockAt<'a>>, CmdError> {
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < args.len() {
            let block = self.block_at(args, at)?;
            at = block.key + 1 + block.args.len();
            blocks.push(block);
        }
        if blocks.is_empty() {
            return Err(CmdError::WrongArity(self.name));
        }
        if !distinct(blocks.iter().map(|b| args[b.key])) {
            return Err(CmdError::Invalid(KEY_TWICE));
        }
        Ok(blocks)
    }

    /// Parses a block's arguments (after its key) as this command's: first the argument
    /// count the server itself would check for the command, then [`CommandDef::parse`].
    pub fn parse_block<'a>(&'a self, args: &'a [&'a [u8]]) -> Result<Args<'a>, CmdError> {
        let (argc, arity) = (2 + args.len() as i32, self.arity());
        if (arity > 0 && argc != arity) || argc < -arity {
            return Err(CmdError::WrongArity(self.name));
        }
        self.parse(args)
    }

    /// The indexes of the keys of a [`Keys::Blocks`] command's arguments (after its name), as
    /// far as its blocks can be told apart: what a key-position request answers.
    pub fn block_keys(&self, args: &[&[u8]]) -> Vec<usize> {
        let mut keys = Vec::new();
        let mut at = 0;
        while let Ok(block) = self.block_at(args, at) {
            keys.push(block.key);
            at = block.key + 1 + block.args.len();
        }
        keys
    }

    /// The block starting at `args[at]`: its token, its key, its kind's positionals (as many
    /// as there are), then every word its kind's options take.
    fn block_at<'a>(&self, args: &'a [&'a [u8]], at: usize) -> Result<BlockAt<'a>, CmdError> {
        let Keys::Blocks { kinds, .. } = self.key_positions else {
            return Err(CmdError::Syntax);
        };
        let token = args.get(at).ok_or(CmdError::Syntax)?;
        let kind = kinds
            .iter()
            .position(|b| b.token.as_bytes().eq_ignore_ascii_case(token))
            .ok_or(CmdError::Syntax)?;
        let def = kinds[kind].def;
        let key = at + 1;
        if key >= args.len() {
            return Err(CmdError::WrongArity(def.name));
        }
        let mut end = (key + 1 + def.positionals.len()).min(args.len());
        while let Some(o) = args
            .get(end)
            .and_then(|w| def.options.iter().find(|o| o.matches(w)))
        {
            end += match o.value {
                OptValue::Flag | OptValue::Word(_) => 1,
                OptValue::Arg(_) | OptValue::Choice(_) => 2,
                OptValue::Rest { .. } => args.len() - end,
            };
            end = end.min(args.len());
        }
        Ok(BlockAt {
            kind,
            key,
            args: &args[key + 1..end],
        })
    }

    /// The value a name reads: a positional's name, or an option's token (`COST`, `ASC|DESC`).
    #[inline(always)]
    pub fn find(&self, name: &str) -> Option<Slot> {
        if let Some(i) = self.positionals.iter().position(|p| p.arg.name == name) {
            return Some(Slot::Positional(i, self.positionals[i].arg.kind));
        }
        let i = self.options.iter().position(|o| o.token == name)?;
        Some(Slot::Option(i, self.options[i].value))
    }
}

/// Where a named argument's parsed value lives, and what it is.
#[derive(Clone, Copy, Debug)]
pub enum Slot {
    Positional(usize, ArgKind),
    Option(usize, OptValue),
}

/// A family's command table for README, generated so it cannot drift from the definitions.
pub fn markdown_table(defs: &[&CommandDef]) -> String {
    let mut out = String::from("| Command | Reply | Complexity | Keys |\n|---|---|---|---|\n");
    // A `|` inside a cell (`[ASC|DESC]`) would end it, even in a code span.
    let cell = |s: &str| s.replace('|', "\\|");
    for def in defs {
        out.push_str(&format!(
            "| `{} {}`<br>{} | {} | {} | {} |\n",
            def.name,
            cell(def.syntax),
            cell(def.summary),
            cell(def.reply),
            cell(def.complexity),
            cell(def.keys)
        ));
    }
    out
}

/// An ACL rule granting exactly these commands (`+rl.tokenbucket +lb.top ...`): for servers
/// without module ACL categories (Redis 7.0), where `+@read +@write` does not reach them.
pub fn acl_rule<'a>(defs: impl IntoIterator<Item = &'a CommandDef>) -> String {
    let grants: Vec<String> = defs
        .into_iter()
        .map(|def| format!("+{}", def.name.to_ascii_lowercase()))
        .collect();
    grants.join(" ")
}

/// A command's parsed arguments, read by name: `args.int("capacity")`, `args.text("owner")`,
/// `args.flag("EXACT")`. Parsing allocates nothing: integers are kept as they are, text as its
/// index in the arguments, floats as their bits.
///
/// Reading a name the definition lacks, or reading it as another kind, is a bug in the caller,
/// not bad input: it panics, so the first test of that command fails (the module's panic guard
/// answers it with an internal error).
#[derive(Clone, Copy, Debug)]
pub struct Args<'a> {
    def: &'a CommandDef,
    argv: &'a [&'a [u8]],
    positionals: [i64; MAX_ARGS],
    options: [i64; MAX_ARGS],
    /// Where the trailing variadic group starts in the arguments (their length when none).
    trailing_at: usize,
}

impl<'a> Args<'a> {
    #[inline(always)]
    #[track_caller]
    fn slot(&self, name: &str) -> Slot {
        match self.def.find(name) {
            Some(slot) => slot,
            None => panic!("{} has no argument named {name:?}", self.def.name),
        }
    }

    #[cold]
    #[track_caller]
    fn wrong_kind(&self, name: &str, wanted: &str) -> ! {
        panic!("{}'s argument {name:?} is not {wanted}", self.def.name)
    }

    /// An integer argument (a positional, or an option's value; its default when absent).
    #[inline(always)]
    #[track_caller]
    pub fn int(&self, name: &str) -> i64 {
        match self.slot(name) {
            Slot::Positional(i, kind) if kind.is_integer() => self.positionals[i],
            Slot::Option(i, OptValue::Arg(arg)) if arg.kind.is_integer() => self.options[i],
            _ => self.wrong_kind(name, "an integer"),
        }
    }

    /// A number argument ([`parse_f64`]).
    #[inline(always)]
    #[track_caller]
    pub fn float(&self, name: &str) -> f64 {
        let bits = match self.slot(name) {
            Slot::Positional(i, ArgKind::Float) => self.positionals[i],
            Slot::Option(i, OptValue::Arg(arg)) if arg.kind == ArgKind::Float => self.options[i],
            _ => self.wrong_kind(name, "a number"),
        };
        float(bits)
    }

    /// A required positional as given, whatever its kind (a number's own text). Positionals
    /// come first, so the `i`-th is argument `i`.
    #[inline(always)]
    #[track_caller]
    pub fn raw(&self, name: &str) -> &'a [u8] {
        match self.slot(name) {
            Slot::Positional(i, _) if self.def.positionals[i].default.is_none() => self.argv[i],
            _ => self.wrong_kind(name, "a required positional"),
        }
    }

    /// A string argument, as given.
    #[inline(always)]
    #[track_caller]
    pub fn text(&self, name: &str) -> &'a [u8] {
        match self.slot(name) {
            Slot::Positional(i, ArgKind::Text) => self.argv[self.positionals[i] as usize],
            _ => self.wrong_kind(name, "a string"),
        }
    }

    /// Whether a bare token (`EXACT`) was given.
    #[inline(always)]
    #[track_caller]
    pub fn flag(&self, name: &str) -> bool {
        match self.slot(name) {
            Slot::Option(i, OptValue::Flag) => self.options[i] == 1,
            _ => self.wrong_kind(name, "a flag"),
        }
    }

    /// Which of an option's words was given (`ASC|DESC`, `RANKING ORDINAL|DENSE`): its index
    /// in the definition's list, or the option's default when absent.
    #[inline(always)]
    #[track_caller]
    pub fn choice(&self, name: &str) -> i64 {
        match self.slot(name) {
            Slot::Option(i, OptValue::Choice(_) | OptValue::Word(_)) => self.options[i],
            _ => self.wrong_kind(name, "a choice"),
        }
    }

    /// The items after a list option's token (`TAGS tag [tag ...]`); none when it is absent.
    #[inline(always)]
    #[track_caller]
    pub fn list(&self, name: &str) -> &'a [&'a [u8]] {
        match self.slot(name) {
            // The slot holds the first item's index, or a negative default when absent.
            Slot::Option(i, OptValue::Rest { .. }) => usize::try_from(self.options[i])
                .map_or(&[], |at| &self.argv[at.min(self.argv.len())..]),
            _ => self.wrong_kind(name, "a list"),
        }
    }

    /// The trailing variadic groups (`[field value ...]`), flat; none when the definition has
    /// no trailing group.
    #[inline(always)]
    pub fn trailing(&self) -> &'a [&'a [u8]] {
        &self.argv[self.trailing_at..]
    }
}

/// Every error a command can reply with. The texts are public API (README lists them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// `ERR wrong number of arguments for 'rl.tokenbucket' command` (Redis's own text).
    WrongArity(&'static str),
    /// `ERR syntax error` (an unknown option, or an option without its value).
    Syntax,
    /// `ERR capacity must be a positive integer`, `ERR score must be a number`.
    BadArg(Arg),
    /// `ERR the limiter's time span is too long (over 2^52 ms)` and similar range errors.
    OutOfRange(&'static str),
    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    WrongType,
    /// The key holds a value of the right type that is not this family's state.
    BadState(&'static str),
    /// `NOPERM ...`: the user may not access a key the command derives (Redis's own text).
    NoPerm,
    /// A call whose arguments are each valid but do not go together (`ERR <text>`).
    Invalid(&'static str),
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
            CmdError::BadArg(arg) => write!(f, "ERR {} must be {}", arg.name, arg.kind.describe()),
            CmdError::OutOfRange(what) => write!(f, "ERR {what}"),
            CmdError::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            CmdError::BadState(what) | CmdError::Invalid(what) => write!(f, "ERR {what}"),
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

/// Parses a number as a sorted-set score is written: an optional sign, decimal digits with an
/// optional fraction and exponent, or `inf`/`infinity` (any case). NaN, hex, spaces, and
/// values that overflow to infinity or underflow to zero are refused. The Lua twin applies the
/// same rules.
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    if let Some(value) = whole_f64(raw) {
        return Some(value);
    }
    let text = std::str::from_utf8(raw).ok()?;
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let value: f64 = text.parse().ok().filter(|_| exponent_ok)?;
    let underflow = value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
    (value.is_finite() && !underflow).then_some(value)
}

/// A whole number of 1 to 15 digits, maybe negative, without the float parser (most scores and
/// increments are such): each is exact in a double, so the value is the parser's.
fn whole_f64(raw: &[u8]) -> Option<f64> {
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if !(1..=15).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0, |n: i64, d| n * 10 + i64::from(d - b'0')) as f64;
    Some(if digits.len() < raw.len() { -n } else { n })
}

/// One argument's slot value, `at` being its index in the parsed arguments.
fn parse_arg(raw: &[u8], arg: Arg, at: usize) -> Result<i64, CmdError> {
    let bad = CmdError::BadArg(arg);
    match arg.kind {
        ArgKind::Text => Ok(at as i64),
        ArgKind::Float => parse_f64(raw).map(|v| v.to_bits() as i64).ok_or(bad),
        kind => parse_i64(raw).filter(|&v| v >= kind.min()).ok_or(bad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_render_as_the_servers_flag_string() {
        let write = Flags::WRITE.and(Flags::DENY_OOM);
        assert_eq!(write.to_string(), "write deny-oom");
        assert_eq!(
            write.and(Flags::GETKEYS_API).to_string(),
            "write deny-oom getkeys-api"
        );
        assert_eq!(Flags::READONLY.to_string(), "readonly");
        assert!(!write.contains(Flags::READONLY));
        assert!(write.contains(Flags::DENY_OOM));
        // A flag already there stays (a union, not a toggle).
        assert_eq!(write.and(Flags::WRITE), write);
    }

    #[test]
    fn acl_categories_follow_the_flags() {
        let categories = |name: &str, own| {
            let def = crate::all_commands().find(|d| d.name == name).unwrap();
            def.acl_categories(own)
        };
        assert_eq!(categories("SEM.COUNT", true), "read fast patterns");
        assert_eq!(categories("LOCK.ACQUIRE", false), "write slow blocking");
        assert_eq!(categories("LB.TOP", false), "read slow");
        assert_eq!(categories("RL.TOKENBUCKET", false), "write fast");
        // A command that can wait is never fast; a read is never a write.
        for def in crate::all_commands() {
            assert!(!(def.flags.contains(Flags::FAST) && def.flags.contains(Flags::BLOCKING)));
            assert_ne!(
                def.is_readonly(),
                def.flags.contains(Flags::WRITE),
                "{}",
                def.name
            );
        }
    }

    #[test]
    fn the_acl_rule_grants_every_command_by_name() {
        let rule = acl_rule(crate::all_commands());
        assert!(rule.starts_with("+rl.tokenbucket +rl.fixedwindow "));
        let grants: Vec<&str> = rule.split(' ').collect();
        assert!(grants.contains(&"+sem.count") && grants.contains(&"+lb.top"));
        assert_eq!(grants.len(), crate::all_commands().count());
    }

    const CAP: Arg = Arg {
        name: "capacity",
        kind: ArgKind::Positive,
    };
    const COST: Arg = Arg {
        name: "n",
        kind: ArgKind::NonNegative,
    };
    const DEF: CommandDef = CommandDef {
        name: "T.CMD",
        syntax: "key capacity [extra] [COST n] [EXACT]",
        summary: "",
        complexity: "",
        reply: "",
        keys: "",
        flags: Flags::WRITE,
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
                value: OptValue::Arg(COST),
                default: 1,
            },
            OptionDef {
                token: "EXACT",
                value: OptValue::Flag,
                default: 0,
            },
        ],
        trailing: None,
        key_positions: Keys::First,
    };

    /// (capacity, n, COST, EXACT) as parsed, or the error.
    fn parse(args: &[&str]) -> Result<(i64, i64, i64, bool), CmdError> {
        let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let a = DEF.parse(&raw)?;
        Ok((
            a.int("capacity"),
            a.int("n"),
            a.int("COST"),
            a.flag("EXACT"),
        ))
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
        assert_eq!(parse(&["10"]), Ok((10, 7, 1, false)));
        assert_eq!(
            parse(&["10", "3", "exact", "cost", "0"]),
            Ok((10, 3, 0, true))
        );
        // The last repeat of an option wins, as in Redis.
        assert_eq!(
            parse(&["10", "3", "COST", "4", "COST", "5"]),
            Ok((10, 3, 5, false))
        );
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
        let args = raw(&["1", "f", "v"]);
        assert_eq!(def.parse(&args).unwrap().trailing(), &raw(&["f", "v"])[..]);
        assert!(def.parse(&raw(&["1"])).unwrap().trailing().is_empty());
        assert_eq!(
            def.parse(&raw(&["1", "f"])).unwrap_err(),
            CmdError::WrongArity("T.PAIRS")
        );
        def.trailing = Some(Trailing { min: 1, ..PAIRS });
        assert_eq!(def.arity(), -5);
        assert!(def.parse(&raw(&["1"])).is_err());
        assert!(DEF.parse(&raw(&["1"])).unwrap().trailing().is_empty());
    }

    #[test]
    fn options_lead_a_trailing_group() {
        const N: [Positional; 1] = [positive("n")];
        const CAP: [OptionDef; 1] = [OptionDef {
            token: "CAP",
            value: OptValue::Arg(Arg {
                name: "cap",
                kind: ArgKind::Positive,
            }),
            default: 0,
        }];
        let def = CommandDef {
            name: "T.PAIRS",
            syntax: "key [CAP cap] n [field value ...]",
            positionals: &N,
            options: &CAP,
            trailing: Some(Trailing {
                names: &["field", "value"],
                min: 0,
            }),
            ..DEF
        };
        let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        // (arguments, cap, n, trailing)
        let table: [(&[&str], i64, i64, &[&str]); 4] = [
            (&["cap", "3", "1", "f", "v"], 3, 1, &["f", "v"]),
            (&["1", "CAP", "3"], 0, 1, &["CAP", "3"]),
            (&["CAP", "3", "CAP", "4", "2"], 4, 2, &[]),
            (&["2"], 0, 2, &[]),
        ];
        for (args, cap, n, trailing) in table {
            let args = raw(args);
            let p = def.parse(&args).unwrap();
            assert_eq!((p.int("CAP"), p.int("n")), (cap, n), "{args:?}");
            assert_eq!(p.trailing(), &raw(trailing)[..], "{args:?}");
        }
        let err = |a: &[&'static str]| def.parse(&raw(a)).unwrap_err().to_string();
        assert_eq!(
            err(&["CAP", "0", "1"]),
            "ERR cap must be a positive integer"
        );
        assert_eq!(err(&["CAP"]), "ERR syntax error");
        assert_eq!(
            err(&["CAP", "2"]),
            "ERR wrong number of arguments for 't.pairs' command"
        );
    }

    #[test]
    fn whole_numbers_read_without_the_float_parser_as_with_it() {
        let cases = [
            "0",
            "-0",
            "7",
            "-42",
            "007",
            "999999999999999",
            "-999999999999999",
            "1234567890123456",
            "+5",
        ];
        for raw in cases {
            let parsed: f64 = raw.parse().unwrap();
            let got = parse_f64(raw.as_bytes());
            assert_eq!(got.map(f64::to_bits), Some(parsed.to_bits()), "{raw}");
            // Up to 15 digits, maybe after a minus: the fast path; longer or `+`: the parser.
            let digits = raw.trim_start_matches('-').len();
            let fast = digits <= 15 && !raw.starts_with('+');
            assert_eq!(whole_f64(raw.as_bytes()).is_some(), fast, "{raw}");
        }
        for raw in ["", "-", "--1", "1.0", "1e3", "1 ", "12a"] {
            assert_eq!(whole_f64(raw.as_bytes()), None, "{raw}");
        }
    }

    #[test]
    fn floats_follow_score_rules() {
        let cases: &[(&str, Option<f64>)] = &[
            ("0", Some(0.0)),
            ("1.5", Some(1.5)),
            ("-1.5", Some(-1.5)),
            ("+2", Some(2.0)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("1E-3", Some(0.001)),
            ("-0e15", Some(-0.0)),
            ("9007199254740993", Some(9007199254740992.0)),
            ("inf", Some(f64::INFINITY)),
            ("+Inf", Some(f64::INFINITY)),
            ("-infinity", Some(f64::NEG_INFINITY)),
            ("nan", None),
            ("", None),
            (".", None),
            ("-", None),
            ("e5", None),
            ("1e", None),
            ("1e+", None),
            ("1.2.3", None),
            ("0x10", None),
            (" 1", None),
            ("1 ", None),
            ("1e400", None),
            ("1e-400", None),
            ("infinite", None),
        ];
        for (raw, want) in cases {
            let got = parse_f64(raw.as_bytes());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "input {raw:?}"
            );
        }
    }

    #[test]
    fn text_float_word_choice_and_rest() {
        const ORDER: OptionDef = OptionDef {
            token: "ASC|DESC",
            value: OptValue::Word(&["DESC", "ASC"]),
            default: 0,
        };
        const RANKING: OptionDef = OptionDef {
            token: "RANKING",
            value: OptValue::Choice(&["ORDINAL", "DENSE"]),
            default: 0,
        };
        const BETA: OptionDef = arg_option("BETA", "beta", ArgKind::Float, 0);
        const TAGS: OptionDef = OptionDef {
            token: "TAGS",
            value: OptValue::Rest { min: 1 },
            default: -1,
        };
        const OWNER: [Positional; 2] = [text("owner"), required("delta", ArgKind::Integer)];
        let def = CommandDef {
            name: "T.MIXED",
            syntax: "key owner delta [ASC|DESC] [RANKING ORDINAL|DENSE] [BETA b] [TAGS tag ...]",
            positionals: &OWNER,
            options: &[ORDER, RANKING, BETA, TAGS],
            ..DEF
        };
        let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        let args = raw(&["me", "-5"]);
        let p = def.parse(&args).unwrap();
        assert_eq!((p.text("owner"), p.int("delta")), (&b"me"[..], -5));
        assert_eq!((p.choice("ASC|DESC"), p.choice("RANKING")), (0, 0));
        assert_eq!(p.float("BETA"), 0.0);
        assert!(p.list("TAGS").is_empty());
        let args = raw(&[
            "me", "7", "asc", "ranking", "dense", "BETA", "0.5", "TAGS", "t1", "asc",
        ]);
        let p = def.parse(&args).unwrap();
        assert_eq!((p.choice("ASC|DESC"), p.choice("RANKING")), (1, 1));
        assert_eq!(p.float("BETA"), 0.5);
        assert_eq!(p.list("TAGS"), &raw(&["t1", "asc"])[..]);
        let args = raw(&["me", "1", "DESC"]);
        assert_eq!(def.parse(&args).unwrap().choice("ASC|DESC"), 0);
        for bad in [
            &["me", "1", "RANKING", "FANCY"][..],
            &["me", "1", "RANKING"],
            &["me", "1", "TAGS"],
            &["me", "1", "BETA"],
        ] {
            assert_eq!(
                def.parse(&raw(bad)).unwrap_err(),
                CmdError::Syntax,
                "{bad:?}"
            );
        }
        assert_eq!(
            def.parse(&raw(&["me", "1", "BETA", "nan"]))
                .unwrap_err()
                .to_string(),
            "ERR beta must be a number"
        );
        assert_eq!(
            def.parse(&raw(&["me", "1.5"])).unwrap_err().to_string(),
            "ERR delta must be an integer"
        );
    }

    #[test]
    #[should_panic(expected = "T.CMD has no argument named \"capacty\"")]
    fn a_misspelled_name_panics() {
        let args: [&[u8]; 1] = [b"1"];
        DEF.parse(&args).unwrap().int("capacty");
    }

    #[test]
    #[should_panic(expected = "T.CMD's argument \"EXACT\" is not an integer")]
    fn a_name_read_as_another_kind_panics() {
        let args: [&[u8]; 1] = [b"1"];
        DEF.parse(&args).unwrap().int("EXACT");
    }

    #[test]
    fn arity_and_lua_name() {
        assert_eq!(DEF.arity(), -3);
        assert_eq!(DEF.lua_name(), "t_cmd");
    }

    /// An argument of each reader's kind.
    const KINDS: CommandDef = CommandDef {
        name: "T.KINDS",
        syntax: "key owner score [limit] [BETA b] [COST n]",
        positionals: &[
            text("owner"),
            required("score", ArgKind::Float),
            Positional {
                arg: COST,
                default: Some(5),
            },
        ],
        options: &[
            arg_option("BETA", "b", ArgKind::Float, (-0.25f64).to_bits() as i64),
            arg_option("COST", "n", ArgKind::NonNegative, 1),
        ],
        ..DEF
    };

    #[test]
    fn readers_return_each_kinds_value() {
        let args: [&[u8]; 5] = [b"me", b"-2.5e0", b"9", b"COST", b"3"];
        let a = KINDS.parse(&args).unwrap();
        assert_eq!(a.text("owner"), b"me");
        assert_eq!(a.float("score"), -2.5);
        // A number's own text, as the caller gave it.
        assert_eq!(a.raw("score"), b"-2.5e0");
        assert_eq!(a.raw("owner"), b"me");
        assert_eq!((a.int("n"), a.int("COST")), (9, 3));
        assert_eq!(a.float("BETA"), -0.25);
    }

    #[test]
    fn readers_refuse_an_argument_of_another_kind() {
        // A read as the wrong kind is the caller's bug: it panics, naming the argument.
        let args: [&[u8]; 2] = [b"me", b"1"];
        let a = KINDS.parse(&args).unwrap();
        type Read = fn(&Args, &str);
        let misreads: [(&str, &str, Read); 5] = [
            ("owner", "an integer", |a, n| {
                a.int(n);
            }),
            ("score", "an integer", |a, n| {
                a.int(n);
            }),
            ("BETA", "an integer", |a, n| {
                a.int(n);
            }),
            ("COST", "a number", |a, n| {
                a.float(n);
            }),
            // An optional positional may be absent: it has no text of its own.
            ("n", "a required positional", |a, n| {
                a.raw(n);
            }),
        ];
        for (name, wanted, read) in misreads {
            let panic = std::panic::catch_unwind(|| read(&a, name)).unwrap_err();
            assert_eq!(
                panic.downcast_ref::<String>().map(String::as_str),
                Some(&*format!("T.KINDS's argument {name:?} is not {wanted}"))
            );
        }
    }

    #[test]
    fn a_block_is_counted_as_the_server_counts_its_command() {
        // Too many arguments for a fixed arity is a wrong number of arguments, not a syntax
        // error (what `parse` alone says of the extra word).
        const FIXED: CommandDef = CommandDef {
            name: "T.FIXED",
            positionals: &[positive("capacity")],
            options: &[],
            ..DEF
        };
        let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        assert_eq!(FIXED.arity(), 3);
        assert_eq!(FIXED.parse_block(&raw(&["1"])).unwrap().int("capacity"), 1);
        for args in [&[][..], &["1", "2"]] {
            assert_eq!(
                FIXED.parse_block(&raw(args)).unwrap_err(),
                CmdError::WrongArity("T.FIXED"),
                "{args:?}"
            );
        }
        assert_eq!(
            FIXED.parse(&raw(&["1", "2"])).unwrap_err(),
            CmdError::Syntax
        );
        // A minimum: the least is enough, fewer is not.
        assert_eq!(DEF.parse_block(&raw(&["10"])).unwrap().int("n"), 7);
        assert_eq!(
            DEF.parse_block(&[]).unwrap_err(),
            CmdError::WrongArity("T.CMD")
        );
    }

    #[test]
    fn a_list_option_runs_its_block_to_the_end() {
        // A block's list option takes every word after its token, tokens of blocks included.
        const TAGGED: CommandDef = CommandDef {
            name: "T.TAGGED",
            positionals: &[],
            options: &[OptionDef {
                token: "TAGS",
                value: OptValue::Rest { min: 1 },
                default: -1,
            }],
            ..DEF
        };
        static TAGGED_BLOCK: [Block; 1] = [Block {
            token: "T",
            def: &TAGGED,
        }];
        const BLOCKS: CommandDef = CommandDef {
            name: "T.BLOCKS",
            key_positions: Keys::Blocks {
                name: "block",
                kinds: &TAGGED_BLOCK,
            },
            ..DEF
        };
        let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
        let args = raw(&["T", "k1", "TAGS", "a", "T", "k2"]);
        let blocks = BLOCKS.blocks(&args).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].args, &args[2..]);
        assert_eq!(BLOCKS.block_keys(&args), [1]);
    }

    #[test]
    fn blocks_are_equal_by_token_and_definition() {
        use crate::ratelimit::{ALL, FIXEDWINDOW, LIMITS, REFUND, TOKENBUCKET};
        assert_eq!(ALL.key_positions, REFUND.key_positions);
        assert_ne!(LIMITS[0], LIMITS[1]);
        let renamed = Block {
            token: "BUCKET",
            def: &TOKENBUCKET,
        };
        let redefined = Block {
            token: "TOKENBUCKET",
            def: &FIXEDWINDOW,
        };
        assert_ne!(renamed, LIMITS[0]);
        assert_ne!(redefined, LIMITS[0]);
    }

    #[test]
    fn readme_table_has_a_row_per_command_with_bars_escaped() {
        let order = CommandDef {
            syntax: "key [ASC|DESC]",
            summary: "Orders.",
            reply: "Array",
            complexity: "O(1)",
            keys: "reads key",
            ..DEF
        };
        let table = markdown_table(&[&order, &DEF]);
        let rows: Vec<&str> = table.lines().collect();
        assert_eq!(
            rows[..3],
            [
                "| Command | Reply | Complexity | Keys |",
                "|---|---|---|---|",
                "| `T.CMD key [ASC\\|DESC]`<br>Orders. | Array | O(1) | reads key |",
            ]
        );
        assert_eq!(rows.len(), 4);
    }
}

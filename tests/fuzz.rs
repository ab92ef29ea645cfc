//! The fuzzer: random argument vectors for every command the module registers (every
//! `CommandDef` of every family, so a new command is fuzzed without touching this file), run
//! on a server with the module and, through the Lua twin, on a plain server, from the same
//! keyspace.
//!
//! Each round empties both servers, gives a random set of keys (the pool's names and the keys
//! derived from them: fencing counters, tie-break keys, session keys) random types and contents,
//! then runs a few commands. Arguments are drawn from the definitions (well-formed calls,
//! then mutated: option tokens in wrong places, missing or extra arguments) and from edge
//! values: i64 bounds, `nan`, `inf`, `1e400`, empty, NUL and binary bytes, 1 MB values.
//!
//! Asserted for every call: the server stays up and no panic is caught (no `internal error`
//! reply) or logged; every error reply has an upper-case code; an error reply writes nothing
//! (INFO's `rdb_changes_since_last_save` and `DEBUG DIGEST` unchanged, unless a key expired
//! meanwhile); the twin gives the module's reply kind and error text whenever both keyspaces
//! were equal before the call (outside the twin's documented differences); no command runs 2 s
//! or more (SLOWLOG, so a loaded machine's scheduling does not count); `used_memory` after
//! `FLUSHALL` stays within a bound of its value at the start.
//!
//! `FUZZ_SEED` (default: drawn and printed) fixes the argument vectors: the PRNG never reads a
//! reply, so a seed replays the same calls. `FUZZ_SECS` (default 20) bounds the run per flavor
//! (flavors run in parallel); `FUZZ_ROUNDS` bounds it by rounds instead. `make fuzz` runs long.

mod common;

use common::*;
use patterns_core::cache::{Entry, Lease, Times};
use patterns_core::command::{ArgKind, Block, CommandDef, Keys, OptValue};
use patterns_core::keys::derived_key;
use patterns_core::lua::{families, TwinCommand};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Longest a non-blocking command may run (SLOWLOG's duration, in µs).
const SLOW_US: i64 = 2_000_000;
/// A call with `WAIT` still blocked after this long is unblocked with `CLIENT UNBLOCK`.
const UNBLOCK_AFTER: Duration = Duration::from_millis(400);
/// How far `used_memory` after `FLUSHALL` may rise above its value at the start.
const MEMORY_SLACK: i64 = 24 << 20;
/// A step is compared with the twin only when no key expires sooner than this.
const EXPIRY_MARGIN_MS: i64 = 1000;
/// Commands per round (after the round's keys are set up).
const MAX_STEPS: usize = 6;
/// One value in this many is 1 MB.
const HUGE_ONE_IN: u32 = 400;

/// Base key names: plain, hashtagged, braces without a hashtag, empty, binary.
const NAMES: &[&[u8]] = &[b"k", b"k2", b"{t}a", b"{t}b", b"a{b", b"{}", b"", b"n\0l"];
/// Suffixes of the keys the families derive from a name (`keys::derived_key`).
const SUFFIXES: &[&str] = &["fence", "lb-order", "lb-stamps", "lb-scores", "lb-names"];
/// Session ids (22 base64url characters), suffixes of session keys in the pool.
const IDS: &[&str] = &["AAAAAAAAAAAAAAAAAAAAAA", "fuzz-fuzz-fuzz-fuzz-__"];
/// The alphabet of session ids.
const ID_CHARS: &[u8] = patterns_core::keys::ALPHABET;
/// Hash fields the families read.
const FIELDS: &[&str] = &[
    "owner",
    "token",
    "holds",
    "__fence",
    "value",
    "fresh_until",
    "stale_until",
    "delta_ms",
    "lease",
    "lease_until",
    "leased_at",
    "__idle_ms",
    "__absolute_at",
    "__index",
    "f",
];
/// Integers on both sides of every bound an argument is checked against.
const INT_EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "7",
    "100",
    "60000",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775806",
    "9223372036854775808",
    "-9223372036854775809",
    "4611686018427387904",
    "4503599627370496",
    "4503599627370497",
    "9007199254740992",
    "9007199254740993",
    "18446744073709551616",
    "01",
    "+1",
    " 1",
    "1.0",
    "0x10",
];
/// Strings no parser expects.
const ODD: &[&[u8]] = &[
    b"",
    b"\0",
    b"a\0b",
    b"\xff\xfe\x00\x80",
    b"nan",
    b"inf",
    b"-inf",
    b"1e400",
    b"NaN",
    b" ",
    b"\r\n",
    b"{",
    b"}",
    b"__x",
    b"x:y:z",
    b"1:2:3",
    b"1+1/3",
];
/// Scores for sorted sets set up by the fuzzer (ZADD accepts each).
const SCORES: &[&str] = &[
    "0",
    "1",
    "-1",
    "1.5",
    "1e300",
    "inf",
    "-inf",
    "4503599627370497",
];

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

struct Config {
    seed: u64,
    budget: Duration,
    rounds: Option<u64>,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be an integer, not {v:?}")),
    )
}

fn config() -> Config {
    let seed = env_u64("FUZZ_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    Config {
        seed,
        budget: Duration::from_secs(env_u64("FUZZ_SECS").unwrap_or(20)),
        rounds: env_u64("FUZZ_ROUNDS"),
    }
}

// ---------------------------------------------------------------------------------------------
// Argument vectors
// ---------------------------------------------------------------------------------------------

type Argv = Vec<Vec<u8>>;

/// Every key the fuzzer names: the base names and their derived keys.
fn key_pool() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = NAMES.iter().map(|n| n.to_vec()).collect();
    for name in NAMES {
        let suffixes = SUFFIXES
            .iter()
            .map(|s| s.as_bytes())
            .chain(IDS.iter().map(|s| s.as_bytes()));
        keys.extend(suffixes.filter_map(|s| derived_key(name, s)));
    }
    keys
}

/// Every option token and option word of every command, for calls that misplace them.
fn all_tokens(commands: &[TwinCommand]) -> Vec<&'static str> {
    let mut tokens = BTreeSet::new();
    for c in commands {
        for o in c.def.options {
            tokens.insert(o.token);
            match o.value {
                OptValue::Word(words) | OptValue::Choice(words) => tokens.extend(words),
                _ => {}
            }
        }
    }
    tokens.into_iter().collect()
}

struct Gen<'a> {
    rng: StdRng,
    keys: &'a [Vec<u8>],
    tokens: &'a [&'static str],
}

impl Gen<'_> {
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs.choose(&mut self.rng).expect("non-empty").clone()
    }

    fn key(&mut self) -> Vec<u8> {
        let keys = self.keys;
        self.pick(keys)
    }

    /// A token in random case.
    fn token(&mut self, token: &str) -> Vec<u8> {
        match self.rng.gen_range(0..3) {
            0 => token.to_ascii_lowercase().into_bytes(),
            1 => token
                .bytes()
                .map(|b| {
                    if self.rng.gen() {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    }
                })
                .collect(),
            _ => token.as_bytes().to_vec(),
        }
    }

    fn huge(&mut self) -> Vec<u8> {
        let mut v = vec![b'x'; 1 << 20];
        let at = self.rng.gen_range(0..v.len());
        v[at] = 0;
        v
    }

    /// Anything at all: an edge integer or float, an odd string, a key, a token, bytes.
    fn anything(&mut self) -> Vec<u8> {
        if self.rng.gen_ratio(1, HUGE_ONE_IN) {
            return self.huge();
        }
        match self.rng.gen_range(0..7) {
            0 => self.pick(INT_EDGES).as_bytes().to_vec(),
            1 => self.pick(FLOAT_EDGE_CASES).as_bytes().to_vec(),
            2 => self.pick(ODD).to_vec(),
            3 => self.key(),
            4 => {
                let t = self.pick(self.tokens);
                self.token(t)
            }
            5 => self.rng.gen_range(-5i64..200_000).to_string().into_bytes(),
            _ => (0..self.rng.gen_range(0..24))
                .map(|_| self.rng.gen())
                .collect(),
        }
    }

    /// A value for an argument of `kind`: usually a plausible one, else anything.
    fn value(&mut self, kind: ArgKind) -> Vec<u8> {
        if self.rng.gen_ratio(1, 8) {
            return self.anything();
        }
        match kind {
            ArgKind::Positive | ArgKind::NonNegative | ArgKind::Integer => {
                let v: i64 = match self.rng.gen_range(0..4) {
                    0 => self.rng.gen_range(kind.min().max(-3)..5),
                    1 => self.rng.gen_range(1..2_000),
                    2 => self.rng.gen_range(1_000..120_000),
                    _ => return self.pick(INT_EDGES).as_bytes().to_vec(),
                };
                v.to_string().into_bytes()
            }
            ArgKind::Float => match self.rng.gen_range(0..3) {
                0 => self.pick(FLOAT_EDGE_CASES).as_bytes().to_vec(),
                _ => format!("{}", self.rng.gen_range(-100.0..100.0f64)).into_bytes(),
            },
            ArgKind::Text => match self.rng.gen_range(0..4) {
                0 | 1 => self.key(),
                2 => self.pick(FIELDS).as_bytes().to_vec(),
                _ => self.pick(IDS).as_bytes().to_vec(),
            },
        }
    }

    /// A call shaped by the definition: the key, the positionals (optional ones sometimes
    /// left out), trailing groups, and options in random order (before the positionals when
    /// there is a trailing group, as `CommandDef::options` says).
    fn well_formed(&mut self, def: &CommandDef) -> Argv {
        if let Keys::Blocks { kinds, .. } = def.key_positions {
            return self.blocks(def, kinds);
        }
        let mut argv = vec![def.name.as_bytes().to_vec(), self.key()];
        let mut options = Vec::new();
        self.options(def, &mut options);
        if def.trailing.is_some() {
            argv.append(&mut options);
        }
        for p in def.positionals {
            if p.default.is_some() && self.rng.gen_ratio(1, 3) {
                break;
            }
            argv.push(self.value(p.arg.kind));
        }
        if let Some(t) = def.trailing {
            for _ in 0..t.min + self.rng.gen_range(0..3) {
                for _ in t.names {
                    let v = self.value(ArgKind::Text);
                    argv.push(v);
                }
            }
        }
        argv.append(&mut options);
        argv
    }

    /// A command of blocks (`RL.ALL limit [limit ...]`): one to three blocks, each its token
    /// and a well-formed call of its kind's command without the name.
    fn blocks(&mut self, def: &CommandDef, kinds: &[Block]) -> Argv {
        let mut argv = vec![def.name.as_bytes().to_vec()];
        for _ in 0..self.rng.gen_range(1..=3) {
            let kind = &kinds[self.rng.gen_range(0..kinds.len())];
            argv.push(self.token(kind.token));
            let block = self.well_formed(kind.def);
            argv.extend(block.into_iter().skip(1));
        }
        argv
    }

    /// Some of the definition's options, well formed, in random order.
    fn options(&mut self, def: &CommandDef, argv: &mut Argv) {
        let mut options: Vec<_> = def.options.iter().filter(|_| self.rng.gen()).collect();
        options.shuffle(&mut self.rng);
        for o in options {
            match o.value {
                OptValue::Flag => argv.push(self.token(o.token)),
                OptValue::Word(words) => {
                    let w = self.pick(words);
                    argv.push(self.token(w));
                }
                OptValue::Arg(arg) => {
                    argv.push(self.token(o.token));
                    argv.push(self.value(arg.kind));
                }
                OptValue::Choice(words) => {
                    argv.push(self.token(o.token));
                    let w = self.pick(words);
                    argv.push(self.token(w));
                }
                OptValue::Rest { min } => {
                    argv.push(self.token(o.token));
                    for _ in 0..min.max(1) + self.rng.gen_range(0..3) {
                        argv.push(self.key());
                    }
                }
            }
        }
    }

    /// Breaks a call: a replaced, inserted, removed, duplicated or swapped argument, an option
    /// token of the command at a wrong place, or a truncation.
    fn mutate(&mut self, def: &CommandDef, argv: &mut Argv) {
        let n = argv.len();
        let at = self.rng.gen_range(1..=n);
        match self.rng.gen_range(0..7) {
            0 if at < n => argv[at] = self.anything(),
            1 => {
                let v = self.anything();
                argv.insert(at, v);
            }
            2 if at < n => {
                argv.remove(at);
            }
            3 if at < n => {
                let v = argv[at].clone();
                argv.insert(at, v);
            }
            4 if n > 2 => {
                let other = self.rng.gen_range(1..n);
                argv.swap(at.min(n - 1), other);
            }
            5 if !def.options.is_empty() => {
                let o = self.pick(def.options);
                let t = self.token(o.token);
                argv.insert(at, t);
            }
            _ => argv.truncate(at),
        }
    }

    /// Any number of arguments (0 to 12), each anything.
    fn random_arity(&mut self, def: &CommandDef) -> Argv {
        let mut argv = vec![def.name.as_bytes().to_vec()];
        for _ in 0..self.rng.gen_range(0..=12) {
            let v = self.anything();
            argv.push(v);
        }
        argv
    }

    fn call(&mut self, def: &CommandDef) -> Argv {
        match self.rng.gen_range(0..10) {
            0 => self.random_arity(def),
            1..=5 => self.well_formed(def),
            _ => {
                let mut argv = self.well_formed(def);
                for _ in 0..self.rng.gen_range(1..=3) {
                    self.mutate(def, &mut argv);
                }
                argv
            }
        }
    }

    /// Plain commands giving `key` a random type and content (the same on both servers: no
    /// time or randomness in them).
    fn wrong_type(&mut self, key: &[u8]) -> Argv {
        let word = |w: &str| w.as_bytes().to_vec();
        let mut argv;
        match self.rng.gen_range(0..7) {
            0 => argv = vec![word("SET"), key.to_vec(), self.anything()],
            6 => argv = vec![word("SET"), key.to_vec(), self.cache_entry()],
            1 => {
                argv = vec![word("HSET"), key.to_vec()];
                for _ in 0..self.rng.gen_range(1..4) {
                    argv.push(word(self.pick(FIELDS)));
                    argv.push(self.value(ArgKind::Integer));
                }
            }
            2 => {
                argv = vec![word("ZADD"), key.to_vec()];
                for _ in 0..self.rng.gen_range(1..4) {
                    argv.push(word(self.pick(SCORES)));
                    argv.push(self.value(ArgKind::Text));
                }
            }
            3 => argv = vec![word("RPUSH"), key.to_vec(), self.anything()],
            4 => argv = vec![word("SADD"), key.to_vec(), self.anything()],
            _ => {
                argv = vec![
                    word("XADD"),
                    key.to_vec(),
                    word("1-1"),
                    word("f"),
                    self.anything(),
                ]
            }
        }
        argv
    }

    /// A cache entry's bytes (the compact layout) with random times, a lease or not, as written
    /// or cut short or with one byte changed.
    fn cache_entry(&mut self) -> Vec<u8> {
        let mut time = || match self.rng.gen_range(0..4) {
            0 => 0,
            1 => (1 << 53) - 1,
            _ => self.rng.gen_range(0..1i64 << 53),
        };
        let times = Times {
            fresh_until: time(),
            stale_until: time(),
            delta_ms: time(),
        };
        let (until, since) = (time(), time());
        let value = self.rng.gen_bool(0.7).then_some((&b"cached"[..], times));
        let lease = (value.is_none() || self.rng.gen_bool(0.3)).then_some(Lease {
            token: b"fuzz-lease",
            until,
            since,
        });
        let mut bytes = Entry { value, lease }.encode();
        match self.rng.gen_range(0..4) {
            0 => bytes.truncate(self.rng.gen_range(0..bytes.len())),
            1 => {
                let at = self.rng.gen_range(0..bytes.len());
                bytes[at] = self.rng.gen();
            }
            _ => {}
        }
        bytes
    }

    /// Values for the twin's own leading arguments (what Lua cannot draw itself).
    fn leading(&mut self, names: &[&str]) -> Argv {
        names
            .iter()
            .map(|name| match *name {
                // A fresh id, as the module draws one (a pool id may be in use).
                "id" => (0..22).map(|_| self.pick(ID_CHARS)).collect(),
                "draw" => self.rng.gen_range(1..=1i64 << 53).to_string().into_bytes(),
                "lease" => format!("{:032x}", self.rng.gen::<u128>()).into_bytes(),
                other => panic!("the fuzzer has no value for the twin's leading argument {other}"),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The twin's calling convention
// ---------------------------------------------------------------------------------------------

/// `argv` as an FCALL of the twin (keys in KEYS, the twin's leading arguments after the key);
/// None where the convention cannot say the same thing.
fn twin_call(twin: &TwinCommand, argv: &Argv, leading: Argv) -> Option<redis::Cmd> {
    let args = &argv[1..];
    let (keys, rest): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = match twin.def.key_positions {
        Keys::All => (args.iter().collect(), vec![]),
        // Each block's key in KEYS, the rest (tokens and arguments) in ARGV.
        Keys::Blocks { .. } => {
            let words: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let at = twin.def.block_keys(&words);
            let rest = args.iter().enumerate().filter(|(i, _)| !at.contains(i));
            (
                at.iter().map(|&i| &args[i]).collect(),
                rest.map(|(_, a)| a).collect(),
            )
        }
        Keys::First => (args.iter().take(1).collect(), args.iter().skip(1).collect()),
        Keys::FirstAndAfter { token, from } => {
            let from = usize::try_from(from).unwrap_or(0).max(2);
            let found =
                (from..argv.len()).find(|&i| argv[i].eq_ignore_ascii_case(token.as_bytes()));
            match found {
                // Nothing after the token, or the token is an option's value (`DELTA TAGS`):
                // KEYS cannot say that.
                Some(at) if at + 1 == argv.len() || takes_value(twin.def, &argv[at - 1]) => {
                    return None
                }
                Some(at) => (
                    argv[1..2].iter().chain(&argv[at + 1..]).collect(),
                    argv[2..at].iter().collect(),
                ),
                None => (args.iter().take(1).collect(), args.iter().skip(1).collect()),
            }
        }
    };
    let mut cmd = redis::cmd("FCALL");
    cmd.arg(twin.def.lua_name())
        .arg(keys.len())
        .arg(keys)
        .arg(leading)
        .arg(rest);
    Some(cmd)
}

/// Whether `word` is a token of `def` whose option reads the next argument as its value.
fn takes_value(def: &CommandDef, word: &[u8]) -> bool {
    def.options.iter().any(|o| {
        matches!(o.value, OptValue::Arg(_) | OptValue::Choice(_))
            && o.token.as_bytes().eq_ignore_ascii_case(word)
    })
}

/// Errors the twin gives by design where the module answers (README, "Differences").
fn documented_difference(twin_reply: &Value) -> bool {
    let Value::ServerError(e) = twin_reply else {
        return false;
    };
    let text = e.details().unwrap_or("");
    text.contains("exact integer range")
        || text.starts_with("WAIT needs the redis-patterns module")
        // A stored fencing counter or hold count at 2^53 (the module goes on to 2^63 - 1).
        || text == patterns_core::lock::TOKENS_EXHAUSTED
        || text == patterns_core::lock::HOLDS_EXHAUSTED
}

/// Whether a key expires within [`EXPIRY_MARGIN_MS`]: the twin's call runs a moment after the
/// module's, and a script sees a key past its expiry as absent without counting an expiry.
fn expiring_soon(c: &mut Connection) -> bool {
    let keys = key_names(c);
    let cmds: Vec<redis::Cmd> = keys
        .iter()
        .map(|k| {
            let mut cmd = redis::cmd("PTTL");
            cmd.arg(k);
            cmd
        })
        .collect();
    pipeline(c, &cmds)
        .iter()
        .any(|v| matches!(v, Value::Int(ms) if (0..EXPIRY_MARGIN_MS).contains(ms)))
}

// ---------------------------------------------------------------------------------------------
// One server's side of a step
// ---------------------------------------------------------------------------------------------

/// What a call did: its reply, and the writes and expiries around it.
struct Outcome {
    reply: Value,
    wrote: bool,
    expired: bool,
    digest_before: String,
}

fn int_field(info: &Value, field: &str) -> i64 {
    let text: String = redis::from_redis_value(info).expect("INFO text");
    info_field(&text, field)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}"))
}

/// Runs `cmd` between two readings of the dirty counter, the expired-keys counter and the
/// keyspace digest, in one pipeline.
fn observe(c: &mut Connection, cmd: redis::Cmd) -> Result<Outcome, String> {
    let mut info = redis::cmd("INFO");
    info.arg("persistence").arg("stats");
    let mut digest = redis::cmd("DEBUG");
    digest.arg("DIGEST");
    let cmds = [info.clone(), digest.clone(), cmd, info, digest];
    let v = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline(c, &cmds)))
        .map_err(|_| "no reply: the connection failed (server down or hung?)".to_string())?;
    let changes = |i: usize| int_field(&v[i], "rdb_changes_since_last_save");
    let expired = |i: usize| int_field(&v[i], "expired_keys") + int_field(&v[i], "evicted_keys");
    let digest = |i: usize| -> String { redis::from_redis_value(&v[i]).expect("DEBUG DIGEST") };
    Ok(Outcome {
        reply: v[2].clone(),
        wrote: changes(3) != changes(0) || digest(4) != digest(1),
        expired: expired(3) != expired(0),
        digest_before: digest(1),
    })
}

/// Every error reply has an upper-case code and a message, and none is a caught panic.
fn check_reply(reply: &Value) -> Result<(), String> {
    let text = format!("{reply:?}");
    if text.contains("internal error in the patterns module") {
        return Err(format!("a panic was caught: {text}"));
    }
    if let Value::ServerError(e) = reply {
        let code = e.code();
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("error reply without an upper-case code: {text}"));
        }
        if e.details().is_none_or(|d| d.trim().is_empty()) {
            return Err(format!("error reply without a message: {text}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Unblocks the fuzzing connection when a call with `WAIT` blocks for longer than
/// [`UNBLOCK_AFTER`]: `step` is the current step (0 between steps).
struct Watchdog {
    step: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(server: &Server, client_id: i64) -> Watchdog {
        let step = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (step.clone(), stop.clone());
        let mut c = server.conn();
        let handle = thread::spawn(move || {
            let mut seen = (0, Instant::now());
            while !st.load(Ordering::Relaxed) {
                let now = s.load(Ordering::Relaxed);
                if now != seen.0 {
                    seen = (now, Instant::now());
                } else if now != 0 && seen.1.elapsed() > UNBLOCK_AFTER {
                    let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                        .arg("UNBLOCK")
                        .arg(client_id)
                        .query(&mut c);
                    seen.1 = Instant::now();
                }
                thread::sleep(Duration::from_millis(20));
            }
        });
        Watchdog {
            step,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[derive(Default)]
struct Stats {
    rounds: u64,
    steps: u64,
    errors: u64,
    /// Calls that replied without an error and wrote (so writes are seen).
    writes: u64,
    compared: u64,
    compared_errors: u64,
    /// `used_memory` after FLUSHALL at the start, and at the last check.
    memory: (i64, i64),
}

struct Fuzz<'a> {
    flavor: Flavor,
    seed: u64,
    module: &'a Server,
    twin: &'a Server,
    m: Connection,
    t: Connection,
    memory_start: i64,
    /// The current round's set-up and calls so far, shown.
    history: Vec<String>,
    stats: Stats,
}

fn command(argv: &Argv) -> redis::Cmd {
    let mut cmd = redis::cmd(std::str::from_utf8(&argv[0]).expect("command name"));
    cmd.arg(&argv[1..]);
    cmd
}

fn shown_argv(argv: &Argv) -> String {
    let parts: Vec<String> = argv
        .iter()
        .map(|a| {
            let s: String = a
                .iter()
                .take(60)
                .flat_map(|&b| std::ascii::escape_default(b))
                .map(char::from)
                .collect();
            if a.len() > 60 {
                format!("\"{s}...\" ({} bytes)", a.len())
            } else {
                format!("\"{s}\"")
            }
        })
        .collect();
    parts.join(" ")
}

impl Fuzz<'_> {
    fn fail(&self, round: u64, argv: &Argv, what: &str) -> ! {
        panic!(
            "fuzz {} (FUZZ_SEED={} FUZZ_ROUNDS={}): {what}\n  call: {}\n  after (this round):\n    {}\n{}",
            self.flavor.name(),
            self.seed,
            round + 1,
            shown_argv(argv),
            self.history.join("\n    "),
            self.module.log_tail(20)
        );
    }

    /// Empties both servers and gives them the same keys of random types.
    fn set_up(&mut self, gen: &mut Gen) {
        let mut cmds = vec![redis::cmd("FLUSHALL")];
        self.history.clear();
        let keys = gen.keys;
        for key in keys {
            if gen.rng.gen_ratio(1, 3) {
                let argv = gen.wrong_type(key);
                self.history.push(shown_argv(&argv));
                cmds.push(command(&argv));
            }
        }
        for c in [&mut self.m, &mut self.t] {
            for reply in pipeline(c, &cmds) {
                assert!(!matches!(reply, Value::ServerError(_)), "set-up: {reply:?}");
            }
        }
    }

    fn step(&mut self, round: u64, twin: &TwinCommand, argv: &Argv, leading: Argv) {
        self.check_step(round, twin, argv, leading);
        self.history.push(shown_argv(argv));
    }

    fn check_step(&mut self, round: u64, twin: &TwinCommand, argv: &Argv, leading: Argv) {
        self.stats.steps += 1;
        let expiring = expiring_soon(&mut self.m);
        let m = observe(&mut self.m, command(argv)).unwrap_or_else(|e| self.fail(round, argv, &e));
        if let Err(e) = check_reply(&m.reply) {
            self.fail(round, argv, &e);
        }
        let module_error = matches!(m.reply, Value::ServerError(_));
        self.stats.writes += u64::from(!module_error && m.wrote);
        if module_error {
            self.stats.errors += 1;
            if m.wrote && !m.expired {
                self.fail(
                    round,
                    argv,
                    &format!("the error reply wrote: {:?}", m.reply),
                );
            }
        }
        let Some(fcall) = twin_call(twin, argv, leading) else {
            return;
        };
        let t = observe(&mut self.t, fcall)
            .unwrap_or_else(|e| self.fail(round, argv, &format!("twin: {e}")));
        if let Err(e) = check_reply(&t.reply) {
            self.fail(round, argv, &format!("twin: {e}"));
        }
        let twin_error = matches!(t.reply, Value::ServerError(_));
        if twin_error && t.wrote && !t.expired {
            self.fail(
                round,
                argv,
                &format!("the twin's error reply wrote: {:?}", t.reply),
            );
        }
        let comparable = m.digest_before == t.digest_before
            && !expiring
            && !m.expired
            && !t.expired
            && !documented_difference(&t.reply);
        if !comparable {
            return;
        }
        self.stats.compared += 1;
        if !module_error && !twin_error {
            return;
        }
        self.stats.compared_errors += 1;
        if shown(&m.reply) != shown(&t.reply) {
            self.fail(
                round,
                argv,
                &format!(
                    "the twin disagrees on the same keyspace:\n  module: {}\n  twin:   {}",
                    shown(&m.reply),
                    shown(&t.reply)
                ),
            );
        }
    }

    /// The server is up, nothing ran 2 s or more, and no panic was logged.
    fn check_health(&mut self, round: u64) {
        let pong: String = redis::cmd("PING").query(&mut self.m).unwrap_or_else(|e| {
            panic!(
                "fuzz {}: the server is down after round {round}: {e}\n{}",
                self.flavor.name(),
                self.module.log_tail(40)
            )
        });
        assert_eq!(pong, "PONG");
        for (side, c) in [("module", &mut self.m), ("twin", &mut self.t)] {
            if let Some((us, argv)) = slowest_call(c) {
                panic!(
                    "fuzz {} (FUZZ_SEED={} FUZZ_ROUNDS={}): a call ran {us} µs on the {side}'s \
                     server: {argv:?}",
                    self.flavor.name(),
                    self.seed,
                    round + 1,
                );
            }
        }
        for server in [self.module, self.twin] {
            let panics = panic_lines(server);
            assert!(
                panics.is_empty(),
                "fuzz {}: panic in the log of {}:\n{}",
                self.flavor.name(),
                server.addr(),
                panics.join("\n")
            );
        }
    }

    /// `used_memory` right after FLUSHALL.
    fn memory_after_flush(&mut self) -> i64 {
        let _: () = redis::cmd("FLUSHALL")
            .arg("SYNC")
            .query(&mut self.m)
            .unwrap();
        let info: String = redis::cmd("INFO").arg("memory").query(&mut self.m).unwrap();
        info_field(&info, "used_memory")
            .and_then(|v| v.parse().ok())
            .expect("used_memory")
    }

    fn check_memory(&mut self) {
        let used = self.memory_after_flush();
        self.stats.memory = (self.memory_start, used);
        if used > self.memory_start + MEMORY_SLACK {
            let stats: Value = redis::cmd("MEMORY")
                .arg("STATS")
                .query(&mut self.m)
                .unwrap();
            panic!(
                "fuzz {} (FUZZ_SEED={}): used_memory after FLUSHALL is {used}, was {} at the \
                 start; MEMORY STATS: {stats:?}",
                self.flavor.name(),
                self.seed,
                self.memory_start
            );
        }
    }
}

/// A call SLOWLOG saw run [`SLOW_US`] or longer (its duration and arguments); then resets it.
fn slowest_call(c: &mut Connection) -> Option<(i64, Value)> {
    let entries: Vec<Value> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query(c).unwrap();
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query(c).unwrap();
    entries.into_iter().find_map(|entry| {
        let Value::Array(fields) = entry else {
            return None;
        };
        let us: i64 = redis::from_redis_value(&fields[2]).ok()?;
        (us >= SLOW_US).then(|| (us, fields[3].clone()))
    })
}

/// Lines of the server's log and output that mention a panic.
fn panic_lines(server: &Server) -> Vec<String> {
    ["server.log", "stdout.log"]
        .iter()
        .flat_map(|f| grep_file(&server.dir().join(f), "anic"))
        .filter(|l| l.to_ascii_lowercase().contains("panic"))
        .collect()
}

/// The module's registered commands are the ones the fuzzer knows (every family's).
fn assert_all_commands_known(c: &mut Connection, commands: &[TwinCommand]) {
    let listed: BTreeSet<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .arg("FILTERBY")
        .arg("MODULE")
        .arg("patterns")
        .query::<Vec<String>>(c)
        .expect("COMMAND LIST")
        .into_iter()
        .map(|n| n.to_ascii_uppercase())
        .collect();
    let known: BTreeSet<String> = commands.iter().map(|c| c.def.name.to_string()).collect();
    assert_eq!(listed, known, "the module registers commands the fuzzer does not know (add their family to lua::families())");
}

fn fuzz(flavor: Flavor, cfg: &Config) -> Stats {
    let commands: Vec<TwinCommand> = families().into_iter().flat_map(|f| f.commands).collect();
    let keys = key_pool();
    let tokens = all_tokens(&commands);
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(cfg.seed),
        keys: &keys,
        tokens: &tokens,
    };
    let slowlog = [
        "--slowlog-log-slower-than",
        "100000",
        "--slowlog-max-len",
        "1024",
    ];
    let module = Server::start_with(flavor, &slowlog);
    let twin = Server::start_without_module(flavor, &slowlog);
    let mut t = twin.conn();
    load_twin(&mut t);
    let mut m = module.conn();
    assert_all_commands_known(&mut m, &commands);
    let client_id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut m).unwrap();
    let watchdog = Watchdog::start(&module, client_id);
    let mut f = Fuzz {
        flavor,
        seed: cfg.seed,
        module: &module,
        twin: &twin,
        m,
        t,
        memory_start: 0,
        history: Vec::new(),
        stats: Stats::default(),
    };
    f.memory_start = f.memory_after_flush();
    let start = Instant::now();
    let mut round = 0u64;
    while cfg
        .rounds
        .map_or(start.elapsed() < cfg.budget, |n| round < n)
    {
        f.set_up(&mut gen);
        for _ in 0..gen.rng.gen_range(1..=MAX_STEPS) {
            let twin_cmd = &commands[gen.rng.gen_range(0..commands.len())];
            let argv = gen.call(twin_cmd.def);
            let leading = gen.leading(twin_cmd.leading);
            watchdog.step.store(f.stats.steps + 1, Ordering::Relaxed);
            f.step(round, twin_cmd, &argv, leading);
            watchdog.step.store(0, Ordering::Relaxed);
        }
        if round % 50 == 49 {
            f.check_health(round);
        }
        if round % 500 == 499 {
            f.check_memory();
        }
        round += 1;
        f.stats.rounds = round;
    }
    f.check_health(round);
    f.check_memory();
    let stats = std::mem::take(&mut f.stats);
    drop(watchdog);
    stats
}

#[test]
fn fuzz_every_command_on_every_flavor() {
    let cfg = config();
    eprintln!(
        "fuzz: FUZZ_SEED={} ({}; replay with FUZZ_SEED={} FUZZ_ROUNDS=<rounds>)",
        cfg.seed,
        cfg.rounds
            .map_or(format!("{:?} per flavor", cfg.budget), |n| format!(
                "{n} rounds"
            )),
        cfg.seed
    );
    let cfg = Arc::new(cfg);
    let runs: Vec<_> = flavors()
        .into_iter()
        .map(|flavor| {
            let cfg = cfg.clone();
            (flavor, thread::spawn(move || fuzz(flavor, &cfg)))
        })
        .collect();
    let mut failures = Vec::new();
    for (flavor, run) in runs {
        match run.join() {
            Ok(s) => {
                eprintln!(
                    "fuzz {}: {} rounds, {} calls, {} error replies, {} writes; {} compared with \
                     the twin ({} of them errors); used_memory after FLUSHALL {} -> {} bytes",
                    flavor.name(),
                    s.rounds,
                    s.steps,
                    s.errors,
                    s.writes,
                    s.compared,
                    s.compared_errors,
                    s.memory.0,
                    s.memory.1
                );
                assert!(
                    s.errors > 0 && s.writes > 0 && s.compared_errors > 0,
                    "fuzz {}: the run checked nothing",
                    flavor.name()
                );
            }
            Err(_) => failures.push(flavor.name()),
        }
    }
    assert!(
        failures.is_empty(),
        "fuzz failed on {failures:?} (FUZZ_SEED={}; see the panic above)",
        cfg.seed
    );
}

//! The Lua twin against the module: randomized histories run natively on a server with the
//! module and through the generated Functions library (FCALL) or scripts (EVALSHA) on a plain
//! server without it. Replies and the resulting state must be equal.
//!
//! Both servers read the same machine clock. Each call is pipelined between two TIME calls, so
//! a step whose four clock readings share one millisecond ran at the same `now` on both
//! servers and must match exactly, not merely within a tolerance. A step that straddles
//! a millisecond is not compared; the twin's key is then re-synced from the module's.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

/// How the twin is called.
#[derive(Clone, Copy, Debug)]
enum Path {
    Fcall,
    Evalsha,
}

/// A plain server (no module) with the twin loaded both ways.
struct Twin {
    server: Server,
    shas: BTreeMap<String, String>,
}

impl Twin {
    fn start(flavor: Flavor) -> Twin {
        let server = Server::start_without_module(flavor, &[]);
        let shas = load_twin(&mut server.conn());
        Twin { server, shas }
    }
}

/// The same call as the module command, an FCALL, or an EVALSHA.
fn twin_cmd(args: &[String], path: Path, shas: &BTreeMap<String, String>) -> redis::Cmd {
    let function = args[0].to_ascii_lowercase().replace('.', "_");
    let mut cmd = match path {
        Path::Fcall => {
            let mut c = redis::cmd("FCALL");
            c.arg(&function);
            c
        }
        Path::Evalsha => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(&shas[&function]);
            c
        }
    };
    cmd.arg(1).arg(&args[1..]);
    cmd
}

fn native_cmd(args: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd(&args[0]);
    cmd.arg(&args[1..]);
    cmd
}

/// A reply in comparable form: integers, or the error's wire text.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    Ints(Vec<i64>),
    Error(String),
    Other(String),
}

fn reply_of(v: &Value) -> Reply {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(n) => Some(*n),
                _ => None,
            })
            .collect::<Option<Vec<i64>>>()
            .map_or_else(|| Reply::Other(format!("{v:?}")), Reply::Ints),
        Value::ServerError(e) => Reply::Error(match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        }),
        other => Reply::Other(format!("{other:?}")),
    }
}

/// Runs `cmd` between two TIME readings: (first ms, reply, last ms).
fn timed_reply(c: &mut Connection, cmd: &redis::Cmd) -> (i64, Reply, i64) {
    let (t0, reply, t1) = timed(c, cmd);
    (t0, reply_of(&reply), t1)
}

/// One random call: valid most of the time, sometimes malformed, on a pool of keys that
/// includes a hash, a plain string and keys another command kind has written.
fn random_call(rng: &mut StdRng) -> Vec<String> {
    let key = ["k0", "k1", "k2", "k3", "hash", "text"]
        .choose(rng)
        .unwrap()
        .to_string();
    let pick = |rng: &mut StdRng, xs: &[i64]| xs.choose(rng).unwrap().to_string();
    let (limit, mut args): (i64, Vec<String>) = match rng.gen_range(0..5) {
        0 => {
            let capacity = *[1, 5, 10].choose(rng).unwrap();
            let args = vec![
                "RL.TOKENBUCKET".into(),
                key,
                capacity.to_string(),
                pick(rng, &[1, 3, 7]),
                pick(rng, &[50, 100, 1000]),
            ];
            (capacity, args)
        }
        1 | 2 => {
            let limit = *[1, 3, 10].choose(rng).unwrap();
            let name = if rng.gen_bool(0.5) {
                "RL.FIXEDWINDOW"
            } else {
                "RL.SLIDINGWINDOW"
            };
            (
                limit,
                vec![
                    name.into(),
                    key,
                    limit.to_string(),
                    pick(rng, &[50, 100, 250]),
                ],
            )
        }
        3 => {
            let limit = *[1, 3, 10].choose(rng).unwrap();
            let args = vec![
                "RL.SLIDINGWINDOW".into(),
                format!("z{key}"),
                limit.to_string(),
                pick(rng, &[50, 100, 250]),
                "EXACT".into(),
            ];
            (limit, args)
        }
        _ => {
            let burst = *[0, 2, 9].choose(rng).unwrap();
            let args = vec![
                "CL.THROTTLE".into(),
                key,
                burst.to_string(),
                pick(rng, &[1, 3]),
                "1".into(),
            ];
            (burst + 1, args)
        }
    };
    let cost = match rng.gen_range(0..20) {
        0..=9 => 1,
        10..=12 => 0,
        13..=17 => rng.gen_range(2..=5),
        _ => limit + rng.gen_range(1..3),
    };
    if args[0] == "CL.THROTTLE" {
        if cost != 1 || rng.gen_bool(0.3) {
            args.push(cost.to_string());
        }
    } else if cost != 1 || rng.gen_bool(0.3) {
        let token = if rng.gen_bool(0.2) { "cost" } else { "COST" };
        let at = if args.last().is_some_and(|a| a == "EXACT") && rng.gen_bool(0.5) {
            args.len() - 1
        } else {
            args.len()
        };
        args.insert(at, cost.to_string());
        args.insert(at, token.into());
    }
    if rng.gen_bool(0.12) {
        malform(rng, &mut args);
    }
    args
}

fn malform(rng: &mut StdRng, args: &mut Vec<String>) {
    const BAD: [&str; 8] = [
        "0",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
        "",
        "+3",
        "007",
    ];
    match rng.gen_range(0..4) {
        0 => {
            let i = rng.gen_range(2..args.len());
            args[i] = BAD.choose(rng).unwrap().to_string();
        }
        // Keeps the key: FCALL cannot express a call without one.
        1 => args.truncate(rng.gen_range(2..args.len())),
        2 => args.push(["BOGUS", "COST", "EXACT"].choose(rng).unwrap().to_string()),
        _ => args.extend(["COST".to_string(), BAD.choose(rng).unwrap().to_string()]),
    }
}

fn seed_wrong_types(conns: [&mut Connection; 2]) {
    for c in conns {
        let _: () = redis::cmd("FLUSHALL").query(c).unwrap();
        let _: () = redis::cmd("HSET")
            .arg("hash")
            .arg("f")
            .arg("v")
            .query(c)
            .unwrap();
        let _: () = redis::cmd("SET").arg("text").arg("hello").query(c).unwrap();
        let _: () = redis::cmd("HSET")
            .arg("zhash")
            .arg("f")
            .arg("v")
            .query(c)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("ztext")
            .arg("hello")
            .query(c)
            .unwrap();
    }
}

/// Runs a random history on the module and on the twin; returns how many steps were compared.
fn differential(flavor: Flavor, path: Path, seed: u64, steps: usize) {
    let module = Server::start(flavor);
    let twin = Twin::start(flavor);
    let (mut a, mut b) = (module.conn(), twin.server.conn());
    seed_wrong_types([&mut a, &mut b]);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut compared = 0;
    let mut kinds = BTreeMap::new();
    for step in 0..steps {
        let args = random_call(&mut rng);
        at_ms_start(&mut a);
        let (a0, native, a1) = timed_reply(&mut a, &native_cmd(&args));
        let (b0, twin_reply, b1) = timed_reply(&mut b, &twin_cmd(&args, path, &twin.shas));
        let key = args.get(1).cloned().unwrap_or_default();
        let context = format!("step {step}: {args:?} on {} via {path:?}", flavor.name());
        if a0 == a1 && a1 == b0 && b0 == b1 {
            assert_eq!(native, twin_reply, "{context}");
            if !key.is_empty() {
                // The clock may tick once between the module's and the twin's relative TTL.
                assert_same_key(&mut a, &mut b, &key, 1, &context);
            }
            compared += 1;
            let kind = match &native {
                Reply::Ints(r) if r[0] == 1 => "allowed",
                Reply::Ints(_) => "denied",
                Reply::Error(_) => "error",
                Reply::Other(_) => panic!("unexpected reply {native:?} to {context}"),
            };
            *kinds.entry(kind).or_insert(0) += 1;
        } else if !key.is_empty() {
            copy_key(&mut a, &mut b, &key);
        }
        if rng.gen_bool(0.15) {
            sleep(Duration::from_millis(rng.gen_range(1..60)));
        }
    }
    // A history that compared little proves little: most steps must land in one ms.
    assert!(
        compared * 10 >= steps * 6,
        "only {compared}/{steps} steps compared"
    );
    for kind in ["allowed", "denied", "error"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) >= 10,
            "too few {kind} replies: {kinds:?}"
        );
    }
}

#[test]
fn functions_library_matches_the_module() {
    for (i, flavor) in flavors().into_iter().enumerate() {
        differential(flavor, Path::Fcall, 100 + i as u64, 500);
    }
}

#[test]
fn evalsha_scripts_match_the_module() {
    for (i, flavor) in flavors().into_iter().enumerate() {
        differential(flavor, Path::Evalsha, 200 + i as u64, 500);
    }
}

/// Native and Lua calls alternating on one key decide exactly as native calls alone.
#[test]
fn interleaved_native_and_lua_calls_are_one_limiter() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
        let shas = load_twin(&mut c);
        let mut rng = StdRng::seed_from_u64(5);
        let templates: [&[&str]; 5] = [
            &["RL.TOKENBUCKET", "", "5", "3", "200"],
            &["RL.FIXEDWINDOW", "", "5", "200"],
            &["RL.SLIDINGWINDOW", "", "5", "200"],
            &["RL.SLIDINGWINDOW", "", "5", "200", "EXACT"],
            &["CL.THROTTLE", "", "4", "3", "1"],
        ];
        for template in templates {
            let mut compared = 0;
            for step in 0..150 {
                let call = |key: &str| -> Vec<String> {
                    let mut v: Vec<String> = template.iter().map(|s| s.to_string()).collect();
                    v[1] = key.to_string();
                    v
                };
                let solo = native_cmd(&call("solo"));
                let mixed = if rng.gen_bool(0.5) {
                    native_cmd(&call("mixed"))
                } else {
                    twin_cmd(
                        &call("mixed"),
                        *[Path::Fcall, Path::Evalsha].choose(&mut rng).unwrap(),
                        &shas,
                    )
                };
                let v = pipeline(
                    &mut c,
                    &[redis::cmd("TIME"), solo, mixed, redis::cmd("TIME")],
                );
                if ms_of(&v[0]) == ms_of(&v[3]) {
                    let context = format!("{template:?} step {step} on {}", flavor.name());
                    assert_eq!(reply_of(&v[1]), reply_of(&v[2]), "{context}");
                    let (s, m) = (key_state(&mut c, "solo"), key_state(&mut c, "mixed"));
                    assert_eq!((&s.0, &s.1), (&m.0, &m.1), "{context}");
                    compared += 1;
                } else {
                    let _: () = redis::cmd("COPY")
                        .arg("solo")
                        .arg("mixed")
                        .arg("REPLACE")
                        .query(&mut c)
                        .unwrap();
                }
                if rng.gen_bool(0.2) {
                    sleep(Duration::from_millis(rng.gen_range(1..80)));
                }
            }
            assert!(
                compared >= 100,
                "only {compared} steps compared for {template:?}"
            );
            let _: () = redis::cmd("DEL")
                .arg("solo")
                .arg("mixed")
                .query(&mut c)
                .unwrap();
        }
    }
}

/// The one documented difference: Lua numbers are doubles, so the twin refuses what it
/// cannot compute exactly, where the module answers.
#[test]
fn twin_refuses_what_it_cannot_compute_exactly() {
    for flavor in flavors() {
        let module = Server::start(flavor);
        let twin = Twin::start(flavor);
        let (mut a, mut b) = (module.conn(), twin.server.conn());
        let big = "9007199254740993"; // 2^53 + 1
        let args: Vec<String> = ["RL.FIXEDWINDOW", "k", big, "1000"]
            .map(String::from)
            .to_vec();
        let native = timed_reply(&mut a, &native_cmd(&args)).1.ints();
        assert_eq!(&native[..4], &[1, 9007199254740993, 9007199254740992, -1]);
        assert_eq!(
            timed_reply(&mut b, &twin_cmd(&args, Path::Fcall, &twin.shas)).1,
            Reply::Error(
                "ERR limit exceeds the Lua twin's exact integer range (below 2^53)".into()
            )
        );
        // capacity · period_ms above 2^52: fine natively (τ is 1 ms), refused by the twin.
        let args: Vec<String> = [
            "RL.TOKENBUCKET",
            "t",
            "4503599627370497",
            "4503599627370497",
            "1",
        ]
        .map(String::from)
        .to_vec();
        assert!(
            matches!(timed_reply(&mut a, &native_cmd(&args)).1, Reply::Ints(ref r) if r[0] == 1)
        );
        assert_eq!(
            timed_reply(&mut b, &twin_cmd(&args, Path::Evalsha, &twin.shas)).1,
            Reply::Error(patterns_core::ratelimit::lua::TWIN_RANGE.into())
        );
    }
}

/// dist/ is generated: it must be what the generator writes today.
#[test]
fn committed_dist_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    assert_eq!(
        read(root.join("patterns.lua")),
        patterns_core::lua::library(),
        "run `make lua`"
    );
    for (name, source) in patterns_core::lua::scripts() {
        assert_eq!(
            read(root.join("scripts").join(format!("{name}.lua"))),
            source,
            "run `make lua`"
        );
    }
    let commands = patterns_core::lua::families()
        .iter()
        .map(|f| f.commands.len())
        .sum::<usize>();
    assert_eq!(patterns_core::lua::scripts().len(), commands);
}

impl Reply {
    fn ints(&self) -> Vec<i64> {
        match self {
            Reply::Ints(v) => v.clone(),
            other => panic!("not integers: {other:?}"),
        }
    }
}

/// The twin reads numbers (scores, BETA) by `command::parse_f64`'s rules: same acceptance, same
/// value, on hand-picked edge cases and random strings over the characters numbers use.
#[test]
fn twin_reads_floats_as_the_module_does() {
    let server = Server::start_without_module(Flavor::Redis, &[]);
    let mut c = server.conn();
    let script = format!(
        "{}\nlocal v = parse_float(ARGV[1])\nif v == nil then return false end\nreturn string.format('%.17g', v)",
        patterns_core::lua::prelude()
    );
    let mut inputs: Vec<String> = FLOAT_EDGE_CASES.iter().map(|s| s.to_string()).collect();
    let mut rng = StdRng::seed_from_u64(7);
    let alphabet: Vec<char> = "0123456789.eE+-infINF".chars().collect();
    for _ in 0..2000 {
        let len = rng.gen_range(1..8);
        inputs.push(
            (0..len)
                .map(|_| *alphabet.choose(&mut rng).unwrap())
                .collect(),
        );
    }
    for input in inputs {
        let twin: Option<String> = redis::cmd("EVAL")
            .arg(&script)
            .arg(0)
            .arg(&input)
            .query(&mut c)
            .unwrap();
        let twin = twin.map(|s| s.parse::<f64>().unwrap().to_bits());
        let module = patterns_core::command::parse_f64(input.as_bytes()).map(f64::to_bits);
        assert_eq!(twin, module, "input {input:?}");
    }
}

//! The Lua twin beyond the per-command differential of tests/conformance.rs: native and Lua
//! calls interleaved on one key, what the twin refuses because Lua numbers are doubles, the
//! committed dist/ is current, and floats read as the module reads them.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

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

/// Native and Lua calls alternating on one key decide exactly as native calls alone.
///
/// A step is compared only when its pipeline ran within one millisecond of the server's clock;
/// on a loaded machine fewer do, so a limiter runs on past its 150 steps (up to 600) until 100
/// have been compared.
#[test]
fn interleaved_native_and_lua_calls_are_one_limiter() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
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
            let (mut compared, mut step) = (0, 0);
            while step < 150 || (compared < 100 && step < 600) {
                step += 1;
                let call = |key: &str| -> Vec<String> {
                    let mut v: Vec<String> = template.iter().map(|s| s.to_string()).collect();
                    v[1] = key.to_string();
                    v
                };
                let solo = native_cmd(&call("solo"));
                let mixed = if rng.gen_bool(0.5) {
                    native_cmd(&call("mixed"))
                } else {
                    let path = *[TwinPath::Fcall, TwinPath::Evalsha]
                        .choose(&mut rng)
                        .unwrap();
                    twin_cmd(path, &shas, &call("mixed"), &one_key(&call("mixed")))
                };
                at_ms_start(&mut c);
                let v = pipeline(
                    &mut c,
                    &[redis::cmd("TIME"), solo, mixed, redis::cmd("TIME")],
                );
                if ms_of(&v[0]) == ms_of(&v[3]) {
                    let context = format!("{template:?} step {step} on {}", flavor.name());
                    assert_eq!(reply_of(&v[1]), reply_of(&v[2]), "{context}");
                    let [s, m] = key_states(&mut c, ["solo", "mixed"]);
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
                "only {compared} steps compared in {step} for {template:?}"
            );
            let _: () = redis::cmd("DEL")
                .arg("solo")
                .arg("mixed")
                .query(&mut c)
                .unwrap();
        }
    });
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
            timed_reply(
                &mut b,
                &twin_cmd(TwinPath::Fcall, &twin.shas, &args, &one_key(&args))
            )
            .1,
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
            timed_reply(
                &mut b,
                &twin_cmd(TwinPath::Evalsha, &twin.shas, &args, &one_key(&args))
            )
            .1,
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

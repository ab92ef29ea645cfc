//! Rate limiting in the shared scenarios: a random workload and the Lua twin's calling
//! convention (its rows are in rows.rs).

use super::rows;
use crate::*;
use patterns_core::command::CommandDef;
use patterns_core::ratelimit::{ALL, COMMANDS, REFUND};
use rand::seq::SliceRandom;
use std::thread::sleep;
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "rate-limit",
        commands: &COMMANDS,
        rows: rows::ratelimit(),
        workload,
        seed: 7,
        min_keys: 1,
        pttl_tolerance_ms: 20,
        state: by_dump,
        twin: Twin {
            random_call,
            args: |argv, _| twin_args(argv),
            seed: seed_wrong_types,
            tracked: |argv, _| limit_keys(argv),
            tolerance_ms: 1,
            align: |_, _, _| {},
            kind,
            least: &[("allowed", 10), ("denied", 10), ("error", 10)],
            seeds: [100, 200],
            steps: 500,
            pause: (0.15, 60),
        },
    }
}

/// A random, time-spread workload over all commands, some keys shared between commands
/// (errors, a key holding another command's state, are part of it): short periods, so that
/// keys expire meanwhile, then long ones.
fn workload(server: &Server, rng: &mut StdRng) {
    let mut conn = server.conn();
    for scale in [1, 100] {
        for _ in 0..400 {
            let key = format!("k{}", rng.gen_range(0..12));
            let cost = ["0", "1", "1", "1", "2", "5", "50"][rng.gen_range(0..7)];
            let period = (rng.gen_range(1..=4) * 50 * scale).to_string();
            let zkey = format!("z{key}");
            let args: Vec<&str> = match rng.gen_range(0..5) {
                0 => vec!["RL.TOKENBUCKET", &key, "10", "3", &period, "COST", cost],
                1 => vec!["RL.FIXEDWINDOW", &key, "10", &period, "COST", cost],
                2 => vec!["RL.SLIDINGWINDOW", &key, "10", &period, "COST", cost],
                3 => vec![
                    "RL.SLIDINGWINDOW",
                    &zkey,
                    "10",
                    &period,
                    "COST",
                    cost,
                    "EXACT",
                ],
                _ => vec!["CL.THROTTLE", &key, "9", "3", "1", cost],
            };
            let _ = send(&mut conn, &strings(&args));
            if rng.gen_bool(0.1) {
                sleep(Duration::from_millis(rng.gen_range(0..40)));
            }
        }
    }
}

/// The definition of a command of limits (`RL.ALL`, `RL.REFUND`), None for a one-key one.
fn limits_def(name: &str) -> Option<&'static CommandDef> {
    [&ALL, &REFUND]
        .into_iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The keys a call names: each limit's, or the one key.
fn limit_keys(argv: &[String]) -> Vec<String> {
    let Some(def) = limits_def(&argv[0]) else {
        return vec![argv[1].clone()];
    };
    let words: Vec<&[u8]> = argv[1..].iter().map(|a| a.as_bytes()).collect();
    def.block_keys(&words)
        .into_iter()
        .map(|k| argv[k + 1].clone())
        .collect()
}

/// The twin's arguments: the keys in KEYS, in order, and every other argument in ARGV.
fn twin_args(argv: &[String]) -> Vec<String> {
    let Some(def) = limits_def(&argv[0]) else {
        return one_key(argv);
    };
    let words: Vec<&[u8]> = argv[1..].iter().map(|a| a.as_bytes()).collect();
    let keys = def.block_keys(&words);
    let mut args = vec![keys.len().to_string()];
    args.extend(keys.iter().map(|&k| argv[k + 1].clone()));
    let rest = argv[1..]
        .iter()
        .enumerate()
        .filter(|(i, _)| !keys.contains(i));
    args.extend(rest.map(|(_, a)| a.clone()));
    args
}

/// One random call: valid most of the time, sometimes malformed, on a pool of keys that
/// includes a hash, a plain string and keys another command kind has written.
fn random_call(rng: &mut StdRng, _: &[Value]) -> Vec<String> {
    let mut args = match rng.gen_range(0..8) {
        0..=4 => random_single(rng),
        5 | 6 => random_limits(rng, "RL.ALL"),
        _ => random_limits(rng, "RL.REFUND"),
    };
    if rng.gen_bool(0.12) {
        malform(rng, &mut args);
    }
    args
}

/// `RL.ALL` or `RL.REFUND` over one to three random limits (a key may repeat).
fn random_limits(rng: &mut StdRng, name: &str) -> Vec<String> {
    let mut args = vec![name.to_string()];
    let (n, mut added) = (rng.gen_range(1..=3), 0);
    while added < n {
        let single = random_single(rng);
        // CL.THROTTLE is no kind of limit.
        if let Some(token) = single[0].strip_prefix("RL.") {
            args.push(token.to_string());
            args.extend(single[1..].iter().cloned());
            added += 1;
        }
    }
    args
}

/// One call of a one-key command, well formed.
fn random_single(rng: &mut StdRng) -> Vec<String> {
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
            let window = pick(rng, &[50, 100, 250]);
            (limit, vec![name.into(), key, limit.to_string(), window])
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

fn seed_wrong_types(c: &mut redis::Connection) {
    let _: () = query(c, &["FLUSHALL"]);
    let _: () = query(c, &["HSET", "hash", "f", "v"]);
    let _: () = query(c, &["SET", "text", "hello"]);
    let _: () = query(c, &["HSET", "zhash", "f", "v"]);
    let _: () = query(c, &["SET", "ztext", "hello"]);
}

/// Every compared reply is a decision (allowed or denied) or an error.
fn kind(v: &Value) -> String {
    match v {
        Value::ServerError(_) => "error",
        Value::Array(items) if items.first() == Some(&Value::Int(1)) => "allowed",
        Value::Array(_) => "denied",
        other => panic!("unexpected reply {other:?}"),
    }
    .into()
}

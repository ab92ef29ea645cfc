//! Tagged caching in the shared scenarios: a random workload and the Lua twin's calling
//! convention (its rows are in rows.rs).

use super::rows::{self, set};
use crate::*;
use patterns_core::cache::{Entry, COMMANDS, DRAW_MAX, LEASED_AT_OFFSET, TIME_BYTES};
use rand::seq::SliceRandom;
use std::thread::sleep;
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "cache",
        commands: &COMMANDS,
        rows: rows::cache(),
        workload,
        seed: 7,
        min_keys: 6,
        pttl_tolerance_ms: 50,
        state: by_dump,
        twin: Twin {
            random_call,
            args: twin_args,
            seed: seed_wrong_types,
            tracked: |_, _| {
                let keys = KEYS.iter().chain(TAGS.iter()).copied();
                keys.collect::<BTreeSet<&str>>()
                    .into_iter()
                    .map(String::from)
                    .collect()
            },
            tolerance_ms: 0,
            align: align_microseconds,
            kind: |v| match v {
                Value::ServerError(_) => "error".into(),
                Value::Array(items) => text(&items[0]).unwrap_or_default(),
                Value::Nil => "nil".into(),
                _ => "other".into(),
            },
            // STALE needs a stale value and a lease within a few ms: rarer.
            least: &[
                ("error", 10),
                ("nil", 10),
                ("other", 10),
                ("HIT", 10),
                ("MISS", 10),
                ("REFRESH", 5),
                ("WAIT", 10),
                ("STALE", 1),
            ],
            seeds: [17, 17],
            steps: 600,
            pause: (0.1, 50),
        },
    }
}

const KEYS: [&str; 5] = ["e:{a}:1", "e:{a}:2", "e:{a}:3", "e:{a}:4", "text{a}"];
const TAGS: [&str; 4] = ["t:{a}:1", "t:{a}:2", "t:{a}:3", "text{a}"];

/// One of `pool`, mostly from its first `common` items.
fn pick(rng: &mut StdRng, pool: &[&str], common: usize, p_common: f64) -> String {
    let n = if rng.gen_bool(p_common) {
        common
    } else {
        pool.len()
    };
    pool[rng.gen_range(0..n)].to_string()
}

fn random_tags(rng: &mut StdRng) -> Vec<String> {
    let n = rng.gen_range(1..=2);
    (0..n).map(|_| pick(rng, &TAGS, 3, 0.97)).collect()
}

/// `value ttl_ms [DELTA d] [GRACE g] [TAGS tag ...]`, appended to `args`.
fn random_store(rng: &mut StdRng, args: &mut Vec<String>) {
    args.push(format!("val{}", rng.gen_range(0..1000)));
    let ttl = match rng.gen_range(0..10) {
        0..=4 => rng.gen_range(10..80),
        5..=8 => 60_000,
        _ => 0,
    };
    args.push(ttl.to_string());
    if rng.gen_bool(0.5) {
        args.extend(["DELTA".to_string(), rng.gen_range(0..200).to_string()]);
    }
    if rng.gen_bool(0.5) {
        args.extend(["GRACE".to_string(), rng.gen_range(0..100).to_string()]);
    }
    if rng.gen_bool(0.7) {
        args.push("TAGS".into());
        args.extend(random_tags(rng));
    }
}

/// The lease tokens the module's CACHE.GET replies granted.
fn leases(replies: &[Value]) -> Vec<String> {
    replies.iter().filter_map(granted).collect()
}

/// The lease token a CACHE.GET reply granted, if any.
fn granted(v: &Value) -> Option<String> {
    match v {
        Value::Array(items) if matches!(text(&items[0]).as_deref(), Some("MISS" | "REFRESH")) => {
            text(&items[2])
        }
        _ => None,
    }
}

/// A random call on the module, valid most of the time, given its replies so far.
fn random_call(rng: &mut StdRng, replies: &[Value]) -> Vec<String> {
    let key = pick(rng, &KEYS, 4, 0.95);
    let mut args = match rng.gen_range(0..20) {
        0..=5 => {
            let mut args = vec!["CACHE.SET".to_string(), key];
            random_store(rng, &mut args);
            return args;
        }
        6..=12 => vec!["CACHE.GET".to_string(), key],
        13..=15 => {
            let lease = match leases(replies).choose(rng) {
                Some(l) if rng.gen_bool(0.8) => l.clone(),
                _ => "A".repeat(22),
            };
            let mut args = vec!["CACHE.FILL".to_string(), key, lease];
            random_store(rng, &mut args);
            return args;
        }
        16 | 17 => vec!["CACHE.TAG".to_string(), key],
        _ => vec!["CACHE.INVALIDATE".to_string()],
    };
    if args[0] == "CACHE.GET" {
        if rng.gen_bool(0.5) {
            let beta = ["0", "1", "2.5", "40"][rng.gen_range(0..4)];
            args.extend(["BETA".to_string(), beta.to_string()]);
        }
        if rng.gen_bool(0.5) {
            args.extend(["LEASE".to_string(), rng.gen_range(10..100).to_string()]);
        }
    } else {
        args.extend(random_tags(rng));
    }
    args
}

/// The module call as the twin takes it: keys in KEYS (the key, then the tags; no TAGS token),
/// and for CACHE.GET the draw and the lease token: the module's token when it granted one, and
/// a draw that decides as the module's did (rand = 2^-53 where it refreshed early, rand = 1
/// where it did not; any rand where the draw did not matter).
fn twin_args(argv: &[String], reply: &Value) -> Vec<String> {
    let mut args = Vec::new();
    match argv[0].as_str() {
        "CACHE.SET" | "CACHE.FILL" => {
            let at = argv.iter().position(|a| a == "TAGS").unwrap_or(argv.len());
            let tags = argv.get(at + 1..).unwrap_or(&[]);
            args.push((1 + tags.len()).to_string());
            args.push(argv[1].clone());
            args.extend(tags.iter().cloned());
            args.extend(argv[2..at].iter().cloned());
        }
        "CACHE.GET" => {
            let (draw, lease) = match reply {
                Value::Array(items) if text(&items[0]).as_deref() == Some("REFRESH") => {
                    (1, text(&items[2]).unwrap())
                }
                Value::Array(items) if text(&items[0]).as_deref() == Some("MISS") => {
                    (DRAW_MAX, text(&items[2]).unwrap())
                }
                _ => (DRAW_MAX, "A".repeat(22)),
            };
            args.extend(["1".to_string(), argv[1].clone(), draw.to_string(), lease]);
            args.extend(argv[2..].iter().cloned());
        }
        _ => {
            args.push((argv.len() - 1).to_string());
            args.extend(argv[1..].iter().cloned());
        }
    }
    args
}

/// Leases and invalidation markers carry the microsecond each server read from its own clock:
/// equal to the millisecond (the step ran in one on both), they are made equal on the twin's
/// server before the keys are compared byte for byte; a different millisecond stays and fails.
fn align_microseconds(a: &mut redis::Connection, b: &mut redis::Connection, key: &str) {
    let leased = |c: &mut redis::Connection| -> Option<i64> {
        let bytes: Option<Vec<u8>> = query(c, &["GET", key]);
        Entry::decode(&bytes?)?.lease.map(|l| l.since)
    };
    let kind: String = query(a, &["TYPE", key]);
    if kind == "string" {
        if let (Some(x), Some(y)) = (leased(a), leased(b)) {
            if x / 1000 == y / 1000 {
                // Only onto the entry still there: a key that expired meanwhile stays gone.
                let only_if_there = "if redis.call('EXISTS', KEYS[1]) == 1 then \
                     redis.call('SETRANGE', KEYS[1], ARGV[1], ARGV[2]) end";
                let at = LEASED_AT_OFFSET.to_string();
                let _: () = redis::cmd("EVAL")
                    .arg(only_if_there)
                    .arg(1)
                    .arg(key)
                    .arg(at)
                    .arg(&x.to_be_bytes()[8 - TIME_BYTES..])
                    .query(b)
                    .unwrap();
            }
        }
    } else if kind == "zset" {
        let marker =
            |c: &mut redis::Connection| -> Option<String> { query(c, &["ZSCORE", key, key]) };
        if let (Some(x), Some(y)) = (marker(a), marker(b)) {
            let ms = |s: &str| s.parse::<f64>().unwrap().floor();
            if ms(&x) == ms(&y) {
                // XX: onto the marker still there.
                let _: i64 = query(b, &["ZADD", key, "XX", &x, key]);
            }
        }
    }
}

fn seed_wrong_types(c: &mut redis::Connection) {
    let _: () = query(c, &["SET", "text{a}", "x"]);
}

/// Random calls, then long-lived entries and a lease, so that something survives a restart.
fn workload(server: &Server, rng: &mut StdRng) {
    let mut c = server.conn();
    seed_wrong_types(&mut c);
    let mut replies = Vec::new();
    for _ in 0..800 {
        let argv = random_call(rng, &replies);
        replies.push(send(&mut c, &argv).unwrap_or(Value::Nil));
        if rng.gen_bool(0.05) {
            sleep(Duration::from_millis(rng.gen_range(1..40)));
        }
    }
    for (i, key) in KEYS[..4].iter().enumerate() {
        set(
            &mut c,
            &[key, &format!("final{i}"), "600000", "TAGS", TAGS[i % 3]],
        );
    }
    let _: Value = query(&mut c, &["CACHE.GET", "e:{a}:lease", "LEASE", "60000"]);
}

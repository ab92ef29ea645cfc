//! Sessions in the shared scenarios: a random workload and the Lua twin's calling
//! convention (its rows are in rows.rs).

use super::rows;
use crate::*;
use patterns_core::keys::ID_LEN;
use patterns_core::session::COMMANDS;
use rand::seq::SliceRandom;
use std::thread::sleep;
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "session",
        commands: &COMMANDS,
        rows: rows::session(),
        workload,
        seed: 5,
        min_keys: 11,
        pttl_tolerance_ms: 50,
        state: by_dump,
        twin: Twin {
            random_call,
            args: twin_args,
            seed: seed_wrong_types,
            tracked: |_, replies| {
                let mut keys = strings(&["sessions:{a}", "idx:b", "text", "plainhash"]);
                keys.extend(sessions(replies));
                keys
            },
            tolerance_ms: 0,
            align: |_, _, _| {},
            kind: |v| error_nil_or(v, |v| ["other", "key"][usize::from(is_bulk(v))]),
            least: &[("error", 10), ("nil", 10), ("key", 10), ("other", 10)],
            seeds: [42, 42],
            steps: 400,
            pause: (0.1, 60),
        },
    }
}

fn is_bulk(v: &Value) -> bool {
    matches!(v, Value::BulkString(_))
}

/// The session keys among the module's replies (CREATE and ROTATE answer one).
fn sessions(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .filter(|v| is_bulk(v))
        .filter_map(text)
        .collect()
}

/// A randomized workload over a few indexes: long-lived sessions, and short ones that have
/// expired (and been pruned) by the end.
fn workload(server: &Server, rng: &mut StdRng) {
    let mut c = server.conn();
    let c = &mut c;
    let indexes = ["sessions:{a}", "idx:b", "sessions:{c}"];
    let mut live: Vec<String> = Vec::new();
    for _ in 0..500 {
        let index = *indexes.choose(rng).unwrap();
        match rng.gen_range(0..10) {
            0..=2 => {
                let (idle, abs) = if rng.gen_bool(0.2) {
                    ("20", "40")
                } else {
                    ("600000", "900000")
                };
                let f = format!("v{}", rng.gen_range(0..100));
                let mut args = vec!["SESSION.CREATE", index];
                let max = rng.gen_range(1..5).to_string();
                if rng.gen_bool(0.3) {
                    args.extend(["MAX", &max]);
                }
                args.extend([idle, abs, "user", &f]);
                live.push(query(c, &args));
            }
            3 | 4 if !live.is_empty() => {
                let k = live.choose(rng).unwrap().clone();
                let _: Option<Vec<String>> = query(c, &["SESSION.GET", &k]);
            }
            5 if !live.is_empty() => {
                let k = live.choose(rng).unwrap().clone();
                let f = format!("f{}", rng.gen_range(0..5));
                let _: Option<i64> = query(c, &["SESSION.SET", &k, &f, "x"]);
            }
            6 if !live.is_empty() => {
                let i = rng.gen_range(0..live.len());
                if let Some(new) = query::<Option<String>>(c, &["SESSION.ROTATE", &live[i]]) {
                    live[i] = new;
                }
            }
            7 if !live.is_empty() => {
                let i = rng.gen_range(0..live.len());
                let _: i64 = query(c, &["SESSION.DESTROY", &live.swap_remove(i)]);
            }
            8 if rng.gen_bool(0.1) => {
                let _: i64 = query(c, &["SESSION.DESTROYALL", index]);
            }
            _ => {
                let _: Vec<String> = query(c, &["SESSION.LIST", index]);
                let _: i64 = query(c, &["SESSION.COUNT", index]);
            }
        }
        if rng.gen_bool(0.05) {
            sleep(Duration::from_millis(rng.gen_range(1..30)));
        }
    }
    sleep(Duration::from_millis(60));
    for index in indexes {
        let _: i64 = query(c, &["SESSION.COUNT", index]);
    }
}

/// A random call on the module, valid most of the time.
fn random_call(rng: &mut StdRng, replies: &[Value]) -> Vec<String> {
    let sessions = sessions(replies);
    let indexes = ["sessions:{a}", "idx:b", "text", "a{b"];
    let spread = if rng.gen_bool(0.9) { 2 } else { 4 };
    let index = indexes[rng.gen_range(0..spread)].to_string();
    let session = if sessions.is_empty() || rng.gen_bool(0.05) {
        "plainhash".to_string()
    } else {
        sessions[rng.gen_range(0..sessions.len())].clone()
    };
    let field = format!("f{}", rng.gen_range(0..4));
    match rng.gen_range(0..16) {
        0..=3 => {
            let (idle, abs) = match rng.gen_range(0..10) {
                0..=3 => (30, 80),
                4..=7 => (100_000, 200_000),
                8 => (0, 5),
                _ => (50, 20),
            };
            let mut args = strings(&["SESSION.CREATE", &index]);
            match rng.gen_range(0..10) {
                0..=2 => args.extend(strings(&["MAX", &rng.gen_range(1..4).to_string()])),
                3 => args.extend(strings(&["max", ["0", "x", "-1"][rng.gen_range(0..3)]])),
                _ => {}
            }
            args.extend(strings(&[&idle.to_string(), &abs.to_string()]));
            match rng.gen_range(0..10) {
                0 => args.push("odd".into()),
                1 => args.extend(strings(&["__f", "1"])),
                _ => args.extend(strings(&[&field, "1", "user", "u"])),
            }
            args
        }
        4..=6 => strings(&["SESSION.GET", &session]),
        7 | 8 => strings(&[
            "SESSION.SET",
            &session,
            &field,
            &rng.gen_range(0..100).to_string(),
        ]),
        9 => strings(&["SESSION.ROTATE", &session]),
        10 => strings(&["SESSION.DESTROY", &session]),
        11 if rng.gen_bool(0.3) => strings(&["SESSION.DESTROYALL", &index]),
        12 => strings(&["SESSION.LIST", &index]),
        _ => strings(&["SESSION.COUNT", &index]),
    }
}

/// The twin takes the module's generated id for CREATE and ROTATE (a valid placeholder when
/// the module refused, so the twin refuses for the same reason).
fn twin_args(argv: &[String], reply: &Value) -> Vec<String> {
    let mut args = vec!["1".to_string(), argv[1].clone()];
    if argv[0] == "SESSION.CREATE" || argv[0] == "SESSION.ROTATE" {
        let id = match reply {
            Value::BulkString(k) => String::from_utf8_lossy(&k[k.len() - ID_LEN..]).into_owned(),
            _ => "A".repeat(ID_LEN),
        };
        args.push(id);
    }
    args.extend(argv[2..].iter().cloned());
    args
}

fn seed_wrong_types(c: &mut redis::Connection) {
    let _: () = query(c, &["SET", "text", "x"]);
    let _: () = query(c, &["HSET", "plainhash", "a", "1"]);
}

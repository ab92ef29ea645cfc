//! Locks and semaphores in the shared scenarios: a random workload and the Lua twin's calling
//! convention (its rows are in rows.rs).

use super::rows;
use crate::*;
use patterns_core::lock::COMMANDS;
use rand::seq::SliceRandom;
use std::thread::{sleep, spawn, JoinHandle};
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "lock",
        commands: &COMMANDS,
        rows: rows::lock(),
        workload,
        seed: 7,
        min_keys: 3,
        pttl_tolerance_ms: 50,
        state: by_dump,
        twin: Twin {
            random_call,
            args: |argv, _| one_key(argv),
            seed: seed_wrong_types,
            tracked: |_, _| {
                strings(&[
                    "lk:{a}",
                    "lk:{a}:fence",
                    "lk:b",
                    "{lk:b}:fence",
                    "sem:{s}",
                    "rw:{c}",
                    "rw:{c}:writer",
                    "rw:{c}:writer:fence",
                    "res:{r}",
                    "text",
                    "plainhash",
                ])
            },
            tolerance_ms: 0,
            align: |_, _, _| {},
            kind: |v| error_nil_or(v, integer_kind),
            least: &[
                ("error", 5),
                ("nil", 5),
                ("zero", 5),
                ("integer", 5),
                ("other", 5),
            ],
            seeds: [11, 11],
            steps: 500,
            pause: (0.1, 60),
        },
    }
}

fn integer_kind(v: &Value) -> &'static str {
    match v {
        Value::Int(0) => "zero",
        Value::Int(_) => "integer",
        _ => "other",
    }
}

/// A client in its own thread that runs `args` once.
fn waiter(server: &Server, args: &[&str]) -> JoinHandle<Value> {
    let mut c = server.conn();
    let args = strings(args);
    spawn(move || {
        let mut cmd = redis::cmd(&args[0]);
        cmd.arg(&args[1..]);
        pipeline(&mut c, &[cmd]).remove(0)
    })
}

/// A randomized workload over a few locks, semaphores and fenced resources, with clients that
/// wait and are handed the lock by releases and by expiry timers.
fn workload(server: &Server, rng: &mut StdRng) {
    let mut c = server.conn();
    let c = &mut c;
    let locks = ["lk:{a}", "lk:b"];
    let owners = ["o1", "o2", "o3"];
    let mut waiting: Vec<JoinHandle<Value>> = Vec::new();
    for step in 0..600 {
        let key = *locks.choose(rng).unwrap();
        let owner = *owners.choose(rng).unwrap();
        let ttl = if rng.gen_bool(0.3) { "40" } else { "60000" };
        match rng.gen_range(0..15) {
            12 | 13 => {
                let mode = ["READ", "WRITE"][rng.gen_range(0..2)];
                let _: Option<i64> = query(c, &["RWLOCK.ACQUIRE", "rw:{c}", owner, ttl, mode]);
            }
            14 if waiting.len() < 4 => {
                let (w, mode) = (format!("w{step}"), ["READ", "WRITE"][rng.gen_range(0..2)]);
                let argv = ["RWLOCK.ACQUIRE", "rw:{c}", &w, "30", mode, "WAIT", "300"];
                waiting.push(waiter(server, &argv));
            }
            14 => {
                let _: i64 = query(c, &["RWLOCK.RELEASE", "rw:{c}", owner]);
            }
            0..=2 => {
                let _: Option<i64> = query(c, &["LOCK.ACQUIRE", key, owner, ttl]);
            }
            3 | 4 => {
                let _: i64 = query(c, &["LOCK.RELEASE", key, owner]);
            }
            5 => {
                let _: i64 = query(c, &["LOCK.EXTEND", key, owner, ttl]);
            }
            6 if waiting.len() < 4 => {
                let w = format!("w{step}");
                waiting.push(waiter(
                    server,
                    &["LOCK.ACQUIRE", key, &w, "30", "WAIT", "300"],
                ));
            }
            7 | 8 => {
                let limit = rng.gen_range(1..4).to_string();
                let _: i64 = query(c, &["SEM.ACQUIRE", "sem:{s}", owner, &limit, ttl]);
            }
            9 => {
                let _: i64 = query(c, &["SEM.RELEASE", "sem:{s}", owner]);
            }
            10 => {
                let token = rng.gen_range(1..20).to_string();
                let _: i64 = query(c, &["LOCK.FENCEDHSET", "res", &token, "v", &token]);
            }
            _ => {
                let _: i64 = query(c, &["SEM.COUNT", "sem:{s}"]);
            }
        }
        if rng.gen_bool(0.05) {
            sleep(Duration::from_millis(rng.gen_range(1..50)));
        }
    }
    for w in waiting {
        w.join().unwrap();
    }
    sleep(Duration::from_millis(100));
    let _: i64 = query(c, &["SEM.COUNT", "sem:{s}"]);
}

/// A random non-blocking call, valid most of the time.
fn random_call(rng: &mut StdRng, _: &[Value]) -> Vec<String> {
    let locks = ["lk:{a}", "lk:b", "text", "plainhash", "a{b"];
    let key = locks[if rng.gen_bool(0.9) {
        rng.gen_range(0..2)
    } else {
        rng.gen_range(2..5)
    }];
    let owner = ["o1", "o2", "o3"][rng.gen_range(0..3)];
    let ttl = match rng.gen_range(0..10) {
        0..=3 => "40",
        4..=8 => "100000",
        _ => ["0", "x", "4503599627370497"][rng.gen_range(0..3)],
    };
    let sem = if rng.gen_bool(0.95) {
        "sem:{s}"
    } else {
        "text"
    };
    let rw = if rng.gen_bool(0.95) { "rw:{c}" } else { key };
    match rng.gen_range(0..19) {
        14 | 15 => {
            let mode = ["READ", "WRITE", "read", "both"][rng.gen_range(0..4)];
            strings(&["RWLOCK.ACQUIRE", rw, owner, ttl, mode])
        }
        16 => strings(&["RWLOCK.RELEASE", rw, owner]),
        17 => strings(&["RWLOCK.EXTEND", rw, owner, ttl]),
        18 => strings(&["RWLOCK.INFO", rw]),
        0..=3 => strings(&["LOCK.ACQUIRE", key, owner, ttl]),
        4 | 5 => strings(&["LOCK.RELEASE", key, owner]),
        6 => strings(&["LOCK.EXTEND", key, owner, ttl]),
        7 => strings(&["LOCK.INFO", key]),
        8 => {
            let token = rng.gen_range(0..12).to_string();
            let field = if rng.gen_bool(0.9) { "f" } else { "__f" };
            strings(&["LOCK.FENCEDHSET", "res:{r}", &token, field, owner])
        }
        9 | 10 => {
            let limit = rng.gen_range(0..4).to_string();
            strings(&["SEM.ACQUIRE", sem, owner, &limit, ttl])
        }
        11 | 12 => strings(&["SEM.RELEASE", sem, owner]),
        _ => strings(&["SEM.COUNT", sem]),
    }
}

fn seed_wrong_types(c: &mut redis::Connection) {
    let _: () = query(c, &["SET", "text", "x"]);
    let _: () = query(c, &["HSET", "plainhash", "a", "1"]);
}

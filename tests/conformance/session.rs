//! Sessions in the shared scenarios: a session key lives in its index's slot, `{index}:<id>`
//! (or `index:<id>` when the index has a hash tag).

use crate::*;
use patterns_core::keys::ID_LEN;
use patterns_core::session::COMMANDS;
use rand::seq::SliceRandom;
use std::thread::sleep;
use std::time::Duration;

/// A session of `index` with one field, made by the admin.
fn create(c: &mut dyn ConnectionLike, index: &str) -> String {
    query(c, &["SESSION.CREATE", index, "60000", "120000", "n", "1"])
}

/// The index a session key of the row's base belongs to: the call's derived key.
fn index_of(call: &Call) -> &str {
    &call.derived[0]
}

/// `key` is a session of `index`, holding the row's field.
fn assert_session(c: &mut dyn ConnectionLike, index: &str, key: &str) {
    let id = key
        .strip_prefix(&derived(index, ""))
        .unwrap_or_else(|| panic!("{key} is not a session key of {index}"));
    assert_eq!(id.len(), ID_LEN, "{key}");
    let fields: Vec<String> = query(c, &["SESSION.GET", key]);
    assert_eq!(fields, ["n", "1"]);
}

pub fn family() -> Family {
    Family {
        name: "session",
        commands: &COMMANDS,
        rows: vec![
            Row {
                def: COMMANDS[0],
                call: |_, index| {
                    let sessions = derived(index, "*");
                    Call::new(
                        &["SESSION.CREATE", index, "60000", "120000", "n", "1"],
                        &[index],
                        &[sessions],
                    )
                },
                check: |c, call, v| {
                    let key = text(v).expect("a session key");
                    assert_session(c, &call.keys[0], &key);
                    assert_eq!(query::<i64>(c, &["SESSION.COUNT", &call.keys[0]]), 1);
                },
            },
            Row {
                def: COMMANDS[1],
                call: |c, index| {
                    let key = create(c, index);
                    Call::new(&["SESSION.GET", &key], &[&key], &[index.to_string()])
                },
                check: |_, _, v| {
                    let fields: Vec<String> = redis::from_redis_value(v).unwrap();
                    assert_eq!(fields, ["n", "1"]);
                },
            },
            Row {
                def: COMMANDS[2],
                call: |c, index| {
                    let key = create(c, index);
                    Call::new(
                        &["SESSION.SET", &key, "f", "v"],
                        &[&key],
                        &[index.to_string()],
                    )
                },
                check: |c, call, v| {
                    assert_eq!(v, &Value::Int(1));
                    assert_eq!(query::<String>(c, &["HGET", &call.keys[0], "f"]), "v");
                },
            },
            Row {
                def: COMMANDS[3],
                call: |c, index| {
                    let key = create(c, index);
                    let sessions = derived(index, "*");
                    Call::new(
                        &["SESSION.ROTATE", &key],
                        &[&key],
                        &[index.to_string(), sessions],
                    )
                },
                check: |c, call, v| {
                    let new = text(v).expect("the new key");
                    assert_ne!(new, call.keys[0]);
                    assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                    assert_session(c, index_of(call), &new);
                },
            },
            Row {
                def: COMMANDS[4],
                call: |c, index| {
                    let key = create(c, index);
                    Call::new(&["SESSION.DESTROY", &key], &[&key], &[index.to_string()])
                },
                check: |c, call, v| {
                    assert_eq!(v, &Value::Int(1));
                    assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                },
            },
            Row {
                def: COMMANDS[5],
                call: |c, index| {
                    create(c, index);
                    Call::new(
                        &["SESSION.DESTROYALL", index],
                        &[index],
                        &[derived(index, "*")],
                    )
                },
                check: |c, call, v| {
                    assert_eq!(v, &Value::Int(1));
                    assert_eq!(query::<i64>(c, &["SESSION.COUNT", &call.keys[0]]), 0);
                },
            },
            Row {
                def: COMMANDS[6],
                call: |c, index| {
                    create(c, index);
                    Call::new(&["SESSION.LIST", index], &[index], &[])
                },
                check: |_, call, v| {
                    let keys: Vec<String> = redis::from_redis_value(v).unwrap();
                    assert_eq!(keys.len(), 1, "{keys:?}");
                    assert!(keys[0].starts_with(&derived(&call.keys[0], "")), "{keys:?}");
                },
            },
            Row {
                def: COMMANDS[7],
                call: |c, index| {
                    create(c, index);
                    Call::new(&["SESSION.COUNT", index], &[index], &[])
                },
                check: |_, _, v| {
                    assert_eq!(v, &Value::Int(1));
                },
            },
        ],
        workload,
        seed: 5,
        min_keys: 11,
        pttl_tolerance_ms: 50,
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
            kind: |v| {
                match v {
                    Value::ServerError(_) => "error",
                    Value::Nil => "nil",
                    Value::BulkString(_) => "key",
                    _ => "other",
                }
                .into()
            },
            least: &[("error", 10), ("nil", 10), ("key", 10), ("other", 10)],
            seeds: [[42, 42], [42, 42]],
            steps: 400,
            pause: (0.1, 60),
        },
    }
}

/// The session keys among the module's replies (CREATE and ROTATE answer one).
fn sessions(replies: &[Value]) -> Vec<String> {
    replies
        .iter()
        .filter(|v| matches!(v, Value::BulkString(_)))
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
                live.push(query(c, &["SESSION.CREATE", index, idle, abs, "user", &f]));
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
            let mut args = strings(&[
                "SESSION.CREATE",
                &index,
                &idle.to_string(),
                &abs.to_string(),
            ]);
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

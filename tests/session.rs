//! The session family's own semantics on Redis 7.0 and Valkey 8.0: sliding and absolute
//! expiry, atomic rotation under concurrent readers, ids, and bad input.
//! What every command shares (COMMAND DOCS, README, Cluster, ACL, effects replication,
//! AOF, the twin differential) is in tests/conformance.rs.

mod common;

use common::*;
use patterns_core::keys::{ALPHABET, ID_LEN};
use redis::Connection;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn create(c: &mut Connection, index: &str, idle: i64, abs: i64, fields: &[&str]) -> String {
    let mut cmd = redis::cmd("SESSION.CREATE");
    cmd.arg(index).arg(idle).arg(abs).arg(fields);
    cmd.query(c).unwrap()
}

fn get(c: &mut Connection, key: &str) -> Option<Vec<String>> {
    query(c, &["SESSION.GET", key])
}

// ---------------------------------------------------------------------------------------------
// Expiry

#[test]
fn touched_sessions_live_to_the_absolute_cap_untouched_ones_die_idle() {
    for_each_server(|_, mut c| {
        let index = "sessions:{exp}";
        let start = Instant::now();
        // Generous margins: a loaded CI machine may oversleep by a few hundred ms.
        let kept = create(&mut c, index, 1000, 3000, &["user", "1"]);
        let idle = create(&mut c, index, 1000, 3000, &["user", "2"]);
        assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", index]), 2);
        // Touch `kept` every 100 ms for 2.5 s: it lives on, `idle` dies after 1 s.
        while start.elapsed() < Duration::from_millis(2500) {
            assert_eq!(
                get(&mut c, &kept),
                Some(vec!["user".into(), "1".into()]),
                "touched within idle at {:?}",
                start.elapsed()
            );
            let pttl: i64 = query(&mut c, &["PTTL", &kept]);
            assert!((1..=1000).contains(&pttl), "{pttl}");
            if start.elapsed() > Duration::from_millis(1300) {
                assert_eq!(get(&mut c, &idle), None, "untouched for over idle");
                assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", index]), 1);
                let listed: Vec<String> = query(&mut c, &["SESSION.LIST", index]);
                assert_eq!(listed, vec![kept.clone()]);
            }
            sleep(Duration::from_millis(100));
        }
        // Near the cap, sliding no longer extends past the absolute deadline.
        let pexpiretime: i64 = query(&mut c, &["PEXPIRETIME", &kept]);
        let absolute: i64 = query(&mut c, &["HGET", &kept, "__absolute_at"]);
        assert!(pexpiretime <= absolute);
        while start.elapsed() < Duration::from_millis(3100) {
            sleep(Duration::from_millis(50));
            let _ = get(&mut c, &kept);
        }
        assert_eq!(get(&mut c, &kept), None, "past the absolute cap");
        assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", index]), 0);
        let listed: Vec<String> = query(&mut c, &["SESSION.LIST", index]);
        assert!(listed.is_empty());
        // The index expired with its last session, even untouched.
        let other = "sessions:{exp2}";
        create(&mut c, other, 100, 200, &[]);
        assert!(query::<i64>(&mut c, &["PTTL", other]) > 0);
        assert!(wait_until(Duration::from_secs(2), || {
            query::<i64>(&mut c, &["EXISTS", other]) == 0
        }));
        assert_eq!(query::<i64>(&mut c, &["EXISTS", index]), 0);
    });
}

// ---------------------------------------------------------------------------------------------
// Rotation

#[test]
fn rotation_never_shows_both_keys_or_neither() {
    for_each_server(|server, mut c| {
        let index = "sessions:{rot}";
        let mut key = create(&mut c, index, 60_000, 120_000, &["user", "7"]);
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let reader = {
            let (stop, reads) = (stop.clone(), reads.clone());
            let mut r = server.conn();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // One atomic snapshot: every session key of the index, and the index.
                    let (keys, members): (Vec<String>, Vec<String>) = redis::pipe()
                        .atomic()
                        .cmd("KEYS")
                        .arg("sessions:{rot}:*")
                        .cmd("ZRANGE")
                        .arg("sessions:{rot}")
                        .arg(0)
                        .arg(-1)
                        .query(&mut r)
                        .unwrap();
                    assert_eq!(
                        keys.len(),
                        1,
                        "exactly one valid key at every moment: {keys:?}"
                    );
                    assert_eq!(keys, members, "the index lists the valid key");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        // At least 300 rotations, and on until the reader has overlapped 50 of them (a loaded
        // machine may schedule it rarely); a deadline keeps a stalled reader from hanging.
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut rotations = 0;
        while rotations < 300 || (reads.load(Ordering::Relaxed) <= 50 && Instant::now() < deadline)
        {
            rotations += 1;
            let new: String = query(&mut c, &["SESSION.ROTATE", &key]);
            assert_ne!(new, key);
            // The old key is dead and the new one holds the data, seen in one transaction.
            let (old_v, new_v): (Option<Vec<String>>, Option<Vec<String>>) = redis::pipe()
                .atomic()
                .cmd("SESSION.GET")
                .arg(&key)
                .cmd("SESSION.GET")
                .arg(&new)
                .query(&mut c)
                .unwrap();
            assert_eq!(old_v, None);
            assert_eq!(new_v, Some(vec!["user".into(), "7".into()]));
            key = new;
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().expect("the reader saw a torn rotation");
        assert!(reads.load(Ordering::Relaxed) > 50);
        // The same reader catches a two-step client-side rotation: the check can fail.
        let copy = format!("sessions:{{rot}}:{}", "x".repeat(ID_LEN));
        let _: () = query(&mut c, &["COPY", &key, &copy]);
        let (keys,): (Vec<String>,) = redis::pipe()
            .atomic()
            .cmd("KEYS")
            .arg("sessions:{rot}:*")
            .query(&mut c)
            .unwrap();
        assert_eq!(keys.len(), 2);
    });
}

// ---------------------------------------------------------------------------------------------
// Ids

#[test]
fn ids_are_distinct_and_url_safe() {
    for_each_server(|_, mut c| {
        let mut ids = BTreeSet::new();
        for batch in 0..10 {
            let mut pipe = redis::pipe();
            for _ in 0..1000 {
                pipe.cmd("SESSION.CREATE")
                    .arg(format!("ids:{batch}"))
                    .arg(60_000)
                    .arg(60_000);
            }
            let keys: Vec<String> = pipe.query(&mut c).unwrap();
            let prefix = format!("{{ids:{batch}}}:");
            for k in keys {
                let id = k.strip_prefix(&prefix).expect("key layout").to_string();
                assert_eq!(id.len(), ID_LEN, "{id}");
                assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id}");
                ids.insert(id);
            }
        }
        assert_eq!(ids.len(), 10_000);
        assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", "ids:3"]), 1000);
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    for_each_server(|_, mut c| {
        let session = create(&mut c, "sessions:{bad}", 60_000, 60_000, &["a", "1"]);
        let _: () = query(&mut c, &["SET", "text", "x"]);
        let _: () = query(&mut c, &["HSET", "plainhash", "a", "1"]);
        let _: () = query(&mut c, &["SET", "textidx", "x"]);
        let _: () = query(
            &mut c,
            &[
                "HSET",
                "{textidx}:x",
                "__idle_ms",
                "1",
                "__absolute_at",
                "9999999999999",
                "__index",
                "textidx",
            ],
        );
        let refusals: &Refusals = &[
            (
                &arity("session.create"),
                &[
                    &["SESSION.CREATE", "i", "10", "20", "f"],
                    &["SESSION.CREATE", "i", "10"],
                ],
            ),
            (
                "ERR absolute_ms must be at least idle_ms",
                &[&["SESSION.CREATE", "i", "10", "9"]],
            ),
            (
                &positive("idle_ms"),
                &[
                    &["SESSION.CREATE", "i", "0", "9"],
                    &["SESSION.CREATE", "i", "-5", "9"],
                ],
            ),
            (
                &positive("absolute_ms"),
                &[
                    &["SESSION.CREATE", "i", "5", "-9"],
                    &["SESSION.CREATE", "i", "5", "x"],
                ],
            ),
            (
                "ERR idle_ms and absolute_ms must be at most 2^52",
                &[&["SESSION.CREATE", "i", "5", "4503599627370497"]],
            ),
            (
                "ERR field names starting with __ are reserved",
                &[
                    &["SESSION.CREATE", "i", "5", "9", "__idle_ms", "1"],
                    &["SESSION.CREATE", "i", "5", "9", "ok", "1", "__x", "1"],
                ],
            ),
            (
                "ERR index name cannot carry a session key in its slot",
                &[
                    &["SESSION.CREATE", "a{b", "5", "9"],
                    &["SESSION.CREATE", "a{}b", "5", "9"],
                ],
            ),
            (WRONGTYPE, &[&["SESSION.CREATE", "text", "5", "9"]]),
            (&arity("session.set"), &[&["SESSION.SET", &session, "f"]]),
            (
                "ERR field names starting with __ are reserved",
                &[&["SESSION.SET", &session, "__index", "x"]],
            ),
            (WRONGTYPE, &[&["SESSION.GET", "text"]]),
            (
                "ERR key does not hold a session",
                &[&["SESSION.GET", "plainhash"]],
            ),
            (
                WRONGTYPE,
                &[&["SESSION.GET", "{textidx}:x"], &["SESSION.ROTATE", "text"]],
            ),
            (
                "ERR key does not hold a session",
                &[&["SESSION.DESTROY", "plainhash"]],
            ),
            (
                WRONGTYPE,
                &[
                    &["SESSION.LIST", "text"],
                    &["SESSION.COUNT", "plainhash"],
                    &["SESSION.DESTROYALL", "text"],
                ],
            ),
            (
                &arity("session.get"),
                &[&["SESSION.GET", &session, "extra"]],
            ),
        ];
        let before = snapshot(&mut c);
        assert_refusals(&mut c, refusals);
        assert_same_state(&before, &snapshot(&mut c), 100);
        // Absent keys: nil, 0, empty.
        assert_eq!(get(&mut c, "sessions:{bad}:nope"), None);
        assert_eq!(
            query::<Option<i64>>(&mut c, &["SESSION.SET", "nope", "a", "1"]),
            None
        );
        assert_eq!(
            query::<Option<String>>(&mut c, &["SESSION.ROTATE", "nope"]),
            None
        );
        assert_eq!(query::<i64>(&mut c, &["SESSION.DESTROY", "nope"]), 0);
        assert_eq!(query::<i64>(&mut c, &["SESSION.DESTROYALL", "nope"]), 0);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "nope"]), 0);
    });
}

// ---------------------------------------------------------------------------------------------
// Reading: the fields in HGETALL's order, whatever the hash's encoding

#[test]
fn get_answers_hgetall_order_for_every_encoding() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let long = "v".repeat(100);
        let many: Vec<String> = (0..200).map(|i| format!("f{i}")).collect();
        let mut many_fields: Vec<&str> = Vec::new();
        for f in &many {
            many_fields.extend([f.as_str(), "1"]);
        }
        // (case, fields): a listpack with text and integers, a hash table for a long value,
        // one for many fields, and one made a hash table by a long value since overwritten.
        let cases: [(&str, Vec<&str>); 4] = [
            ("listpack", vec!["user", "42", "role", "admin", "n", "-7"]),
            ("long value", vec!["user", "42", "blob", &long, "z", "1"]),
            ("many fields", many_fields),
            ("shrunk", vec!["blob", &long, "a", "1", "b", "2"]),
        ];
        for (case, fields) in cases {
            let key = create(&mut c, "sessions:{order}", 60_000, 60_000, &fields);
            if case == "shrunk" {
                let _: i64 = query(&mut c, &["SESSION.SET", &key, "blob", "short"]);
            }
            let all: Vec<String> = query(&mut c, &["HGETALL", &key]);
            let want: Vec<String> = all
                .chunks(2)
                .filter(|p| !p[0].starts_with("__"))
                .flatten()
                .cloned()
                .collect();
            assert!(want.len() >= 6, "{flavor:?} {case}");
            assert_eq!(get(&mut c, &key), Some(want), "{flavor:?} {case}");
        }
    });
}

// ---------------------------------------------------------------------------------------------
// SESSION.CREATE ... MAX n

fn create_max(c: &mut Connection, index: &str, max: &str, fields: &[&str]) -> String {
    let mut cmd = redis::cmd("SESSION.CREATE");
    cmd.arg(index).arg("MAX").arg(max).arg(60_000).arg(120_000);
    cmd.arg(fields).query(c).unwrap()
}

fn list(c: &mut Connection, index: &str) -> Vec<String> {
    query(c, &["SESSION.LIST", index])
}

#[test]
fn a_cap_destroys_the_least_recently_used_sessions_first() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let index = "sessions:{user:7}";
        let mut made = Vec::new();
        for device in ["phone", "laptop", "tablet"] {
            made.push(create_max(&mut c, index, "3", &["device", device]));
            sleep(Duration::from_millis(5));
        }
        // The phone is used again: the laptop is now the least recently used.
        assert!(get(&mut c, &made[0]).is_some());
        sleep(Duration::from_millis(5));
        let watch = create_max(&mut c, index, "3", &["device", "watch"]);
        assert_eq!(
            list(&mut c, index),
            [made[2].as_str(), &made[0], &watch],
            "{flavor:?}"
        );
        assert_eq!(get(&mut c, &made[1]), None, "{flavor:?}");
        assert_eq!(query::<i64>(&mut c, &["EXISTS", &made[1]]), 0);
        // Lowering the cap destroys as many as it takes; the new session always stays.
        let tv = create_max(&mut c, index, "1", &["device", "tv"]);
        assert_eq!(list(&mut c, index), [tv.as_str()], "{flavor:?}");
        assert_eq!(query::<i64>(&mut c, &["DBSIZE"]), 2, "{flavor:?}");
        let destroyed = server.info_value("patterns", "patterns_session_destroyed");
        assert_eq!(destroyed.as_deref(), Some("4"), "{flavor:?}");
        // Without MAX, no cap; a field named MAX after the timeouts is a field.
        let mut cmd = redis::cmd("SESSION.CREATE");
        cmd.arg(index).arg(60_000).arg(60_000).arg("MAX").arg("1");
        let plain: String = cmd.query(&mut c).unwrap();
        assert_eq!(get(&mut c, &plain), Some(vec!["MAX".into(), "1".into()]));
        assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", index]), 2);
        // The token in any case; a cap above the count destroys nothing.
        let mut cmd = redis::cmd("SESSION.CREATE");
        cmd.arg(index).arg("max").arg(5).arg(60_000).arg(60_000);
        let _: String = cmd.query(&mut c).unwrap();
        assert_eq!(query::<i64>(&mut c, &["SESSION.COUNT", index]), 3);
    });
}

#[test]
fn a_cap_ignores_expired_sessions_and_refuses_bad_input() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let index = "sessions:{user:8}";
        let short = create(&mut c, index, 30, 30, &[]);
        let long = create(&mut c, index, 60_000, 60_000, &[]);
        sleep(Duration::from_millis(60));
        // One live session under a cap of 2: nothing to destroy (the expired one is pruned).
        let new = create_max(&mut c, index, "2", &[]);
        assert_eq!(list(&mut c, index), [long.as_str(), &new], "{flavor:?}");
        assert_eq!(query::<i64>(&mut c, &["EXISTS", &short]), 0);
        let _: () = query(&mut c, &["SET", "text", "x"]);
        let before = snapshot(&mut c);
        let cases: [(&[&str], &str); 5] = [
            (
                &["SESSION.CREATE", index, "MAX", "0", "5", "9"],
                &positive("MAX"),
            ),
            (
                &["SESSION.CREATE", index, "MAX", "x", "5", "9"],
                &positive("MAX"),
            ),
            (
                &["SESSION.CREATE", index, "MAX", "1", "5"],
                &arity("session.create"),
            ),
            (&["SESSION.CREATE", index, "MAX"], &arity("session.create")),
            (&["SESSION.CREATE", "text", "MAX", "1", "5", "9"], WRONGTYPE),
        ];
        for (args, want) in cases {
            assert_eq!(error_of(&mut c, args), want, "{flavor:?} {args:?}");
        }
        assert_same_state(&before, &snapshot(&mut c), 100);
    });
}

// ---------------------------------------------------------------------------------------------
// SESSION.DESTROYALL of a large index

#[test]
fn destroyall_of_thousands_reaches_the_replica() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut c = pair.primary.conn();
        let index = "sessions:{big}";
        let mut pipe = redis::pipe();
        for i in 0..2500 {
            let (idle, abs) = if i % 10 == 0 {
                (20, 20)
            } else {
                (60_000, 60_000)
            };
            pipe.cmd("SESSION.CREATE")
                .arg(index)
                .arg(idle)
                .arg(abs)
                .arg("n")
                .arg(i);
        }
        let _: Vec<String> = pipe.query(&mut c).unwrap();
        sleep(Duration::from_millis(40));
        assert_eq!(query::<i64>(&mut c, &["SESSION.DESTROYALL", index]), 2250);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", index]), 0);
        pair.sync();
        let mut r = pair.replica.conn();
        // The expired sessions' keys go as Redis expires them; no live one is left anywhere.
        let live = |c: &mut Connection| {
            let keys: Vec<String> = query(c, &["KEYS", "sessions:{big}*"]);
            keys.iter()
                .filter(|k| query::<i64>(c, &["PTTL", k]) > 0)
                .count()
        };
        assert_eq!(live(&mut c), 0, "{flavor:?}");
        assert_eq!(live(&mut r), 0, "{flavor:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The index's look-ahead (scores up to min(idle_ms / 8, 1 s) ahead of the expiries)

/// A session command on the module, or on its twin as FCALL (the twin's CREATE takes `id`).
fn call<T: redis::FromRedisValue>(c: &mut Connection, twin: bool, id: &str, args: &[&str]) -> T {
    if !twin {
        return query(c, args);
    }
    let name = args[0].to_lowercase().replace('.', "_");
    let mut argv = vec!["FCALL", &name, "1", args[1]];
    if args[0] == "SESSION.CREATE" {
        argv.push(id);
    }
    argv.extend(&args[2..]);
    query(c, &argv)
}

#[test]
fn reads_within_the_lead_leave_the_index_and_replies_follow_real_expiries() {
    for_each_module_and_twin(|flavor, mut m, mut t| {
        for (c, twin) in [(&mut m, false), (&mut t, true)] {
            let ctx = format!("{flavor:?}, twin: {twin}");
            let index = "sessions:{lead}";
            let new = |c: &mut Connection, id: &str, max: &[&str]| -> String {
                let mut args = vec!["SESSION.CREATE", index];
                args.extend(max);
                args.extend(["8000", "100000"]);
                call(c, twin, &id.repeat(22), &args)
            };
            let a = new(c, "A", &[]);
            sleep(Duration::from_millis(20));
            let b = new(c, "B", &[]);
            sleep(Duration::from_millis(20));
            let read: Option<Vec<String>> = call(c, twin, "", &["SESSION.GET", &a]);
            assert_eq!(read, Some(vec![]), "{ctx}");
            let expiry = |c: &mut Connection, k: &str| query::<i64>(c, &["PEXPIRETIME", k]);
            let score = |c: &mut Connection, k: &str| query::<i64>(c, &["ZSCORE", index, k]);
            // A was scored 1 s (idle / 8, capped) past its first expiry; the read slid the
            // expiry by ~40 ms, still under that score: the index did not move.
            let (a_at, a_score) = (expiry(c, &a), score(c, &a));
            assert!(
                (a_at + 1..a_at + 1000).contains(&a_score),
                "{ctx}: {a_at} {a_score}"
            );
            assert_eq!(score(c, &b), expiry(c, &b) + 1000, "{ctx}");
            // The scores say A then B; the expiries say B then A, and LIST follows them.
            assert!(a_score < score(c, &b) && expiry(c, &b) < a_at, "{ctx}");
            let listed: Vec<String> = call(c, twin, "", &["SESSION.LIST", index]);
            assert_eq!(listed, [b.clone(), a.clone()], "{ctx}");
            let count: i64 = call(c, twin, "", &["SESSION.COUNT", index]);
            assert_eq!(count, 2, "{ctx}");
            // MAX 2 makes room by destroying B, the session soonest to expire (C is created
            // in a later millisecond than A's read: no tie to order by key).
            sleep(Duration::from_millis(5));
            let n = new(c, "C", &["MAX", "2"]);
            let listed: Vec<String> = call(c, twin, "", &["SESSION.LIST", index]);
            assert_eq!(listed, [a.clone(), n], "{ctx}");
            assert_eq!(query::<i64>(c, &["EXISTS", &b]), 0, "{ctx}");
        }
    });
}

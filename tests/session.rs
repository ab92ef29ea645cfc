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
        for _ in 0..300 {
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
        let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
        let cases: Vec<(Vec<&str>, &str)> = vec![
            (
                vec!["SESSION.CREATE", "i", "10", "20", "f"],
                "ERR wrong number of arguments for 'session.create' command",
            ),
            (
                vec!["SESSION.CREATE", "i", "10"],
                "ERR wrong number of arguments for 'session.create' command",
            ),
            (
                vec!["SESSION.CREATE", "i", "10", "9"],
                "ERR absolute_ms must be at least idle_ms",
            ),
            (
                vec!["SESSION.CREATE", "i", "0", "9"],
                "ERR idle_ms must be a positive integer",
            ),
            (
                vec!["SESSION.CREATE", "i", "-5", "9"],
                "ERR idle_ms must be a positive integer",
            ),
            (
                vec!["SESSION.CREATE", "i", "5", "-9"],
                "ERR absolute_ms must be a positive integer",
            ),
            (
                vec!["SESSION.CREATE", "i", "5", "x"],
                "ERR absolute_ms must be a positive integer",
            ),
            (
                vec!["SESSION.CREATE", "i", "5", "4503599627370497"],
                "ERR idle_ms and absolute_ms must be at most 2^52",
            ),
            (
                vec!["SESSION.CREATE", "i", "5", "9", "__idle_ms", "1"],
                "ERR field names starting with __ are reserved",
            ),
            (
                vec!["SESSION.CREATE", "i", "5", "9", "ok", "1", "__x", "1"],
                "ERR field names starting with __ are reserved",
            ),
            (
                vec!["SESSION.CREATE", "a{b", "5", "9"],
                "ERR index name cannot carry a session key in its slot",
            ),
            (
                vec!["SESSION.CREATE", "a{}b", "5", "9"],
                "ERR index name cannot carry a session key in its slot",
            ),
            (vec!["SESSION.CREATE", "text", "5", "9"], wrongtype),
            (
                vec!["SESSION.SET", &session, "f"],
                "ERR wrong number of arguments for 'session.set' command",
            ),
            (
                vec!["SESSION.SET", &session, "__index", "x"],
                "ERR field names starting with __ are reserved",
            ),
            (vec!["SESSION.GET", "text"], wrongtype),
            (
                vec!["SESSION.GET", "plainhash"],
                "ERR key does not hold a session",
            ),
            (vec!["SESSION.GET", "{textidx}:x"], wrongtype),
            (vec!["SESSION.ROTATE", "text"], wrongtype),
            (
                vec!["SESSION.DESTROY", "plainhash"],
                "ERR key does not hold a session",
            ),
            (vec!["SESSION.LIST", "text"], wrongtype),
            (vec!["SESSION.COUNT", "plainhash"], wrongtype),
            (vec!["SESSION.DESTROYALL", "text"], wrongtype),
            (
                vec!["SESSION.GET", &session, "extra"],
                "ERR wrong number of arguments for 'session.get' command",
            ),
        ];
        let before = snapshot(&mut c);
        for (args, want) in &cases {
            assert_eq!(&error_of(&mut c, args), want, "{args:?}");
        }
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

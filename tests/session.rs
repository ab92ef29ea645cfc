//! The session family on real servers (Redis 7.0 and Valkey 8.0): sliding and absolute expiry,
//! atomic rotation under concurrent readers, ids, replication and AOF, Cluster, ACL, bad input,
//! and the Lua twin against the module.

mod common;

use common::*;
use patterns_core::keys::{slot, ALPHABET, ID_LEN};
use patterns_core::session as s;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::{BTreeMap, BTreeSet};
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
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
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
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation

#[test]
fn rotation_never_shows_both_keys_or_neither() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
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
    }
}

// ---------------------------------------------------------------------------------------------
// Ids

#[test]
fn ids_are_distinct_and_url_safe() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
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
    }
}

// ---------------------------------------------------------------------------------------------
// Replication and AOF

/// A randomized workload over a few indexes: long-lived sessions, and short ones that have
/// expired (and been pruned) by the end.
fn random_workload(c: &mut Connection, rng: &mut StdRng, steps: usize) {
    let indexes = ["sessions:{a}", "idx:b", "sessions:{c}"];
    let mut live: Vec<String> = Vec::new();
    for _ in 0..steps {
        let index = *indexes.choose(rng).unwrap();
        match rng.gen_range(0..10) {
            0..=2 => {
                let (idle, abs) = if rng.gen_bool(0.2) {
                    (20, 40)
                } else {
                    (600_000, 900_000)
                };
                let f = format!("v{}", rng.gen_range(0..100));
                live.push(create(c, index, idle, abs, &["user", &f]));
            }
            3 | 4 if !live.is_empty() => {
                let k = live.choose(rng).unwrap().clone();
                let _ = get(c, &k);
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

#[test]
fn replica_holds_the_primarys_bytes() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut c = pair.primary.conn();
        random_workload(&mut c, &mut StdRng::seed_from_u64(5), 500);
        pair.sync();
        let primary = snapshot(&mut c);
        let replica = snapshot(&mut pair.replica.conn());
        assert!(primary.len() > 10);
        assert_same_state(&primary, &replica, 50);
    }
}

/// Inside MULTI/EXEC and from a script, the effects still replicate (once, as effects).
#[test]
fn transactions_and_scripts_replicate_effects() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut c = pair.primary.conn();
        let (key, _): (String, Option<Vec<String>>) = redis::pipe()
            .atomic()
            .cmd("SESSION.CREATE")
            .arg("sessions:{tx}")
            .arg(60_000)
            .arg(120_000)
            .arg("a")
            .arg("1")
            .cmd("SESSION.GET")
            .arg("sessions:{tx}:nope")
            .query(&mut c)
            .unwrap();
        let rotated: String = redis::cmd("EVAL")
            .arg("return redis.call('SESSION.ROTATE', KEYS[1])")
            .arg(1)
            .arg(&key)
            .query(&mut c)
            .unwrap();
        let _: i64 = redis::cmd("EVAL")
            .arg("return redis.call('SESSION.SET', KEYS[1], 'b', '2')")
            .arg(1)
            .arg(&rotated)
            .query(&mut c)
            .unwrap();
        create(&mut c, "sessions:{tx}", 60_000, 120_000, &[]);
        pair.sync();
        let primary = snapshot(&mut c);
        assert_eq!(primary.len(), 3);
        assert_same_state(&primary, &snapshot(&mut pair.replica.conn()), 50);
    }
}

#[test]
fn aof_replay_rebuilds_the_same_bytes() {
    for flavor in flavors() {
        let mut server =
            Server::start_with(flavor, &["--appendonly", "yes", "--appendfsync", "always"]);
        let mut c = server.conn();
        random_workload(&mut c, &mut StdRng::seed_from_u64(6), 500);
        let before = snapshot(&mut c);
        drop(c);
        // Effects only: the AOF holds the writes, never a SESSION.* command (its id is random).
        assert!(assert_aof_holds_only_effects(&server, &["SESSION."]) > 1000);
        server.restart();
        let after = snapshot(&mut server.conn());
        assert!(before.len() > 10);
        assert_same_state(&before, &after, 10_000);
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster and ACL

#[test]
fn cluster_keeps_sessions_in_their_index_slot() {
    for flavor in flavors() {
        let cluster = Cluster::start(flavor);
        let mut c = cluster.client();
        for i in 0..20 {
            for index in [format!("sessions:{{user:{i}}}"), format!("plain:{i}")] {
                let key: String = redis::cmd("SESSION.CREATE")
                    .arg(&index)
                    .arg(60_000)
                    .arg(120_000)
                    .arg("n")
                    .arg(i)
                    .query(&mut c)
                    .unwrap();
                assert_eq!(slot(key.as_bytes()), slot(index.as_bytes()), "{key}");
                let mut node = cluster.node_for_key(index.as_bytes()).conn();
                let server_slot: i64 = query(&mut node, &["CLUSTER", "KEYSLOT", &key]);
                assert_eq!(server_slot, i64::from(slot(index.as_bytes())));
                let v: Option<Vec<String>> =
                    redis::cmd("SESSION.GET").arg(&key).query(&mut c).unwrap();
                assert_eq!(v, Some(vec!["n".into(), i.to_string()]));
                let new: String = redis::cmd("SESSION.ROTATE")
                    .arg(&key)
                    .query(&mut c)
                    .unwrap();
                assert_eq!(slot(new.as_bytes()), slot(index.as_bytes()));
                let n: i64 = redis::cmd("SESSION.COUNT")
                    .arg(&index)
                    .query(&mut c)
                    .unwrap();
                assert_eq!(n, 1);
            }
        }
    }
}

#[test]
fn acl_checks_the_derived_keys() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut admin = server.conn();
        let nope =
            "NOPERM this user has no permissions to access one of the keys used as arguments";
        // Only the index itself: its derived session keys are outside the patterns.
        let mut exact = login(&server, "exact", &["~sessions:{u1}"]);
        let before = snapshot(&mut admin);
        assert_eq!(
            error_of(
                &mut exact,
                &["SESSION.CREATE", "sessions:{u1}", "100", "200"]
            ),
            nope
        );
        // `~sessions:*` covers a hashtagged index's sessions, not `{sessions:u2}:<id>`.
        let mut wide = login(&server, "wide", &["~sessions:*"]);
        assert_eq!(
            error_of(&mut wide, &["SESSION.CREATE", "sessions:u2", "100", "200"]),
            nope
        );
        assert_same_state(&before, &snapshot(&mut admin), 100);
        let key = create(&mut wide, "sessions:{u1}", 60_000, 60_000, &["a", "1"]);
        assert!(key.starts_with("sessions:{u1}:"));
        // A user who may touch a session key but not its index cannot use it.
        let plain = create(&mut admin, "other:u3", 60_000, 60_000, &["a", "1"]);
        let mut only_session = login(&server, "session_only", &["~{other:u3}:*"]);
        let before = snapshot(&mut admin);
        for cmd in ["SESSION.GET", "SESSION.ROTATE", "SESSION.DESTROY"] {
            assert_eq!(error_of(&mut only_session, &[cmd, &plain]), nope, "{cmd}");
        }
        assert_eq!(
            error_of(&mut only_session, &["SESSION.SET", &plain, "b", "2"]),
            nope
        );
        // An index user without its sessions cannot destroy them.
        let mut only_index = login(&server, "index_only", &["~other:u3"]);
        assert_eq!(
            error_of(&mut only_index, &["SESSION.DESTROYALL", "other:u3"]),
            nope
        );
        assert_same_state(&before, &snapshot(&mut admin), 100);
        assert_eq!(
            query::<i64>(&mut only_index, &["SESSION.COUNT", "other:u3"]),
            1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
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
    }
}

#[test]
fn readme_session_table_matches_the_definitions() {
    assert_readme_has_table(&s::COMMANDS, "session");
}

#[test]
fn command_docs_describe_the_pairs() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let mut c = server.conn();
        assert_command_docs(&mut c, &s::COMMANDS);
        let docs: Value = redis::cmd("COMMAND")
            .arg("DOCS")
            .arg("session.create")
            .query(&mut c)
            .unwrap();
        let text = format!("{docs:?}");
        assert!(
            text.contains("multiple") && text.contains("field"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Lua twin (the comparison helpers live in tests/common)

/// A random call on the module, valid most of the time.
fn random_session_call(rng: &mut StdRng, sessions: &[String]) -> Vec<String> {
    let indexes = ["sessions:{a}", "idx:b", "text", "a{b"];
    let spread = if rng.gen_bool(0.9) { 2 } else { 4 };
    let index = indexes[rng.gen_range(0..spread)].to_string();
    let session = if sessions.is_empty() || rng.gen_bool(0.05) {
        "plainhash".to_string()
    } else {
        sessions[rng.gen_range(0..sessions.len())].clone()
    };
    let field = format!("f{}", rng.gen_range(0..4));
    let v = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match rng.gen_range(0..16) {
        0..=3 => {
            let (idle, abs) = match rng.gen_range(0..10) {
                0..=3 => (30, 80),
                4..=7 => (100_000, 200_000),
                8 => (0, 5),
                _ => (50, 20),
            };
            let mut args = v(&[
                "SESSION.CREATE",
                &index,
                &idle.to_string(),
                &abs.to_string(),
            ]);
            match rng.gen_range(0..10) {
                0 => args.push("odd".into()),
                1 => args.extend(v(&["__f", "1"])),
                _ => args.extend(v(&[&field, "1", "user", "u"])),
            }
            args
        }
        4..=6 => v(&["SESSION.GET", &session]),
        7 | 8 => v(&[
            "SESSION.SET",
            &session,
            &field,
            &rng.gen_range(0..100).to_string(),
        ]),
        9 => v(&["SESSION.ROTATE", &session]),
        10 => v(&["SESSION.DESTROY", &session]),
        11 if rng.gen_bool(0.3) => v(&["SESSION.DESTROYALL", &index]),
        12 => v(&["SESSION.LIST", &index]),
        _ => v(&["SESSION.COUNT", &index]),
    }
}

/// The same call through FCALL, or EVALSHA when `shas` holds the scripts' SHAs, with the
/// module's generated id for CREATE and ROTATE.
fn twin_call(
    args: &[String],
    module_reply: &Value,
    shas: Option<&BTreeMap<String, String>>,
) -> redis::Cmd {
    let function = args[0].to_ascii_lowercase().replace('.', "_");
    let mut cmd = match shas {
        None => {
            let mut c = redis::cmd("FCALL");
            c.arg(&function);
            c
        }
        Some(shas) => {
            let mut c = redis::cmd("EVALSHA");
            c.arg(&shas[&function]);
            c
        }
    };
    cmd.arg(1).arg(&args[1]);
    if function == "session_create" || function == "session_rotate" {
        // The module drew the id: the twin is handed the same one (a valid placeholder when
        // the module refused, so the twin refuses for the same reason).
        let id = match module_reply {
            Value::BulkString(k) => String::from_utf8_lossy(&k[k.len() - ID_LEN..]).into_owned(),
            _ => "A".repeat(ID_LEN),
        };
        cmd.arg(id);
    }
    cmd.arg(&args[2..]);
    cmd
}

fn seed_wrong_types(c: &mut Connection) {
    let _: () = query(c, &["SET", "text", "x"]);
    let _: () = query(c, &["HSET", "plainhash", "a", "1"]);
}

#[test]
fn lua_twin_matches_the_module() {
    for (flavor, evalsha) in flavors().into_iter().flat_map(|f| [(f, false), (f, true)]) {
        let module = Server::start(flavor);
        let twin = Server::start_without_module(flavor, &[]);
        let (mut a, mut b) = (module.conn(), twin.conn());
        let shas = load_twin(&mut b);
        let shas = evalsha.then_some(&shas);
        seed_wrong_types(&mut a);
        seed_wrong_types(&mut b);
        let mut rng = StdRng::seed_from_u64(42);
        let mut sessions: Vec<String> = Vec::new();
        let mut tracked: BTreeSet<String> = ["sessions:{a}", "idx:b", "text", "plainhash"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (mut compared, steps) = (0, 400);
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for step in 0..steps {
            let args = random_session_call(&mut rng, &sessions);
            at_ms_start(&mut a);
            let (a0, native, a1) = timed(&mut a, &{
                let mut c = redis::cmd(&args[0]);
                c.arg(&args[1..]);
                c
            });
            let (b0, twin_reply, b1) = timed(&mut b, &twin_call(&args, &native, shas));
            if let Value::BulkString(k) = &native {
                let k = String::from_utf8(k.clone()).unwrap();
                sessions.push(k.clone());
                tracked.insert(k);
            }
            let context = format!(
                "step {step}: {args:?} on {} (EVALSHA: {evalsha})",
                flavor.name()
            );
            if a0 == a1 && a1 == b0 && b0 == b1 {
                assert_eq!(shown(&native), shown(&twin_reply), "{context}");
                for key in &tracked {
                    assert_same_key(&mut a, &mut b, key, 0, &context);
                }
                compared += 1;
                let kind = match &native {
                    Value::ServerError(_) => "error",
                    Value::Nil => "nil",
                    Value::BulkString(_) => "key",
                    _ => "other",
                };
                *kinds.entry(kind).or_insert(0) += 1;
            } else {
                for key in &tracked {
                    copy_key(&mut a, &mut b, key);
                }
            }
            if rng.gen_bool(0.1) {
                sleep(Duration::from_millis(rng.gen_range(1..60)));
            }
        }
        assert!(
            compared * 10 >= steps * 6,
            "only {compared}/{steps} steps compared"
        );
        for kind in ["error", "nil", "key", "other"] {
            assert!(
                kinds.get(kind).copied().unwrap_or(0) >= 10,
                "too few {kind}: {kinds:?}"
            );
        }
    }
}

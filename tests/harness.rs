//! Smoke tests of the integration-test harness itself (tests/common), on Redis and Valkey.

mod common;
use common::*;

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Module names listed by `MODULE LIST` (RESP2: one flat `name, <name>, ver, ...` array per module).
fn module_names(server: &Server) -> Vec<String> {
    let list: Vec<Vec<redis::Value>> = redis::cmd("MODULE")
        .arg("LIST")
        .query(&mut server.conn())
        .expect("MODULE LIST");
    list.iter()
        .filter_map(|fields| {
            fields.chunks(2).find_map(|kv| {
                let key: String = redis::from_redis_value(&kv[0]).ok()?;
                if key == "name" {
                    redis::from_redis_value(kv.get(1)?).ok()
                } else {
                    None
                }
            })
        })
        .collect()
}

#[test]
fn server_has_module_loaded() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        assert!(server.has_module());
        let names = module_names(&server);
        assert!(
            names.iter().any(|n| n == "patterns"),
            "{}: MODULE LIST = {names:?}",
            flavor.name()
        );
        let mut c = server.conn();
        let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
        let v: String = redis::cmd("GET").arg("a").query(&mut c).unwrap();
        assert_eq!(v, "1");
        // DEBUG is enabled (needed by tests on 7.0).
        let _: redis::Value = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0)
            .query(&mut c)
            .unwrap();
        assert!(server.dir().is_dir());
    }
}

#[test]
fn server_without_module() {
    for flavor in flavors() {
        let server = Server::start_without_module(flavor, &[]);
        assert!(!server.has_module());
        let names = module_names(&server);
        assert!(
            !names.iter().any(|n| n == "patterns"),
            "{}: MODULE LIST = {names:?}",
            flavor.name()
        );
        let n: i64 = redis::cmd("EVAL")
            .arg("return 1 + 1")
            .arg(0)
            .query(&mut server.conn())
            .unwrap();
        assert_eq!(n, 2);
    }
}

#[test]
fn pair_replicates_and_snapshots_match() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut p = pair.primary.conn();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("v")
            .arg("PX")
            .arg(100_000)
            .query(&mut p)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg("h")
            .arg("f")
            .arg("x")
            .query(&mut p)
            .unwrap();
        pair.sync();
        let a = snapshot(&mut p);
        let b = snapshot(&mut pair.replica.conn());
        assert_eq!(a.len(), 2, "{}: {a:?}", flavor.name());
        assert_eq!(a[&b"k"[..]].kind, "string");
        assert!(a[&b"k"[..]].pttl > 90_000);
        assert_eq!(a[&b"h"[..]].pttl, -1);
        assert_same_state(&a, &b, 1_000);
        let v: String = redis::cmd("GET")
            .arg("k")
            .query(&mut pair.replica.conn())
            .unwrap();
        assert_eq!(v, "v");
    }
}

#[test]
fn aof_server_keeps_key_across_restart() {
    for flavor in flavors() {
        let mut server =
            Server::start_with(flavor, &["--appendonly", "yes", "--appendfsync", "always"]);
        let port = server.port();
        let _: () = redis::cmd("SET")
            .arg("persisted")
            .arg("yes")
            .query(&mut server.conn())
            .unwrap();
        let before = snapshot(&mut server.conn());
        server.restart();
        assert_eq!(server.port(), port);
        let v: Option<String> = redis::cmd("GET")
            .arg("persisted")
            .query(&mut server.conn())
            .unwrap();
        assert_eq!(v.as_deref(), Some("yes"), "{}", flavor.name());
        assert_same_state(&before, &snapshot(&mut server.conn()), 0);
        assert_eq!(
            server.info_value("persistence", "aof_enabled").as_deref(),
            Some("1")
        );
        // RDB: SHUTDOWN saves when save points are configured.
        let mut server = Server::start_with(flavor, &["--save", "3600 1"]);
        let _: () = redis::cmd("SET")
            .arg("in-rdb")
            .arg("1")
            .query(&mut server.conn())
            .unwrap();
        server.restart();
        let n: i64 = redis::cmd("EXISTS")
            .arg("in-rdb")
            .query(&mut server.conn())
            .unwrap();
        assert_eq!(n, 1, "{}: RDB not reloaded", flavor.name());
        assert!(server.dir().join("dump.rdb").is_file());
    }
}

#[test]
fn cluster_routes_keys_in_different_slots() {
    for flavor in flavors() {
        let cluster = Cluster::start(flavor);
        let mut c = cluster.client();
        let keys = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
        for k in keys {
            let _: () = redis::cmd("SET")
                .arg(k)
                .arg(format!("v-{k}"))
                .query(&mut c)
                .unwrap();
        }
        for k in keys {
            let v: String = redis::cmd("GET").arg(k).query(&mut c).unwrap();
            assert_eq!(v, format!("v-{k}"));
        }
        // The keys really are spread over more than one node, each stored where its slot lives.
        let owners: HashSet<u16> = keys
            .iter()
            .map(|k| {
                let node = cluster.node_for_key(k.as_bytes());
                let local: Option<String> =
                    redis::cmd("GET").arg(*k).query(&mut node.conn()).unwrap();
                assert_eq!(
                    local,
                    Some(format!("v-{k}")),
                    "{k} not on node {}",
                    node.addr()
                );
                node.port()
            })
            .collect();
        assert!(owners.len() > 1, "{}: all keys on one node", flavor.name());
    }
}

#[test]
fn assert_same_state_detects_differences() {
    let ks = |kind: &str, dump: &[u8], pttl: i64| KeyState {
        kind: kind.to_string(),
        dump: dump.to_vec(),
        pttl,
    };
    let mut a = BTreeMap::new();
    a.insert(b"x".to_vec(), ks("string", b"\x00\x01", -1));
    a.insert(b"t".to_vec(), ks("string", b"\x00\x02", 5_000));
    let mut b = a.clone();
    assert_same_state(&a, &b, 100);

    // PTTL drift within tolerance is fine; beyond it is not.
    b.get_mut(&b"t"[..]).unwrap().pttl = 4_950;
    assert_same_state(&a, &b, 100);
    b.get_mut(&b"t"[..]).unwrap().pttl = 4_000;
    assert!(catch_unwind(AssertUnwindSafe(|| assert_same_state(&a, &b, 100))).is_err());

    // A key that is about to expire may be missing on one side; a persistent one may not.
    let mut c = a.clone();
    c.insert(b"soon".to_vec(), ks("string", b"", 50));
    assert_same_state(&a, &c, 100);
    c.insert(b"extra".to_vec(), ks("string", b"", -1));
    assert!(catch_unwind(AssertUnwindSafe(|| assert_same_state(&a, &c, 100))).is_err());

    // Different DUMP bytes or TYPE.
    let mut d = a.clone();
    d.get_mut(&b"x"[..]).unwrap().dump = b"\x00\x03".to_vec();
    assert!(catch_unwind(AssertUnwindSafe(|| assert_same_state(&a, &d, 100))).is_err());
    let mut e = a.clone();
    e.get_mut(&b"x"[..]).unwrap().kind = "list".into();
    assert!(catch_unwind(AssertUnwindSafe(|| assert_same_state(&a, &e, 100))).is_err());

    // Expiring vs persistent.
    let mut f = a.clone();
    f.get_mut(&b"x"[..]).unwrap().pttl = 10;
    assert!(catch_unwind(AssertUnwindSafe(|| assert_same_state(&a, &f, 100))).is_err());
}

#[test]
fn free_ports_are_unique_and_cluster_safe() {
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), ports.len());
    assert!(ports.iter().all(|&p| p <= 55_535));
}

#[test]
fn panicking_test_leaves_no_server_behind() {
    for flavor in flavors() {
        let mut seen = None;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let server = Server::start(flavor);
            seen = Some((server.port(), server.dir().to_path_buf()));
            panic!("deliberate test failure");
        }));
        assert!(result.is_err());
        let (port, dir) = seen.unwrap();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{}: server on port {port} still running",
            flavor.name()
        );
        assert!(
            std::env::var_os("KEEP_TEST_DIRS").is_some() || !dir.exists(),
            "{} not removed",
            dir.display()
        );
    }
}

#[test]
fn server_crash_fails_the_test() {
    for flavor in flavors() {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let server = Server::start_with(flavor, &["--crash-memcheck-enabled", "no"]);
            let _ = redis::cmd("DEBUG")
                .arg("SEGFAULT")
                .query::<redis::Value>(&mut server.conn());
            drop(server);
        }));
        let msg = result.expect_err("dropping a crashed server must panic");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("crashed"), "{}: {msg}", flavor.name());
    }
}

#[test]
fn startup_failure_reports_the_server_log() {
    for flavor in flavors() {
        let err = catch_unwind(|| Server::start_with(flavor, &["--no-such-option", "1"]))
            .map(|_| ())
            .expect_err("a bad config must fail to start");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("exited during startup") && msg.contains("no-such-option"),
            "{}: {msg}",
            flavor.name()
        );
    }
}

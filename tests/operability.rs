//! Operability on real servers (issue 13): command flags and read-only counts on replicas, ACL
//! categories (and Redis 7.0's fallback rule), the version `MODULE LIST` shows, and the
//! counters of `INFO patterns`.

mod common;

use common::*;
use patterns_core::command::{acl_rule, CommandDef, Flags};
use redis::{Connection, Value};
use std::collections::BTreeSet;
use std::thread::sleep;
use std::time::Duration;

fn all() -> Vec<&'static CommandDef> {
    patterns_core::all_commands().collect()
}

/// Whether the server takes module ACL categories (`RedisModule_SetCommandACLCategories` and
/// `RedisModule_AddACLCategory`): Valkey 8 does, Redis 7.0 has neither.
fn has_categories(flavor: Flavor) -> bool {
    flavor != Flavor::Redis
}

/// COMMAND INFO's flags and ACL categories of a command.
fn flags_and_categories(c: &mut Connection, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let info: Vec<Vec<Value>> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(c)
        .unwrap();
    let words = |v: &Value| -> BTreeSet<String> {
        redis::from_redis_value::<Vec<String>>(v)
            .unwrap()
            .into_iter()
            .collect()
    };
    (words(&info[0][2]), words(&info[0][6]))
}

#[test]
fn flags_follow_the_definitions() {
    for_each_server(|_, mut c| {
        for def in all() {
            let name = def.name.to_ascii_lowercase();
            let (flags, _) = flags_and_categories(&mut c, &name);
            let has = |f: &str| flags.contains(f);
            assert_eq!(has("fast"), def.flags.contains(Flags::FAST), "{name}");
            assert_eq!(
                has("blocking"),
                def.flags.contains(Flags::BLOCKING),
                "{name}"
            );
            assert_eq!(has("readonly"), def.is_readonly(), "{name}");
            assert_eq!(has("write"), !def.is_readonly(), "{name}");
        }
        for name in ["lock.acquire", "sem.acquire"] {
            assert!(flags_and_categories(&mut c, name).0.contains("blocking"));
        }
        for name in ["sem.count", "session.count", "lock.info", "rl.tokenbucket"] {
            assert!(flags_and_categories(&mut c, name).0.contains("fast"));
        }
    });
}

/// `SEM.COUNT` and `SESSION.COUNT` only read: a replica answers them, expired members are not
/// counted, and nothing is written (the expired members stay until the next write prunes them).
#[test]
fn counts_run_on_replicas_without_writing() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut p = pair.primary.conn();
        let _: i64 = query(&mut p, &["SEM.ACQUIRE", "pool", "short", "5", "100"]);
        let _: i64 = query(&mut p, &["SEM.ACQUIRE", "pool", "long", "5", "60000"]);
        let short: String = query(&mut p, &["SESSION.CREATE", "ids", "100", "100"]);
        let _: String = query(&mut p, &["SESSION.CREATE", "ids", "60000", "60000"]);
        pair.sync();
        let mut r = pair.replica.conn();
        assert_eq!(query::<i64>(&mut r, &["SEM.COUNT", "pool"]), 2);
        assert_eq!(query::<i64>(&mut r, &["SESSION.COUNT", "ids"]), 2);
        sleep(Duration::from_millis(250));
        let before = snapshot(&mut p);
        for c in [&mut p, &mut r] {
            assert_eq!(query::<i64>(c, &["SEM.COUNT", "pool"]), 1);
            assert_eq!(query::<i64>(c, &["SESSION.COUNT", "ids"]), 1);
        }
        // Neither count pruned: the expired members are still there, on both servers.
        assert_same_state(&before, &snapshot(&mut p), 100);
        assert_eq!(query::<i64>(&mut p, &["ZCARD", "pool"]), 2);
        assert_eq!(query::<i64>(&mut p, &["ZCARD", "ids"]), 2);
        assert!(query::<Option<f64>>(&mut p, &["ZSCORE", "ids", &short]).is_some());
        // Read-only twins: FCALL_RO runs them on the replica too.
        load_twin(&mut p);
        pair.sync();
        assert_eq!(
            query::<i64>(&mut r, &["FCALL_RO", "sem_count", "1", "pool"]),
            1
        );
        assert_eq!(
            query::<i64>(&mut r, &["FCALL_RO", "session_count", "1", "ids"]),
            1
        );
        assert_eq!(query::<i64>(&mut p, &["ZCARD", "pool"]), 2);
    }
}

#[test]
fn acl_categories_where_the_server_takes_them() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let categories: Vec<String> = query(&mut c, &["ACL", "CAT"]);
        let own = categories.iter().any(|cat| cat == "patterns");
        for def in all() {
            let name = def.name.to_ascii_lowercase();
            let (_, got) = flags_and_categories(&mut c, &name);
            let expected: BTreeSet<String> = match has_categories(flavor) {
                true => def
                    .acl_categories(own)
                    .split(' ')
                    .map(|cat| format!("@{cat}"))
                    .collect(),
                // Redis 7.0: a module command has no category at all.
                false => BTreeSet::new(),
            };
            assert_eq!(got, expected, "{flavor:?} {name}");
        }
        if has_categories(flavor) {
            assert!(own, "{flavor:?} lacks @patterns: {categories:?}");
            // (`ACL CAT patterns` lists no module command: the server skips them all there.)
            // The operator: +@read +@write reaches rl.tokenbucket and lb.top.
            let mut rw = user(&server, "rw", &["+@read", "+@write"]);
            let _: Vec<i64> = query(&mut rw, &["RL.TOKENBUCKET", "k", "10", "1", "1000"]);
            let _: Value = query(&mut rw, &["LB.TOP", "board", "3"]);
            // A read-only user counts permits but cannot take one.
            let mut ro = user(&server, "ro", &["+@read"]);
            let _: i64 = query(&mut ro, &["SEM.COUNT", "pool"]);
            assert!(
                error_of(&mut ro, &["SEM.ACQUIRE", "pool", "o", "1", "100"]).starts_with("NOPERM")
            );
            let mut module = user(&server, "module", &["+@patterns"]);
            let _: i64 = query(&mut module, &["SEM.ACQUIRE", "pool", "o", "1", "100"]);
            assert!(error_of(&mut module, &["GET", "k"]).starts_with("NOPERM"));
        } else {
            // Redis 7.0 cannot put module commands in categories: README's rule grants them.
            let mut rw = user(&server, "rw", &["+@read", "+@write"]);
            assert!(
                error_of(&mut rw, &["RL.TOKENBUCKET", "k", "10", "1", "1000"])
                    .starts_with("NOPERM")
            );
        }
        // README's rule works everywhere: every command by name.
        let rule = acl_rule(all());
        let grants: Vec<&str> = rule.split(' ').collect();
        let mut granted = user(&server, "granted", &grants);
        let _: Vec<i64> = query(&mut granted, &["RL.TOKENBUCKET", "k", "10", "1", "1000"]);
        let _: Value = query(&mut granted, &["LB.TOP", "board", "3"]);
        let _: i64 = query(&mut granted, &["SEM.COUNT", "pool"]);
        assert!(error_of(&mut granted, &["GET", "k"]).starts_with("NOPERM"));
    });
}

#[test]
fn readme_gives_the_acl_rule() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let rule = acl_rule(all());
    assert!(readme.contains(&rule), "README lacks the ACL rule:\n{rule}");
}

/// A connection logged in as a new user with these rules on every key.
fn user(server: &Server, name: &str, rules: &[&str]) -> Connection {
    login_with(server, name, &[&["~*", "&*"], rules].concat())
}

/// `major.minor.patch` as RedisJSON encodes it.
fn encoded(version: &str) -> i64 {
    let parts: Vec<i64> = version.split('.').map(|p| p.parse().unwrap()).collect();
    parts[0] * 10000 + parts[1] * 100 + parts[2]
}

#[test]
fn module_list_shows_the_crate_version() {
    for_each_server(|_, mut c| {
        let modules: Vec<Vec<Value>> = query(&mut c, &["MODULE", "LIST"]);
        let fields: Vec<String> = modules[0]
            .iter()
            .map(|v| match v {
                Value::Int(n) => n.to_string(),
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect();
        let at = fields.iter().position(|f| f == "ver").unwrap();
        let ver: i64 = fields[at + 1].parse().unwrap();
        assert_eq!(ver, encoded(env!("CARGO_PKG_VERSION")));
        assert_eq!(ver, 100, "0.1.0");
        // Every command appeared in a release no later than the module's.
        let docs: Value = query(&mut c, &["COMMAND", "DOCS", "rl.tokenbucket"]);
        let text = format!("{docs:?}");
        let since = "0.1.0";
        assert!(text.contains(since), "{text}");
        assert!(encoded(since) <= ver);
    });
}

/// `INFO patterns` as (field without the `patterns_` prefix, value).
fn counters(c: &mut Connection) -> std::collections::BTreeMap<String, i64> {
    let info: String = query(c, &["INFO", "patterns"]);
    info.lines()
        .filter_map(|l| l.trim_end().split_once(':'))
        .filter_map(|(k, v)| Some((k.strip_prefix("patterns_")?.to_string(), v.parse().ok()?)))
        .collect()
}

#[test]
fn info_counts_what_the_commands_did() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let start = counters(&mut c);
        assert!(start.values().all(|v| *v == 0), "{start:?}");
        for field in [
            "rl_tokenbucket_allowed",
            "lock_waiters",
            "sem_waiters",
            "cache_keys_invalidated",
            "lb_writes",
        ] {
            assert!(start.contains_key(field), "{field}: {start:?}");
        }
        // Rate limiters: 1 allowed then 1 denied each.
        for args in [
            ["RL.TOKENBUCKET", "tb", "1", "1", "60000"].as_slice(),
            &["RL.FIXEDWINDOW", "fw", "1", "60000"],
            &["RL.SLIDINGWINDOW", "sw", "1", "60000"],
            &["CL.THROTTLE", "th", "0", "1", "60"],
        ] {
            let _: Value = query(&mut c, args);
            let _: Value = query(&mut c, args);
        }
        // Several limits: one call admitted, one denied (its first limit is spent), a refund;
        // counted apart from the algorithms' own commands.
        let all = [
            "RL.ALL",
            "TOKENBUCKET",
            "a1",
            "1",
            "1",
            "60000",
            "FIXEDWINDOW",
            "a2",
            "5",
            "60000",
        ];
        let _: Value = query(&mut c, &all);
        let _: Value = query(&mut c, &all);
        let _: Value = query(
            &mut c,
            &["RL.REFUND", "TOKENBUCKET", "a1", "1", "1", "60000"],
        );
        // Locks: a grant, a waiter that times out, a reentrant grant and two releases.
        let _: i64 = query(&mut c, &["LOCK.ACQUIRE", "l", "a", "60000"]);
        let _: Option<i64> = query(&mut c, &["LOCK.ACQUIRE", "l", "b", "60000", "WAIT", "50"]);
        let _: i64 = query(&mut c, &["LOCK.ACQUIRE", "l", "a", "60000"]);
        let _: i64 = query(&mut c, &["LOCK.RELEASE", "l", "a"]);
        let _: i64 = query(&mut c, &["LOCK.RELEASE", "l", "a"]);
        assert_eq!(query::<i64>(&mut c, &["LOCK.RELEASE", "l", "a"]), 0);
        // Semaphores: one permit, a waiter that times out, a release.
        let _: i64 = query(&mut c, &["SEM.ACQUIRE", "s", "a", "1", "60000"]);
        let _: i64 = query(
            &mut c,
            &["SEM.ACQUIRE", "s", "b", "1", "60000", "WAIT", "50"],
        );
        let _: i64 = query(&mut c, &["SEM.RELEASE", "s", "a"]);
        // Cache: a miss (lease), a wait, a fill accepted, a hit, a refused fill, an
        // invalidation of one tag deleting one key.
        let miss: Vec<Value> = query(&mut c, &["CACHE.GET", "e"]);
        let lease: String = redis::from_redis_value(&miss[2]).unwrap();
        let _: Value = query(&mut c, &["CACHE.GET", "e"]);
        let _: Value = query(
            &mut c,
            &["CACHE.FILL", "e", &lease, "v", "60000", "TAGS", "t"],
        );
        let _: Value = query(&mut c, &["CACHE.GET", "e"]);
        let _: Value = query(&mut c, &["CACHE.FILL", "e", "stale-lease", "v", "60000"]);
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t"]), 1);
        // Sessions: two created, one rotated, one destroyed, one by DESTROYALL.
        let s1: String = query(&mut c, &["SESSION.CREATE", "ix", "60000", "60000"]);
        let _: String = query(&mut c, &["SESSION.CREATE", "ix", "60000", "60000"]);
        let s1: String = query(&mut c, &["SESSION.ROTATE", &s1]);
        let _: i64 = query(&mut c, &["SESSION.DESTROY", &s1]);
        let _: i64 = query(&mut c, &["SESSION.DESTROYALL", "ix"]);
        // Leaderboards: two members added, one incremented, one removed.
        let _: i64 = query(&mut c, &["LB.ADD", "b", "1", "x", "2", "y"]);
        let _: Value = query(&mut c, &["LB.INCR", "b", "1", "x"]);
        let _: i64 = query(&mut c, &["LB.REM", "b", "y"]);
        let got = counters(&mut c);
        let expected = [
            ("rl_tokenbucket_allowed", 1),
            ("rl_tokenbucket_denied", 1),
            ("rl_fixedwindow_allowed", 1),
            ("rl_fixedwindow_denied", 1),
            ("rl_slidingwindow_allowed", 1),
            ("rl_slidingwindow_denied", 1),
            ("cl_throttle_allowed", 1),
            ("cl_throttle_denied", 1),
            ("rl_all_allowed", 1),
            ("rl_all_denied", 1),
            ("rl_refunds", 1),
            ("lock_grants", 2),
            ("lock_releases", 2),
            ("lock_waits", 1),
            ("lock_wait_timeouts", 1),
            ("lock_waiters", 0),
            ("lock_expiries", 0),
            ("lock_forced_unlocks", 0),
            ("sem_grants", 1),
            ("sem_releases", 1),
            ("sem_waits", 1),
            ("sem_wait_timeouts", 1),
            ("sem_waiters", 0),
            ("rwlock_grants", 0),
            ("rwlock_releases", 0),
            ("rwlock_waits", 0),
            ("rwlock_wait_timeouts", 0),
            ("rwlock_waiters", 0),
            ("cache_hit", 1),
            ("cache_refresh", 0),
            ("cache_miss", 1),
            ("cache_stale", 0),
            ("cache_wait", 1),
            ("cache_fills_accepted", 1),
            ("cache_fills_refused", 1),
            ("cache_invalidations", 1),
            ("cache_keys_invalidated", 1),
            ("session_created", 2),
            ("session_rotated", 1),
            ("session_destroyed", 2),
            ("lb_writes", 4),
            ("queue_pushed", 0),
            ("queue_delivered", 0),
            ("queue_redelivered", 0),
            ("queue_dead", 0),
            ("queue_acked", 0),
            ("queue_waits", 0),
            ("queue_wait_timeouts", 0),
            ("queue_waiters", 0),
        ];
        for (field, value) in expected {
            assert_eq!(got.get(field), Some(&value), "{flavor:?} {field}: {got:?}");
        }
        assert_eq!(got.len(), expected.len(), "{got:?}");
    });
}

/// Current waiters show while they wait, and leave the gauge when they are granted.
#[test]
fn info_shows_the_clients_waiting_now() {
    for_each_server(|server, mut c| {
        let _: i64 = query(&mut c, &["LOCK.ACQUIRE", "l", "a", "60000"]);
        let _: i64 = query(&mut c, &["SEM.ACQUIRE", "s", "a", "1", "60000"]);
        let waiters: Vec<_> = [
            vec!["LOCK.ACQUIRE", "l", "b", "60000", "WAIT", "10000"],
            vec!["SEM.ACQUIRE", "s", "b", "1", "60000", "WAIT", "10000"],
        ]
        .into_iter()
        .map(|args| {
            let mut w = server.conn();
            std::thread::spawn(move || query::<i64>(&mut w, &args))
        })
        .collect();
        let both_wait = wait_until(Duration::from_secs(5), || {
            let now = counters(&mut c);
            now["lock_waiters"] == 1 && now["sem_waiters"] == 1
        });
        assert!(both_wait, "{:?}", counters(&mut c));
        let _: i64 = query(&mut c, &["LOCK.RELEASE", "l", "a"]);
        let _: i64 = query(&mut c, &["SEM.RELEASE", "s", "a"]);
        for w in waiters {
            assert!(w.join().unwrap() >= 1);
        }
        let now = counters(&mut c);
        assert_eq!((now["lock_waiters"], now["sem_waiters"]), (0, 0));
        assert_eq!((now["lock_grants"], now["sem_grants"]), (2, 2));
        assert_eq!((now["lock_waits"], now["sem_waits"]), (1, 1));
    });
}

/// `MODULE UNLOAD` is refused while a client waits; then it removes the commands and leaves
/// the keys; the module loads again (its `@patterns` category, which outlives the unload,
/// found in place), with its counters back at zero. A session read before the unload (its
/// buffers kept for the next read) does not keep the old module in place.
#[test]
fn unload_and_load_again() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let session: String = query(
            &mut c,
            &["SESSION.CREATE", "ix", "60000", "600000", "a", "1"],
        );
        let _: Vec<String> = query(&mut c, &["SESSION.GET", &session]);
        let _: i64 = query(&mut c, &["LOCK.ACQUIRE", "l", "a", "60000"]);
        let mut w = server.conn();
        let waiter = std::thread::spawn(move || {
            query::<Option<i64>>(&mut w, &["LOCK.ACQUIRE", "l", "b", "60000", "WAIT", "300"])
        });
        assert!(wait_until(Duration::from_secs(5), || counters(&mut c)
            ["lock_waiters"]
            == 1));
        let refused = error_of(&mut c, &["MODULE", "UNLOAD", "patterns"]);
        assert!(refused.contains("blocked clients"), "{refused}");
        assert_eq!(waiter.join().unwrap(), None);
        let _: () = query(&mut c, &["MODULE", "UNLOAD", "patterns"]);
        assert!(error_of(&mut c, &["LOCK.INFO", "l"]).contains("unknown command"));
        assert_eq!(query::<String>(&mut c, &["HGET", "l", "owner"]), "a");
        let path = module_path();
        let _: () = query(&mut c, &["MODULE", "LOAD", path.to_str().unwrap()]);
        assert!(counters(&mut c).values().all(|v| *v == 0));
        let (_, categories) = flags_and_categories(&mut c, "lock.info");
        assert_eq!(categories.contains("@patterns"), has_categories(flavor));
        let _: Value = query(&mut c, &["LOCK.INFO", "l"]);
    });
}

// ---------------------------------------------------------------------------------------------
// Module configs

fn config(c: &mut Connection, name: &str) -> String {
    let pair: Vec<String> = query(c, &["CONFIG", "GET", name]);
    assert_eq!(pair.len(), 2, "{name}: {pair:?}");
    pair[1].clone()
}

#[test]
fn configs_have_the_compiled_in_defaults_and_take_config_set() {
    for_each_server(|server, mut c| {
        let all: Vec<String> = query(&mut c, &["CONFIG", "GET", "patterns.*"]);
        assert_eq!(all.len(), 8, "{all:?}");
        assert_eq!(config(&mut c, "patterns.cache-lease-ms"), "10000");
        assert_eq!(
            config(&mut c, "patterns.lb-dense-max"),
            patterns_core::leaderboard::DENSE_MAX.to_string()
        );
        assert_eq!(config(&mut c, "patterns.cache-wait-hint-ms"), "50");
        assert_eq!(
            config(&mut c, "patterns.cache-channel"),
            patterns_core::cache::CHANNEL
        );
        // The lease a CACHE.GET without LEASE takes, and the WAIT hint.
        let _: () = query(&mut c, &["CONFIG", "SET", "patterns.cache-lease-ms", "800"]);
        let _: () = query(
            &mut c,
            &["CONFIG", "SET", "patterns.cache-wait-hint-ms", "7"],
        );
        let _: Value = query(&mut c, &["CACHE.GET", "e"]);
        let pttl: i64 = query(&mut c, &["PTTL", "e"]);
        assert!((1..=800).contains(&pttl), "{pttl}");
        let wait: Vec<Value> = query(&mut c, &["CACHE.GET", "e"]);
        assert_eq!(wait[2], Value::Int(7));
        // An explicit LEASE still wins.
        let _: Value = query(&mut c, &["CACHE.GET", "f", "LEASE", "30000"]);
        assert!(query::<i64>(&mut c, &["PTTL", "f"]) > 20000);
        // Out of range or malformed: refused, the value kept.
        for bad in ["0", "60001", "x"] {
            let e = error_of(&mut c, &["CONFIG", "SET", "patterns.cache-lease-ms", bad]);
            assert!(e.starts_with("ERR"), "{e}");
        }
        assert_eq!(config(&mut c, "patterns.cache-lease-ms"), "800");
        // The invalidation channel.
        let _: () = query(
            &mut c,
            &["CONFIG", "SET", "patterns.cache-channel", "inval"],
        );
        let mut sub = server.conn();
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe("inval").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _: i64 = query(&mut c, &["CACHE.INVALIDATE", "tag1"]);
        let msg = pubsub.get_message().unwrap();
        assert_eq!(msg.get_channel_name(), "inval");
        assert_eq!(msg.get_payload::<String>().unwrap(), "tag1");
    });
}

#[test]
fn configs_from_module_arguments_and_loadex() {
    for flavor in flavors() {
        let server = Server::start_without_module(flavor, &[]);
        let mut c = server.conn();
        let path = module_path();
        let path = path.to_str().unwrap();
        let _: () = query(&mut c, &["MODULE", "LOAD", path, "cache-lease-ms", "4000"]);
        assert_eq!(config(&mut c, "patterns.cache-lease-ms"), "4000");
        let _: () = query(&mut c, &["MODULE", "UNLOAD", "patterns"]);
        let _: () = query(
            &mut c,
            &[
                "MODULE",
                "LOADEX",
                path,
                "CONFIG",
                "patterns.cache-wait-hint-ms",
                "9",
            ],
        );
        assert_eq!(config(&mut c, "patterns.cache-wait-hint-ms"), "9");
        let _: () = query(&mut c, &["MODULE", "UNLOAD", "patterns"]);
        // Unknown or malformed arguments refuse the load, with the reason in the log.
        for (args, logged) in [
            (vec!["foo", "bar"], "unknown module argument \"foo\""),
            (
                vec!["cache-lease-ms", "soon"],
                "must be an integer from 1 to 60000",
            ),
            (vec!["cache-lease-ms"], "has no value"),
        ] {
            let mut load = vec!["MODULE", "LOAD", path];
            load.extend(args);
            let e = error_of(&mut c, &load);
            assert!(e.starts_with("ERR"), "{e}");
            let log = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
            assert!(log.contains(logged), "{logged}:\n{}", server.log_tail(5));
        }
        let modules: Vec<Value> = query(&mut c, &["MODULE", "LIST"]);
        assert!(modules.is_empty());
    }
}

/// `redis.conf` sets a config, `CONFIG REWRITE` keeps one set at run time.
#[test]
fn configs_in_the_config_file_survive_config_rewrite() {
    for flavor in flavors() {
        let dir = std::env::temp_dir().join(format!("ops-conf-{}-{}", flavor.name(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let conf = dir.join("server.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsave \"\"\ndir {}\nloadmodule {}\npatterns.cache-lease-ms 1234\n",
                dir.display(),
                module_path().display()
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(flavor.server_bin())
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut c = None;
        wait_until(Duration::from_secs(10), || {
            c = client.get_connection().ok();
            c.is_some()
        });
        let mut c = c.expect("the server starts");
        assert_eq!(config(&mut c, "patterns.cache-lease-ms"), "1234");
        let _: () = query(&mut c, &["CONFIG", "SET", "patterns.cache-channel", "ops"]);
        let _: () = query(&mut c, &["CONFIG", "REWRITE"]);
        let written = std::fs::read_to_string(&conf).unwrap();
        let _: Result<(), _> = redis::cmd("SHUTDOWN").arg("NOSAVE").query(&mut c);
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            written.contains("patterns.cache-lease-ms 1234"),
            "{written}"
        );
        assert!(
            written.contains("patterns.cache-channel \"ops\"")
                || written.contains("patterns.cache-channel ops"),
            "{written}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RESP3

fn resp3(server: &Server) -> Connection {
    redis::Client::open(format!("{}?protocol=resp3", server.url()))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Records are maps and scores doubles under RESP3; under RESP2 the same replies stay flat
/// arrays and strings. The twin keeps RESP2's shapes under both (README says why).
#[test]
fn records_are_maps_and_scores_doubles_under_resp3() {
    for_each_server(|server, mut c2| {
        let mut c3 = resp3(&server);
        let token: i64 = query(&mut c2, &["LOCK.ACQUIRE", "l", "a", "60000"]);
        let session: String = query(
            &mut c2,
            &["SESSION.CREATE", "ix", "60000", "60000", "f", "v"],
        );
        let _: i64 = query(&mut c2, &["LB.ADD", "b", "1.5", "x", "3", "y"]);

        let Value::Map(info) = query::<Value>(&mut c3, &["LOCK.INFO", "l"]) else {
            panic!("LOCK.INFO is not a map under RESP3");
        };
        assert_eq!(info[0], (bulk("owner"), bulk("a")));
        assert_eq!(info[1], (bulk("token"), Value::Int(token)));
        assert_eq!(info.len(), 5);
        let Value::Array(flat) = query::<Value>(&mut c2, &["LOCK.INFO", "l"]) else {
            panic!("LOCK.INFO is not an array under RESP2");
        };
        assert_eq!(flat.len(), 10);
        assert_eq!(flat[0], bulk("owner"));

        assert_eq!(
            query::<Value>(&mut c3, &["SESSION.GET", &session]),
            Value::Map(vec![(bulk("f"), bulk("v"))])
        );
        assert_eq!(
            query::<Value>(&mut c2, &["SESSION.GET", &session]),
            Value::Array(vec![bulk("f"), bulk("v")])
        );

        assert_eq!(
            query::<Value>(&mut c3, &["LB.RANK", "b", "x"]),
            Value::Array(vec![Value::Int(2), Value::Double(1.5), Value::Int(2)])
        );
        assert_eq!(
            query::<Value>(&mut c2, &["LB.RANK", "b", "x"]),
            Value::Array(vec![Value::Int(2), bulk("1.5"), Value::Int(2)])
        );
        assert_eq!(
            query::<Value>(&mut c3, &["LB.TOP", "b", "1"]),
            Value::Array(vec![Value::Array(vec![
                Value::Int(1),
                bulk("y"),
                Value::Double(3.0)
            ])])
        );
        assert_eq!(
            query::<Value>(&mut c3, &["LB.INCR", "b", "1", "x"]),
            Value::Double(2.5)
        );
        assert_eq!(
            query::<Value>(&mut c2, &["LB.INCR", "b", "1", "x"]),
            bulk("3.5")
        );
        assert!(matches!(
            query::<Value>(&mut c3, &["LB.PERCENTILE", "b", "x"]),
            Value::Double(_)
        ));
        // The same as the server's own: HGETALL is a map, ZSCORE a double.
        assert!(matches!(
            query::<Value>(&mut c3, &["HGETALL", "l"]),
            Value::Map(_)
        ));
        assert!(matches!(
            query::<Value>(&mut c3, &["ZSCORE", "b", "x"]),
            Value::Double(_)
        ));

        // The twin answers RESP3 clients with RESP2's shapes.
        load_twin(&mut c2);
        let twin: Value = query(&mut c3, &["FCALL", "lock_info", "1", "l"]);
        assert!(
            matches!(twin, Value::Array(ref a) if a.len() == 10),
            "{twin:?}"
        );
        let twin: Value = query(&mut c3, &["FCALL", "lb_rank", "1", "b", "x"]);
        assert_eq!(
            twin,
            Value::Array(vec![Value::Int(1), bulk("3.5"), Value::Int(2)])
        );
    });
}

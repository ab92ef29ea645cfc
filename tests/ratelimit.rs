//! The rate-limiting family's own semantics on Redis 7.0 and Valkey 8.0: the documented
//! examples and state layout, peeks and denials that write nothing, bad input, extreme
//! arguments and WATCH.
//! What every command shares (COMMAND DOCS, README, Cluster, ACL, effects replication,
//! AOF, the twin differential) is in tests/conformance.rs.

mod common;

use common::*;
use redis::{Connection, Value};
use std::thread::sleep;
use std::time::Duration;

fn ints<S: AsRef<str> + std::fmt::Debug>(conn: &mut Connection, args: &[S]) -> Vec<i64> {
    let mut cmd = redis::cmd(args[0].as_ref());
    for a in &args[1..] {
        cmd.arg(a.as_ref());
    }
    cmd.query(conn)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn pexpiretime(conn: &mut Connection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME").arg(key).query(conn).unwrap()
}

#[test]
fn documented_examples_and_state_layout() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        // redis-cell's README example, reply for reply.
        assert_eq!(
            ints(&mut c, &["CL.THROTTLE", "user123", "15", "30", "60", "1"]),
            [0, 16, 15, -1, 2]
        );
        // 3 tokens per second: the TAT is kept exactly, fractions included.
        let before = server_ms(&mut c);
        let r = ints(&mut c, &["RL.TOKENBUCKET", "tb", "3", "3", "1000"]);
        assert_eq!(&r[..4], &[1, 3, 2, -1]);
        assert_eq!(r[4], 334);
        let value: String = redis::cmd("GET").arg("tb").query(&mut c).unwrap();
        let (ms, frac) = value.split_once('+').expect("a fractional TAT");
        assert_eq!(frac, "1/3");
        let tat: i64 = ms.parse().unwrap();
        assert!(
            tat >= before + 333 && tat <= server_ms(&mut c) + 333,
            "{value}"
        );
        assert_eq!(pexpiretime(&mut c, "tb"), tat + 1);

        let r = ints(&mut c, &["RL.FIXEDWINDOW", "fw", "2", "60000", "COST", "2"]);
        assert_eq!(&r[..4], &[1, 2, 0, -1]);
        let r = ints(&mut c, &["RL.FIXEDWINDOW", "fw", "2", "60000"]);
        assert_eq!(&r[..3], &[0, 2, 0]);
        assert!(r[3] > 0 && r[3] == r[4]);
        let count: String = redis::cmd("GET").arg("fw").query(&mut c).unwrap();
        assert_eq!(count, "2");
        assert_eq!(
            pexpiretime(&mut c, "fw") % 60000,
            0,
            "expires at the window's end"
        );

        let r = ints(&mut c, &["RL.SLIDINGWINDOW", "sw", "5", "60000"]);
        assert_eq!(&r[..4], &[1, 5, 4, -1]);
        let state: String = redis::cmd("GET").arg("sw").query(&mut c).unwrap();
        let parts: Vec<i64> = state.split(':').map(|p| p.parse().unwrap()).collect();
        assert_eq!((parts[0] % 60000, parts[1], parts[2]), (0, 0, 1));
        assert_eq!(pexpiretime(&mut c, "sw"), parts[0] + 120_000);

        let r = ints(
            &mut c,
            &["RL.SLIDINGWINDOW", "ex", "5", "60000", "EXACT", "COST", "3"],
        );
        assert_eq!(&r[..5], &[1, 5, 2, -1, 60000]);
        let log: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg("ex")
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut c)
            .unwrap();
        assert_eq!(log.len(), 3);
        for (seq, (member, score)) in log.iter().enumerate() {
            assert_eq!(member, &format!("{score}:{seq}"));
        }
        let r = ints(
            &mut c,
            &["RL.SLIDINGWINDOW", "ex", "5", "60000", "EXACT", "COST", "3"],
        );
        assert_eq!(&r[..3], &[0, 5, 2]);
        assert!(
            r[3] > 59_000 && r[3] <= 60_000,
            "waits for the oldest entry: {r:?}"
        );

        // Every key the family writes has a TTL.
        for key in ["user123", "tb", "fw", "sw", "ex"] {
            let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut c).unwrap();
            assert!(ttl > 0, "{key} has no TTL on {}", flavor.name());
        }
    });
}

#[test]
fn peeks_and_denials_write_nothing() {
    for flavor in flavors() {
        // The primary's periodic PING to its replica also moves the offset: keep it out.
        let pair = Pair::start_with(flavor, &["--repl-ping-replica-period", "3600"]);
        let mut c = pair.primary.conn();
        let peeks: [&[&str]; 5] = [
            &["RL.TOKENBUCKET", "p1", "5", "1", "1000", "COST", "0"],
            &["RL.FIXEDWINDOW", "p2", "5", "1000", "COST", "0"],
            &["RL.SLIDINGWINDOW", "p3", "5", "1000", "COST", "0"],
            &["RL.SLIDINGWINDOW", "p4", "5", "1000", "COST", "0", "EXACT"],
            &["CL.THROTTLE", "p5", "4", "1", "1", "0"],
        ];
        pair.sync();
        let offset = pair.primary.info_value("replication", "master_repl_offset");
        for args in peeks {
            let r = ints(&mut c, args);
            assert_eq!(r[2], 5, "a peek sees a full limiter: {args:?}");
        }
        let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        assert_eq!(keys, 0, "a peek on an absent key leaves it absent");
        // Fill each limiter, then deny and peek: state, TTL and replication stream unchanged.
        let fills: [&[&str]; 5] = [
            &["RL.TOKENBUCKET", "p1", "5", "1", "100000", "COST", "5"],
            &["RL.FIXEDWINDOW", "p2", "5", "100000", "COST", "5"],
            &["RL.SLIDINGWINDOW", "p3", "5", "100000", "COST", "5"],
            &[
                "RL.SLIDINGWINDOW",
                "p4",
                "5",
                "100000",
                "COST",
                "5",
                "EXACT",
            ],
            &["CL.THROTTLE", "p5", "4", "1", "100", "5"],
        ];
        for args in fills {
            assert_eq!(ints(&mut c, args)[2], 0, "{args:?}");
        }
        pair.sync();
        let before = snapshot(&mut c);
        let expiries: Vec<i64> = ["p1", "p2", "p3", "p4", "p5"]
            .iter()
            .map(|k| pexpiretime(&mut c, k))
            .collect();
        let offset_after_fills = pair.primary.info_value("replication", "master_repl_offset");
        assert_ne!(offset, offset_after_fills, "admissions replicate");
        sleep(Duration::from_millis(5));
        for args in fills {
            let mut denied: Vec<&str> = args.to_vec();
            let r = ints(&mut c, &denied);
            assert_eq!(
                r[0],
                i64::from(args[0] == "CL.THROTTLE"),
                "denied: {args:?}"
            );
            // The same call as a peek.
            if let Some(i) = denied.iter().position(|a| *a == "COST") {
                denied[i + 1] = "0";
            } else {
                *denied.last_mut().unwrap() = "0";
            }
            ints(&mut c, &denied);
        }
        let after = snapshot(&mut c);
        for (k, state) in &before {
            assert_eq!(after[k].dump, state.dump, "{}", String::from_utf8_lossy(k));
        }
        let expiries_after: Vec<i64> = ["p1", "p2", "p3", "p4", "p5"]
            .iter()
            .map(|k| pexpiretime(&mut c, k))
            .collect();
        assert_eq!(expiries, expiries_after, "no TTL touched");
        assert_eq!(
            offset_after_fills,
            pair.primary.info_value("replication", "master_repl_offset"),
            "denials and peeks replicate nothing"
        );
    }
}

#[test]
fn bad_input_gets_a_clear_error_and_writes_nothing() {
    const SPAN: &str = "ERR the limiter's time span is too long (over 2^52 ms)";
    let refusals: &Refusals = &[
        (
            &arity("rl.tokenbucket"),
            &[&["RL.TOKENBUCKET", "k", "1", "1"], &["RL.TOKENBUCKET"]],
        ),
        (
            &positive("capacity"),
            &[
                &["RL.TOKENBUCKET", "k", "0", "1", "1"],
                &["RL.TOKENBUCKET", "k", "-3", "1", "1"],
                &["RL.TOKENBUCKET", "k", "1.5", "1", "1"],
                &["RL.TOKENBUCKET", "k", "abc", "1", "1"],
                &["RL.TOKENBUCKET", "k", "99999999999999999999", "1", "1"],
            ],
        ),
        (
            &positive("rate"),
            &[&["RL.TOKENBUCKET", "k", "1", "0", "1"]],
        ),
        (
            &positive("period_ms"),
            &[&["RL.TOKENBUCKET", "k", "1", "1", "0"]],
        ),
        (
            &non_negative("COST"),
            &[&["RL.TOKENBUCKET", "k", "1", "1", "1", "COST", "-1"]],
        ),
        (
            "ERR syntax error",
            &[
                &["RL.TOKENBUCKET", "k", "1", "1", "1", "COST"],
                &["RL.TOKENBUCKET", "k", "1", "1", "1", "BURST", "2"],
            ],
        ),
        (
            SPAN,
            &[&["RL.TOKENBUCKET", "k", "9223372036854775807", "1", "1"]],
        ),
        (&arity("rl.fixedwindow"), &[&["RL.FIXEDWINDOW", "k", "1"]]),
        (&positive("limit"), &[&["RL.FIXEDWINDOW", "k", "0", "1000"]]),
        (
            &positive("window_ms"),
            &[&["RL.FIXEDWINDOW", "k", "5", "-1000"]],
        ),
        (
            SPAN,
            &[&["RL.FIXEDWINDOW", "k", "5", "9223372036854775807"]],
        ),
        (
            "ERR syntax error",
            &[&["RL.FIXEDWINDOW", "k", "5", "1000", "EXACT"]],
        ),
        (
            &positive("window_ms"),
            &[&["RL.SLIDINGWINDOW", "k", "5", "0"]],
        ),
        (
            &non_negative("COST"),
            &[&["RL.SLIDINGWINDOW", "k", "5", "1000", "EXACT", "COST", "x"]],
        ),
        (
            SPAN,
            &[&["RL.SLIDINGWINDOW", "k", "5", "4503599627370497", "EXACT"]],
        ),
        (
            &non_negative("max_burst"),
            &[&["CL.THROTTLE", "k", "-1", "1", "1"]],
        ),
        (
            &positive("count_per_period"),
            &[&["CL.THROTTLE", "k", "1", "0", "1"]],
        ),
        (
            &positive("period_s"),
            &[&["CL.THROTTLE", "k", "1", "1", "0"]],
        ),
        (
            &non_negative("quantity"),
            &[&["CL.THROTTLE", "k", "1", "1", "1", "-1"]],
        ),
        (
            "ERR syntax error",
            &[&["CL.THROTTLE", "k", "1", "1", "1", "1", "1"]],
        ),
        (
            "ERR max_burst is too large",
            &[&["CL.THROTTLE", "k", "9223372036854775807", "1", "1"]],
        ),
        (
            SPAN,
            &[&["CL.THROTTLE", "k", "1", "1", "9223372036854775807"]],
        ),
        (
            WRONGTYPE,
            &[
                &["RL.TOKENBUCKET", "hash", "1", "1", "1"],
                &["RL.FIXEDWINDOW", "hash", "1", "1"],
                &["RL.SLIDINGWINDOW", "hash", "1", "1", "EXACT"],
                &["RL.SLIDINGWINDOW", "text", "1", "1", "EXACT"],
            ],
        ),
        (
            "ERR key does not hold rate limiter state",
            &[
                &["RL.TOKENBUCKET", "text", "1", "1", "1"],
                &["RL.FIXEDWINDOW", "text", "1", "1"],
                &["RL.SLIDINGWINDOW", "text", "1", "1"],
                &["CL.THROTTLE", "text", "1", "1", "1"],
            ],
        ),
    ];
    for_each_server(|_, mut c| {
        let _: () = redis::cmd("HSET")
            .arg("hash")
            .arg("f")
            .arg("v")
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("text")
            .arg("hello")
            .query(&mut c)
            .unwrap();
        let before = snapshot(&mut c);
        assert_refusals(&mut c, refusals);
        assert_eq!(snapshot(&mut c), before, "errors wrote something");
        // The server is still serving.
        let pong: String = redis::cmd("PING").query(&mut c).unwrap();
        assert_eq!(pong, "PONG");
    });
}

#[test]
fn extreme_arguments_are_exact() {
    for_each_server(|_, mut c| {
        let max = i64::MAX.to_string();
        // Capacity near i64::MAX with a 1 ms period.
        let r = ints(
            &mut c,
            &["RL.TOKENBUCKET", "big", &max, &max, "1", "COST", &max],
        );
        assert_eq!(r, [1, i64::MAX, 0, -1, 1]);
        let r = ints(&mut c, &["RL.TOKENBUCKET", "big2", &max, &max, "1"]);
        assert_eq!(r, [1, i64::MAX, i64::MAX - 1, -1, 1]);
        let r = ints(
            &mut c,
            &["RL.FIXEDWINDOW", "fw", &max, "1000", "COST", &max],
        );
        assert_eq!(&r[..3], &[1, i64::MAX, 0]);
        let r = ints(
            &mut c,
            &["RL.FIXEDWINDOW", "fw", &max, "1000", "COST", &max],
        );
        assert_eq!(&r[..3], &[0, i64::MAX, 0]);
        let r = ints(
            &mut c,
            &[
                "RL.SLIDINGWINDOW",
                "sw",
                &max,
                "4503599627370496",
                "COST",
                &max,
            ],
        );
        assert_eq!(&r[..3], &[1, i64::MAX, 0]);
        let r = ints(
            &mut c,
            &["CL.THROTTLE", "cl", "9223372036854775806", &max, "1", &max],
        );
        assert_eq!(r, [0, i64::MAX, 0, -1, 1]);
        // Issue 11, defect 4: period_s * 1000 passes i64, the refill time is about 1 s.
        let e3 = ["CL.THROTTLE", "e3", "1", &max, "4611686018427387904"];
        assert_eq!(ints(&mut c, &e3), [0, 2, 1, -1, 1]);
        // Full after 1001 ms less the time passed since (2 s, or 1 s once a ms has passed).
        let r = ints(&mut c, &e3);
        assert!(r[..4] == [0, 2, 0, -1] && (1..=2).contains(&r[4]), "{r:?}");
        let r = ints(&mut c, &e3);
        assert!(r[..4] == [1, 2, 0, 1] && (1..=2).contains(&r[4]), "{r:?}");
        // The same period with a refill time past 2^52 ms: the documented span error.
        assert_eq!(
            error_of(
                &mut c,
                &["CL.THROTTLE", "e4", "1", "1", "4611686018427387904"]
            ),
            "ERR the limiter's time span is too long (over 2^52 ms)"
        );
    });
}

/// An admission invalidates WATCH like a write; a peek or a denial does not.
#[test]
fn watch_sees_admissions_only() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let (mut watcher, mut other) = (server.conn(), server.conn());
        ints(
            &mut other,
            &["RL.FIXEDWINDOW", "w", "2", "60000", "COST", "2"],
        );
        // Run `call` on another connection between WATCH and EXEC: did EXEC go through?
        let mut exec_survives = |call: &[&str]| -> bool {
            let _: () = redis::cmd("WATCH").arg("w").query(&mut watcher).unwrap();
            ints(&mut other, call);
            let _: () = redis::cmd("MULTI").query(&mut watcher).unwrap();
            let _: () = redis::cmd("PING").query(&mut watcher).unwrap_or(());
            let exec: Value = redis::cmd("EXEC").query(&mut watcher).unwrap();
            exec != Value::Nil
        };
        assert!(
            exec_survives(&["RL.FIXEDWINDOW", "w", "2", "60000", "COST", "0"]),
            "peek"
        );
        assert!(
            exec_survives(&["RL.FIXEDWINDOW", "w", "2", "60000"]),
            "denial"
        );
        assert!(
            !exec_survives(&["RL.FIXEDWINDOW", "w", "3", "60000"]),
            "admission"
        );
    }
}

/// A limiter's call: the module's `command` with `args` after the key, or with `twin` the
/// twin's FCALL of it.
#[derive(Clone, Copy)]
struct Limiter<'a> {
    twin: bool,
    command: &'a str,
    args: &'a [&'a str],
}

impl Limiter<'_> {
    fn argv(&self, key: &str) -> Vec<String> {
        let head = if self.twin {
            let function = self.command.to_ascii_lowercase().replace('.', "_");
            vec!["FCALL".to_string(), function, "1".to_string()]
        } else {
            vec![self.command.to_string()]
        };
        let tail = std::iter::once(key).chain(self.args.iter().copied());
        head.into_iter().chain(tail.map(str::to_string)).collect()
    }

    /// The module's call and the twin's.
    fn both<'a>(command: &'a str, args: &'a [&'a str]) -> [Limiter<'a>; 2] {
        [false, true].map(|twin| Limiter {
            twin,
            command,
            args,
        })
    }
}

/// The smallest `MEMORY USAGE` of keys `<prefix>-0` .. `<prefix>-15`, each after `times` runs
/// of `call`: the layout's own size. One key's can be more: Valkey 8.1 as built for PyPI
/// measures a key with glibc's `malloc_usable_size`, and glibc may hand a 64-byte chunk to a
/// 38-byte request when splitting it would leave less than its smallest chunk (a client's own
/// `SET k 0 PXAT t` measured 56 B instead of 40 B for 2 keys of 200).
fn smallest_usage(c: &mut Connection, prefix: &str, call: Limiter, times: usize) -> i64 {
    (0..16)
        .map(|i| {
            let key = format!("{prefix}-{i}");
            let argv = call.argv(&key);
            for _ in 0..times {
                let _: Value = redis::cmd(&argv[0]).arg(&argv[1..]).query(c).unwrap();
            }
            let args = ["USAGE", key.as_str(), "SAMPLES", "0"];
            redis::cmd("MEMORY").arg(&args).query(c).unwrap()
        })
        .min()
        .unwrap()
}

/// A fixed window's count is stored as the twin's `SET` stores it (an integer), after
/// admissions and after a denial (which reads it), so its key is no larger than the twin's.
#[test]
fn fixed_window_count_is_an_integer_like_the_twins() {
    for_each_server(|server, mut c| {
        load_twin(&mut c);
        // 1 and 2 admitted; 4: 3 admitted, then denied.
        let [native, twin] = Limiter::both("RL.FIXEDWINDOW", &["3", "3600000"]);
        for times in [1, 2, 4] {
            let (nat, twn) = (format!("nat{times}"), format!("twn{times}"));
            let usage = (
                smallest_usage(&mut c, &nat, native, times),
                smallest_usage(&mut c, &twn, twin, times),
            );
            assert_eq!(usage.0, usage.1, "{times} on {}", server.flavor().name());
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(format!("{nat}-0"))
                .query(&mut c)
                .unwrap();
            assert_eq!(encoding, "int", "{times} on {}", server.flavor().name());
        }
        // A limit far above the count: the module reads it in place, as its write replaces it;
        // then peeks (COST 0), which write nothing, on the same keys.
        let steps: [&[&str]; 2] = [&["1000", "3600000"], &["1000", "3600000", "COST", "0"]];
        for args in steps {
            let [nat, twn] = Limiter::both("RL.FIXEDWINDOW", args);
            assert_eq!(
                smallest_usage(&mut c, "natw", nat, 2),
                smallest_usage(&mut c, "twnw", twn, 2),
                "on {}",
                server.flavor().name()
            );
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg("natw-0")
                .query(&mut c)
                .unwrap();
            assert_eq!(encoding, "int", "on {}", server.flavor().name());
        }
    });
}

/// A sliding window's state and a token bucket's TAT with a fraction are stored as the twin's
/// `SET` stores them (an embedded string), after admissions and after a denial (which reads
/// them), so their keys are no larger than the twin's (8 B less than a raw string on Valkey 8.1).
#[test]
fn other_string_states_are_embedded_like_the_twins() {
    for_each_server(|server, mut c| {
        load_twin(&mut c);
        let limiters: [(&str, &str, &[&str]); 2] = [
            ("sw", "RL.SLIDINGWINDOW", &["2", "3600000"]),
            // 7 per hour: a TAT with a fraction of a ms.
            ("tb", "RL.TOKENBUCKET", &["2", "7", "3600000"]),
        ];
        for (name, command, args) in limiters {
            let [native, twin] = Limiter::both(command, args);
            // 1 and 2 admitted; 3: the last denied.
            for times in [1, 2, 3] {
                let (nat, twn) = (format!("n{name}{times}"), format!("t{name}{times}"));
                let on = format!("{name} after {times} on {}", server.flavor().name());
                assert_eq!(
                    smallest_usage(&mut c, &nat, native, times),
                    smallest_usage(&mut c, &twn, twin, times),
                    "{on}"
                );
                let encoding: String = redis::cmd("OBJECT")
                    .arg("ENCODING")
                    .arg(format!("{nat}-0"))
                    .query(&mut c)
                    .unwrap();
                assert_eq!(encoding, "embstr", "{on}");
            }
        }
    });
}

/// The keyspace events `argvs` fire on `c` (event and key, in order), read from `pubsub`,
/// which listens to every key event.
fn events_of(c: &mut Connection, pubsub: &mut redis::PubSub, argvs: &[Vec<String>]) -> Vec<String> {
    for argv in argvs {
        let _: Value = redis::cmd(&argv[0]).arg(&argv[1..]).query(c).unwrap();
    }
    let _: () = redis::cmd("SET").arg("done").arg("1").query(c).unwrap();
    let mut events = Vec::new();
    loop {
        let message = pubsub.get_message().expect("a keyspace event");
        let key: String = message.get_payload().unwrap();
        if key == "done" {
            return events;
        }
        let event = message.get_channel_name().rsplit(':').next().unwrap();
        events.push(format!("{event} {key}"));
    }
}

/// A whole-ms token bucket's state is its key's expiry, the value the marker `0`: created by
/// `SET key 0 PXAT <tat>`, stored as `SET` stores it (an integer, the twin's size), then only
/// the expiry moves (`PEXPIREAT`, event `expire` alone), on the module as on the twin; a
/// replica and the AOF get those effects; a key of the earlier layout (the TAT in the value)
/// is read and rewritten.
#[test]
fn whole_ms_token_bucket_state_is_the_key_expiry() {
    for flavor in flavors() {
        let extra = ["--appendonly", "yes", "--notify-keyspace-events", "KEA"];
        let pair = Pair::start_with(flavor, &extra);
        let mut c = pair.primary.conn();
        load_twin(&mut c);
        let mut sub = pair.primary.conn();
        let mut pubsub = sub.as_pubsub();
        pubsub.psubscribe("__keyevent@*__:*").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // 2 per second: each admission moves the TAT by 500 ms, a whole ms.
        let [native, twin] = Limiter::both("CL.THROTTLE", &["9", "2", "1"]);
        for (key, call) in [("nat", native), ("twn", twin)] {
            let before = server_ms(&mut c);
            let events = events_of(&mut c, &mut pubsub, &[call.argv(key)]);
            assert_eq!(events, [format!("set {key}"), format!("expire {key}")]);
            let value: String = redis::cmd("GET").arg(key).query(&mut c).unwrap();
            assert_eq!(value, "0");
            let tat = pexpiretime(&mut c, key);
            assert!(
                tat >= before + 500 && tat <= server_ms(&mut c) + 500,
                "{tat}"
            );
            let events = events_of(&mut c, &mut pubsub, &[call.argv(key), call.argv(key)]);
            assert_eq!(events, [format!("expire {key}"), format!("expire {key}")]);
            let later = pexpiretime(&mut c, key);
            assert!(
                later >= tat + 1000 && later <= server_ms(&mut c) + 1500,
                "{later}"
            );
            let encoding: String = redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(key)
                .query(&mut c)
                .unwrap();
            assert_eq!(encoding, "int", "{key} on {}", flavor.name());
        }
        assert_eq!(
            smallest_usage(&mut c, "nat", native, 1),
            smallest_usage(&mut c, "twn", twin, 1),
            "no larger than the twin's on {}",
            flavor.name()
        );
        // The earlier layout: the TAT in the value, read, then rewritten as the marker.
        let tat = server_ms(&mut c) + 2000;
        let _: () = redis::cmd("SET")
            .arg("old")
            .arg(tat)
            .arg("PXAT")
            .arg(tat)
            .query(&mut c)
            .unwrap();
        let r = ints(&mut c, &native.argv("old"));
        assert_eq!((r[0], r[2]), (0, 5), "4 of 10 spent before, 1 now: {r:?}");
        let value: String = redis::cmd("GET").arg("old").query(&mut c).unwrap();
        assert_eq!(value, "0");
        assert_eq!(pexpiretime(&mut c, "old"), tat + 500);
        pair.sync();
        let mut r = pair.replica.conn();
        for key in ["nat", "twn", "old"] {
            assert_eq!(key_state(&mut c, key), key_state(&mut r, key), "{key}");
        }
        let aof = pair.primary.aof_text();
        assert!(
            aof.contains("PEXPIREAT\r\n$3\r\nNAT"),
            "expiry-only effects in the AOF"
        );
        // (The library's source, which FUNCTION LOAD put in the AOF, names it.)
        assert!(
            !aof.contains("$11\r\nCL.THROTTLE\r\n"),
            "effects, not commands"
        );
    }
}

/// A fixed window's key expires at the window's end, and the server keeps it through that
/// millisecond, the next window's first: what it counts is the previous window's, not this
/// one's. Module and twin, tried (1 ms windows) until a call runs within the very
/// millisecond its key expires in.
#[test]
fn a_fixed_windows_first_ms_ignores_the_previous_windows_count() {
    for_each_module_and_twin(|flavor, mut module, mut twin| {
        let mut native = redis::cmd("RL.FIXEDWINDOW");
        native.arg(&["k", "5", "1"]);
        let mut lua = redis::cmd("FCALL");
        lua.arg(&["rl_fixedwindow", "1", "k", "5", "1"]);
        for (c, call) in [(&mut module, native), (&mut twin, lua)] {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            let reply = loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{flavor:?}: never in one ms"
                );
                let at = server_ms(c) + 1;
                let mut left = redis::cmd("SET");
                left.arg("k").arg(3).arg("PXAT").arg(at);
                let v = pipeline(
                    c,
                    &[redis::cmd("TIME"), left, call.clone(), redis::cmd("TIME")],
                );
                if ms_of(&v[0]) == at && ms_of(&v[3]) == at {
                    break redis::from_redis_value::<Vec<i64>>(&v[2]).unwrap();
                }
            };
            assert_eq!(reply, [1, 5, 4, -1, 1], "{flavor:?}");
        }
    });
}

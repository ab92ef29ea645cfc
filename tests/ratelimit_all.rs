//! RL.ALL and RL.REFUND on real servers, module and Lua twin alike: all or nothing across
//! mixed limits with costs, denials that write and replicate nothing, refunds never past full
//! (also after a window rolls over, and on the EXACT log), and the errors of a limit's own
//! command. Cluster CROSSSLOT, ACL key patterns and effects replication of both commands are
//! in tests/conformance.rs (their rows).

mod common;

use common::*;
use patterns_core::command::CommandDef;
use patterns_core::ratelimit::{ALL, REFUND};
use redis::{Connection, Value};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The call on the module (`twin` false) or through the twin's FCALL, keys in KEYS.
fn call(c: &mut Connection, twin: bool, argv: &[&str]) -> redis::RedisResult<Value> {
    if !twin {
        return redis::cmd(argv[0]).arg(&argv[1..]).query(c);
    }
    let def: &CommandDef = if argv[0] == "RL.ALL" { &ALL } else { &REFUND };
    let words: Vec<&[u8]> = argv[1..].iter().map(|a| a.as_bytes()).collect();
    let keys = def.block_keys(&words);
    let rest = argv[1..]
        .iter()
        .enumerate()
        .filter(|(i, _)| !keys.contains(i));
    redis::cmd("FCALL")
        .arg(def.lua_name())
        .arg(keys.len())
        .arg(keys.iter().map(|&k| argv[k + 1]).collect::<Vec<_>>())
        .arg(rest.map(|(_, a)| *a).collect::<Vec<_>>())
        .query(c)
}

/// A command line's words, written as one space-separated line.
fn split(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn ints(v: &Value) -> Vec<i64> {
    redis::from_redis_value(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

/// RL.ALL's reply: (allowed, denied, each limit's five).
fn verdict(v: &Value) -> (i64, i64, Vec<Vec<i64>>) {
    let Value::Array(items) = v else {
        panic!("{v:?}")
    };
    let head = ints(&Value::Array(items[..2].to_vec()));
    (head[0], head[1], items[2..].iter().map(ints).collect())
}

fn get(c: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(c).unwrap()
}

fn exists(c: &mut Connection, key: &str) -> bool {
    redis::cmd("EXISTS").arg(key).query::<i64>(c).unwrap() == 1
}

/// Runs `test` on the module's server and on the twin's.
fn on_both(test: impl Fn(&mut Connection, bool)) {
    for_each_module_and_twin(|_, mut module, mut twin| {
        test(&mut module, false);
        test(&mut twin, true);
    });
}

#[test]
fn all_admit_and_each_limit_answers_as_its_own_command() {
    on_both(|c, twin| {
        let all = split("RL.ALL TOKENBUCKET {u}tb 10 1 60000 COST 2 FIXEDWINDOW {u}fw 5 60000 COST 3 SLIDINGWINDOW {u}sw 4 60000 SLIDINGWINDOW {u}ex 3 60000 EXACT COST 2");
        let called_at = server_ms(c);
        let (allowed, denied, fives) = verdict(&call(c, twin, &all).unwrap());
        assert_eq!((allowed, denied), (1, 0), "twin {twin}");
        let heads: Vec<&[i64]> = fives.iter().map(|f| &f[..4]).collect();
        assert_eq!(
            heads,
            [[1, 10, 8, -1], [1, 5, 2, -1], [1, 4, 3, -1], [1, 3, 1, -1]]
        );
        assert_eq!(fives[3][4], 60000);
        // The state each own command would have written.
        assert_eq!(get(c, "{u}fw").as_deref(), Some("3"));
        assert!(get(c, "{u}sw").unwrap().ends_with(":0:1"));
        let logged: i64 = redis::cmd("ZCARD").arg("{u}ex").query(c).unwrap();
        assert_eq!(logged, 2);
        assert!(exists(c, "{u}tb"));
        // Each five is the own command's reply on the same state, called later: its
        // reset_after has fallen by the time the server's clock moved on meanwhile (from a
        // window's start again past a window's end: all windows here are 60000 ms).
        let singles: [&[&str]; 3] = [
            &["RL.TOKENBUCKET", "{v}tb", "10", "1", "60000", "COST", "2"],
            &["RL.FIXEDWINDOW", "{v}fw", "5", "60000", "COST", "3"],
            &["RL.SLIDINGWINDOW", "{v}sw", "4", "60000"],
        ];
        for (single, five) in singles.iter().zip(&fives) {
            let cmd = if twin {
                let name = single[0].to_ascii_lowercase().replace('.', "_");
                let mut cmd = redis::cmd("FCALL");
                cmd.arg(name).arg(1).arg(&single[1..]);
                cmd
            } else {
                let mut cmd = redis::cmd(single[0]);
                cmd.arg(&single[1..]);
                cmd
            };
            let own: Vec<i64> = cmd.query(c).unwrap();
            let elapsed = server_ms(c) - called_at;
            assert_eq!(own[..4], five[..4], "{single:?}");
            assert!(
                (five[4] - own[4]).rem_euclid(60000) <= elapsed,
                "{single:?}: {own:?} vs {five:?}, {elapsed} ms apart"
            );
        }
    });
}

#[test]
fn one_denial_consumes_nothing() {
    on_both(|c, twin| {
        let _: Vec<i64> = call(
            c,
            twin,
            &["RL.ALL", "FIXEDWINDOW", "{u}fw", "5", "60000", "COST", "3"],
        )
        .map(|v| verdict(&v).2.concat())
        .unwrap();
        let before = snapshot(c);
        let all = split("RL.ALL TOKENBUCKET {u}tb 10 1 60000 COST 2 FIXEDWINDOW {u}fw 5 60000 COST 3 SLIDINGWINDOW {u}ex 3 60000 EXACT");
        let (allowed, denied, fives) = verdict(&call(c, twin, &all).unwrap());
        assert_eq!((allowed, denied), (0, 2));
        // Those that would admit say so, with their remaining after this cost.
        assert_eq!(fives[0][..4], [1, 10, 8, -1]);
        assert_eq!(fives[1][..3], [0, 5, 2]);
        assert!(fives[1][3] > 0);
        assert_eq!(fives[2][..4], [1, 3, 2, -1]);
        // The same bytes; PTTLs fall meanwhile.
        assert_same_state(&before, &snapshot(c), 50);
        assert!(!exists(c, "{u}tb") && !exists(c, "{u}ex"));
    });
}

#[test]
fn denials_and_empty_refunds_replicate_nothing_and_admissions_replicate_effects() {
    for flavor in flavors() {
        let extra = ["--repl-ping-replica-period", "3600", "--appendonly", "yes"];
        let pair = Pair::start_with(flavor, &extra);
        let mut c = pair.primary.conn();
        let fill: Vec<i64> = redis::cmd("RL.FIXEDWINDOW")
            .arg(&["{u}fw", "1", "100000"])
            .query(&mut c)
            .unwrap();
        assert_eq!(fill[0], 1);
        pair.sync();
        let offset = pair.primary.info_value("replication", "master_repl_offset");
        let denied = split("RL.ALL TOKENBUCKET {u}tb 5 1 1000 FIXEDWINDOW {u}fw 1 100000");
        assert_eq!(verdict(&call(&mut c, false, &denied).unwrap()).1, 2);
        let empty = ["RL.REFUND", "TOKENBUCKET", "{u}none", "5", "1", "1000"];
        assert_eq!(ints(&call(&mut c, false, &empty).unwrap()), [5]);
        assert_eq!(
            offset,
            pair.primary.info_value("replication", "master_repl_offset"),
            "a denial and a refund of nothing replicate nothing"
        );
        let admitted =
            split("RL.ALL TOKENBUCKET {u}tb 5 1 100000 SLIDINGWINDOW {u}ex 3 100000 EXACT COST 2");
        assert_eq!(verdict(&call(&mut c, false, &admitted).unwrap()).0, 1);
        let refund =
            split("RL.REFUND SLIDINGWINDOW {u}ex 3 100000 EXACT FIXEDWINDOW {u}fw 1 100000");
        assert_eq!(ints(&call(&mut c, false, &refund).unwrap()), [2, 1]);
        pair.sync();
        let mut r = pair.replica.conn();
        assert_same_state(&snapshot(&mut c), &snapshot(&mut r), 100);
        assert!(
            !exists(&mut r, "{u}fw"),
            "a full limiter's key is deleted on the replica"
        );
        let text = pair.primary.aof_text();
        assert!(
            !text.contains("RL."),
            "the AOF holds effects, not RL commands"
        );
    }
}

#[test]
fn refunds_never_go_past_full() {
    on_both(|c, twin| {
        let single = |c: &mut Connection, argv: &[&str]| -> Vec<i64> {
            let mut cmd = if twin {
                let mut cmd = redis::cmd("FCALL");
                cmd.arg(argv[0].to_ascii_lowercase().replace('.', "_"))
                    .arg(1);
                cmd
            } else {
                redis::cmd(argv[0])
            };
            cmd.arg(&argv[1..]).query(c).unwrap()
        };
        let refund = |c: &mut Connection, argv: &[&str]| {
            let mut full = vec!["RL.REFUND"];
            full.extend_from_slice(argv);
            ints(&call(c, twin, &full).unwrap())
        };
        // Token bucket: the TAT moves back, a full bucket's key goes.
        assert_eq!(
            single(c, &["RL.TOKENBUCKET", "tb", "5", "1", "60000", "COST", "3"])[2],
            2
        );
        assert_eq!(
            refund(c, &["TOKENBUCKET", "tb", "5", "1", "60000", "COST", "2"]),
            [4]
        );
        assert!(exists(c, "tb"));
        assert_eq!(
            refund(c, &["TOKENBUCKET", "tb", "5", "1", "60000", "COST", "10"]),
            [5]
        );
        assert!(!exists(c, "tb"));
        // Fixed and sliding windows, in one call: the current window's count, not below 0.
        single(c, &["RL.FIXEDWINDOW", "fw", "5", "60000", "COST", "4"]);
        single(c, &["RL.SLIDINGWINDOW", "sw", "5", "60000", "COST", "3"]);
        let both = split("FIXEDWINDOW fw 5 60000 SLIDINGWINDOW sw 5 60000 COST 1");
        assert_eq!(refund(c, &both), [2, 3]);
        assert_eq!(get(c, "fw").as_deref(), Some("3"));
        assert!(get(c, "sw").unwrap().ends_with(":0:2"));
        let all_back = ["FIXEDWINDOW", "fw", "5", "60000", "COST", "9"];
        assert_eq!(refund(c, &all_back), [5]);
        assert!(!exists(c, "fw"));
        // A missing key is left alone.
        assert_eq!(refund(c, &["FIXEDWINDOW", "none", "5", "60000"]), [5]);
        assert!(!exists(c, "none"));
    });
}

#[test]
fn refund_after_window_rollover_gives_nothing_back() {
    on_both(|c, twin| {
        // Start early in a 400 ms window, consume, then move to the next window.
        let wait_start = |c: &mut Connection| {
            let into = server_ms(c) % 400;
            if into > 100 {
                sleep(Duration::from_millis((400 - into) as u64 + 5));
            }
        };
        let window = |c: &mut Connection| server_ms(c) / 400;
        let all = split("RL.ALL FIXEDWINDOW fw 5 400 COST 2 SLIDINGWINDOW sw 5 400 COST 3");
        let refund = split("RL.REFUND FIXEDWINDOW fw 5 400 COST 2 SLIDINGWINDOW sw 5 400 COST 3");
        // Each call's window by the server's clock around it: a stall that moved one out of
        // its window starts the scenario again on fresh keys.
        let deadline = Instant::now() + Duration::from_secs(20);
        let (sliding, left) = loop {
            assert!(Instant::now() < deadline, "no call ran in its window");
            let _: () = redis::cmd("DEL").arg("fw").arg("sw").query(c).unwrap();
            wait_start(c);
            let consumed_in = window(c);
            assert_eq!(verdict(&call(c, twin, &all).unwrap()).0, 1);
            let sliding = get(c, "sw");
            if window(c) != consumed_in {
                continue;
            }
            let into = server_ms(c) % 400;
            sleep(Duration::from_millis((400 - into) as u64 + 20));
            let left = ints(&call(c, twin, &refund).unwrap());
            if window(c) == consumed_in + 1 {
                break (sliding, left);
            }
        };
        assert_eq!(left[0], 5, "the past window's count is gone");
        assert!(left[1] < 5, "the previous window still weighs: {left:?}");
        assert!(!exists(c, "fw"));
        assert_eq!(get(c, "sw"), sliding, "a past window gets nothing back");
    });
}

#[test]
fn exact_refund_removes_the_newest_admissions() {
    on_both(|c, twin| {
        let admit = split("RL.ALL SLIDINGWINDOW ex 10 60000 EXACT COST 5");
        assert_eq!(verdict(&call(c, twin, &admit).unwrap()).0, 1);
        let members = |c: &mut Connection| -> Vec<String> {
            redis::cmd("ZRANGE")
                .arg("ex")
                .arg(0)
                .arg(-1)
                .query(c)
                .unwrap()
        };
        let logged = members(c);
        let refund = split("RL.REFUND SLIDINGWINDOW ex 10 60000 EXACT COST 2");
        assert_eq!(ints(&call(c, twin, &refund).unwrap()), [7]);
        let ms = logged[0].split(':').next().unwrap().to_string();
        let kept: Vec<String> = (0..3).map(|seq| format!("{ms}:{seq}")).collect();
        assert_eq!(members(c), kept, "the highest sequence numbers go");
        // The next admission numbers its entries after those left: nothing is overwritten.
        let again = split("RL.ALL SLIDINGWINDOW ex 10 60000 EXACT COST 4");
        assert_eq!(verdict(&call(c, twin, &again).unwrap()).2[0][2], 3);
        assert_eq!(members(c).len(), 7);
        let past = split("RL.REFUND SLIDINGWINDOW ex 10 60000 EXACT COST 100");
        assert_eq!(ints(&call(c, twin, &past).unwrap()), [10]);
        assert!(!exists(c, "ex"));
    });
}

#[test]
fn bad_calls_get_their_own_commands_errors_and_write_nothing() {
    on_both(|c, twin| {
        let cases: [(&str, &str); 6] = [
            (
                "RL.ALL FIXEDWINDOW a 1 1000 TOKENBUCKET a 1 1 1000",
                "ERR a key may appear only once in a call",
            ),
            (
                "RL.ALL FIXEDWINDOW a 1 1000 FIXEDWINDOW b 0 1000",
                "ERR limit must be a positive integer",
            ),
            ("RL.REFUND BUCKET a 1 1 1000", "ERR syntax error"),
            (
                "RL.ALL FIXEDWINDOW a 1 1000 TOKENBUCKET b 1 1",
                "ERR wrong number of arguments for 'rl.tokenbucket' command",
            ),
            ("RL.ALL FIXEDWINDOW a 1 1000 COST", "ERR syntax error"),
            (
                "RL.ALL FIXEDWINDOW a 1 1000 TOKENBUCKET b 1 1 4503599627370497000",
                "ERR the limiter's time span is too long (over 2^52 ms)",
            ),
        ];
        for (line, want) in cases {
            if twin && want.contains("2^52") {
                continue; // The twin's own range error comes first there.
            }
            let argv = split(line);
            let error = call(c, twin, &argv).expect_err(&format!("{argv:?}"));
            let text = format!(
                "{} {}",
                error.code().unwrap_or(""),
                error.detail().unwrap_or("")
            );
            assert_eq!(text.trim(), want, "{argv:?} (twin {twin})");
        }
        let keys: i64 = redis::cmd("DBSIZE").query(c).unwrap();
        assert_eq!(keys, 0);
    });
}

//! Leaderboards in the shared scenarios: a random workload and the Lua twin's calling
//! convention (its rows are in rows.rs).

use super::rows::{self, tie_break_keys};
use crate::*;
use patterns_core::leaderboard::{COMMANDS, SMALL_GROUP};
use rand::seq::SliceRandom;
use std::thread::sleep;
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "leaderboard",
        commands: &COMMANDS,
        rows: rows::leaderboard(),
        workload,
        seed: 7,
        min_keys: 9,
        pttl_tolerance_ms: 0,
        state: by_dump,
        twin: Twin {
            random_call,
            args: |argv, _| one_key(argv),
            seed: |c| {
                let _: () = query(c, &["SET", "text", "v"]);
                // A plain board: its members keep no stamp after the first write.
                let _: i64 = query(c, &["ZADD", "weekly", "2", "u3", "2", "u1", "5", "u9"]);
            },
            tracked: |_, _| {
                let mut keys = strings(&["lb:{a}", "weekly", "text"]);
                keys.extend(tie_break_keys("lb:{a}"));
                keys.extend(tie_break_keys("weekly"));
                keys
            },
            tolerance_ms: 0,
            align: |_, _, _| {},
            kind: |v| error_nil_or(v, |v| ["other", "entries"][usize::from(has_entries(v))]),
            least: &[("error", 10), ("nil", 10), ("entries", 10), ("other", 10)],
            seeds: [43, 43],
            steps: 500,
            pause: (0.0, 2),
        },
    }
}

fn has_entries(v: &Value) -> bool {
    matches!(v, Value::Array(items) if !items.is_empty())
}

/// LB.ADD, LB.INCR, LB.REM and reads over a few boards, one of them a plain board written by
/// LB.* after ZADD (legacy members).
fn workload(server: &Server, rng: &mut StdRng) {
    let mut c = server.conn();
    let c = &mut c;
    let boards = ["lb:{a}", "weekly", "lb:{c}"];
    let _: i64 = query(c, &["ZADD", "weekly", "1", "p1", "1", "p0", "4", "p2"]);
    for _ in 0..600 {
        let board = *boards.choose(rng).unwrap();
        let m = format!("u{}", rng.gen_range(0..40));
        match rng.gen_range(0..10) {
            0 if rng.gen_bool(0.1) => {
                let args = group_write(board);
                let _: Value = query(c, &args.iter().map(String::as_str).collect::<Vec<_>>());
            }
            0..=3 => {
                let s = rng.gen_range(-3..6).to_string();
                let _: i64 = query(c, &["LB.ADD", board, &s, &m, "5", "u0"]);
            }
            4 => {
                let s = rng.gen_range(-3..6).to_string();
                let with = ["LB.ADD", board, "WITHRANK", "ASC", &s, &m, "5", "u0"];
                let _: Value = query(c, &with);
            }
            5 => {
                let _: String = query(c, &["LB.INCR", board, "1.5", &m]);
            }
            6 => {
                let with = ["LB.INCR", board, "1.5", &m, "WITHRANK", "RANKING", "DENSE"];
                let _: Value = query(c, &with);
            }
            7 => {
                let _: i64 = query(c, &["LB.REM", board, &m]);
            }
            _ => {
                let _: Value = query(c, &["LB.AROUND", board, &m, "3", "RANKING", "DENSE"]);
            }
        }
        if rng.gen_bool(0.05) {
            sleep(Duration::from_millis(rng.gen_range(1..5)));
        }
    }
}

/// LB.ADD of SMALL_GROUP - 1 members `g<i>` at 2: with the `u` members that come and go at 2,
/// that score's group crosses SMALL_GROUP both ways (its stamps hash entries written, dropped).
fn group_write(board: &str) -> Vec<String> {
    let mut v = strings(&["LB.ADD", board]);
    for i in 0..SMALL_GROUP - 1 {
        v.extend(["2".to_string(), format!("g{i}")]);
    }
    v
}

/// A random call, valid most of the time.
fn random_call(rng: &mut StdRng, _: &[Value]) -> Vec<String> {
    let boards = ["lb:{a}", "weekly", "text", "a{b"];
    let board = boards[if rng.gen_bool(0.92) {
        rng.gen_range(0..2)
    } else {
        rng.gen_range(2..4)
    }];
    let member = format!("u{}", rng.gen_range(0..12));
    let score = [
        "1",
        "2",
        "2",
        "-0.5",
        "1e300",
        "inf",
        "0.1",
        "x",
        "9007199254740993",
    ][rng.gen_range(0..9)];
    let order = ["", "ASC", "DESC"][rng.gen_range(0..3)];
    let ranking = ["", "ORDINAL", "DENSE", "COMPETITION", "MODIFIED", "BOGUS"][rng.gen_range(0..6)];
    let count = ["1", "2", "3", "5", "0"][rng.gen_range(0..5)];
    let mut v: Vec<String> = match rng.gen_range(0..17) {
        0..=4 => strings(&["LB.ADD", board, score, &member]),
        5 => strings(&["LB.ADD", board, score, &member, "2", "u1"]),
        6 | 7 => strings(&[
            "LB.INCR",
            board,
            ["1", "-1", "0", "2.5", "-inf"][rng.gen_range(0..5)],
            &member,
        ]),
        8 => strings(&["LB.REM", board, &member]),
        9 => strings(&["LB.RANK", board, &member]),
        10 | 11 => strings(&["LB.AROUND", board, &member, count]),
        12 => strings(&[
            "LB.TOP",
            board,
            count,
            "OFFSET",
            &rng.gen_range(0..8).to_string(),
        ]),
        13 | 14 => strings(&["LB.PAGE", board, &rng.gen_range(1..5).to_string(), count]),
        15 => strings(&["LB.PERCENTILE", board, &member]),
        _ => group_write(board),
    };
    let name = v[0].clone();
    if name == "LB.ADD" && rng.gen_bool(0.5) {
        // LB.ADD's options lead its pairs.
        let mut options = strings(&["WITHRANK"]);
        if !order.is_empty() {
            options.push(order.into());
        }
        if !ranking.is_empty() {
            options.extend(strings(&["RANKING", ranking]));
        }
        v.splice(2..2, options);
    }
    if name == "LB.INCR" && rng.gen_bool(0.6) {
        v.push("WITHRANK".into());
    }
    if !order.is_empty() && name != "LB.ADD" && name != "LB.REM" {
        v.push(order.into());
    }
    if !ranking.is_empty() && !["LB.ADD", "LB.REM", "LB.PERCENTILE"].contains(&name.as_str()) {
        v.extend(strings(&["RANKING", ranking]));
    }
    v
}

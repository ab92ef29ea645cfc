//! Queues in the shared scenarios: a random workload, the Lua twin's calling convention (its
//! rows are in rows.rs), and the family's state comparison.
//!
//! Every scenario applies to queues; only how keys are compared differs: a stream's DUMP
//! carries each consumer's seen (and, on Valkey, active) time, set by each server's own clock
//! when a replica applies an XREADGROUP/XCLAIM effect or an AOF replays it, so streams are
//! compared logically (`common::stream_state`: entries, groups' read positions, pending jobs
//! with consumer and deliveries). Lease sets, dead letters without groups and dedupe ids keep
//! byte equality (their scores, ids and expiries travel in the effects). The twin differential
//! keeps byte equality for streams too, ids unrenamed: it compares a step only when both
//! servers ran it in the same millisecond (so `XADD *` draws the same id from the same stream
//! and consumers' times agree) and re-syncs the keys otherwise.

use super::rows;
use crate::*;
use patterns_core::queue::COMMANDS;
use rand::seq::SliceRandom;
use std::thread::{sleep, spawn, JoinHandle};
use std::time::Duration;

pub fn family() -> Family {
    Family {
        name: "queue",
        commands: &COMMANDS,
        rows: rows::queue(),
        workload,
        seed: 15,
        min_keys: 4,
        pttl_tolerance_ms: 50,
        state: logical_streams,
        twin: Twin {
            random_call,
            args: |argv, _| one_key(argv),
            seed: |c| {
                let _: () = query(c, &["SET", "text", "v"]);
            },
            tracked: |_, _| tracked(),
            tolerance_ms: 0,
            align: |_, _, _| {},
            kind: |v| error_nil_or(v, |v| ["other", "jobs"][usize::from(is_jobs(v))]),
            least: &[("error", 10), ("nil", 10), ("jobs", 10), ("other", 10)],
            seeds: [15, 16],
            steps: 400,
            pause: (0.1, 60),
        },
    }
}

/// Streams by their logical state; every other type by its bytes.
fn logical_streams(c: &mut redis::Connection, key: &str, kind: &str) -> Option<Vec<u8>> {
    (kind == "stream").then(|| stream_state(c, key).join("\n").into_bytes())
}

fn is_jobs(v: &Value) -> bool {
    matches!(v, Value::Array(jobs) if matches!(jobs.first(), Some(Value::Array(_))))
}

/// The twin's queues; nothing is pushed to the last, whose pops find nothing.
const QUEUES: [&str; 3] = ["dq", "{t}dq", "nq"];

/// Every key a twin step may write: the queues, their groups' leases, dead letters and dedupe
/// ids.
fn tracked() -> Vec<String> {
    let mut keys = strings(&["text"]);
    for q in QUEUES {
        keys.push(q.into());
        keys.push(derived(q, "dead"));
        keys.extend(["g1", "g2"].map(|g| derived(q, &format!("leases:{g}"))));
        keys.extend((0..4).map(|d| derived(q, &format!("dedupe:d{d}"))));
    }
    keys
}

/// The job ids among the module's replies (PUSH answers one, POP a list of jobs).
fn job_ids(replies: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for reply in replies {
        match reply {
            Value::BulkString(_) => ids.extend(text(reply)),
            Value::Array(jobs) if is_jobs(reply) => {
                for job in jobs {
                    if let Value::Array(fields) = job {
                        ids.extend(text(&fields[0]));
                    }
                }
            }
            _ => {}
        }
    }
    ids
}

/// A random call on the module, valid most of the time: short leases and delays that fall due
/// during the history, dedupe windows, both groups, a key of another type, bad arguments.
fn random_call(rng: &mut StdRng, replies: &[Value]) -> Vec<String> {
    let q = match rng.gen_range(0..20) {
        0 => "text",
        1..=3 => QUEUES[2],
        _ => QUEUES[rng.gen_range(0..2)],
    };
    let g = ["g1", "g2"][rng.gen_range(0..2)];
    let w = format!("w{}", rng.gen_range(0..3));
    let ids = job_ids(replies);
    let id = match ids.choose(rng) {
        Some(id) if rng.gen_bool(0.9) => id.clone(),
        _ => "1-1".to_string(),
    };
    let ms = |rng: &mut StdRng| rng.gen_range(1..80).to_string();
    let mut args = match rng.gen_range(0..14) {
        0..=3 => {
            let q = if q == QUEUES[2] { QUEUES[0] } else { q };
            let mut a = strings(&["QUEUE.PUSH", q, &format!("p{}", rng.gen_range(0..100))]);
            if rng.gen_bool(0.2) {
                a.extend(strings(&["DELAY", &ms(rng)]));
            }
            if rng.gen_bool(0.2) {
                let d = format!("d{}", rng.gen_range(0..4));
                a.extend(strings(&["DEDUPE", &d, &ms(rng)]));
            }
            a
        }
        4..=6 => strings(&[
            "QUEUE.POP",
            q,
            g,
            &w,
            "COUNT",
            &rng.gen_range(1..4).to_string(),
            "LEASE",
            &ms(rng),
            "MAXDELIVERIES",
            "3",
        ]),
        7 | 8 => strings(&["QUEUE.ACK", q, g, &id]),
        9 => {
            let mut a = strings(&["QUEUE.NACK", q, g, &id]);
            if rng.gen_bool(0.5) {
                a.extend(strings(&["DELAY", &ms(rng)]));
            }
            a
        }
        10 => strings(&["QUEUE.EXTEND", q, g, &w, &id, &ms(rng)]),
        11 => strings(&["QUEUE.REDRIVE", q, g, "COUNT", "2"]),
        _ => strings(&["QUEUE.STATS", q, g]),
    };
    if rng.gen_bool(0.08) {
        let bad = ["0", "-1", "x", "", "DELAY", "1-x", "(delayed)"]
            .choose(rng)
            .unwrap();
        spoil(rng, &mut args, bad);
    }
    args
}

/// A randomized workload on two queues and two groups: pushes (some delayed, some deduped),
/// pops by several consumers with short leases and few deliveries (so jobs are redelivered and
/// die), acks, nacks, extends, redrives, blocked consumers served by the server's timers,
/// and groups deleted by hand.
fn workload(server: &Server, rng: &mut StdRng) {
    let mut c = server.conn();
    let c = &mut c;
    let mut held: Vec<(&str, &str, String)> = Vec::new();
    let mut waiting: Vec<JoinHandle<()>> = Vec::new();
    for step in 0..400 {
        let q = ["rq", "{x}rq"][usize::from(rng.gen_bool(0.3))];
        let g = ["g1", "g2"][usize::from(rng.gen_bool(0.3))];
        match rng.gen_range(0..10) {
            0..=2 => {
                let payload = format!("p{step}");
                let mut args = vec!["QUEUE.PUSH", q, &payload];
                let delay = rng.gen_range(1..100).to_string();
                if rng.gen_bool(0.2) {
                    args.extend(["DELAY", &delay]);
                }
                let dedupe = format!("d{}", rng.gen_range(0..5));
                if rng.gen_bool(0.2) {
                    args.extend(["DEDUPE", &dedupe, "50"]);
                }
                let _: String = query(c, &args);
            }
            3 | 4 => {
                let who = format!("w{}", rng.gen_range(0..3));
                let lease = rng.gen_range(20..200).to_string();
                let args = [
                    q,
                    g,
                    &who,
                    "COUNT",
                    "3",
                    "LEASE",
                    &lease,
                    "MAXDELIVERIES",
                    "3",
                ];
                let mut argv = vec!["QUEUE.POP"];
                argv.extend(args);
                let jobs: Option<Vec<(String, String, i64)>> = query(c, &argv);
                held.extend(jobs.unwrap_or_default().into_iter().map(|j| (q, g, j.0)));
            }
            5 | 6 if !held.is_empty() => {
                let (q, g, id) = held.swap_remove(rng.gen_range(0..held.len()));
                let _: i64 = query(c, &["QUEUE.ACK", q, g, &id]);
            }
            7 if !held.is_empty() => {
                let (q, g, id) = held.swap_remove(rng.gen_range(0..held.len()));
                let _: i64 = query(c, &["QUEUE.NACK", q, g, &id, "DELAY", "30"]);
            }
            8 if !held.is_empty() => {
                let (q, g, id) = held.choose(rng).unwrap();
                let _: i64 = query(c, &["QUEUE.EXTEND", q, g, "w0", id, "100"]);
            }
            8 => {
                let _: i64 = query(c, &["QUEUE.REDRIVE", q, g, "COUNT", "2"]);
                let _: Vec<Value> = query(c, &["QUEUE.STATS", q, g]);
            }
            _ if waiting.len() < 3 => {
                let mut waiter = server.conn();
                let argv = strings(&["QUEUE.POP", q, g, &format!("b{step}"), "BLOCK", "150"]);
                waiting.push(spawn(move || {
                    let _ = send(&mut waiter, &argv).expect("a blocked POP");
                }));
            }
            _ => {}
        }
        if rng.gen_bool(0.01) {
            // A group deleted by hand: its next POP makes it again (an error when it is not).
            let _ = send(c, &strings(&["XGROUP", "DESTROY", q, g]));
        }
        if rng.gen_bool(0.05) {
            sleep(Duration::from_millis(rng.gen_range(1..40)));
        }
        waiting.retain(|w| !w.is_finished());
    }
    for w in waiting {
        w.join().unwrap();
    }
}

//! The queue family on real servers (every flavor): leases and redelivery after a worker
//! crashes, dead letters after exactly MAXDELIVERIES, delays, dedupe, groups, trimming,
//! blocking consumers woken by push, NACK and due times, 10,000 jobs through crashing workers
//! and a DEBUG RELOAD with none lost or completed twice, and bad input that writes nothing.
//! What every command shares (replica and AOF equal to the primary, the twin differential,
//! Cluster, ACL, COMMAND DOCS) is in tests/conformance.rs.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A delivered job: (id, payload, deliveries).
type Job = (String, String, i64);

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

fn jobs_of(v: &Value) -> Vec<Job> {
    match v {
        Value::Nil => Vec::new(),
        Value::Array(jobs) => jobs
            .iter()
            .map(|j| match j {
                Value::Array(f) if f.len() == 3 => {
                    (text(&f[0]), text(&f[1]), text(&f[2]).parse().unwrap())
                }
                other => panic!("not a job: {other:?}"),
            })
            .collect(),
        other => panic!("not a POP reply: {other:?}"),
    }
}

fn pop(c: &mut Connection, args: &[&str]) -> Vec<Job> {
    let mut all = vec!["QUEUE.POP"];
    all.extend_from_slice(args);
    jobs_of(&query::<Value>(c, &all))
}

fn push(c: &mut Connection, q: &str, payload: &str) -> String {
    query(c, &["QUEUE.PUSH", q, payload])
}

/// Pushes jobs `j0`, `j1`, ... (`n` of them) to `q`, in stream nodes of `node` jobs; their ids.
fn push_in_nodes(c: &mut Connection, q: &str, n: usize, node: usize) -> Vec<String> {
    let node = node.to_string();
    let _: () = query(c, &["CONFIG", "SET", "stream-node-max-entries", &node]);
    (0..n).map(|i| push(c, q, &format!("j{i}"))).collect()
}

fn stats(c: &mut Connection, q: &str, g: &str) -> BTreeMap<String, i64> {
    let v: Vec<Value> = query(c, &["QUEUE.STATS", q, g]);
    v.chunks(2)
        .map(|p| (text(&p[0]), text(&p[1]).parse().unwrap()))
        .collect()
}

/// The dead letters, each as a field map.
fn dead_letters(c: &mut Connection, dead: &str) -> Vec<BTreeMap<String, String>> {
    let entries: Vec<(String, Vec<String>)> = query(c, &["XRANGE", dead, "-", "+"]);
    entries
        .into_iter()
        .map(|(_, f)| f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Leases, dead letters, delays, dedupe, groups

#[test]
fn a_crashed_workers_job_goes_to_another_after_the_lease() {
    for_each_server(|_, mut c| {
        let id = push(&mut c, "jobs", "resize");
        let first = pop(&mut c, &["jobs", "g", "w1", "LEASE", "200"]);
        assert_eq!(first, vec![(id.clone(), "resize".into(), 1)]);
        // w1 "crashes": never acks. Nobody else gets the job while its lease runs.
        assert!(pop(&mut c, &["jobs", "g", "w2"]).is_empty());
        let leases: Vec<(String, f64)> = query(
            &mut c,
            &["ZRANGE", "{jobs}:leases:g", "0", "-1", "WITHSCORES"],
        );
        assert_eq!(leases.len(), 1);
        sleep(Duration::from_millis(250));
        let again = pop(&mut c, &["jobs", "g", "w2"]);
        assert_eq!(again, vec![(id.clone(), "resize".into(), 2)]);
        // w1 no longer holds it: it can neither extend nor steal it back.
        let ext: i64 = query(&mut c, &["QUEUE.EXTEND", "jobs", "g", "w1", &id, "1000"]);
        assert_eq!(ext, 0);
        let ext: i64 = query(&mut c, &["QUEUE.EXTEND", "jobs", "g", "w2", &id, "1000"]);
        assert_eq!(ext, 1);
        // XPENDING (a real consumer group) agrees.
        let pending: Vec<(String, String, i64, i64)> =
            query(&mut c, &["XPENDING", "jobs", "g", "-", "+", "10"]);
        assert_eq!(pending[0].0, id);
        assert_eq!(pending[0].1, "w2");
        assert_eq!(pending[0].3, 2);
        let acked: i64 = query(&mut c, &["QUEUE.ACK", "jobs", "g", &id]);
        assert_eq!(acked, 1);
        let acked: i64 = query(&mut c, &["QUEUE.ACK", "jobs", "g", &id]);
        assert_eq!(acked, 0);
        // Completed by every group: trimmed.
        let len: i64 = query(&mut c, &["XLEN", "jobs"]);
        assert_eq!(len, 0);
        let leases: i64 = query(&mut c, &["EXISTS", "{jobs}:leases:g"]);
        assert_eq!(leases, 0);
    });
}

#[test]
fn a_job_failing_every_time_is_dead_after_exactly_max_deliveries() {
    for_each_server(|_, mut c| {
        for max in [1_i64, 3, 5] {
            let q = format!("poison{max}");
            let id = push(&mut c, &q, "bad");
            let m = max.to_string();
            let mut deliveries = Vec::new();
            loop {
                let got = pop(&mut c, &[&q, "g", "w", "MAXDELIVERIES", &m]);
                let Some((job, _, n)) = got.into_iter().next() else {
                    break;
                };
                assert_eq!(job, id);
                deliveries.push(n);
                let nacked: i64 = query(&mut c, &["QUEUE.NACK", &q, "g", &job]);
                assert_eq!(nacked, 1);
            }
            assert_eq!(deliveries, (1..=max).collect::<Vec<_>>());
            let dead = dead_letters(&mut c, &format!("{{{q}}}:dead"));
            assert_eq!(dead.len(), 1);
            let d = &dead[0];
            assert_eq!(d["job"], id);
            assert_eq!(d["payload"], "bad");
            assert_eq!(d["deliveries"], m);
            assert_eq!(d["group"], "g");
            assert!(d["time"].parse::<i64>().unwrap() > 0);
            let len: i64 = query(&mut c, &["XLEN", &q]);
            assert_eq!(len, 0, "the dead job was trimmed from the queue");
            let s = stats(&mut c, &q, "g");
            assert_eq!((s["dead"], s["pending"], s["ready"]), (1, 0, 0));
            // Redriven: delivered again from the start, to this group only.
            let moved: i64 = query(&mut c, &["QUEUE.REDRIVE", &q, "g"]);
            assert_eq!(moved, 1);
            let got = pop(&mut c, &[&q, "g", "w"]);
            assert_eq!(got.len(), 1);
            assert_eq!((got[0].1.as_str(), got[0].2), ("bad", 1));
            assert!(pop(&mut c, &[&q, "other", "w"]).is_empty());
            assert!(dead_letters(&mut c, &format!("{{{q}}}:dead")).is_empty());
        }
        // A lease that ends counts as a delivery too.
        push(&mut c, "crashy", "x");
        for n in 1..=2 {
            let got = pop(
                &mut c,
                &["crashy", "g", "w", "LEASE", "50", "MAXDELIVERIES", "2"],
            );
            assert_eq!(got[0].2, n);
            sleep(Duration::from_millis(80));
        }
        assert!(pop(&mut c, &["crashy", "g", "w", "MAXDELIVERIES", "2"]).is_empty());
        let dead = dead_letters(&mut c, "{crashy}:dead");
        assert_eq!(
            (dead[0]["deliveries"].as_str(), dead[0]["consumer"].as_str()),
            ("2", "w")
        );
    });
}

#[test]
fn delays_dedupe_and_stats() {
    for_each_server(|_, mut c| {
        let later: String = query(&mut c, &["QUEUE.PUSH", "d", "later", "DELAY", "300"]);
        let now = push(&mut c, "d", "now");
        let s = stats(&mut c, "d", "g");
        assert_eq!((s["ready"], s["delayed"], s["consumers"]), (1, 1, 0));
        let got = pop(&mut c, &["d", "g", "w", "COUNT", "10"]);
        assert_eq!(got, vec![(now, "now".into(), 1)]);
        let s = stats(&mut c, "d", "g");
        assert_eq!(
            (s["ready"], s["delayed"], s["pending"], s["consumers"]),
            (0, 1, 1, 1)
        );
        sleep(Duration::from_millis(320));
        let got = pop(&mut c, &["d", "g", "w", "COUNT", "10"]);
        assert_eq!(got, vec![(later.clone(), "later".into(), 1)]);
        // A NACK with a delay holds the job back that long.
        let n: i64 = query(&mut c, &["QUEUE.NACK", "d", "g", &later, "DELAY", "200"]);
        assert_eq!(n, 1);
        assert!(pop(&mut c, &["d", "g", "w"]).is_empty());
        assert_eq!(stats(&mut c, "d", "g")["delayed"], 1);
        sleep(Duration::from_millis(220));
        assert_eq!(
            pop(&mut c, &["d", "g", "w"]),
            vec![(later, "later".into(), 2)]
        );

        let a: String = query(
            &mut c,
            &["QUEUE.PUSH", "dd", "p1", "DEDUPE", "order-7", "200"],
        );
        let b: String = query(
            &mut c,
            &["QUEUE.PUSH", "dd", "p2", "DEDUPE", "order-7", "200"],
        );
        assert_eq!(a, b);
        let len: i64 = query(&mut c, &["XLEN", "dd"]);
        assert_eq!(len, 1);
        let pttl: i64 = query(&mut c, &["PTTL", "{dd}:dedupe:order-7"]);
        assert!((1..=200).contains(&pttl), "{pttl}");
        sleep(Duration::from_millis(220));
        let c2: String = query(
            &mut c,
            &["QUEUE.PUSH", "dd", "p3", "DEDUPE", "order-7", "200"],
        );
        assert_ne!(a, c2);
    });
}

#[test]
fn groups_read_independently_and_jobs_done_by_all_are_trimmed() {
    for_each_server(|_, mut c| {
        // A stream node per job: the trim (whole nodes) removes each job once all completed it.
        let ids = push_in_nodes(&mut c, "{t}q", 3, 1);
        let a = pop(&mut c, &["{t}q", "billing", "b1", "COUNT", "10"]);
        let b = pop(&mut c, &["{t}q", "email", "e1", "COUNT", "2"]);
        assert_eq!(a.len(), 3);
        assert_eq!(b.len(), 2);
        let acked: i64 = query(
            &mut c,
            &["QUEUE.ACK", "{t}q", "billing", &ids[0], &ids[1], &ids[2]],
        );
        assert_eq!(acked, 3);
        let len: i64 = query(&mut c, &["XLEN", "{t}q"]);
        assert_eq!(len, 3, "email has not completed them");
        let acked: i64 = query(&mut c, &["QUEUE.ACK", "{t}q", "email", &ids[0]]);
        assert_eq!(acked, 1);
        let left: Vec<(String, Vec<String>)> = query(&mut c, &["XRANGE", "{t}q", "-", "+"]);
        let left: Vec<String> = left.into_iter().map(|e| e.0).collect();
        assert_eq!(left, ids[1..].to_vec());
        // The derived keys share the queue's slot.
        let leases: i64 = query(&mut c, &["EXISTS", "{t}q:leases:email"]);
        assert_eq!(leases, 1);
        // XINFO sees real groups and consumers.
        let groups: Vec<Value> = query(&mut c, &["XINFO", "GROUPS", "{t}q"]);
        assert_eq!(groups.len(), 2);
    });
}

/// `argv` (a queue command) on the module, or through the twin (FCALL, one key).
fn call(c: &mut Connection, via_twin: bool, argv: &[&str]) -> Value {
    let mut cmd = redis::cmd(argv[0]);
    if via_twin {
        cmd = redis::cmd("FCALL");
        cmd.arg(argv[0].to_ascii_lowercase().replace('.', "_"))
            .arg(1);
    }
    cmd.arg(&argv[1..]);
    pipeline(c, &[cmd]).remove(0)
}

/// A group deleted by hand (`XGROUP DESTROY`) is made again by its next POP, from the oldest
/// job: whether a stale lease fell due (the POP notices the group is gone while redelivering)
/// or not (it notices when it reads new jobs), every job still in the stream is delivered
/// anew, as delivery 1, and can be completed. The twin answers the same.
#[test]
fn a_group_deleted_by_hand_is_made_again_by_its_next_pop() {
    for_each_module_and_twin(|flavor, mut module, mut twin| {
        let mut seen = Vec::new();
        for (c, via_twin) in [(&mut module, false), (&mut twin, true)] {
            let mut log = Vec::new();
            for payload in ["a", "b", "c"] {
                call(c, via_twin, &["QUEUE.PUSH", "hq", payload]);
            }
            // a's lease ends soon (after b's POP: a 1 ms lease could end before it and hand a
            // out again), b's holds: both are stale once the group is gone.
            let a = jobs_of(&call(
                c,
                via_twin,
                &["QUEUE.POP", "hq", "g", "w", "LEASE", "200"],
            ));
            let b = jobs_of(&call(c, via_twin, &["QUEUE.POP", "hq", "g", "w"]));
            assert_ne!(a[0].0, b[0].0, "b's POP came after a's lease ended");
            sleep(Duration::from_millis(250));
            let destroyed: i64 = query(c, &["XGROUP", "DESTROY", "hq", "g"]);
            assert_eq!(destroyed, 1);
            let again = jobs_of(&call(
                c,
                via_twin,
                &["QUEUE.POP", "hq", "g", "w2", "COUNT", "10"],
            ));
            let ids: Vec<&str> = again.iter().map(|j| j.0.as_str()).collect();
            assert_eq!(ids[..2], [a[0].0.as_str(), b[0].0.as_str()]);
            log.push(again.iter().map(|j| (j.1.clone(), j.2)).collect::<Vec<_>>());
            let leases: BTreeSet<String> = query(c, &["ZRANGE", "{hq}:leases:g", "0", "-1"]);
            assert_eq!(leases, ids.iter().map(|id| id.to_string()).collect());
            let mut ack = vec!["QUEUE.ACK", "hq", "g"];
            ack.extend(&ids);
            log.push(vec![(shown(&call(c, via_twin, &ack)), 0)]);
            // No lease due this time: the POP notices when it reads.
            let d = jobs_of(&call(c, via_twin, &["QUEUE.POP", "hq", "g", "w"]));
            assert!(d.is_empty());
            call(c, via_twin, &["QUEUE.PUSH", "hq", "d"]);
            let d = jobs_of(&call(c, via_twin, &["QUEUE.POP", "hq", "g", "w"]));
            let _: i64 = query(c, &["XGROUP", "DESTROY", "hq", "g"]);
            // Without its group, nobody holds the job: no lease to extend, nothing to give back.
            let extend = call(
                c,
                via_twin,
                &["QUEUE.EXTEND", "hq", "g", "w", &d[0].0, "9000"],
            );
            let nack = call(c, via_twin, &["QUEUE.NACK", "hq", "g", &d[0].0]);
            assert_eq!((extend, nack), (Value::Int(0), Value::Int(0)));
            let again = jobs_of(&call(
                c,
                via_twin,
                &["QUEUE.POP", "hq", "g", "w2", "COUNT", "10"],
            ));
            assert_eq!(again, vec![(d[0].0.clone(), "d".into(), 1)]);
            log.push(vec![("d".into(), again[0].2)]);
            log.push(vec![(
                shown(&call(c, via_twin, &["QUEUE.ACK", "hq", "g", &d[0].0])),
                0,
            )]);
            seen.push(log);
        }
        assert_eq!(seen[0], seen[1], "on {}", flavor.name());
        assert_eq!(
            seen[0][0],
            [("a".to_string(), 1), ("b".into(), 1), ("c".into(), 1)]
        );
    });
}

/// The jobs left in the queue's stream, by their order of push (`ids`).
fn left(c: &mut Connection, q: &str, ids: &[String]) -> Vec<usize> {
    let entries: Vec<(String, Vec<String>)> = query(c, &["XRANGE", q, "-", "+"]);
    entries
        .iter()
        .map(|(id, _)| ids.iter().position(|i| i == id).unwrap())
        .collect()
}

#[test]
fn completed_jobs_leave_a_whole_stream_node_at_a_time() {
    for_each_server(|_, mut c| {
        // Nodes of 10 jobs: 0-9, 10-19, 20-24.
        let ids = push_in_nodes(&mut c, "n", 25, 10);
        assert_eq!(pop(&mut c, &["n", "g", "w", "COUNT", "25"]).len(), 25);
        let ack = |c: &mut Connection, range: std::ops::Range<usize>| {
            let mut args = vec!["QUEUE.ACK", "n", "g"];
            args.extend(ids[range.clone()].iter().map(String::as_str));
            let acked: usize = query(c, &args);
            assert_eq!(acked, range.len());
        };
        // Job 0 is still pending: nothing below it goes, whatever completes after it.
        ack(&mut c, 1..10);
        assert_eq!(left(&mut c, "n", &ids), (0..25).collect::<Vec<_>>());
        // Job 0 completed: its node (0-9) is all completed, and goes.
        ack(&mut c, 0..1);
        assert_eq!(left(&mut c, "n", &ids), (10..25).collect::<Vec<_>>());
        ack(&mut c, 11..20);
        ack(&mut c, 10..11);
        assert_eq!(left(&mut c, "n", &ids), (20..25).collect::<Vec<_>>());
        // 20-23 completed, but their node still holds the pending 24: they stay with it.
        ack(&mut c, 20..24);
        assert_eq!(left(&mut c, "n", &ids), (20..25).collect::<Vec<_>>());
        ack(&mut c, 24..25);
        assert_eq!(left(&mut c, "n", &ids), Vec::<usize>::new());
    });
}

#[test]
fn completed_jobs_below_the_oldest_pending_fill_less_than_a_node() {
    for_each_server(|_, mut c| {
        // Default nodes (100 jobs); about 50 jobs in progress, finished in random order, the
        // queue never drained: below the oldest job in progress, fewer than 100 jobs stay.
        let mut rng = StdRng::seed_from_u64(3);
        let mut held: Vec<String> = Vec::new();
        let order = |id: &String| {
            let (ms, seq) = id.split_once('-').unwrap();
            (ms.parse::<u64>().unwrap(), seq.parse::<u64>().unwrap())
        };
        for round in 0..300 {
            for i in 0..10 {
                push(&mut c, "b", &format!("j{round}-{i}"));
            }
            held.extend(
                pop(&mut c, &["b", "g", "w", "COUNT", "10"])
                    .into_iter()
                    .map(|j| j.0),
            );
            for _ in 0..if held.len() > 50 { 10 } else { 5 } {
                let id = held.swap_remove(rng.gen_range(0..held.len()));
                let acked: i64 = query(&mut c, &["QUEUE.ACK", "b", "g", &id]);
                assert_eq!(acked, 1);
            }
            let oldest = held.iter().min_by_key(|id| order(id)).unwrap();
            let below: Vec<Value> = query(&mut c, &["XRANGE", "b", "-", &format!("({oldest}")]);
            assert!(
                below.len() < 100,
                "round {round}: {} jobs below",
                below.len()
            );
        }
        for id in held {
            let acked: i64 = query(&mut c, &["QUEUE.ACK", "b", "g", &id]);
            assert_eq!(acked, 1);
        }
        let len: i64 = query(&mut c, &["XLEN", "b"]);
        assert_eq!(len, 0, "every job completed: none left");
    });
}

// ---------------------------------------------------------------------------------------------
// Blocking

#[test]
fn blocking_consumers_are_woken_by_push_nack_and_due_times() {
    for_each_server(|server, mut c| {
        // First come, first served: one push wakes the first waiter only.
        let w1 = waiter(&server, &["QUEUE.POP", "b", "g", "w1", "BLOCK", "5000"]);
        await_blocked(&server, 1);
        let w2 = waiter(
            &server,
            &[
                "QUEUE.POP",
                "b",
                "g",
                "w2",
                "BLOCK",
                "5000",
                "LEASE",
                "60000",
            ],
        );
        await_blocked(&server, 2);
        let id = push(&mut c, "b", "first");
        let (reply, _) = w1.join().unwrap();
        assert_eq!(jobs_of(&reply), vec![(id.clone(), "first".into(), 1)]);
        await_blocked(&server, 1);
        // A NACK wakes the next waiter with the same job.
        let n: i64 = query(&mut c, &["QUEUE.NACK", "b", "g", &id]);
        assert_eq!(n, 1);
        let (reply, _) = w2.join().unwrap();
        assert_eq!(jobs_of(&reply), vec![(id.clone(), "first".into(), 2)]);
        // A delayed job wakes its waiter when due (a timer, not a poll).
        let w3 = waiter(&server, &["QUEUE.POP", "b", "g", "w3", "BLOCK", "5000"]);
        await_blocked(&server, 1);
        let later: String = query(&mut c, &["QUEUE.PUSH", "b", "later", "DELAY", "200"]);
        let (reply, waited) = w3.join().unwrap();
        assert_eq!(jobs_of(&reply), vec![(later, "later".into(), 1)]);
        assert!(waited >= Duration::from_millis(150), "{waited:?}");
        // A lease ending wakes a waiter too.
        let short = push(&mut c, "b2", "x");
        pop(&mut c, &["b2", "g", "crasher", "LEASE", "200"]);
        let w4 = waiter(&server, &["QUEUE.POP", "b2", "g", "w4", "BLOCK", "5000"]);
        let (reply, _) = w4.join().unwrap();
        assert_eq!(jobs_of(&reply), vec![(short, "x".into(), 2)]);
        // A timeout answers nil; BLOCK 0 waits without limit.
        let (reply, waited) = waiter(&server, &["QUEUE.POP", "empty", "g", "w", "BLOCK", "100"])
            .join()
            .unwrap();
        assert_eq!(reply, Value::Nil);
        assert!(waited >= Duration::from_millis(90));
        push(&mut c, "empty", "seed");
        pop(&mut c, &["empty", "g", "w"]);
        let forever = waiter(&server, &["QUEUE.POP", "empty", "g", "w", "BLOCK", "0"]);
        await_blocked(&server, 1);
        sleep(Duration::from_millis(200));
        assert_eq!(blocked_clients(&server), 1);
        push(&mut c, "empty", "finally");
        assert_eq!(jobs_of(&forever.join().unwrap().0).len(), 1);
        await_blocked(&server, 0);
    });
}

#[test]
fn block_is_a_single_try_inside_multi_and_scripts() {
    for_each_server(|_, mut c| {
        let replies: Vec<Value> = redis::pipe()
            .atomic()
            .cmd("QUEUE.POP")
            .arg(&["m", "g", "w", "BLOCK", "0"])
            .query(&mut c)
            .unwrap();
        assert_eq!(replies, vec![Value::Nil]);
        push(&mut c, "m", "x");
        let v: Value = redis::cmd("EVAL")
            .arg("return redis.call('QUEUE.POP', KEYS[1], 'g', 'w', 'BLOCK', '0')")
            .arg(1)
            .arg("m")
            .query(&mut c)
            .unwrap();
        assert_eq!(jobs_of(&v).len(), 1);
    });
}

/// A waiter whose deadline passed is never given a job (Redis 7.0 fires blocking timeouts up
/// to ~100 ms late): it answers nil and the job stays for the next consumer.
#[test]
fn a_waiter_past_its_deadline_is_never_given_a_job() {
    for_each_server(|server, mut c| {
        for trial in 0..20 {
            let q = format!("late{trial}");
            push(&mut c, &q, "x");
            pop(&mut c, &[&q, "g", "holder", "LEASE", "40"]);
            // The lease ends 40 ms from now; the waiter's deadline is at 20-40 ms.
            let timeout = (20 + trial).to_string();
            let (reply, _) = waiter(&server, &["QUEUE.POP", &q, "g", "late", "BLOCK", &timeout])
                .join()
                .unwrap();
            let got = jobs_of(&reply);
            let pending: Vec<(String, String, i64, i64)> =
                query(&mut c, &["XPENDING", &q, "g", "-", "+", "10"]);
            if got.is_empty() {
                // Not given to the late waiter: still the holder's, or reclaimable.
                assert_ne!(
                    pending[0].1, "late",
                    "trial {trial}: given to a waiter told nil"
                );
            } else {
                assert_eq!(pending[0].1, "late");
            }
        }
    });
}

/// Waiters react to their queue deleted, flushed or overwritten behind the module's back, as a
/// lock's waiters do: deleted or flushed, the queue has no jobs, so they go on waiting (no timer
/// spins on the stale lease set) and the next push serves them; overwritten with another type,
/// they get WRONGTYPE at once. `CLIENT UNBLOCK` answers nil, a deadline nil on time.
#[test]
fn waiters_react_to_the_queue_deleted_flushed_or_overwritten() {
    for_each_server(|server, mut c| {
        for gone in [vec!["DEL", "d"], vec!["FLUSHALL"], vec!["FLUSHDB"]] {
            // A leased job leaves a lease set behind the deleted stream (its lease ends long
            // after the deletion, so the waiter is not handed the old job first).
            push(&mut c, "d", "old");
            pop(&mut c, &["d", "g", "holder", "LEASE", "5000"]);
            let w = waiter(&server, &["QUEUE.POP", "d", "g", "w", "BLOCK", "5000"]);
            await_blocked(&server, 1);
            let _: () = query(&mut c, &gone);
            sleep(Duration::from_millis(150));
            assert_eq!(blocked_clients(&server), 1, "{gone:?}");
            let id = push(&mut c, "d", "new");
            let (reply, waited) = w.join().unwrap();
            assert_eq!(jobs_of(&reply), vec![(id, "new".into(), 1)], "{gone:?}");
            assert!(waited < Duration::from_secs(4), "{gone:?} {waited:?}");
            let _: () = query(&mut c, &["FLUSHALL"]);
        }
        let w = waiter(&server, &["QUEUE.POP", "o", "g", "w", "BLOCK", "5000"]);
        await_blocked(&server, 1);
        let _: () = query(&mut c, &["SET", "o", "text"]);
        let (reply, waited) = w.join().unwrap();
        assert_eq!(
            shown(&reply),
            "error: WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert!(waited < Duration::from_secs(4), "{waited:?}");
        let w = waiter(&server, &["QUEUE.POP", "u", "g", "w", "BLOCK", "0"]);
        await_blocked(&server, 1);
        let ids: String = query(&mut c, &["CLIENT", "LIST", "TYPE", "normal"]);
        let blocked = ids
            .lines()
            .find(|l| l.contains("cmd=queue.pop"))
            .and_then(|l| l.split_whitespace().next()?.strip_prefix("id="))
            .unwrap()
            .to_string();
        assert_eq!(query::<i64>(&mut c, &["CLIENT", "UNBLOCK", &blocked]), 1);
        assert_eq!(w.join().unwrap().0, Value::Nil);
        let (reply, waited) = waiter(&server, &["QUEUE.POP", "u", "g", "w", "BLOCK", "100"])
            .join()
            .unwrap();
        assert_eq!(reply, Value::Nil);
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        await_blocked(&server, 0);
    });
}

/// `INFO patterns` counts pushes, deliveries, redeliveries, dead letters, acks and waits.
#[test]
fn info_counts_the_queues_work() {
    for_each_server(|server, mut c| {
        let one = push(&mut c, "q", "1");
        let two = push(&mut c, "q", "2");
        let args = ["QUEUE.PUSH", "q", "3", "DEDUPE", "d", "60000"];
        let _: String = query(&mut c, &args);
        let _: String = query(&mut c, &args);
        assert_eq!(pop(&mut c, &["q", "g", "w", "COUNT", "3"]).len(), 3);
        assert_eq!(query::<i64>(&mut c, &["QUEUE.ACK", "q", "g", &one]), 1);
        // `two` is nacked, delivered again, nacked, then dead past MAXDELIVERIES 2.
        assert_eq!(query::<i64>(&mut c, &["QUEUE.NACK", "q", "g", &two]), 1);
        assert_eq!(pop(&mut c, &["q", "g", "w"])[0].2, 2);
        assert_eq!(query::<i64>(&mut c, &["QUEUE.NACK", "q", "g", &two]), 1);
        assert!(pop(&mut c, &["q", "g", "w", "MAXDELIVERIES", "2"]).is_empty());
        let (reply, _) = waiter(&server, &["QUEUE.POP", "q", "g", "w", "BLOCK", "50"])
            .join()
            .unwrap();
        assert_eq!(reply, Value::Nil);
        let expected = [
            ("queue_pushed", 3),
            ("queue_delivered", 4),
            ("queue_redelivered", 1),
            ("queue_dead", 1),
            ("queue_acked", 1),
            ("queue_waits", 1),
            ("queue_wait_timeouts", 1),
            ("queue_waiters", 0),
        ];
        for (field, value) in expected {
            assert_eq!(
                server.counter(field),
                value,
                "{:?} {field}",
                server.flavor()
            );
        }
    });
}

/// `QUEUE.STATS` is a map under RESP3 (as `LOCK.INFO`), a flat array under RESP2.
#[test]
fn stats_is_a_map_under_resp3() {
    for_each_server(|server, mut c2| {
        push(&mut c2, "q", "x");
        let mut c3 = redis::Client::open(format!("{}?protocol=resp3", server.url()))
            .unwrap()
            .get_connection()
            .unwrap();
        let Value::Map(map) = query::<Value>(&mut c3, &["QUEUE.STATS", "q", "g"]) else {
            panic!("QUEUE.STATS is not a map under RESP3");
        };
        let names: Vec<String> = map.iter().map(|(k, _)| text(k)).collect();
        assert_eq!(names, ["ready", "delayed", "pending", "dead", "consumers"]);
        assert_eq!(map[0].1, Value::Int(1));
        assert_eq!(stats(&mut c2, "q", "g")["ready"], 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_gets_an_error_and_writes_nothing() {
    for_each_server(|_, mut c| {
        push(&mut c, "q", "x");
        let _: () = query(&mut c, &["SET", "str", "v"]);
        let _: () = query(&mut c, &["SET", "{zq}:leases:g", "v"]);
        let dirty = |c: &mut Connection| -> String {
            let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
            info_field(&info, "rdb_changes_since_last_save").unwrap()
        };
        let before = dirty(&mut c);
        let cases: &[(&[&str], &str)] = &[
            (&["QUEUE.PUSH", "str", "x"], "WRONGTYPE"),
            (
                &["QUEUE.PUSH", "q", "x", "DELAY", "-1"],
                "ERR delay_ms must be a non-negative integer",
            ),
            (
                &["QUEUE.PUSH", "q", "x", "DELAY", "4503599627370497"],
                "ERR delay_ms, lease_ms and ttl_ms must be at most 2^52",
            ),
            (&["QUEUE.PUSH", "q", "x", "DEDUPE", "d"], "ERR syntax error"),
            (
                &["QUEUE.PUSH", "q", "x", "DEDUPE", "d", "0"],
                "ERR ttl_ms must be a positive integer",
            ),
            (&["QUEUE.PUSH", "a{b", "x"], "ERR queue name"),
            (
                &["QUEUE.POP", "q", "g", "(delayed)"],
                "ERR the consumer name (delayed) is reserved",
            ),
            (
                &["QUEUE.POP", "q", "g", "w", "COUNT", "0"],
                "ERR n must be a positive integer",
            ),
            (&["QUEUE.POP", "q", "g", "w", "BOGUS"], "ERR syntax error"),
            (&["QUEUE.POP", "str", "g", "w"], "WRONGTYPE"),
            (&["QUEUE.POP", "zq", "g", "w"], "WRONGTYPE"),
            (
                &["QUEUE.ACK", "q", "g", "nope"],
                "ERR job_id must be a stream id (ms-seq)",
            ),
            (&["QUEUE.ACK", "q", "g"], "ERR wrong number of arguments"),
            (
                &["QUEUE.NACK", "q", "g", "1-1", "DELAY", "x"],
                "ERR delay_ms must be a non-negative integer",
            ),
            (
                &["QUEUE.EXTEND", "q", "g", "w", "1-1", "0"],
                "ERR lease_ms must be a positive integer",
            ),
            (
                &["QUEUE.REDRIVE", "q", "g", "COUNT", "0"],
                "ERR n must be a positive integer",
            ),
            (&["QUEUE.STATS", "str", "g"], "WRONGTYPE"),
        ];
        for (args, want) in cases {
            let got = error_of(&mut c, args);
            assert!(got.starts_with(want), "{args:?}: {got}");
        }
        assert_eq!(dirty(&mut c), before, "an error wrote");
    });
}

// ---------------------------------------------------------------------------------------------
// DEBUG RELOAD

#[test]
fn ten_thousand_jobs_none_lost_none_completed_twice() {
    const JOBS: usize = 10_000;
    const WORKERS: usize = 8;
    for flavor in flavors() {
        let server = Server::start_with(flavor, &["--save", ""]);
        let mut c = server.conn();
        let mut pushed = BTreeSet::new();
        for chunk in 0..(JOBS / 500) {
            let mut pipe = redis::pipe();
            for i in 0..500 {
                pipe.cmd("QUEUE.PUSH")
                    .arg("big")
                    .arg(format!("job{}", chunk * 500 + i));
            }
            let ids: Vec<String> = pipe.query(&mut c).unwrap();
            pushed.extend(ids);
        }
        assert_eq!(pushed.len(), JOBS);
        let done: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let reloaded = Arc::new(AtomicBool::new(false));
        let workers = spawn_clients(&server, WORKERS, {
            let (done, stop) = (done.clone(), stop.clone());
            move |w, mut c| {
                let mut rng = StdRng::seed_from_u64(w as u64);
                let mut incarnation = 0;
                while !stop.load(Ordering::Relaxed) {
                    let me = format!("w{w}.{incarnation}");
                    let jobs = pop(
                        &mut c,
                        &[
                            "big",
                            "g",
                            &me,
                            "COUNT",
                            "20",
                            "BLOCK",
                            "100",
                            "LEASE",
                            "300",
                            "MAXDELIVERIES",
                            "1000",
                        ],
                    );
                    if !jobs.is_empty() && rng.gen_bool(0.02) {
                        // A crash: the jobs are dropped unacked; the worker comes back as
                        // someone else.
                        incarnation += 1;
                        continue;
                    }
                    for (id, ..) in jobs {
                        let acked: i64 = query(&mut c, &["QUEUE.ACK", "big", "g", &id]);
                        if acked == 1 {
                            done.lock().unwrap().push(id);
                        }
                    }
                }
            }
        });
        let start = Instant::now();
        loop {
            let n = done.lock().unwrap().len();
            if n >= JOBS / 2 && !reloaded.swap(true, Ordering::Relaxed) {
                let _: () = query(&mut c, &["DEBUG", "RELOAD"]);
            }
            if n >= JOBS || start.elapsed() > Duration::from_secs(60) {
                break;
            }
            sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        assert!(reloaded.load(Ordering::Relaxed));
        let done = done.lock().unwrap();
        let unique: BTreeSet<String> = done.iter().cloned().collect();
        assert_eq!(unique.len(), done.len(), "a job was completed twice");
        assert_eq!(
            unique,
            pushed,
            "jobs lost ({} of {JOBS} done)",
            unique.len()
        );
        let len: i64 = query(&mut c, &["XLEN", "big"]);
        assert_eq!(len, 0, "completed jobs are trimmed");
        eprintln!(
            "{}: {JOBS} jobs through {WORKERS} crashing workers in {:?}",
            flavor.name(),
            start.elapsed()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Lua twin

/// Replies and queue states with job ids replaced by their order of appearance per queue
/// (the module and the twin run on two servers, whose stream ids differ by when each call ran;
/// two queues may hold the same id).
#[derive(Default)]
struct Ids(BTreeMap<(String, String), usize>);

impl Ids {
    fn name(&mut self, queue: &str, text: &str) -> String {
        let is_id = text.split_once('-').is_some_and(|(a, b)| {
            a.len() >= 12 && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
        });
        if !is_id {
            return text.to_string();
        }
        let n = self.0.len();
        let key = (queue.to_string(), text.to_string());
        format!("#{}", self.0.entry(key).or_insert(n))
    }

    /// The id named `name` (`#n`) on this side; other arguments as they are.
    fn raw(&self, name: &str) -> String {
        let found = self.0.iter().find(|(_, n)| format!("#{n}") == name);
        found.map_or_else(|| name.to_string(), |((_, id), _)| id.clone())
    }

    fn reply(&mut self, queue: &str, v: &Value) -> String {
        match v {
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(|i| self.reply(queue, i)).collect();
                format!("[{}]", inner.join(", "))
            }
            Value::BulkString(b) => self.name(queue, &String::from_utf8_lossy(b)),
            other => shown(other),
        }
    }
}

/// A random call for the differential test: no step depends on time (leases and dedupe
/// windows outlast the test, delays never fall due, NACK without a delay is due at once).
fn random_queue_call(rng: &mut StdRng, held: &[(String, String)]) -> Vec<String> {
    let q = ["dq", "{t}dq", "text"][rng.gen_range(0..3)].to_string();
    let g = ["g1", "g2"][rng.gen_range(0..2)].to_string();
    // A job of this queue (ids are per queue).
    let mine: Vec<&String> = held
        .iter()
        .filter(|(hq, _)| *hq == q)
        .map(|(_, id)| id)
        .collect();
    let id = if mine.is_empty() || rng.gen_bool(0.1) {
        "1-1".to_string()
    } else {
        mine[rng.gen_range(0..mine.len())].clone()
    };
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mut args = match rng.gen_range(0..12) {
        0..=2 => {
            let mut a = s(&["QUEUE.PUSH", &q, &format!("p{}", rng.gen_range(0..100))]);
            if rng.gen_bool(0.2) {
                a.extend(s(&["DELAY", "600000"]));
            }
            if rng.gen_bool(0.2) {
                a.extend(s(&[
                    "DEDUPE",
                    &format!("d{}", rng.gen_range(0..4)),
                    "600000",
                ]));
            }
            a
        }
        3..=5 => s(&[
            "QUEUE.POP",
            &q,
            &g,
            &format!("w{}", rng.gen_range(0..3)),
            "COUNT",
            &rng.gen_range(1..4).to_string(),
            "MAXDELIVERIES",
            "3",
        ]),
        6 => s(&["QUEUE.ACK", &q, &g, &id]),
        7 | 8 => s(&["QUEUE.NACK", &q, &g, &id]),
        9 => s(&[
            "QUEUE.EXTEND",
            &q,
            &g,
            &format!("w{}", rng.gen_range(0..3)),
            &id,
            "600000",
        ]),
        10 => s(&["QUEUE.REDRIVE", &q, &g, "COUNT", "2"]),
        _ => s(&["QUEUE.STATS", &q, &g]),
    };
    if rng.gen_bool(0.08) {
        let bad = ["0", "-1", "x", "", "DELAY", "1-x", "(delayed)"][rng.gen_range(0..7)];
        spoil(rng, &mut args, bad);
    }
    args
}

/// The module and the twin (FCALL on a server without the module) run the same random
/// history: every reply and the final queues are equal (ids named by order of appearance).
#[test]
fn lua_twin_matches_the_module() {
    for_each_module_and_twin(|flavor, mut a, mut b| {
        for c in [&mut a, &mut b] {
            let _: () = query(c, &["SET", "text", "v"]);
            // Nodes of 2 jobs: the trims (whole nodes) remove jobs within this short history.
            let _: () = query(c, &["CONFIG", "SET", "stream-node-max-entries", "2"]);
        }
        let (mut ids_a, mut ids_b) = (Ids::default(), Ids::default());
        let mut rng = StdRng::seed_from_u64(5);
        let mut held: Vec<(String, String)> = Vec::new();
        let mut kinds = BTreeMap::new();
        for step in 0..600 {
            let args = random_queue_call(&mut rng, &held);
            // Held jobs are named by order of appearance: each side gets its own id.
            let args_a: Vec<String> = args.iter().map(|x| ids_a.raw(x)).collect();
            let args_b: Vec<String> = args.iter().map(|x| ids_b.raw(x)).collect();
            let mut native = redis::cmd(&args[0]);
            native.arg(&args_a[1..]);
            let mut fcall = redis::cmd("FCALL");
            fcall
                .arg(args[0].to_ascii_lowercase().replace('.', "_"))
                .arg(1)
                .arg(&args_b[1..]);
            let ra = pipeline(&mut a, &[native]).remove(0);
            let rb = pipeline(&mut b, &[fcall]).remove(0);
            let q = &args[1];
            let (sa, sb) = (ids_a.reply(q, &ra), ids_b.reply(q, &rb));
            assert_eq!(sa, sb, "step {step}: {args:?} on {}", flavor.name());
            let kind = match &ra {
                Value::ServerError(_) => "error",
                Value::Nil => "nil",
                _ => "value",
            };
            *kinds.entry(kind).or_insert(0) += 1;
            if args[0] == "QUEUE.POP" && kind == "value" {
                for (id, ..) in jobs_of(&ra).into_iter() {
                    held.push((q.clone(), ids_a.name(q, &id)));
                }
            }
        }
        for q in ["dq", "{t}dq"] {
            let named = |ids: &mut Ids, state: Vec<String>| -> Vec<String> {
                state
                    .iter()
                    .map(|line| {
                        line.split(|c: char| {
                            c == '"' || c == '(' || c == ')' || c == ',' || c == ' '
                        })
                        .map(|w| {
                            // Absolute times (a delayed job's `due`) are each server's own.
                            if w.len() >= 12 && w.bytes().all(|c| c.is_ascii_digit()) {
                                "<ms>".to_string()
                            } else {
                                ids.name(q, w)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                    })
                    .collect()
            };
            let sa = named(&mut ids_a, queue_state(&mut a, q));
            let sb = named(&mut ids_b, queue_state(&mut b, q));
            // Lease scores are times: compare the members only (as a set: two leases taken in
            // one millisecond on one server and in two on the other are ordered differently).
            let strip = |v: Vec<String>| -> Vec<String> {
                v.into_iter()
                    .map(|l| {
                        if l.starts_with("leases") {
                            let mut members: Vec<&str> =
                                l.split(' ').filter(|w| w.starts_with('#')).collect();
                            members.sort_unstable();
                            members.join(" ")
                        } else if l.starts_with("dead") {
                            l.split(' ')
                                .filter(|w| !w.chars().all(|c| c.is_ascii_digit()) || w.len() < 12)
                                .collect::<Vec<_>>()
                                .join(" ")
                        } else {
                            l
                        }
                    })
                    .collect()
            };
            assert_eq!(strip(sa), strip(sb), "queue {q} on {}", flavor.name());
        }
        for kind in ["error", "nil", "value"] {
            assert!(kinds.get(kind).copied().unwrap_or(0) >= 10, "{kinds:?}");
        }
        // The twin cannot block: BLOCK tries once.
        let v: Value = query(
            &mut b,
            &["FCALL", "queue_pop", "1", "none", "g", "w", "BLOCK", "0"],
        );
        assert_eq!(v, Value::Nil);
    });
}

#[test]
fn readme_has_the_queue_table() {
    assert_readme_has_table(&patterns_core::queue::COMMANDS, "queues");
}

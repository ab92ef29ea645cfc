//! The lock family's own semantics on Redis 7.0 and Valkey 8.0: mutual exclusion under
//! contention, FIFO waiting on the server and its hand-offs, waiters when the key is deleted,
//! the client leaves, the holder re-acquires or the server becomes a replica; fencing tokens
//! across expiry, DEBUG RELOAD, AOF restarts and failover; the storage-side fencing check;
//! semaphores; grants by the expiry timer replicate; bad input; the twin refuses WAIT.
//! What every command shares (COMMAND DOCS, README, Cluster, ACL, effects replication,
//! AOF, the twin differential) is in tests/conformance.rs.

mod common;

use common::*;
use patterns_core::lock as l;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{sleep, spawn, JoinHandle};
use std::time::{Duration, Instant};

fn acquire(c: &mut Connection, key: &str, owner: &str, ttl_ms: i64) -> Option<i64> {
    query(c, &["LOCK.ACQUIRE", key, owner, &ttl_ms.to_string()])
}

fn release(c: &mut Connection, key: &str, owner: &str) -> i64 {
    query(c, &["LOCK.RELEASE", key, owner])
}

/// LOCK.INFO as a map (integers as text).
fn info(c: &mut Connection, key: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = query(c, &["LOCK.INFO", key]);
    let Value::Array(items) = v else {
        assert_eq!(v, Value::Nil);
        return None;
    };
    Some(
        items
            .chunks(2)
            .map(|p| (text_of(&p[0]), text_of(&p[1])))
            .collect(),
    )
}

/// A record's field or value as text ("" for nil).
fn text_of(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        Value::Int(n) => n.to_string(),
        Value::Nil => String::new(),
        other => panic!("{other:?}"),
    }
}

fn waiters(c: &mut Connection, key: &str) -> i64 {
    info(c, key).map_or(0, |i| i["waiters"].parse().unwrap())
}

fn token_of(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected a token, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Mutual exclusion and FIFO

#[test]
fn contention_never_sees_two_holders() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let key = "lock:{contended}";
        let inside = Arc::new(AtomicI64::new(0));
        let grants = Arc::new(Mutex::new(Vec::new()));
        let clients = spawn_clients(&server, 12, {
            let (inside, grants) = (inside.clone(), grants.clone());
            move |i, mut c| {
                let owner = format!("client-{i}");
                let mut rng = StdRng::seed_from_u64(i as u64);
                let mut held = 0;
                while held < 15 {
                    // Most wait on the server; some try once and come back.
                    let token: Option<i64> = if i % 3 == 0 {
                        acquire(&mut c, key, &owner, 10_000)
                    } else {
                        query(
                            &mut c,
                            &["LOCK.ACQUIRE", key, &owner, "10000", "WAIT", "20000"],
                        )
                    };
                    let Some(token) = token else {
                        sleep(Duration::from_micros(rng.gen_range(100..2000)));
                        continue;
                    };
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    // The storage-side check accepts every holder's write in turn.
                    let written: i64 = query(
                        &mut c,
                        &[
                            "LOCK.FENCEDHSET",
                            "res:{contended}",
                            &token.to_string(),
                            "by",
                            &owner,
                        ],
                    );
                    assert_eq!(written, 1);
                    grants.lock().unwrap().push(token);
                    sleep(Duration::from_micros(rng.gen_range(0..1500)));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(release(&mut c, key, &owner), 1);
                    held += 1;
                }
            }
        });
        for c in clients {
            c.join().expect("a client saw two holders");
        }
        let grants = grants.lock().unwrap().clone();
        assert_eq!(grants.len(), 12 * 15);
        // Tokens rise grant after grant, with no gaps: one per grant.
        assert_eq!(grants, (1..=180).collect::<Vec<i64>>(), "{flavor:?}");
        let mut c = server.conn();
        assert_eq!(info(&mut c, key), None);
        assert_eq!(
            query::<i64>(&mut c, &["GET", "lock:{contended}:fence"]),
            180
        );
    }
}

/// The lock's hash and its fencing counter, as README documents them.
#[test]
fn fence_key_layout() {
    for_each_server(|_, mut c| {
        assert_eq!(acquire(&mut c, "lock:{x}", "a", 10_000), Some(1));
        assert_eq!(acquire(&mut c, "plain", "a", 10_000), Some(1));
        assert_eq!(query::<i64>(&mut c, &["GET", "lock:{x}:fence"]), 1);
        assert_eq!(query::<i64>(&mut c, &["GET", "{plain}:fence"]), 1);
        assert_eq!(query::<i64>(&mut c, &["PTTL", "{plain}:fence"]), -1);
        let fields: BTreeMap<String, String> = query(&mut c, &["HGETALL", "plain"]);
        let want: BTreeMap<String, String> = [("owner", "a"), ("token", "1"), ("holds", "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(fields, want);
        let pttl: i64 = query(&mut c, &["PTTL", "plain"]);
        assert!((9_000..=10_000).contains(&pttl), "{pttl}");
    });
}

#[test]
fn waiters_are_served_in_fifo_order_on_release() {
    for_each_server(|server, mut c| {
        let key = "fifo";
        let first = acquire(&mut c, key, "holder", 60_000).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..6 {
            let order = order.clone();
            let mut w = server.conn();
            threads.push(spawn(move || {
                let token: Option<i64> = query(
                    &mut w,
                    &[
                        "LOCK.ACQUIRE",
                        key,
                        &format!("w{i}"),
                        "60000",
                        "WAIT",
                        "20000",
                    ],
                );
                order.lock().unwrap().push((i, token.unwrap()));
            }));
            // Each waiter is queued before the next one comes.
            assert!(wait_until(Duration::from_secs(10), || waiters(&mut c, key) == i + 1));
        }
        // Queued clients do not let a newcomer in, with or without WAIT.
        assert_eq!(acquire(&mut c, key, "newcomer", 1000), None);
        // Each release hands the lock to exactly the next waiter: one grant, the rest wait.
        let mut owner = "holder".to_string();
        for granted in 1..=6 {
            assert_eq!(release(&mut c, key, &owner), 1);
            assert!(wait_until(Duration::from_secs(10), || order
                .lock()
                .unwrap()
                .len()
                == granted as usize));
            sleep(Duration::from_millis(30));
            assert_eq!(
                order.lock().unwrap().len(),
                granted as usize,
                "one grant per release"
            );
            assert_eq!(waiters(&mut c, key), 6 - granted);
            let (i, token) = *order.lock().unwrap().last().unwrap();
            assert_eq!(
                (i, token),
                (granted - 1, first + granted),
                "FIFO, tokens in order"
            );
            owner = format!("w{i}");
            assert_eq!(info(&mut c, key).unwrap()["owner"], owner);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(release(&mut c, key, &owner), 1);
        assert_eq!(info(&mut c, key), None);
    });
}

#[test]
fn expiry_hands_off_to_the_next_waiter_promptly() {
    for_each_server(|server, mut c| {
        let first = acquire(&mut c, "exp", "holder", 400).unwrap();
        let w = waiter(
            &server,
            &["LOCK.ACQUIRE", "exp", "next", "5000", "WAIT", "10000"],
        );
        let (reply, waited) = w.join().unwrap();
        assert_eq!(token_of(&reply), first + 1);
        // Granted when the lease ended (a timer, not a sweep or a poll): not before, and well
        // within the 10 s the waiter would have waited.
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        assert!(waited < Duration::from_millis(2500), "{waited:?}");
        let i = info(&mut c, "exp").unwrap();
        assert_eq!(i["owner"], "next");
        // The holder's release after its lease ended changes nothing.
        assert_eq!(release(&mut c, "exp", "holder"), 0);
        assert_eq!(info(&mut c, "exp").unwrap()["owner"], "next");
    });
}

#[test]
fn a_waiter_that_times_out_or_is_unblocked_leaves_the_queue() {
    for_each_server(|server, mut c| {
        acquire(&mut c, "t", "holder", 60_000).unwrap();
        let (reply, waited) = waiter(&server, &["LOCK.ACQUIRE", "t", "w", "1000", "WAIT", "200"])
            .join()
            .unwrap();
        assert_eq!(reply, Value::Nil);
        assert!(waited >= Duration::from_millis(190), "{waited:?}");
        assert_eq!(waiters(&mut c, "t"), 0);
        // CLIENT UNBLOCK ends the wait as a timeout does.
        let mut w = server.conn();
        let id: i64 = query(&mut w, &["CLIENT", "ID"]);
        let h = spawn(move || {
            let r: Option<i64> = query(&mut w, &["LOCK.ACQUIRE", "t", "w", "1000", "WAIT", "0"]);
            r
        });
        await_blocked(&server, 1);
        assert_eq!(
            query::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id.to_string()]),
            1
        );
        assert_eq!(h.join().unwrap(), None);
        assert_eq!(waiters(&mut c, "t"), 0);
        // CLIENT UNBLOCK ... ERROR: the server's error, and the waiter leaves the queue too.
        let mut w = server.conn();
        let id: i64 = query(&mut w, &["CLIENT", "ID"]);
        let h = spawn(move || error_of(&mut w, &["LOCK.ACQUIRE", "t", "w", "1000", "WAIT", "0"]));
        await_blocked(&server, 1);
        let _: i64 = query(&mut c, &["CLIENT", "UNBLOCK", &id.to_string(), "ERROR"]);
        assert!(h.join().unwrap().starts_with("UNBLOCKED"));
        assert_eq!(waiters(&mut c, "t"), 0);
        // A semaphore's waiter times out with 0.
        assert_eq!(
            query::<i64>(&mut c, &["SEM.ACQUIRE", "s", "a", "1", "60000"]),
            1
        );
        let (reply, _) = waiter(
            &server,
            &["SEM.ACQUIRE", "s", "b", "1", "1000", "WAIT", "100"],
        )
        .join()
        .unwrap();
        assert_eq!(reply, Value::Int(0));
        await_blocked(&server, 0);
        // Nobody was granted anything on the way.
        assert_eq!(info(&mut c, "t").unwrap()["owner"], "holder");
        assert_eq!(query::<i64>(&mut c, &["SEM.COUNT", "s"]), 1);
    });
}

/// Issue 11, defect 1: the holder's lease ends after the waiter's deadline but before the
/// server handled the waiter's timeout (Redis 7.0 handles blocking timeouts up to 100 ms late).
/// The waiter must get its reply (no hang), and a grant only while its deadline has not passed:
/// one that ended with nil (0) holds nothing.
#[test]
fn a_lease_ending_after_the_waiters_deadline_grants_nothing_and_never_hangs() {
    const TRIALS: usize = 15;
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let mut w = server.conn();
        // A lost reply fails the trial instead of hanging the suite.
        w.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for trial in 0..TRIALS {
            for kind in ["LOCK", "SEM"] {
                let key = format!("{kind}{trial}");
                let (hold, wait, owner_of) = if kind == "LOCK" {
                    (
                        cmd(&["LOCK.ACQUIRE", &key, "o1", "30"]),
                        cmd(&["LOCK.ACQUIRE", &key, "o3", "5000", "WAIT", "20"]),
                        lock_holder as fn(&mut Connection, &str) -> Option<String>,
                    )
                } else {
                    (
                        cmd(&["SEM.ACQUIRE", &key, "o1", "1", "30"]),
                        cmd(&["SEM.ACQUIRE", &key, "o3", "1", "5000", "WAIT", "20"]),
                        sem_holder as fn(&mut Connection, &str) -> Option<String>,
                    )
                };
                let held = pipeline(&mut c, &[hold, lease_end_cmd(kind, &key)]);
                let lease_end = ms_of_int(&held[1]);
                let replies =
                    wait_replies(&mut w, &[redis::cmd("TIME"), wait]).unwrap_or_else(|e| {
                        panic!(
                            "{} {kind} trial {trial}: the waiter got no reply: {e}",
                            flavor.name()
                        )
                    });
                let deadline = ms_of(&replies[0]) + 20;
                let granted = matches!(replies[1], Value::Int(n) if n >= 1);
                // The lease ends (1 ms later, the key is gone) after the deadline: too late.
                if lease_end >= deadline {
                    assert!(
                        !granted,
                        "{} {kind} trial {trial}: granted after its deadline ({:?}, lease end {lease_end}, deadline {deadline})",
                        flavor.name(),
                        replies[1]
                    );
                }
                let holder = owner_of(&mut c, &key);
                if granted {
                    assert_eq!(holder.as_deref(), Some("o3"), "{} {kind}", flavor.name());
                } else {
                    assert_ne!(
                        holder.as_deref(),
                        Some("o3"),
                        "{} {kind}: nil, yet o3 holds it",
                        flavor.name()
                    );
                }
            }
        }
        // Nobody is left waiting or blocked.
        await_blocked(&server, 0);
        // A deadline at i64's end waits like WAIT 0 (a lease without an end leaves only the
        // waiter's deadline for the timer, whose period is capped).
        acquire(&mut c, "far", "holder", 60_000).unwrap();
        let _: i64 = query(&mut c, &["PERSIST", "far"]);
        let max = i64::MAX.to_string();
        let h = waiter(&server, &["LOCK.ACQUIRE", "far", "w", "1000", "WAIT", &max]);
        await_blocked(&server, 1);
        sleep(Duration::from_millis(300));
        assert_eq!(waiters(&mut c, "far"), 1);
        assert_eq!(release(&mut c, "far", "holder"), 1);
        assert!(token_of(&h.join().unwrap().0) > 0);
    });
}

fn cmd(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    cmd
}

/// When what blocks the waiter ends: the lock's PEXPIRETIME, or the first permit's expiry.
fn lease_end_cmd(kind: &str, key: &str) -> redis::Cmd {
    if kind == "LOCK" {
        cmd(&["PEXPIRETIME", key])
    } else {
        cmd(&["ZRANGE", key, "0", "0", "WITHSCORES"])
    }
}

fn ms_of_int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::Array(items) => {
            let score: String = redis::from_redis_value(&items[1]).unwrap();
            score.parse().unwrap()
        }
        other => panic!("{other:?}"),
    }
}

/// A pipeline's replies, or the read error (a reply that never came).
fn wait_replies(c: &mut Connection, cmds: &[redis::Cmd]) -> redis::RedisResult<Vec<Value>> {
    use redis::ConnectionLike;
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd.clone());
    }
    c.req_packed_commands(&pipe.get_packed_pipeline(), 0, cmds.len())
}

fn lock_holder(c: &mut Connection, key: &str) -> Option<String> {
    info(c, key).map(|i| i["owner"].clone())
}

/// The semaphore's holder when o3 holds a permit ("o3"), else another holder or none.
fn sem_holder(c: &mut Connection, key: &str) -> Option<String> {
    let score: Option<i64> = query(c, &["ZSCORE", key, "o3"]);
    score.map(|_| "o3".to_string())
}

#[test]
fn a_disconnected_waiter_leaves_the_queue() {
    for_each_server(|server, mut c| {
        acquire(&mut c, "d", "holder", 60_000).unwrap();
        let mut gone = server.conn();
        let id: i64 = query(&mut gone, &["CLIENT", "ID"]);
        let h = spawn(move || {
            let mut cmd = redis::cmd("LOCK.ACQUIRE");
            cmd.arg("d").arg("gone").arg(60_000).arg("WAIT").arg(0);
            cmd.query::<Option<i64>>(&mut gone).is_err()
        });
        assert!(wait_until(Duration::from_secs(10), || waiters(&mut c, "d") == 1));
        let behind = waiter(
            &server,
            &["LOCK.ACQUIRE", "d", "behind", "60000", "WAIT", "20000"],
        );
        assert!(wait_until(Duration::from_secs(10), || waiters(&mut c, "d") == 2));
        let _: i64 = query(&mut c, &["CLIENT", "KILL", "ID", &id.to_string()]);
        assert!(
            h.join().unwrap(),
            "the killed client saw its connection drop"
        );
        assert!(wait_until(Duration::from_secs(10), || waiters(&mut c, "d") == 1));
        // The release skips the departed waiter and goes to the one behind it.
        assert_eq!(release(&mut c, "d", "holder"), 1);
        let (reply, _) = behind.join().unwrap();
        assert_eq!(token_of(&reply), 2);
        assert_eq!(info(&mut c, "d").unwrap()["owner"], "behind");
        assert_eq!(waiters(&mut c, "d"), 0);
    });
}

const LOCK_HOLD: &[&str] = &["LOCK.ACQUIRE", "del", "holder", "60000"];
const LOCK_WAIT: &[&str] = &["LOCK.ACQUIRE", "del", "next", "60000", "WAIT", "20000"];
const SEM_HOLD: &[&str] = &["SEM.ACQUIRE", "pool", "a", "1", "60000"];
const SEM_WAIT: &[&str] = &["SEM.ACQUIRE", "pool", "b", "1", "60000", "WAIT", "20000"];

/// Takes `hold`, queues the client `wait` behind it, then runs `gone` behind the module's back
/// (a deletion or a flush): the waiter's reply, which must come at once.
fn handed_on(server: &Server, hold: &[&str], wait: &[&str], gone: &[&str]) -> Value {
    let mut c = server.conn();
    assert_ne!(query::<Value>(&mut c, hold), Value::Nil);
    let w = waiter(server, wait);
    await_blocked(server, 1);
    let _: Value = query(&mut c, gone);
    let (reply, waited) = w.join().unwrap();
    assert!(waited < Duration::from_secs(5), "{gone:?}: {waited:?}");
    reply
}

#[test]
fn deleting_the_key_hands_the_lock_on_and_overwriting_it_fails_the_waiters() {
    for_each_server(|server, mut c| {
        // DEL is a forced unlock: the next waiter gets the lock, with a newer token.
        let reply = handed_on(&server, LOCK_HOLD, LOCK_WAIT, &["DEL", "del"]);
        assert_eq!(token_of(&reply), 2);
        // A semaphore deleted behind the module's back frees its permits for its waiters.
        let reply = handed_on(&server, SEM_HOLD, SEM_WAIT, &["DEL", "pool"]);
        assert_eq!(reply, Value::Int(1));
        let holders: Vec<String> = query(&mut c, &["ZRANGE", "pool", "0", "-1"]);
        assert_eq!(holders, vec!["b".to_string()]);
        // A key overwritten with another type fails its waiters with the error they would get.
        let w = waiter(
            &server,
            &["LOCK.ACQUIRE", "del", "third", "60000", "WAIT", "20000"],
        );
        assert!(wait_until(Duration::from_secs(10), || waiters(
            &mut c, "del"
        ) == 1));
        let _: () = query(&mut c, &["SET", "del", "text"]);
        let (reply, _) = w.join().unwrap();
        assert_eq!(
            shown(&reply),
            "error: WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        await_blocked(&server, 0);
    });
}

/// FLUSHALL and FLUSHDB fire no keyspace event: the module hears of them as server events and
/// serves the waiters at once (the lock is free, and its counter was flushed: token 1 again).
#[test]
fn a_flush_hands_locks_and_permits_on_at_once() {
    for_each_server(|server, _| {
        let reply = handed_on(&server, LOCK_HOLD, LOCK_WAIT, &["FLUSHALL"]);
        assert_eq!(token_of(&reply), 1);
        let reply = handed_on(&server, SEM_HOLD, SEM_WAIT, &["FLUSHDB"]);
        assert_eq!(reply, Value::Int(1));
    });
}

/// `INFO patterns` counts a lease that ends (`lock_expiries`) and a held lock evicted
/// (`lock_forced_unlocks`); a release, a `DEL` or `UNLINK` (not watched: README says why), and
/// a key that is no lock expiring, count as neither.
#[test]
fn info_counts_expiries_and_evictions_but_not_releases() {
    for_each_server(|server, mut c| {
        acquire(&mut c, "short", "a", 50).unwrap();
        for name in ["held", "unlinked", "released"] {
            acquire(&mut c, name, "a", 60_000).unwrap();
        }
        assert_eq!(release(&mut c, "released", "a"), 1);
        let _: () = query(&mut c, &["SET", "plain", "x", "PX", "50"]);
        let _: i64 = query(&mut c, &["DEL", "held"]);
        let _: i64 = query(&mut c, &["UNLINK", "unlinked"]);
        sleep(Duration::from_millis(100));
        // Expired on access at the latest.
        let _: i64 = query(&mut c, &["EXISTS", "short", "plain"]);
        assert_eq!(server.counter("lock_expiries"), 1);
        assert_eq!(server.counter("lock_forced_unlocks"), 0);
        assert_eq!(server.counter("lock_releases"), 1);
        // Only keys with a TTL are evicted (volatile-lru): the lock goes, its counter stays.
        acquire(&mut c, "evicted", "a", 60_000).unwrap();
        for (name, value) in [("maxmemory-policy", "volatile-lru"), ("maxmemory", "1")] {
            let _: () = query(&mut c, &["CONFIG", "SET", name, value]);
        }
        let refused: redis::RedisResult<()> =
            redis::cmd("SET").arg("filler").arg("x").query(&mut c);
        let _: () = query(&mut c, &["CONFIG", "SET", "maxmemory", "0"]);
        assert!(refused.is_err(), "nothing left to evict: OOM");
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "evicted"]), 0);
        assert_eq!(server.counter("lock_forced_unlocks"), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Read/write locks

fn rw(c: &mut Connection, owner: &str, ttl_ms: &str, mode: &str) -> Option<i64> {
    query(c, &["RWLOCK.ACQUIRE", "rw", owner, ttl_ms, mode])
}

/// A client in its own thread waiting (up to `wait_ms`) for a 60 s hold of `rw` in `mode`.
fn rw_waiter(
    server: &Server,
    owner: &str,
    mode: &str,
    wait_ms: &str,
) -> JoinHandle<(Value, Duration)> {
    waiter(
        server,
        &[
            "RWLOCK.ACQUIRE",
            "rw",
            owner,
            "60000",
            mode,
            "WAIT",
            wait_ms,
        ],
    )
}

/// RWLOCK.INFO's field `name`, as text ("" for nil).
fn rw_info(c: &mut Connection, name: &str) -> String {
    let v: Vec<Value> = query(c, &["RWLOCK.INFO", "rw"]);
    let pair = v.chunks(2).find(|p| text_of(&p[0]) == name).unwrap();
    text_of(&pair[1])
}

/// Readers share; a writer waits for them; a reader arriving behind the waiting writer waits
/// too (FIFO for both modes: no writer starvation), and without WAIT gets nil; the writer's
/// grant carries the next fencing token; the queued reader follows the writer.
#[test]
fn rwlock_readers_share_and_a_waiting_writer_is_never_overtaken() {
    for_each_server(|server, mut c| {
        assert_eq!(rw(&mut c, "r1", "60000", "READ"), Some(1));
        assert_eq!(rw(&mut c, "r2", "60000", "read"), Some(1));
        assert_eq!(rw(&mut c, "w", "60000", "WRITE"), None);
        let writer = rw_waiter(&server, "w", "WRITE", "10000");
        await_blocked(&server, 1);
        let reader = rw_waiter(&server, "r3", "READ", "10000");
        await_blocked(&server, 2);
        // Only readers hold the lock, yet a new reader would overtake the writer: nil.
        assert_eq!(rw(&mut c, "r4", "60000", "READ"), None);
        // Refreshing a hold one has overtakes nobody.
        assert_eq!(rw(&mut c, "r1", "60000", "READ"), Some(1));
        assert_eq!(rw_info(&mut c, "mode"), "read");
        assert_eq!(rw_info(&mut c, "readers"), "2");
        assert_eq!(rw_info(&mut c, "waiters"), "2");
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "r1"]), 1);
        sleep(Duration::from_millis(100));
        assert_eq!(blocked_clients(&server), 2, "the writer waits for r2");
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "r2"]), 1);
        let (reply, _) = writer.join().unwrap();
        // The counter {rw}:writer:fence is the write hold's own: token 1.
        assert_eq!(token_of(&reply), 1);
        assert_eq!(rw_info(&mut c, "owner"), "w");
        assert_eq!(rw_info(&mut c, "token"), "1");
        await_blocked(&server, 1);
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "w"]), 1);
        assert_eq!(reader.join().unwrap().0, Value::Int(1));
        assert_eq!(rw_info(&mut c, "readers"), "1");
        // The next writer's token is larger.
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "r3"]), 1);
        assert_eq!(rw(&mut c, "w2", "60000", "WRITE"), Some(2));
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "w2"]), 1);
        let v: Value = query(&mut c, &["RWLOCK.INFO", "rw"]);
        assert_eq!(v, Value::Nil);
    });
}

/// Read holds end with their own leases: a writer waiting on two readers is granted when the
/// second lease ends (a timer, not a poll), not at the first; an extended read hold lasts.
#[test]
fn rwlock_read_holds_expire_with_their_own_leases() {
    for_each_server(|server, mut c| {
        assert_eq!(rw(&mut c, "short", "100", "READ"), Some(1));
        let long_from = server_ms(&mut c);
        assert_eq!(rw(&mut c, "long", "400", "READ"), Some(1));
        let writer = rw_waiter(&server, "w", "WRITE", "10000");
        let (reply, _) = writer.join().unwrap();
        assert_eq!(token_of(&reply), 1);
        // When the server granted it, from its 60 s hold's expiry: at the long lease's end.
        let at: i64 = query(&mut c, &["PEXPIRETIME", "{rw}:writer"]);
        let waited = at - 60_000 - long_from;
        assert!((400..3000).contains(&waited), "{waited} ms");
        assert_eq!(query::<i64>(&mut c, &["RWLOCK.RELEASE", "rw", "w"]), 1);
        // Extended within its first lease (500 ms: the next call comes well before its end
        // on a loaded machine), the hold outlives that lease's end by the server's clock.
        assert_eq!(rw(&mut c, "r", "500", "READ"), Some(1));
        let first_end = server_ms(&mut c) + 500;
        assert_eq!(
            query::<i64>(&mut c, &["RWLOCK.EXTEND", "rw", "r", "60000"]),
            1
        );
        assert!(wait_until(Duration::from_secs(10), || server_ms(&mut c) > first_end));
        assert_eq!(rw_info(&mut c, "readers"), "1");
        assert!(rw_info(&mut c, "ttl").parse::<i64>().unwrap() > 50_000);
        assert_eq!(
            query::<i64>(&mut c, &["RWLOCK.EXTEND", "rw", "nobody", "100"]),
            0
        );
        // A waiter past its deadline gets nil and writes nothing.
        let (reply, waited) = rw_waiter(&server, "w", "WRITE", "100").join().unwrap();
        assert_eq!(reply, Value::Nil);
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "{rw}:writer"]), 0);
    });
}

#[test]
fn the_holder_reacquiring_keeps_the_waiters_waiting() {
    for_each_server(|server, mut c| {
        let token = acquire(&mut c, "re", "holder", 1000).unwrap();
        let w = waiter(
            &server,
            &["LOCK.ACQUIRE", "re", "next", "60000", "WAIT", "20000"],
        );
        assert!(wait_until(Duration::from_secs(10), || waiters(
            &mut c, "re"
        ) == 1));
        // Re-entry: same token, one more hold, a fresh TTL; the waiter stays queued.
        assert_eq!(acquire(&mut c, "re", "holder", 60_000), Some(token));
        let i = info(&mut c, "re").unwrap();
        assert_eq!((i["holds"].as_str(), i["waiters"].as_str()), ("2", "1"));
        assert!(i["ttl"].parse::<i64>().unwrap() > 50_000);
        // Past the first lease's end, the timer follows the extended lease: still held.
        sleep(Duration::from_millis(1300));
        assert_eq!(waiters(&mut c, "re"), 1);
        assert_eq!(release(&mut c, "re", "holder"), 1);
        assert_eq!(waiters(&mut c, "re"), 1);
        // EXTEND may shorten the lease: the waiter gets the lock when the shorter one ends.
        assert_eq!(
            query::<i64>(&mut c, &["LOCK.EXTEND", "re", "holder", "300"]),
            1
        );
        let (reply, waited) = w.join().unwrap();
        assert_eq!(token_of(&reply), token + 1);
        assert!(waited > Duration::from_millis(1300), "{waited:?}");
        assert_eq!(info(&mut c, "re").unwrap()["owner"], "next");
    });
}

#[test]
fn waiters_are_cancelled_when_the_server_becomes_a_replica() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let other = Server::start(flavor);
        let mut c = server.conn();
        acquire(&mut c, "role", "holder", 60_000).unwrap();
        let lock_waiter = waiter(
            &server,
            &["LOCK.ACQUIRE", "role", "w", "60000", "WAIT", "0"],
        );
        let sem_waiter = {
            let _: i64 = query(&mut c, &["SEM.ACQUIRE", "sem", "a", "1", "60000"]);
            waiter(
                &server,
                &["SEM.ACQUIRE", "sem", "b", "1", "60000", "WAIT", "0"],
            )
        };
        await_blocked(&server, 2);
        let _: () = query(
            &mut c,
            &["REPLICAOF", "127.0.0.1", &other.port().to_string()],
        );
        for w in [lock_waiter, sem_waiter] {
            let (reply, waited) = w.join().unwrap();
            // The server's own unblocking (UNBLOCKED ... master -> replica?) or the module's
            // (READONLY ...): either way an error, and the client is out of the queue.
            let text = shown(&reply);
            assert!(
                text.starts_with("error: ") && text.contains("replica"),
                "{text}"
            );
            assert!(waited < Duration::from_secs(10));
        }
        await_blocked(&server, 0);
    }
}

/// Queues are per database: a release in one database serves that database's waiters only.
#[test]
fn queues_are_per_database() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let select = |c: &mut Connection, db: &str| {
            let _: () = query(c, &["SELECT", db]);
        };
        let mut c0 = server.conn();
        let mut c2 = server.conn();
        select(&mut c2, "2");
        acquire(&mut c0, "same", "holder", 60_000).unwrap();
        acquire(&mut c2, "same", "holder", 60_000).unwrap();
        let mut w = server.conn();
        select(&mut w, "2");
        let h = spawn(move || {
            let r: Option<i64> = query(
                &mut w,
                &["LOCK.ACQUIRE", "same", "w2", "60000", "WAIT", "20000"],
            );
            r
        });
        assert!(wait_until(Duration::from_secs(10), || waiters(
            &mut c2, "same"
        ) == 1));
        assert_eq!(waiters(&mut c0, "same"), 0);
        // Releasing in database 0 leaves database 2's waiter waiting.
        assert_eq!(release(&mut c0, "same", "holder"), 1);
        assert_eq!(info(&mut c0, "same"), None);
        assert_eq!(waiters(&mut c2, "same"), 1);
        assert_eq!(release(&mut c2, "same", "holder"), 1);
        assert_eq!(h.join().unwrap(), Some(2));
        assert_eq!(info(&mut c2, "same").unwrap()["owner"], "w2");
        assert_eq!(info(&mut c0, "same"), None);
    }
}

#[test]
fn wait_is_a_single_try_inside_multi_and_scripts() {
    for_each_server(|_, mut c| {
        acquire(&mut c, "tx", "holder", 60_000).unwrap();
        let _: i64 = query(&mut c, &["SEM.ACQUIRE", "sem", "a", "1", "60000"]);
        let start = Instant::now();
        let (lock, sem): (Option<i64>, i64) = redis::pipe()
            .atomic()
            .cmd("LOCK.ACQUIRE")
            .arg("tx")
            .arg("other")
            .arg(1000)
            .arg("WAIT")
            .arg(5000)
            .cmd("SEM.ACQUIRE")
            .arg("sem")
            .arg("b")
            .arg(1)
            .arg(1000)
            .arg("WAIT")
            .arg(5000)
            .query(&mut c)
            .unwrap();
        assert_eq!((lock, sem), (None, 0));
        let scripted: Option<i64> = redis::cmd("EVAL")
            .arg("return redis.call('LOCK.ACQUIRE', KEYS[1], 'other', 1000, 'WAIT', 5000)")
            .arg(1)
            .arg("tx")
            .query(&mut c)
            .unwrap();
        assert_eq!(scripted, None);
        assert!(start.elapsed() < Duration::from_secs(3));
        // A free lock is granted there all the same.
        let granted: Option<i64> = redis::cmd("EVAL")
            .arg("return redis.call('LOCK.ACQUIRE', KEYS[1], 'me', 1000, 'WAIT', 5000)")
            .arg(1)
            .arg("free")
            .query(&mut c)
            .unwrap();
        assert_eq!(granted, Some(1));
    });
}

// ---------------------------------------------------------------------------------------------
// Semaphores

#[test]
fn semaphores_grant_limit_permits_and_queue_the_rest_in_order() {
    for_each_server(|server, mut c| {
        let sem = |c: &mut Connection, owner: &str, ttl: &str| -> i64 {
            query(c, &["SEM.ACQUIRE", "pool", owner, "2", ttl])
        };
        assert_eq!(sem(&mut c, "a", "60000"), 1);
        assert_eq!(sem(&mut c, "b", "500"), 1);
        assert_eq!(sem(&mut c, "c", "60000"), 0);
        // A holder asking again keeps its one permit (refreshed).
        assert_eq!(sem(&mut c, "a", "60000"), 1);
        assert_eq!(query::<i64>(&mut c, &["SEM.COUNT", "pool"]), 2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for i in 0..3 {
            let order = order.clone();
            let mut w = server.conn();
            threads.push(spawn(move || {
                let owner = format!("w{i}");
                let got: i64 = query(
                    &mut w,
                    &["SEM.ACQUIRE", "pool", &owner, "2", "60000", "WAIT", "20000"],
                );
                assert_eq!(got, 1);
                order.lock().unwrap().push(i);
            }));
            await_blocked(&server, i + 1);
        }
        // b's permit expires: w0 gets it (the timer at the first permit's end).
        assert!(wait_until(Duration::from_secs(5), || order
            .lock()
            .unwrap()
            .len()
            == 1));
        // a releases: w1 gets it; w2 waits on.
        assert_eq!(query::<i64>(&mut c, &["SEM.RELEASE", "pool", "a"]), 1);
        assert!(wait_until(Duration::from_secs(5), || order
            .lock()
            .unwrap()
            .len()
            == 2));
        assert_eq!(blocked_clients(&server), 1);
        assert_eq!(query::<i64>(&mut c, &["SEM.RELEASE", "pool", "a"]), 0);
        assert_eq!(query::<i64>(&mut c, &["SEM.RELEASE", "pool", "w0"]), 1);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        let holders: BTreeSet<String> = query(&mut c, &["ZRANGE", "pool", "0", "-1"]);
        assert_eq!(
            holders,
            BTreeSet::from(["w1".to_string(), "w2".to_string()])
        );
        // The set expires with its last permit.
        let top: i64 = query(&mut c, &["PEXPIRETIME", "pool"]);
        let scores: Vec<(String, i64)> =
            query(&mut c, &["ZRANGE", "pool", "0", "-1", "WITHSCORES"]);
        assert_eq!(top, scores.iter().map(|(_, s)| *s).max().unwrap());
    });
}

// ---------------------------------------------------------------------------------------------
// Fencing

#[test]
fn a_paused_former_holder_cannot_overwrite_newer_work() {
    for_each_server(|_, mut c| {
        let old = acquire(&mut c, "job", "paused", 100).unwrap();
        sleep(Duration::from_millis(200)); // a GC pause outlives the lease
        let new = acquire(&mut c, "job", "fresh", 10_000).unwrap();
        assert!(new > old);
        let fenced = |c: &mut Connection, token: i64, value: &str| -> i64 {
            query(
                c,
                &[
                    "LOCK.FENCEDHSET",
                    "report",
                    &token.to_string(),
                    "state",
                    value,
                ],
            )
        };
        assert_eq!(fenced(&mut c, new, "fresh work"), 1);
        assert_eq!(fenced(&mut c, old, "stale work"), 0);
        assert_eq!(fenced(&mut c, new, "more fresh work"), 1);
        let state: String = query(&mut c, &["HGET", "report", "state"]);
        assert_eq!(state, "more fresh work");
        assert_eq!(query::<i64>(&mut c, &["HGET", "report", "__fence"]), new);
    });
}

/// Tokens granted so far on `key` and a few more, across expiry and a forced unlock.
fn grant_some(c: &mut Connection, key: &str) -> i64 {
    let mut last = 0;
    for i in 0..5 {
        let t = acquire(c, key, &format!("o{i}"), 60_000).unwrap();
        assert!(t > last);
        last = t;
        match i % 3 {
            0 => assert_eq!(release(c, key, &format!("o{i}")), 1),
            1 => {
                let _: i64 = query(c, &["DEL", key]);
            }
            _ => {
                let _: i64 = query(c, &["PEXPIRE", key, "1"]);
                sleep(Duration::from_millis(5));
            }
        }
    }
    last
}

#[test]
fn fencing_tokens_grow_across_debug_reload_and_aof_restart() {
    for flavor in flavors() {
        let mut server = Server::start_with(
            flavor,
            &[
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "3600 1",
            ],
        );
        let mut c = server.conn();
        let mut last = grant_some(&mut c, "f:{a}");
        let _: () = query(&mut c, &["DEBUG", "RELOAD"]);
        let t = acquire(&mut c, "f:{a}", "after-reload", 100).unwrap();
        assert!(t > last, "{t} after {last}");
        last = t;
        sleep(Duration::from_millis(150));
        drop(c);
        server.restart();
        let mut c = server.conn();
        let t = acquire(&mut c, "f:{a}", "after-restart", 100).unwrap();
        assert!(t > last, "{t} after {last}");
    }
}

#[test]
fn fencing_tokens_grow_on_a_promoted_replica() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut p = pair.primary.conn();
        let last = grant_some(&mut p, "fail:{over}");
        // The last lease is still held when the primary is lost.
        let held = acquire(&mut p, "fail:{over}", "holder", 1000).unwrap();
        assert!(held > last);
        pair.sync();
        let mut r = pair.replica.conn();
        let _: () = query(&mut r, &["REPLICAOF", "NO", "ONE"]);
        sleep(Duration::from_millis(1100));
        let t = acquire(&mut r, "fail:{over}", "new-primary", 1000).unwrap();
        assert!(t > held, "{t} after {held}");
    }
}

// ---------------------------------------------------------------------------------------------
// Replication and AOF

/// A grant made by the expiry timer (no command running) replicates too.
#[test]
fn timer_grants_replicate() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut p = pair.primary.conn();
        acquire(&mut p, "hand", "first", 200).unwrap();
        let (reply, _) = waiter(
            &pair.primary,
            &["LOCK.ACQUIRE", "hand", "second", "60000", "WAIT", "5000"],
        )
        .join()
        .unwrap();
        assert_eq!(token_of(&reply), 2);
        pair.sync();
        let mut r = pair.replica.conn();
        assert_same_key(&mut p, &mut r, "hand", 50, "the timer's grant");
        assert_same_key(&mut p, &mut r, "{hand}:fence", 0, "the timer's grant");
        let owner: String = query(&mut r, &["HGET", "hand", "owner"]);
        assert_eq!(owner, "second");
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    for_each_server(|_, mut c| {
        acquire(&mut c, "held", "me", 60_000).unwrap();
        let _: () = query(&mut c, &["SET", "text", "x"]);
        let _: () = query(&mut c, &["HSET", "plainhash", "a", "1"]);
        let _: () = query(
            &mut c,
            &["HSET", "badtoken", "owner", "x", "token", "0", "holds", "1"],
        );
        let _: () = query(&mut c, &["SET", "{badfence}:fence", "-3"]);
        let _: () = query(&mut c, &["HSET", "fencedbad", "__fence", "x"]);
        let _: () = query(&mut c, &["HSET", "{hashfence}:fence", "a", "1"]);
        let refusals: &Refusals = &[
            (
                &arity("lock.acquire"),
                &[&["LOCK.ACQUIRE", "k", "me"], &["LOCK.ACQUIRE", "k"]],
            ),
            (
                &positive("ttl_ms"),
                &[
                    &["LOCK.ACQUIRE", "k", "me", "0"],
                    &["LOCK.ACQUIRE", "k", "me", "-1"],
                    &["LOCK.ACQUIRE", "k", "me", "1.5"],
                    &["LOCK.ACQUIRE", "k", "me", "9223372036854775808"],
                ],
            ),
            (
                "ERR ttl_ms must be at most 2^52",
                &[&["LOCK.ACQUIRE", "k", "me", "4503599627370497"]],
            ),
            (
                "ERR syntax error",
                &[&["LOCK.ACQUIRE", "k", "me", "10", "WAIT"]],
            ),
            (
                &non_negative("timeout_ms"),
                &[&["LOCK.ACQUIRE", "k", "me", "10", "WAIT", "-1"]],
            ),
            (
                "ERR syntax error",
                &[&["LOCK.ACQUIRE", "k", "me", "10", "NOWAIT"]],
            ),
            (
                "ERR lock name cannot carry its fencing counter in its slot",
                &[&["LOCK.ACQUIRE", "a{b", "me", "10"]],
            ),
            (WRONGTYPE, &[&["LOCK.ACQUIRE", "text", "me", "10"]]),
            (
                "ERR key does not hold a lock",
                &[
                    &["LOCK.ACQUIRE", "plainhash", "me", "10"],
                    &["LOCK.ACQUIRE", "badtoken", "me", "10"],
                ],
            ),
            (
                "ERR the fencing counter is not a non-negative integer",
                &[&["LOCK.ACQUIRE", "badfence", "me", "10"]],
            ),
            (WRONGTYPE, &[&["LOCK.ACQUIRE", "hashfence", "me", "10"]]),
            (
                &arity("lock.release"),
                &[&["LOCK.RELEASE", "k"], &["LOCK.RELEASE", "k", "me", "x"]],
            ),
            (WRONGTYPE, &[&["LOCK.RELEASE", "text", "me"]]),
            (
                "ERR key does not hold a lock",
                &[&["LOCK.RELEASE", "plainhash", "me"]],
            ),
            (&positive("ttl_ms"), &[&["LOCK.EXTEND", "held", "me", "0"]]),
            (
                "ERR ttl_ms must be at most 2^52",
                &[&["LOCK.EXTEND", "held", "me", "4503599627370497"]],
            ),
            (
                WRONGTYPE,
                &[&["LOCK.EXTEND", "text", "me", "10"], &["LOCK.INFO", "text"]],
            ),
            (&arity("lock.info"), &[&["LOCK.INFO", "k", "x"]]),
            (
                &arity("lock.fencedhset"),
                &[
                    &["LOCK.FENCEDHSET", "r", "1", "f"],
                    &["LOCK.FENCEDHSET", "r", "1"],
                ],
            ),
            (
                &positive("token"),
                &[&["LOCK.FENCEDHSET", "r", "0", "f", "v"]],
            ),
            (
                "ERR field names starting with __ are reserved",
                &[&["LOCK.FENCEDHSET", "r", "1", "__fence", "9"]],
            ),
            (WRONGTYPE, &[&["LOCK.FENCEDHSET", "text", "1", "f", "v"]]),
            (
                "ERR the resource's __fence is not a positive integer",
                &[&["LOCK.FENCEDHSET", "fencedbad", "1", "f", "v"]],
            ),
            (&arity("sem.acquire"), &[&["SEM.ACQUIRE", "s", "me", "1"]]),
            (
                &positive("limit"),
                &[&["SEM.ACQUIRE", "s", "me", "0", "10"]],
            ),
            (
                &positive("ttl_ms"),
                &[&["SEM.ACQUIRE", "s", "me", "1", "x"]],
            ),
            (
                "ERR ttl_ms must be at most 2^52",
                &[&["SEM.ACQUIRE", "s", "me", "1", "4503599627370497"]],
            ),
            (
                &non_negative("timeout_ms"),
                &[&["SEM.ACQUIRE", "s", "me", "1", "10", "WAIT", "x"]],
            ),
            (
                WRONGTYPE,
                &[
                    &["SEM.ACQUIRE", "text", "me", "1", "10"],
                    &["SEM.RELEASE", "plainhash", "me"],
                    &["SEM.COUNT", "text"],
                ],
            ),
            (&arity("sem.count"), &[&["SEM.COUNT", "s", "x"]]),
        ];
        let before = snapshot(&mut c);
        assert_refusals(&mut c, refusals);
        assert_same_state(&before, &snapshot(&mut c), 100);
        // Absent keys: nil and 0, nothing created.
        assert_eq!(release(&mut c, "nope", "me"), 0);
        assert_eq!(
            query::<i64>(&mut c, &["LOCK.EXTEND", "nope", "me", "10"]),
            0
        );
        assert_eq!(info(&mut c, "nope"), None);
        assert_eq!(query::<i64>(&mut c, &["SEM.RELEASE", "nope", "me"]), 0);
        assert_eq!(query::<i64>(&mut c, &["SEM.COUNT", "nope"]), 0);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "nope", "{nope}:fence"]), 0);
        // Another owner's lock: nothing released or extended.
        assert_eq!(release(&mut c, "held", "intruder"), 0);
        assert_eq!(
            query::<i64>(&mut c, &["LOCK.EXTEND", "held", "intruder", "10"]),
            0
        );
        assert_same_state(&before, &snapshot(&mut c), 100);
    });
}

// ---------------------------------------------------------------------------------------------
// The Lua twin

#[test]
fn the_twin_refuses_wait() {
    for_each_twin(|_, mut c| {
        for args in [
            vec![
                "FCALL",
                "lock_acquire",
                "1",
                "k",
                "me",
                "1000",
                "WAIT",
                "10",
            ],
            vec![
                "FCALL",
                "sem_acquire",
                "1",
                "k",
                "me",
                "1",
                "1000",
                "WAIT",
                "0",
            ],
        ] {
            assert_eq!(error_of(&mut c, &args), l::lua::NO_WAIT_IN_TWIN);
        }
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "k"]), 0);
    });
}

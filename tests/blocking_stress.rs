//! Blocking under stress (issue 11), on every flavor: 200 waiters on one lock, 200 on one
//! semaphore and 200 on one read/write lock (both modes) while a seeded chaos thread kills waiting clients, unblocks them (`CLIENT UNBLOCK`,
//! timeout and error), flushes (`FLUSHALL`), reloads (`DEBUG RELOAD`) and turns the server into a
//! replica and back (`REPLICAOF`), and waiters time out on their own deadlines. Asserts that
//! every waiter is answered exactly once (granted, nil/0, or an error; a dropped connection only
//! for a killed client), that nil comes only from a deadline or CLIENT UNBLOCK, that no token is
//! granted twice between two flushes, and that nobody is left waiting. `PATTERNS_STRESS_SEED`
//! replays a run (the seed is printed).

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{sleep, spawn, JoinHandle};
use std::time::{Duration, Instant};

const WAITERS: usize = 200;
const CHAOS: Duration = Duration::from_secs(2);
/// A waiter still unanswered this long after sending is left behind.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Lock,
    Sem,
    Rw,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Granted(i64),
    Denied,
    Error(String),
    /// The connection failed (killed, or no reply within REPLY_TIMEOUT).
    Io(String),
}

struct Waiter {
    id: i64,
    wait_ms: i64,
    done: Arc<AtomicBool>,
    handle: JoinHandle<(Outcome, Result<(), String>)>,
}

/// The acquisition of a 500 ms lease (`ttl` when given, without WAIT).
fn acquire_args(kind: Kind, owner: &str, wait_ms: i64, ttl: Option<&str>) -> Vec<String> {
    let mut args: Vec<&str> = match kind {
        Kind::Lock => vec!["LOCK.ACQUIRE", "L", owner, ttl.unwrap_or("500")],
        Kind::Sem => vec!["SEM.ACQUIRE", "S", owner, "2", ttl.unwrap_or("500")],
        Kind::Rw => vec![
            "RWLOCK.ACQUIRE",
            "RW",
            owner,
            ttl.unwrap_or("500"),
            rw_mode(owner),
        ],
    };
    let wait = wait_ms.to_string();
    if ttl.is_none() {
        args.extend(["WAIT", &wait]);
    }
    args.into_iter().map(String::from).collect()
}

/// A read/write lock owner's mode: owners whose last digit is a multiple of 3 write.
fn rw_mode(owner: &str) -> &'static str {
    match owner.bytes().last() {
        Some(b'0' | b'3' | b'6' | b'9') => "WRITE",
        _ => "READ",
    }
}

fn release_args(kind: Kind, owner: &str) -> Vec<String> {
    let args = match kind {
        Kind::Lock => ["LOCK.RELEASE", "L", owner],
        Kind::Sem => ["SEM.RELEASE", "S", owner],
        Kind::Rw => ["RWLOCK.RELEASE", "RW", owner],
    };
    args.into_iter().map(String::from).collect()
}

fn run(c: &mut Connection, args: &[String]) -> redis::RedisResult<Value> {
    redis::cmd(&args[0]).arg(&args[1..]).query(c)
}

fn classify(kind: Kind, reply: redis::RedisResult<Value>) -> Outcome {
    match reply {
        Ok(Value::Int(n)) if n >= 1 => Outcome::Granted(n),
        Ok(Value::Nil) if kind != Kind::Sem => Outcome::Denied,
        Ok(Value::Int(0)) if kind == Kind::Sem => Outcome::Denied,
        Ok(other) => Outcome::Error(format!("unexpected reply {other:?}")),
        Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
            Outcome::Io(e.to_string())
        }
        Err(e) => Outcome::Error(format!(
            "{} {}",
            e.code().unwrap_or(""),
            e.detail().unwrap_or("")
        )),
    }
}

/// One waiter in its own thread: acquire with WAIT, hold a granted lease for `hold`, release,
/// then PING: the answer must be PONG (a second reply to the acquire would come first).
fn start_waiter(server: &Server, kind: Kind, i: usize, wait_ms: i64, hold: Duration) -> Waiter {
    let mut c = server.conn();
    c.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let id: i64 = query(&mut c, &["CLIENT", "ID"]);
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let owner = format!("w{i}");
    let handle = spawn(move || {
        let outcome = classify(
            kind,
            run(&mut c, &acquire_args(kind, &owner, wait_ms, None)),
        );
        flag.store(true, Ordering::SeqCst);
        if matches!(outcome, Outcome::Io(_)) {
            return (outcome, Ok(()));
        }
        if matches!(outcome, Outcome::Granted(_)) {
            sleep(hold);
            // Refused on a replica, or after a flush: the lease simply ends.
            let _ = run(&mut c, &release_args(kind, &owner));
        }
        let pong = match redis::cmd("PING").query::<String>(&mut c) {
            Ok(p) if p == "PONG" => Ok(()),
            Ok(p) => Err(format!("PING got {p:?}")),
            // Killed after its reply: nothing more to read.
            Err(e) if e.is_io_error() || e.is_connection_dropped() => Ok(()),
            Err(e) => Err(format!("PING got {e}")),
        };
        (outcome, pong)
    });
    Waiter {
        id,
        wait_ms,
        done,
        handle,
    }
}

fn blocked_clients(server: &Server) -> usize {
    server
        .info_value("clients", "blocked_clients")
        .unwrap()
        .parse()
        .unwrap()
}

/// What the chaos thread did to whom.
#[derive(Default)]
struct Chaos {
    killed: BTreeSet<i64>,
    unblocked: BTreeSet<i64>,
    flushes: usize,
    events: BTreeMap<&'static str, usize>,
}

fn chaos(server: &Server, rng: &mut StdRng, kind: Kind, waiters: &[Waiter]) -> Chaos {
    let mut k = server.conn();
    let mut done = Chaos::default();
    // Free the holders first, so grants flow while everything else happens.
    for holder in ["h1", "h2"] {
        let _ = run(&mut k, &release_args(kind, holder));
    }
    let start = Instant::now();
    while start.elapsed() < CHAOS {
        sleep(Duration::from_millis(rng.gen_range(5..30)));
        let waiting: Vec<i64> = waiters
            .iter()
            .filter(|w| !w.done.load(Ordering::SeqCst))
            .map(|w| w.id)
            .collect();
        let target = (!waiting.is_empty()).then(|| waiting[rng.gen_range(0..waiting.len())]);
        // REPLICAOF cancels every wait at once: rarer, so the others have clients to hit.
        let event = match rng.gen_range(0..100) {
            0..=34 => "kill",
            35..=69 => "unblock",
            70..=79 => "flushall",
            80..=89 => "debug reload",
            90..=92 => "replicaof",
            _ => "nothing",
        };
        match (event, target) {
            ("kill", Some(id)) => {
                let _: Value = query(&mut k, &["CLIENT", "KILL", "ID", &id.to_string()]);
                done.killed.insert(id);
            }
            ("unblock", Some(id)) => {
                let mode = if rng.gen_bool(0.5) {
                    "TIMEOUT"
                } else {
                    "ERROR"
                };
                let n: i64 = query(&mut k, &["CLIENT", "UNBLOCK", &id.to_string(), mode]);
                if n == 1 {
                    done.unblocked.insert(id);
                }
            }
            ("flushall", _) => {
                let _: () = query(&mut k, &["FLUSHALL"]);
                done.flushes += 1;
            }
            ("debug reload", _) => {
                let _: () = query(&mut k, &["DEBUG", "RELOAD"]);
            }
            ("replicaof", _) => {
                // A primary that never answers: the server is a replica until NO ONE.
                let port = free_port().to_string();
                let _: () = query(&mut k, &["REPLICAOF", "127.0.0.1", &port]);
                sleep(Duration::from_millis(rng.gen_range(5..30)));
                let _: () = query(&mut k, &["REPLICAOF", "NO", "ONE"]);
            }
            _ => continue,
        }
        *done.events.entry(event).or_insert(0) += 1;
    }
    done
}

fn stress(flavor: Flavor, kind: Kind, seed: u64) {
    let server = Server::start(flavor);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = server.conn();
    let holders: &[&str] = match kind {
        Kind::Lock => &["h1"],
        Kind::Sem | Kind::Rw => &["h1", "h2"],
    };
    for holder in holders {
        let granted = run(&mut c, &acquire_args(kind, holder, 0, Some("60000")));
        assert!(
            matches!(granted, Ok(Value::Int(n)) if n >= 1),
            "{granted:?}"
        );
    }
    // Queue the waiters one by one (the server's order is theirs).
    let mut waiters: Vec<Waiter> = Vec::with_capacity(WAITERS);
    for i in 0..WAITERS {
        let wait_ms = if rng.gen_bool(0.25) {
            0
        } else {
            rng.gen_range(300..2500)
        };
        // Holds of a few ms: the queue drains over about the chaos's length.
        let hold = Duration::from_millis(rng.gen_range(3..15));
        waiters.push(start_waiter(&server, kind, i, wait_ms, hold));
        assert!(
            wait_until(Duration::from_secs(10), || {
                let finished = waiters
                    .iter()
                    .filter(|w| w.done.load(Ordering::SeqCst))
                    .count();
                blocked_clients(&server) + finished > i
            }),
            "{} {kind:?}: waiter {i} never blocked",
            flavor.name()
        );
    }
    let done = chaos(&server, &mut rng, kind, &waiters);
    let context = format!(
        "{} {kind:?} seed {seed}: {:?}, {} killed, {} unblocked",
        flavor.name(),
        done.events,
        done.killed.len(),
        done.unblocked.len()
    );
    let mut outcomes = Vec::with_capacity(WAITERS);
    for w in waiters {
        let (outcome, pong) = w.handle.join().expect("waiter thread");
        if let Err(e) = pong {
            panic!("{context}: client {} answered twice? {e}", w.id);
        }
        match &outcome {
            Outcome::Io(e) => assert!(
                done.killed.contains(&w.id),
                "{context}: client {} (WAIT {}) got no reply: {e}",
                w.id,
                w.wait_ms
            ),
            Outcome::Denied => assert!(
                w.wait_ms > 0 || done.unblocked.contains(&w.id),
                "{context}: client {} (WAIT 0) denied without CLIENT UNBLOCK",
                w.id
            ),
            Outcome::Error(e) => assert!(
                e.starts_with("UNBLOCKED") || e.starts_with("READONLY"),
                "{context}: client {}: {e}",
                w.id
            ),
            Outcome::Granted(_) => {}
        }
        outcomes.push(outcome);
    }
    if kind == Kind::Lock {
        // Tokens restart only with the fencing counter, which FLUSHALL deletes.
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for o in &outcomes {
            if let Outcome::Granted(token) = o {
                *seen.entry(*token).or_insert(0) += 1;
            }
        }
        for (token, n) in seen {
            assert!(
                n <= done.flushes + 1,
                "{context}: token {token} granted {n} times"
            );
        }
    }
    let granted = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Granted(_)))
        .count();
    assert!(granted > 0, "{context}: nobody was granted anything");
    // Nobody left behind.
    assert!(
        wait_until(Duration::from_secs(5), || blocked_clients(&server) == 0),
        "{context}: {} clients still blocked",
        blocked_clients(&server)
    );
    eprintln!("{context}: {granted} granted of {WAITERS}");
}

#[test]
fn every_waiter_is_answered_once_under_chaos() {
    let seed = std::env::var("PATTERNS_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(11);
    eprintln!("blocking stress seed {seed} (PATTERNS_STRESS_SEED replays it)");
    for flavor in flavors() {
        for kind in [Kind::Lock, Kind::Sem, Kind::Rw] {
            stress(flavor, kind, seed);
        }
    }
}

/// The fuzzer's pipelined trap for lost replies: thousands of 1 ms waits on held locks and
/// semaphores in one pipeline. Every wait must be answered (nil, or 0 for a semaphore) while
/// the holders keep their leases; before the module kept deadlines itself, a reply was lost
/// after a few hundred pairs on Redis 7.0 and Valkey 8.0 and the client hung.
#[test]
fn pipelined_short_waits_on_held_keys_are_all_answered() {
    const PAIRS: usize = 2000;
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut pipe = redis::pipe();
        for i in 0..PAIRS {
            let (lock, sem) = (format!("w{i}"), format!("s{i}"));
            pipe.cmd("LOCK.ACQUIRE").arg(&lock).arg("a").arg(100_000);
            pipe.cmd("LOCK.ACQUIRE")
                .arg(&lock)
                .arg("b")
                .arg(10_000)
                .arg("WAIT")
                .arg(1);
            pipe.cmd("SEM.ACQUIRE")
                .arg(&sem)
                .arg("a")
                .arg(1)
                .arg(100_000);
            pipe.cmd("SEM.ACQUIRE")
                .arg(&sem)
                .arg("b")
                .arg(1)
                .arg(10_000)
                .arg("WAIT")
                .arg(1);
        }
        let replies: Vec<Value> = pipe
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{}: a waiter's reply was lost: {e}", flavor.name()));
        for (i, four) in replies.chunks(4).enumerate() {
            assert_eq!(
                four,
                [Value::Int(1), Value::Nil, Value::Int(1), Value::Int(0)],
                "{}: pair {i}",
                flavor.name()
            );
        }
        let owner: String = redis::cmd("LOCK.INFO")
            .arg("w0")
            .query::<Vec<String>>(&mut c)
            .unwrap()
            .into_iter()
            .nth(1)
            .unwrap();
        assert_eq!(owner, "a", "{}: the holder keeps its lock", flavor.name());
    });
}

/// Sends `commands` (RESP2 arrays) on a raw connection and returns what the server wrote back
/// up to and including the `+PONG` of a final PING (a RESP3 client in subscribed mode is a
/// push connection the typed client cannot drive).
fn raw_exchange(server: &Server, commands: &[&[&str]]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    for args in commands.iter().chain([&["PING"][..]].iter()) {
        out.extend(format!("*{}\r\n", args.len()).bytes());
        for a in *args {
            out.extend(format!("${}\r\n{a}\r\n", a.len()).bytes());
        }
    }
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"+PONG\r\n") {
        let n = s.read(&mut buf).expect("the server answers every command");
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Valkey 8.1 refuses to block a client that is not a plain one (a RESP3 client in subscribed
/// mode) and returns no handle: waiting commands then try once, as inside MULTI, instead of
/// failing with an internal error. Elsewhere the client waits its timeout; either way it gets
/// the "nothing" reply, once.
#[test]
fn a_client_the_server_will_not_block_tries_once() {
    for_each_server(|server, mut c| {
        let _: Value = query(&mut c, &["LOCK.ACQUIRE", "l", "holder", "60000"]);
        let _: Value = query(&mut c, &["SEM.ACQUIRE", "s", "holder", "1", "60000"]);
        let _: Value = query(
            &mut c,
            &["RWLOCK.ACQUIRE", "rw", "holder", "60000", "WRITE"],
        );
        let waits: [(&[&str], &str); 4] = [
            (&["LOCK.ACQUIRE", "l", "w", "1000", "WAIT", "100"], "_\r\n"),
            (
                &["SEM.ACQUIRE", "s", "w", "1", "1000", "WAIT", "100"],
                ":0\r\n",
            ),
            (
                &["RWLOCK.ACQUIRE", "rw", "w", "1000", "READ", "WAIT", "100"],
                "_\r\n",
            ),
            (&["QUEUE.POP", "q", "g", "c1", "BLOCK", "100"], "_\r\n"),
        ];
        for (wait, nothing) in waits {
            let got = raw_exchange(&server, &[&["HELLO", "3"], &["SUBSCRIBE", "ch"], wait]);
            assert!(
                got.ends_with(&format!("{nothing}+PONG\r\n")),
                "{} on {}: {got:?}",
                wait.join(" "),
                server.flavor().name()
            );
        }
        await_blocked(&server, 0);
        assert_eq!(query::<i64>(&mut c, &["SEM.COUNT", "s"]), 1);
    });
}

/// A timeout at i64's end (or close enough that the server's `now + timeout` would overflow)
/// waits like no limit and is granted. The module keeps deadlines itself and blocks with no
/// server timeout: given one, Valkey 8.1 refuses it ("timeout is out of range") with the client
/// left unblocked but a handle returned, and the grant that followed unblocked a client that
/// was not blocked ("Unknown btype in unblockClient()": the server crashed).
#[test]
fn a_wait_at_i64s_end_blocks_until_granted() {
    for_each_server(|server, mut c| {
        for timeout in [i64::MAX, i64::MAX - 1_000_000].map(|t| t.to_string()) {
            let t = timeout.as_str();
            let waits: [(&[&str], &[&str], &[&str]); 4] = [
                (
                    &["DEL", "q"],
                    &["QUEUE.POP", "q", "g", "c1", "BLOCK", t],
                    &["QUEUE.PUSH", "q", "job"],
                ),
                (
                    &["LOCK.ACQUIRE", "l", "holder", "60000"],
                    &["LOCK.ACQUIRE", "l", "w", "1000", "WAIT", t],
                    &["LOCK.RELEASE", "l", "holder"],
                ),
                (
                    &["SEM.ACQUIRE", "s", "holder", "1", "60000"],
                    &["SEM.ACQUIRE", "s", "w", "1", "1000", "WAIT", t],
                    &["SEM.RELEASE", "s", "holder"],
                ),
                (
                    &["RWLOCK.ACQUIRE", "rw", "holder", "60000", "WRITE"],
                    &["RWLOCK.ACQUIRE", "rw", "w", "1000", "READ", "WAIT", t],
                    &["RWLOCK.RELEASE", "rw", "holder"],
                ),
            ];
            for (hold, wait, free) in waits {
                let _: Value = query(&mut c, hold);
                let mut w = server.conn();
                let wait: Vec<String> = wait.iter().map(|a| a.to_string()).collect();
                let h = spawn(move || run(&mut w, &wait));
                await_blocked(&server, 1);
                let _: Value = query(&mut c, free);
                let reply = h.join().unwrap();
                let granted = match &reply {
                    Ok(Value::Int(n)) => *n > 0,
                    Ok(Value::Array(jobs)) => !jobs.is_empty(),
                    _ => false,
                };
                assert!(granted, "{} WAIT {t}: {reply:?}", server.flavor().name());
                let pong: String = query(&mut c, &["PING"]);
                assert_eq!(pong, "PONG");
            }
            let _: () = query(&mut c, &["FLUSHALL"]);
        }
    });
}

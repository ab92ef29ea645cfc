//! Failover under Redis Sentinel (Debian's `redis-sentinel`): a primary, two replicas and three
//! sentinels on loopback ports, all servers with the module, for every flavor of server. In the middle of a mixed workload
//! the primary freezes (SIGSTOP: to the sentinels, a dead machine); once a replica is promoted
//! it resumes, and the sentinels turn it into a replica of the new primary.
//!
//! Asserted: a fencing token acknowledged with `WAIT 1` is never granted again by the new
//! primary; clients waiting on the old primary (`LOCK.ACQUIRE`/`SEM.ACQUIRE ... WAIT 0`) get an
//! error reply, neither a grant nor a hang; sessions, leaderboard entries and cache entries
//! acknowledged with `WAIT 1` are readable on the new primary.

mod common;

use common::*;
use redis::{Connection, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const MASTER: &str = "mymaster";
/// How long the sentinels may take to see the whole set-up, and to fail over.
const SENTINEL_TIMEOUT: Duration = Duration::from_secs(40);
/// A `WAIT 1` deadline: an acknowledgement within it means a replica has the write.
const ACK_MS: i64 = 1000;

/// One `redis-sentinel` process with its own config file (which it rewrites) and dir.
struct Sentinel {
    port: u16,
    dir: PathBuf,
    child: Child,
}

impl Sentinel {
    fn start(primary_port: u16) -> Sentinel {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("patterns-sentinel-{}-{port}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel.log\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 5000\n\
                 sentinel parallel-syncs {MASTER} 2\n",
                dir = dir.display()
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run redis-sentinel (scripts/install-deps.sh installs it)");
        Sentinel { port, dir, child }
    }

    fn conn(&self) -> Option<Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).ok()?;
        let c = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        Some(c)
    }

    /// `SENTINEL MASTER mymaster` as field → value.
    fn master(&self) -> Option<BTreeMap<String, String>> {
        let fields: Vec<String> = redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(MASTER)
            .query(&mut self.conn()?)
            .ok()?;
        Some(
            fields
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        )
    }

    /// The port of the primary this sentinel names.
    fn primary_port(&self) -> Option<u16> {
        let (_, port): (String, String) = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query(&mut self.conn()?)
            .ok()?;
        port.parse().ok()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("[sentinel {}] log:\n{}", self.port, self.log());
        }
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Resumes a stopped server, also when the test fails while it is stopped.
struct Frozen(i32);

impl Frozen {
    fn freeze(server: &Server) -> Frozen {
        let pid: i32 = server
            .info_value("server", "process_id")
            .and_then(|p| p.parse().ok())
            .expect("process_id");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Waits until every sentinel knows the primary, both replicas and the two other sentinels.
fn wait_for_sentinels(sentinels: &[Sentinel]) {
    let ready = wait_until(SENTINEL_TIMEOUT, || {
        sentinels.iter().all(|s| {
            s.master().is_some_and(|m| {
                m.get("num-slaves").map(String::as_str) == Some("2")
                    && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                    && m.get("flags").map(String::as_str) == Some("master")
            })
        })
    });
    assert!(
        ready,
        "the sentinels never saw the whole set-up:\n{}",
        sentinels[0].log()
    );
}

/// What the workload wrote and had acknowledged by a replica (`WAIT 1` >= 1).
#[derive(Default)]
struct Acked {
    /// Per lock, the highest token acknowledged.
    tokens: BTreeMap<String, i64>,
    /// Session keys with their `user` field.
    sessions: Vec<(String, String)>,
    /// (board, member, score)
    scores: Vec<(String, String, i64)>,
    /// (key, value)
    cached: Vec<(String, String)>,
    /// Calls, acknowledged or not.
    calls: u64,
}

fn wait_ack(c: &mut Connection) -> redis::RedisResult<bool> {
    let n: i64 = redis::cmd("WAIT").arg(1).arg(ACK_MS).query(c)?;
    Ok(n >= 1)
}

/// One round of the mixed workload: a lock, a session, a score and a cache entry, each
/// recorded when a replica acknowledged it.
fn workload_round(c: &mut Connection, i: u64, acked: &Mutex<Acked>) -> redis::RedisResult<()> {
    let lock = format!("lock:{}", i % 4);
    let token: Option<i64> = redis::cmd("LOCK.ACQUIRE")
        .arg(&lock)
        .arg(format!("w{i}"))
        .arg(150)
        .arg("WAIT")
        .arg(500)
        .query(c)?;
    let session: String = redis::cmd("SESSION.CREATE")
        .arg("sessions:{u}")
        .arg(600_000)
        .arg(3_600_000)
        .arg("user")
        .arg(i)
        .query(c)?;
    let board = format!("board:{}", i % 3);
    let _: Value = redis::cmd("LB.ADD")
        .arg(&board)
        .arg(i as i64 * 7)
        .arg(format!("m{i}"))
        .query(c)?;
    let _: Value = redis::cmd("CACHE.SET")
        .arg(format!("page:{i}"))
        .arg(format!("v{i}"))
        .arg(600_000)
        .arg("TAGS")
        .arg(format!("tag:{}", i % 5))
        .query(c)?;
    if wait_ack(c)? {
        let mut a = acked.lock().unwrap();
        if let Some(t) = token {
            let max = a.tokens.entry(lock).or_insert(0);
            *max = (*max).max(t);
        }
        a.sessions.push((session, i.to_string()));
        a.scores.push((board, format!("m{i}"), i as i64 * 7));
        a.cached.push((format!("page:{i}"), format!("v{i}")));
    }
    acked.lock().unwrap().calls += 1;
    Ok(())
}

/// A client blocked on the old primary; its one reply.
fn waiter(server: &Server, args: Vec<String>) -> thread::JoinHandle<redis::RedisResult<Value>> {
    let client = server.client();
    thread::spawn(move || {
        let mut c = client.get_connection_with_timeout(Duration::from_secs(5))?;
        c.set_read_timeout(Some(SENTINEL_TIMEOUT + Duration::from_secs(20)))?;
        redis::cmd(&args[0]).arg(&args[1..]).query::<Value>(&mut c)
    })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Every flavor's servers, watched by Debian's `redis-sentinel`, one after the other.
#[test]
fn failover_keeps_acknowledged_state_and_answers_waiters() {
    for flavor in flavors() {
        failover(flavor);
    }
}

fn failover(flavor: Flavor) {
    let old = Server::start(flavor);
    let replica_of = ["--replicaof", "127.0.0.1", &old.port().to_string()].map(String::from);
    let replica_args: Vec<&str> = replica_of.iter().map(String::as_str).collect();
    let replicas = [
        Server::start_with(flavor, &replica_args),
        Server::start_with(flavor, &replica_args),
    ];
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(old.port())).collect();
    wait_for_sentinels(&sentinels);

    // Waiters on the old primary: a lock and a one-permit semaphore held for a minute.
    let mut c = old.conn();
    let _: i64 = query(&mut c, &["LOCK.ACQUIRE", "wl", "holder", "60000"]);
    let _: i64 = query(&mut c, &["SEM.ACQUIRE", "ws", "holder", "1", "60000"]);
    let mut waiters: Vec<_> = (0..3)
        .map(|i| {
            waiter(
                &old,
                strings(&["LOCK.ACQUIRE", "wl", &format!("w{i}"), "60000", "WAIT", "0"]),
            )
        })
        .collect();
    waiters.extend((0..2).map(|i| {
        waiter(
            &old,
            strings(&[
                "SEM.ACQUIRE",
                "ws",
                &format!("s{i}"),
                "1",
                "60000",
                "WAIT",
                "0",
            ]),
        )
    }));
    assert!(
        wait_until(Duration::from_secs(10), || old
            .info_value("clients", "blocked_clients")
            .as_deref()
            == Some("5")),
        "the waiters never blocked"
    );

    // The mixed workload, until the primary stops answering.
    let acked = Arc::new(Mutex::new(Acked::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let workload = {
        let (acked, stop, client) = (acked.clone(), stop.clone(), old.client());
        thread::spawn(move || {
            let mut c = client
                .get_connection_with_timeout(Duration::from_secs(5))
                .expect("workload connection");
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) && workload_round(&mut c, i, &acked).is_ok() {
                i += 1;
            }
        })
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            let a = acked.lock().unwrap();
            a.tokens.len() == 4 && a.sessions.len() >= 30
        }),
        "the workload made no progress"
    );

    let frozen = Frozen::freeze(&old);
    let promoted = wait_until(SENTINEL_TIMEOUT, || {
        sentinels
            .iter()
            .all(|s| s.primary_port().is_some_and(|p| p != old.port()))
    });
    assert!(
        promoted,
        "no failover within {SENTINEL_TIMEOUT:?}:\n{}",
        sentinels[0].log()
    );
    let new_port = sentinels[0].primary_port().unwrap();
    let new = replicas
        .iter()
        .find(|r| r.port() == new_port)
        .expect("a replica was promoted");
    stop.store(true, Ordering::Relaxed);
    drop(frozen);

    // The old primary rejoins as a replica: every waiter gets an error, none a grant or a hang.
    // Sentinel's reconfiguration ends with CLIENT KILL TYPE normal, which may close a waiter's
    // connection before its error reply is written: that is an error too, a timeout is not.
    for w in waiters {
        match w.join().expect("waiter thread") {
            Ok(Value::ServerError(e)) => {
                let code = e.code().to_string();
                assert!(
                    code == "UNBLOCKED" || code == "READONLY",
                    "waiter error {e:?}"
                );
            }
            Err(e) if e.is_connection_dropped() || (e.is_io_error() && !e.is_timeout()) => {}
            other => panic!("a waiter on the old primary got {other:?}, not an error"),
        }
    }
    workload.join().expect("workload thread");
    let acked = acked.lock().unwrap();
    assert!(!acked.sessions.is_empty(), "nothing was acknowledged");

    let mut n = new.conn();
    // Fencing: the new primary goes on from every acknowledged token.
    for (lock, &max) in &acked.tokens {
        let token: Option<i64> = redis::cmd("LOCK.ACQUIRE")
            .arg(lock)
            .arg("after-failover")
            .arg(1000)
            .arg("WAIT")
            .arg(5000)
            .query(&mut n)
            .unwrap();
        let token = token.unwrap_or_else(|| panic!("{lock} was never free on the new primary"));
        assert!(
            token > max,
            "{lock}: token {token} granted again after failover (acknowledged up to {max})"
        );
    }
    for (session, user) in &acked.sessions {
        let fields: Vec<String> = query(&mut n, &["SESSION.GET", session]);
        assert!(
            fields.windows(2).any(|w| w[0] == "user" && &w[1] == user),
            "{session}: {fields:?}"
        );
    }
    for (board, member, score) in &acked.scores {
        let got: Option<i64> = query(&mut n, &["ZSCORE", board, member]);
        assert_eq!(got, Some(*score), "{board} {member}");
    }
    for (key, value) in &acked.cached {
        let reply: Vec<Option<String>> = query(&mut n, &["CACHE.GET", key]);
        assert_eq!(reply[0].as_deref(), Some("HIT"), "{key}: {reply:?}");
        assert_eq!(reply[1].as_deref(), Some(value.as_str()), "{key}");
    }
    eprintln!(
        "failover on {}: {} workload rounds, {} acknowledged; {} locks, new primary {}",
        flavor.name(),
        acked.calls,
        acked.sessions.len(),
        acked.tokens.len(),
        new.addr()
    );
}

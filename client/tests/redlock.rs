//! Redlock on real servers with the module loaded (Redis 7.0 and Valkey 8.0): five instances,
//! some of them stopped, one that accepts connections and never answers.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::*;
use patterns_redlock::{
    AcquireError, Config, ExtendError, Fence, Lock, RedisInstance, Redlock, ReleaseError,
};
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Once;
use std::thread::sleep;
use std::time::{Duration, Instant};

const RESOURCE: &str = "orders:{42}";
/// Per-instance timeout: generous for a loaded test machine, small next to the TTLs used.
const TIMEOUT: Duration = Duration::from_millis(300);

/// The harness finds the module relative to the crate being tested; this crate sits one level
/// below the workspace, whose target/ holds it. `make integration` sets the variable itself.
fn use_workspace_module() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("PATTERNS_MODULE").is_none() {
            let module = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/release/libredis_patterns.so");
            // Every test calls this before starting a server, so no thread reads it meanwhile.
            std::env::set_var("PATTERNS_MODULE", module);
        }
    });
}

fn start(flavor: Flavor, n: usize) -> Vec<Option<Server>> {
    use_workspace_module();
    (0..n).map(|_| Some(Server::start(flavor))).collect()
}

fn no_retries() -> Config {
    Config {
        retry_count: 0,
        ..Config::default()
    }
}

fn redlock(urls: &[String], config: Config) -> Redlock<RedisInstance> {
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    Redlock::connect(&urls, TIMEOUT, config).unwrap()
}

fn urls(servers: &[Option<Server>]) -> Vec<String> {
    servers
        .iter()
        .map(|s| s.as_ref().expect("running").url())
        .collect()
}

/// Stops the servers at `indices` (SHUTDOWN NOSAVE): their ports refuse connections from now on.
fn stop(servers: &mut [Option<Server>], indices: &[usize]) {
    for &i in indices {
        drop(servers[i].take());
    }
}

/// `LOCK.INFO` as field -> value, `None` when the lock is free.
fn info(server: &Server) -> Option<HashMap<String, String>> {
    query(&mut server.conn(), &["LOCK.INFO", RESOURCE])
}

fn live(servers: &[Option<Server>]) -> impl Iterator<Item = (usize, &Server)> {
    servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
}

/// Each live server holds the lock for `lock`'s owner with the token the lock reports.
fn assert_held(servers: &[Option<Server>], lock: &Lock) {
    let instances: Vec<usize> = lock.tokens().iter().map(|t| t.instance).collect();
    let live_indices: Vec<usize> = live(servers).map(|(i, _)| i).collect();
    assert_eq!(instances, live_indices);
    for token in lock.tokens() {
        let server = servers[token.instance].as_ref().unwrap();
        let info = info(server).expect("held");
        assert_eq!(info["owner"], lock.owner());
        assert_eq!(info["token"], token.token.to_string());
        assert_eq!(info["holds"], "1");
    }
}

fn assert_free(servers: &[Option<Server>]) {
    for (i, server) in live(servers) {
        assert_eq!(info(server), None, "instance {i} still holds the lock");
    }
}

#[test]
fn five_instances_two_stopped_acquire_exclude_extend_release() {
    for flavor in flavors() {
        let mut servers = start(flavor, 5);
        let urls = urls(&servers);
        stop(&mut servers, &[1, 3]);
        let mut a = redlock(&urls, no_retries());
        let mut b = redlock(&urls, no_retries());

        let ttl_ms = 10_000;
        let mut lock_a = a.acquire(RESOURCE, ttl_ms).unwrap();
        assert_held(&servers, &lock_a);
        assert!(lock_a.validity_ms() > 0 && lock_a.validity_ms() <= ttl_ms - a.drift_ms(ttl_ms));

        match b.acquire(RESOURCE, ttl_ms) {
            Err(AcquireError::NotAcquired { attempts: 1, last }) => {
                assert_eq!(last.succeeded, 0);
                assert_eq!(last.refused + last.failed.len(), 3, "{last}");
            }
            other => panic!("{flavor:?}: a second owner got {other:?}"),
        }
        assert_held(&servers, &lock_a);

        // Extend to a longer TTL: every live copy now has more than the old TTL left.
        a.extend(&mut lock_a, 60_000).unwrap();
        for (i, server) in live(&servers) {
            let ttl: u64 = info(server).unwrap()["ttl"].parse().unwrap();
            assert!(ttl > ttl_ms && ttl <= 60_000, "instance {i}: ttl {ttl}");
        }
        assert!(a.remaining_ms(&lock_a) > ttl_ms);

        let tally = a.release(&lock_a).unwrap();
        assert_eq!((tally.succeeded, tally.failed.len()), (3, 2), "{tally}");
        assert_free(&servers);

        // Now the second owner gets it, with newer tokens on every instance, and the fence
        // refuses the first holder from then on.
        let lock_b = b.acquire(RESOURCE, ttl_ms).unwrap();
        assert_held(&servers, &lock_b);
        for (ta, tb) in lock_a.tokens().iter().zip(lock_b.tokens()) {
            assert_eq!(ta.instance, tb.instance);
            assert!(tb.token > ta.token, "{flavor:?}: {ta:?} then {tb:?}");
        }
        let mut fence = Fence::new(5);
        assert!(fence.admit(lock_a.tokens()));
        assert!(fence.admit(lock_b.tokens()));
        assert!(!fence.admit(lock_a.tokens()));

        // Releasing the first lock again: not held, and the second one is untouched.
        match a.release(&lock_a) {
            Err(ReleaseError::NotHeld { tally }) => assert_eq!(tally.refused, 3),
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert_held(&servers, &lock_b);
        b.release(&lock_b).unwrap();
        assert_free(&servers);
    }
}

#[test]
fn three_stopped_acquire_fails_and_leaves_nothing_on_the_live_ones() {
    for flavor in flavors() {
        let mut servers = start(flavor, 5);
        let urls = urls(&servers);
        // Interleaved, so the live ones are asked (and grant) before the quorum is out of reach.
        stop(&mut servers, &[1, 3, 4]);
        let mut client = redlock(&urls, no_retries());
        match client.acquire(RESOURCE, 10_000) {
            Err(AcquireError::NotAcquired { attempts: 1, last }) => {
                assert_eq!(last.succeeded, 2, "{last}");
                assert_eq!(last.failed.len(), 3, "{last}");
            }
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert_free(&servers);
        // They did grant it (token 1) before releasing it: the next grant there is token 2.
        for (i, server) in live(&servers) {
            let token: Option<u64> = query(
                &mut server.conn(),
                &["LOCK.ACQUIRE", RESOURCE, "probe", "1000"],
            );
            assert_eq!(token, Some(2), "{flavor:?}: instance {i}");
        }

        // With retries, every attempt fails the same way and cleans up after itself.
        let mut retrying = redlock(
            &urls,
            Config {
                retry_count: 2,
                retry_delay_ms: 10,
                retry_jitter_ms: 10,
                ..Config::default()
            },
        );
        for (_, server) in live(&servers) {
            let released: i64 = query(&mut server.conn(), &["LOCK.RELEASE", RESOURCE, "probe"]);
            assert_eq!(released, 1);
        }
        match retrying.acquire(RESOURCE, 10_000) {
            Err(AcquireError::NotAcquired { attempts: 3, .. }) => {}
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert_free(&servers);
    }
}

#[test]
fn a_lock_that_expired_can_be_taken_and_is_neither_extended_nor_released() {
    for flavor in flavors() {
        let servers = start(flavor, 5);
        let urls = urls(&servers);
        let mut a = redlock(&urls, no_retries());
        let mut b = redlock(&urls, no_retries());
        let mut lock_a = a.acquire(RESOURCE, 300).unwrap();
        sleep(Duration::from_millis(a.remaining_ms(&lock_a) + 50));
        // The client's validity is over; the servers may keep their copies a few ms longer.
        assert_eq!(a.remaining_ms(&lock_a), 0);
        assert!(wait_until(Duration::from_secs(5), || live(&servers)
            .all(|(_, s)| info(s).is_none())));
        let lock_b = b.acquire(RESOURCE, 10_000).unwrap();
        match a.extend(&mut lock_a, 10_000) {
            Err(ExtendError::Expired { .. }) => {}
            other => panic!("{flavor:?}: {other:?}"),
        }
        match a.release(&lock_a) {
            Err(ReleaseError::NotHeld { tally }) => assert_eq!(tally.refused, 5),
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert_held(&servers, &lock_b);
    }
}

#[test]
fn a_server_that_never_answers_costs_only_its_timeout() {
    // Accepts connections (the kernel completes the handshake) but never reads or replies.
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_url = format!("redis://{}/", hung.local_addr().unwrap());
    for flavor in flavors() {
        let servers = start(flavor, 4);
        let mut urls = urls(&servers);
        urls.insert(2, hung_url.clone());
        let mut client = redlock(&urls, no_retries());
        let began = Instant::now();
        let lock = client.acquire(RESOURCE, 10_000).unwrap();
        let took = began.elapsed();
        let instances: Vec<usize> = lock.tokens().iter().map(|t| t.instance).collect();
        assert_eq!(instances, vec![0, 1, 3, 4]);
        // One timeout for the hung instance, plus four quick round trips; the bound is loose
        // (a loaded machine), the point is that the call returns at all.
        assert!(took < TIMEOUT * 10, "{flavor:?}: acquire took {took:?}");
        assert!(lock.validity_ms() < 10_000 - TIMEOUT.as_millis() as u64);
        let tally = client.release(&lock).unwrap();
        assert_eq!((tally.succeeded, tally.failed.len()), (4, 1), "{tally}");
    }
}

#[test]
fn extend_and_release_need_a_quorum_of_live_holders() {
    for flavor in flavors() {
        let mut servers = start(flavor, 5);
        let urls = urls(&servers);
        let mut client = redlock(&urls, no_retries());
        let mut lock = client.acquire(RESOURCE, 10_000).unwrap();
        assert_held(&servers, &lock);

        // Two holders stop: three still extend it.
        stop(&mut servers, &[0, 2]);
        client.extend(&mut lock, 20_000).unwrap();
        for (i, server) in live(&servers) {
            let ttl: u64 = info(server).unwrap()["ttl"].parse().unwrap();
            assert!(ttl > 10_000, "{flavor:?}: instance {i}: ttl {ttl}");
        }

        // A third stops: no quorum. The two left were set to a shorter TTL, which caps the lock.
        stop(&mut servers, &[4]);
        let before_ms = client.remaining_ms(&lock);
        match client.extend(&mut lock, 5_000) {
            Err(ExtendError::NotExtended { attempts: 1, last }) => {
                assert_eq!((last.succeeded, last.failed.len()), (2, 3), "{last}");
            }
            other => panic!("{flavor:?}: {other:?}"),
        }
        let after_ms = client.remaining_ms(&lock);
        assert!(
            after_ms < 5_000 && after_ms < before_ms,
            "{before_ms} -> {after_ms}"
        );

        // Release frees the two it reaches, and says the quorum is unconfirmed.
        match client.release(&lock) {
            Err(ReleaseError::Unreachable { tally }) => {
                assert_eq!((tally.succeeded, tally.failed.len()), (2, 3), "{tally}");
            }
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert_free(&servers);
    }
}

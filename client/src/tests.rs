//! The algorithm against fake instances that follow the LOCK.* contract on a shared fake clock:
//! every call advances the clock by the instance's latency (or its timeout, when it is down), and
//! keys expire by the same clock.

use crate::random::{owner_id, Jitter};
use crate::{
    AcquireError, Clock, Config, ExtendError, Fence, Instance, InstanceError, Lock, RedisInstance,
    Redlock, ReleaseError, Token,
};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Fakes
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct FakeClock {
    now_ms: Rc<Cell<u64>>,
    sleeps_ms: Rc<RefCell<Vec<u64>>>,
}

impl FakeClock {
    fn advance(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    fn sleep_ms(&self, ms: u64) {
        self.sleeps_ms.borrow_mut().push(ms);
        self.advance(ms);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Health {
    Up,
    /// Answers nothing; each call costs the timeout.
    Down,
    /// Executes the command but its reply is lost (times out).
    LosesReplies,
}

struct Held {
    owner: String,
    token: u64,
    expires_ms: u64,
    holds: u64,
}

/// One server's state: the LOCK.* semantics of the contract, on the fake clock.
struct Server {
    health: Health,
    /// Calls that time out (as if down) before the server answers again.
    fail_next: u32,
    latency_ms: u64,
    timeout_ms: u64,
    locks: HashMap<String, Held>,
    last_token: HashMap<String, u64>,
    /// (command, owner) of every call that reached the server.
    calls: Vec<(&'static str, String)>,
}

type Shared = Rc<RefCell<Server>>;

impl Server {
    fn new() -> Shared {
        Rc::new(RefCell::new(Server {
            health: Health::Up,
            fail_next: 0,
            latency_ms: 1,
            timeout_ms: 50,
            locks: HashMap::new(),
            last_token: HashMap::new(),
            calls: Vec::new(),
        }))
    }

    fn live(&mut self, key: &str, now_ms: u64) -> Option<&mut Held> {
        if self.locks.get(key).is_some_and(|h| h.expires_ms <= now_ms) {
            self.locks.remove(key);
        }
        self.locks.get_mut(key)
    }

    fn acquire(&mut self, key: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> Option<u64> {
        match self.live(key, now_ms) {
            Some(held) if held.owner == owner => {
                held.holds += 1;
                held.expires_ms = now_ms + ttl_ms;
                Some(held.token)
            }
            Some(_) => None,
            None => {
                let token = self.last_token.entry(key.to_owned()).or_insert(0);
                *token += 1;
                let held = Held {
                    owner: owner.to_owned(),
                    token: *token,
                    expires_ms: now_ms + ttl_ms,
                    holds: 1,
                };
                self.locks.insert(key.to_owned(), held);
                Some(*token)
            }
        }
    }

    fn extend(&mut self, key: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> bool {
        match self.live(key, now_ms) {
            Some(held) if held.owner == owner => {
                held.expires_ms = now_ms + ttl_ms;
                true
            }
            _ => false,
        }
    }

    fn release(&mut self, key: &str, owner: &str, now_ms: u64) -> bool {
        let Some(held) = self.live(key, now_ms).filter(|h| h.owner == owner) else {
            return false;
        };
        held.holds -= 1;
        if held.holds == 0 {
            self.locks.remove(key);
        }
        true
    }

    /// The owner holding `key` now, if any.
    fn holder(&mut self, key: &str, now_ms: u64) -> Option<String> {
        self.live(key, now_ms).map(|h| h.owner.clone())
    }
}

struct FakeInstance {
    server: Shared,
    clock: FakeClock,
}

impl FakeInstance {
    /// Advances the clock as the call would take, then runs `op` at the server's new now unless
    /// the server is down; replies are lost unless it is up.
    fn call<T>(
        &mut self,
        name: &'static str,
        owner: &str,
        op: impl FnOnce(&mut Server, u64) -> T,
    ) -> Result<T, InstanceError> {
        let mut server = self.server.borrow_mut();
        let failing = server.fail_next > 0;
        server.fail_next = server.fail_next.saturating_sub(1);
        match server.health {
            _ if failing => {
                self.clock.advance(server.timeout_ms);
                Err(InstanceError::Timeout)
            }
            Health::Down => {
                self.clock.advance(server.timeout_ms);
                Err(InstanceError::Timeout)
            }
            health => {
                self.clock.advance(server.latency_ms);
                server.calls.push((name, owner.to_owned()));
                let reply = op(&mut server, self.clock.now_ms());
                if health == Health::LosesReplies {
                    self.clock.advance(server.timeout_ms - server.latency_ms);
                    return Err(InstanceError::Timeout);
                }
                Ok(reply)
            }
        }
    }
}

impl Instance for FakeInstance {
    fn acquire(
        &mut self,
        key: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<Option<u64>, InstanceError> {
        self.call("acquire", owner, |s, now| {
            s.acquire(key, owner, ttl_ms, now)
        })
    }

    fn extend(&mut self, key: &str, owner: &str, ttl_ms: u64) -> Result<bool, InstanceError> {
        self.call("extend", owner, |s, now| s.extend(key, owner, ttl_ms, now))
    }

    fn release(&mut self, key: &str, owner: &str) -> Result<bool, InstanceError> {
        self.call("release", owner, |s, now| s.release(key, owner, now))
    }
}

/// N servers on one clock.
struct World {
    servers: Vec<Shared>,
    clock: FakeClock,
}

const KEY: &str = "orders:42";

/// No retries, no jitter, 1 % drift: each test sets what it exercises.
fn config() -> Config {
    Config {
        retry_count: 0,
        retry_delay_ms: 100,
        retry_jitter_ms: 0,
        drift_ppm: 10_000,
    }
}

/// Two clients of the same servers, each with [`config`]: rivals for one lock.
fn rivals(world: &World) -> [Redlock<FakeInstance, FakeClock>; 2] {
    [world.client(config()), world.client(config())]
}

/// [`config`] with retries, still without jitter.
fn retrying(retry_count: u32, retry_delay_ms: u64) -> Config {
    Config {
        retry_count,
        retry_delay_ms,
        ..config()
    }
}

impl World {
    fn new(n: usize) -> World {
        World {
            servers: (0..n).map(|_| Server::new()).collect(),
            clock: FakeClock::default(),
        }
    }

    fn client(&self, config: Config) -> Redlock<FakeInstance, FakeClock> {
        let instances = self
            .servers
            .iter()
            .map(|server| FakeInstance {
                server: server.clone(),
                clock: self.clock.clone(),
            })
            .collect();
        Redlock::with_clock(instances, config, self.clock.clone())
    }

    fn set_health(&self, indices: &[usize], health: Health) {
        for &i in indices {
            self.servers[i].borrow_mut().health = health;
        }
    }

    fn set_latency(&self, latency_ms: u64) {
        for server in &self.servers {
            server.borrow_mut().latency_ms = latency_ms;
        }
    }

    /// Another client holds KEY on these servers until `until_ms`.
    fn held_elsewhere(&self, indices: &[usize], until_ms: u64) {
        let now = self.clock.now_ms();
        for &i in indices {
            let granted = self.servers[i]
                .borrow_mut()
                .acquire(KEY, "other", until_ms - now, now);
            assert!(granted.is_some());
        }
    }

    /// Which servers hold KEY for `owner` now.
    fn holding(&self, owner: &str) -> Vec<usize> {
        let now = self.clock.now_ms();
        (0..self.servers.len())
            .filter(|&i| self.servers[i].borrow_mut().holder(KEY, now).as_deref() == Some(owner))
            .collect()
    }

    /// Servers where KEY is held by anyone but "other".
    fn held_by_us(&self) -> Vec<usize> {
        let now = self.clock.now_ms();
        (0..self.servers.len())
            .filter(|&i| {
                let holder = self.servers[i].borrow_mut().holder(KEY, now);
                holder.is_some_and(|h| h != "other")
            })
            .collect()
    }

    fn calls(&self, i: usize) -> Vec<(&'static str, String)> {
        self.servers[i].borrow().calls.clone()
    }

    /// Every call every server received, in server order.
    fn all_calls(&self) -> Vec<(&'static str, String)> {
        (0..self.servers.len())
            .flat_map(|i| self.calls(i))
            .collect()
    }
}

fn not_acquired(result: Result<Lock, AcquireError>) -> (u32, crate::Tally) {
    match result {
        Err(AcquireError::NotAcquired { attempts, last }) => (attempts, last),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Quorum
// ---------------------------------------------------------------------------------------------

#[test]
fn a_lock_needs_floor_n_over_2_plus_1_instances() {
    // (instances, instances that can grant, acquired)
    let cases = [
        (1, 1, true),
        (1, 0, false),
        (2, 2, true),
        (2, 1, false),
        (3, 2, true),
        (3, 1, false),
        (4, 3, true),
        (4, 2, false),
        (5, 3, true),
        (5, 2, false),
        (6, 4, true),
        (6, 3, false),
        (7, 4, true),
        (7, 3, false),
    ];
    for (n, granting, acquired) in cases {
        // The instances that cannot grant: odd indices first, then even ones.
        let order = (0..n)
            .filter(|i| i % 2 == 1)
            .chain((0..n).filter(|i| i % 2 == 0));
        let mut unavailable: Vec<usize> = order.take(n - granting).collect();
        unavailable.sort_unstable();
        let available: Vec<usize> = (0..n).filter(|i| !unavailable.contains(i)).collect();
        for held_elsewhere in [false, true] {
            let world = World::new(n);
            if held_elsewhere {
                world.held_elsewhere(&unavailable, 1_000_000);
            } else {
                world.set_health(&unavailable, Health::Down);
            }
            let mut redlock = world.client(config());
            assert_eq!(redlock.quorum(), n / 2 + 1, "n={n}");
            let case = format!("n={n} granting={granting} held_elsewhere={held_elsewhere}");
            match redlock.acquire(KEY, 1000) {
                Ok(lock) => {
                    assert!(acquired, "{case}: acquired");
                    let granted: Vec<usize> = lock.tokens().iter().map(|t| t.instance).collect();
                    assert_eq!(granted, available, "{case}");
                    assert_eq!(world.holding(lock.owner()), available, "{case}");
                }
                Err(e) => {
                    assert!(!acquired, "{case}: {e}");
                    assert_eq!(
                        world.held_by_us(),
                        Vec::<usize>::new(),
                        "{case}: left behind"
                    );
                }
            }
        }
    }
}

#[test]
fn a_second_client_cannot_acquire_until_the_first_releases() {
    let world = World::new(5);
    let [mut a, mut b] = rivals(&world);
    let lock_a = a.acquire(KEY, 10_000).unwrap();
    let (_, last) = not_acquired(b.acquire(KEY, 10_000));
    assert_eq!((last.succeeded, last.refused, last.skipped), (0, 3, 2));
    assert_eq!(world.holding(lock_a.owner()), vec![0, 1, 2, 3, 4]);

    let released = a.release(&lock_a).unwrap();
    assert_eq!(released.succeeded, 5);
    assert_eq!(world.held_by_us(), Vec::<usize>::new());
    let lock_b = b.acquire(KEY, 10_000).unwrap();
    assert_ne!(lock_a.owner(), lock_b.owner());
    for (ta, tb) in lock_a.tokens().iter().zip(lock_b.tokens()) {
        assert_eq!(ta.instance, tb.instance);
        assert!(tb.token > ta.token, "tokens increase per instance");
    }
}

// ---------------------------------------------------------------------------------------------
// Validity
// ---------------------------------------------------------------------------------------------

#[test]
fn drift_is_a_share_of_the_ttl_plus_2_ms() {
    let redlock = World::new(1).client(config());
    // (ttl_ms, drift_ms) at 1 %, rounded up.
    let cases = [
        (0, 2),
        (1, 3),
        (100, 3),
        (101, 4),
        (1000, 12),
        (30_000, 302),
        (u64::MAX, u64::MAX / 100 + 2 + 1),
    ];
    for (ttl_ms, drift_ms) in cases {
        assert_eq!(redlock.drift_ms(ttl_ms), drift_ms, "ttl {ttl_ms}");
    }
    let no_drift = World::new(1).client(Config {
        drift_ppm: 0,
        ..config()
    });
    assert_eq!(no_drift.drift_ms(1000), 2);
}

#[test]
fn a_ttl_within_the_drift_allowance_is_refused_before_anything_is_sent() {
    let world = World::new(3);
    let mut redlock = world.client(config());
    for ttl_ms in [0, 1, 3] {
        match redlock.acquire(KEY, ttl_ms) {
            Err(AcquireError::InvalidTtl {
                ttl_ms: t,
                drift_ms,
            }) => {
                assert_eq!(t, ttl_ms);
                assert!(drift_ms >= ttl_ms);
            }
            other => panic!("ttl {ttl_ms}: {other:?}"),
        }
    }
    assert!(world.all_calls().is_empty());
    // 4 ms leaves 1 ms of validity: enough for instances that answer at once.
    world.set_latency(0);
    let mut lock = redlock.acquire(KEY, 4).unwrap();
    assert_eq!(lock.validity_ms(), 1);
    assert!(matches!(
        redlock.extend(&mut lock, 2),
        Err(ExtendError::InvalidTtl {
            ttl_ms: 2,
            drift_ms: 3
        })
    ));
}

#[test]
fn validity_is_ttl_minus_time_to_quorum_minus_drift() {
    let world = World::new(5);
    world.set_latency(10);
    world.clock.advance(7_000);
    let mut redlock = world.client(config());
    let lock = redlock.acquire(KEY, 1000).unwrap();
    // Quorum after 3 calls of 10 ms; drift 12 ms; every copy was granted after 7000.
    assert_eq!(lock.validity_ms(), 1000 - 30 - 12);
    assert_eq!(lock.valid_until_ms(), 7_000 + 1000 - 12);
    // All 5 were asked: the client returned at 7050.
    assert_eq!(world.clock.now_ms(), 7_050);
    assert_eq!(redlock.remaining_ms(&lock), 1000 - 50 - 12);
    // Each server's copy outlives the client's validity.
    for server in &world.servers {
        assert!(server.borrow().locks[KEY].expires_ms > lock.valid_until_ms());
    }
    world.clock.advance(938);
    assert_eq!(redlock.remaining_ms(&lock), 0);
}

#[test]
fn validity_counts_from_the_successful_attempt_not_the_first() {
    // node-redlock #169/#296: retries used to eat the validity of the lock finally acquired.
    let world = World::new(5);
    world.set_latency(10);
    world.held_elsewhere(&[0, 1, 2], 500);
    let mut redlock = world.client(retrying(5, 300));
    let lock = redlock.acquire(KEY, 1000).unwrap();
    // Attempts at 0 and 330 meet three refusals (30 ms each); the one at 660 succeeds.
    assert_eq!(*world.clock.sleeps_ms.borrow(), vec![300, 300]);
    assert_eq!(lock.validity_ms(), 1000 - 30 - 12);
    assert_eq!(lock.valid_until_ms(), 660 + 1000 - 12);
}

#[test]
fn a_quorum_reached_too_late_is_a_failure_and_is_released() {
    let world = World::new(5);
    world.set_latency(400);
    let mut redlock = world.client(config());
    let (attempts, last) = not_acquired(redlock.acquire(KEY, 1000));
    // Grants at 400, 800, 1200: the quorum came after the 988 ms budget; the rest were skipped.
    assert_eq!(attempts, 1);
    assert_eq!((last.succeeded, last.refused, last.skipped), (3, 0, 2));
    for i in 0..3 {
        let kinds: Vec<&str> = world.calls(i).iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["acquire", "release"], "instance {i}");
    }
    assert!(world.calls(3).is_empty() && world.calls(4).is_empty());
    assert_eq!(world.held_by_us(), Vec::<usize>::new());
}

// ---------------------------------------------------------------------------------------------
// Failures and retries
// ---------------------------------------------------------------------------------------------

#[test]
fn a_failed_attempt_releases_every_instance_that_may_have_granted() {
    let world = World::new(5);
    world.set_health(&[1], Health::LosesReplies);
    world.held_elsewhere(&[2, 3], 1_000_000);
    let mut redlock = world.client(config());
    let (_, last) = not_acquired(redlock.acquire(KEY, 10_000));
    // 0 granted, 1 executed but timed out, 2 and 3 refused: a quorum is out of reach, so 4 is
    // not asked.
    assert_eq!(last.succeeded, 1);
    assert_eq!(last.refused, 2);
    assert_eq!(last.failed, vec![(1, InstanceError::Timeout)]);
    assert_eq!(last.skipped, 1);
    assert_eq!(world.held_by_us(), Vec::<usize>::new());
    let released = |i: usize| world.calls(i).iter().any(|(k, _)| *k == "release");
    assert!(
        released(0) && released(1),
        "granted and unanswered instances are released"
    );
    assert!(
        !released(2) && !released(3),
        "refusing instances hold nothing of ours"
    );
    assert!(world.calls(4).is_empty());
    assert_eq!(world.holding("other"), vec![2, 3]);
}

#[test]
fn dead_instances_cost_their_timeout_once_per_round() {
    let world = World::new(5);
    world.set_health(&[0, 2], Health::Down);
    let mut redlock = world.client(config());
    let lock = redlock.acquire(KEY, 1000).unwrap();
    // 0 times out (50), 1 grants (51), 2 times out (101), 3 and 4 grant: quorum at 103.
    assert_eq!(world.clock.now_ms(), 103);
    assert_eq!(lock.validity_ms(), 1000 - 103 - 12);
    let instances: Vec<usize> = lock.tokens().iter().map(|t| t.instance).collect();
    assert_eq!(instances, vec![1, 3, 4]);

    // Three dead: the round stops after the third timeout and asks nobody else.
    let world = World::new(5);
    world.set_health(&[0, 1, 2], Health::Down);
    let mut redlock = world.client(config());
    let (_, last) = not_acquired(redlock.acquire(KEY, 1000));
    // Three timeouts, then three more to release them: their acquire might have been executed.
    assert_eq!(world.clock.now_ms(), 300);
    assert_eq!((last.failed.len(), last.skipped), (3, 2));
    assert!(world.all_calls().is_empty());
}

#[test]
fn retries_wait_the_delay_plus_jitter_with_a_fresh_owner_each_time() {
    let world = World::new(3);
    world.held_elsewhere(&[0, 1, 2], u64::MAX / 2);
    let mut redlock = world.client(Config {
        retry_count: 20,
        retry_delay_ms: 100,
        retry_jitter_ms: 50,
        ..config()
    });
    let (attempts, last) = not_acquired(redlock.acquire(KEY, 1000));
    assert_eq!(attempts, 21);
    assert_eq!((last.refused, last.skipped), (2, 1));
    let sleeps = world.clock.sleeps_ms.borrow().clone();
    assert_eq!(sleeps.len(), 20, "no wait after the last attempt");
    assert!(
        sleeps.iter().all(|ms| (100..=150).contains(ms)),
        "{sleeps:?}"
    );
    let distinct: BTreeSet<u64> = sleeps.iter().copied().collect();
    assert!(distinct.len() > 1, "jittered: {sleeps:?}");
    let owners: BTreeSet<String> = world.calls(0).into_iter().map(|(_, o)| o).collect();
    assert_eq!(owners.len(), 21);
}

// ---------------------------------------------------------------------------------------------
// Extend
// ---------------------------------------------------------------------------------------------

#[test]
fn extend_re_runs_the_quorum_and_moves_the_validity() {
    let world = World::new(5);
    world.set_health(&[4], Health::Down);
    let mut redlock = world.client(config());
    let mut lock = redlock.acquire(KEY, 1000).unwrap();
    world.clock.advance(600);
    let started_ms = world.clock.now_ms();
    redlock.extend(&mut lock, 5000).unwrap();
    // drift for 5000 ms: 50 + 2; quorum after 3 calls of 1 ms.
    assert_eq!(lock.valid_until_ms(), started_ms + 5000 - 52);
    assert_eq!(lock.validity_ms(), 5000 - 3 - 52);
    for i in 0..4 {
        assert!(world.servers[i].borrow().locks[KEY].expires_ms >= started_ms + 5000);
    }
    world.clock.advance(2000);
    assert_eq!(world.holding(lock.owner()), vec![0, 1, 2, 3]);
    assert!(redlock.remaining_ms(&lock) > 2000);
}

#[test]
fn extend_after_the_validity_ended_is_refused_without_asking() {
    let world = World::new(3);
    let mut redlock = world.client(config());
    let mut lock = redlock.acquire(KEY, 1000).unwrap();
    // Past the client's validity but inside the drift allowance: the servers still hold it.
    world
        .clock
        .advance(lock.valid_until_ms() - world.clock.now_ms() + 3);
    assert_eq!(world.holding(lock.owner()), vec![0, 1, 2]);
    let before = world.all_calls().len();
    match redlock.extend(&mut lock, 1000) {
        Err(ExtendError::Expired { since_ms }) => assert_eq!(since_ms, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(world.all_calls().len(), before);
}

#[test]
fn extend_without_a_quorum_fails_and_caps_the_validity() {
    let world = World::new(5);
    let mut redlock = world.client(config());
    let mut lock = redlock.acquire(KEY, 10_000).unwrap();
    let valid_until_ms = lock.valid_until_ms();
    // Three servers lost the lock (restarted without persistence); the other two extend it to a
    // shorter TTL than it had, so the lock can no longer be trusted for its full validity.
    for i in 2..5 {
        world.servers[i].borrow_mut().locks.clear();
    }
    let started_ms = world.clock.now_ms();
    match redlock.extend(&mut lock, 1000) {
        Err(ExtendError::NotExtended { attempts, last }) => {
            assert_eq!(attempts, 1);
            assert_eq!((last.succeeded, last.refused, last.skipped), (2, 3, 0));
        }
        other => panic!("{other:?}"),
    }
    assert!(lock.valid_until_ms() < valid_until_ms);
    assert_eq!(lock.valid_until_ms(), started_ms + 1000 - 12);
}

#[test]
fn extend_retries_while_the_lock_is_valid() {
    let world = World::new(5);
    let mut redlock = world.client(retrying(10, 300));
    let mut lock = redlock.acquire(KEY, 1000).unwrap();
    world.set_health(&[0, 1, 2], Health::Down);
    // Each attempt: 3 timeouts (150 ms), then 300 ms of delay. Attempts start at 5, 455 and 905;
    // at 1355 the validity (until 988) is over.
    match redlock.extend(&mut lock, 1000) {
        Err(ExtendError::NotExtended { attempts, last }) => {
            assert_eq!(attempts, 3);
            assert_eq!(last.failed.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(redlock.remaining_ms(&lock), 0);

    // The servers come back during the retries: the extension goes through.
    let world = World::new(5);
    let mut redlock = world.client(retrying(10, 300));
    let mut lock = redlock.acquire(KEY, 10_000).unwrap();
    for i in 0..3 {
        world.servers[i].borrow_mut().fail_next = 1;
    }
    redlock.extend(&mut lock, 10_000).unwrap();
    assert_eq!(*world.clock.sleeps_ms.borrow(), vec![300]);
    assert_eq!(world.holding(lock.owner()), vec![0, 1, 2, 3, 4]);
}

// ---------------------------------------------------------------------------------------------
// Release
// ---------------------------------------------------------------------------------------------

#[test]
fn release_tells_an_expired_lock_from_an_unreachable_quorum() {
    let world = World::new(5);
    let [mut a, mut b] = rivals(&world);
    let lock_a = a.acquire(KEY, 1000).unwrap();
    world.clock.advance(1001);
    let lock_b = b.acquire(KEY, 1000).unwrap();
    match a.release(&lock_a) {
        Err(ReleaseError::NotHeld { tally }) => assert_eq!(tally.refused, 5),
        other => panic!("{other:?}"),
    }
    assert_eq!(world.holding(lock_b.owner()), vec![0, 1, 2, 3, 4]);

    world.set_health(&[0, 1, 2], Health::Down);
    match b.release(&lock_b) {
        Err(ReleaseError::Unreachable { tally }) => {
            assert_eq!(
                (tally.succeeded, tally.failed.len(), tally.skipped),
                (2, 3, 0)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(world.holding(lock_b.owner()), vec![0, 1, 2]);
}

#[test]
fn release_with_a_minority_down_succeeds() {
    let world = World::new(5);
    world.set_health(&[1, 3], Health::Down);
    let mut redlock = world.client(config());
    let lock = redlock.acquire(KEY, 1000).unwrap();
    let tally = redlock.release(&lock).unwrap();
    assert_eq!((tally.succeeded, tally.failed.len()), (3, 2));
    assert_eq!(world.held_by_us(), Vec::<usize>::new());
}

// ---------------------------------------------------------------------------------------------
// Fencing
// ---------------------------------------------------------------------------------------------

fn tokens(pairs: &[(usize, u64)]) -> Vec<Token> {
    pairs
        .iter()
        .map(|&(instance, token)| Token { instance, token })
        .collect()
}

#[test]
fn the_fence_compares_tokens_instance_by_instance() {
    // Instance 0 has granted this key far more often than the others.
    let stale = tokens(&[(0, 1000), (1, 5), (2, 7)]);
    let newer = tokens(&[(2, 8), (3, 3), (4, 9)]);
    let max = |t: &[Token]| t.iter().map(|t| t.token).max().unwrap();
    assert!(
        max(&stale) > max(&newer),
        "a single max would prefer the stale holder"
    );

    let mut fence = Fence::new(5);
    assert!(fence.admit(&stale));
    assert!(fence.admit(&stale), "the same holder writes again");
    assert!(fence.admit(&newer));
    assert!(!fence.admit(&stale), "superseded on instance 2");
    assert!(!fence.check(&stale));
    assert_eq!(fence.newest().get(&2), Some(&8));
    assert_eq!(fence.newest().get(&0), Some(&1000));
}

#[test]
fn the_fence_refuses_token_sets_that_cannot_prove_an_overlap() {
    let fence = Fence::new(5);
    // (tokens, admitted)
    let cases: [(&[(usize, u64)], bool); 6] = [
        (&[(0, 1), (1, 1), (2, 1)], true),
        (&[(0, 1), (1, 1)], false),
        (&[(0, 1), (1, 1), (1, 2)], false),
        (&[(0, 1), (1, 1), (5, 1)], false),
        (&[], false),
        (&[(4, 1), (3, 1), (2, 1), (1, 1), (0, 1)], true),
    ];
    for (pairs, admitted) in cases {
        assert_eq!(fence.check(&tokens(pairs)), admitted, "{pairs:?}");
    }
}

#[test]
fn real_grants_pass_the_fence_in_order_and_a_superseded_holder_does_not() {
    let world = World::new(5);
    world.set_health(&[3, 4], Health::Down);
    let [mut a, mut b] = rivals(&world);
    let mut fence = Fence::new(5);
    let lock_a = a.acquire(KEY, 1000).unwrap();
    assert!(fence.admit(lock_a.tokens()));
    // A pauses; its lock expires; B gets a quorum that overlaps A's on some instance.
    world.clock.advance(1001);
    world.set_health(&[3, 4], Health::Up);
    world.set_health(&[0], Health::Down);
    let lock_b = b.acquire(KEY, 1000).unwrap();
    assert!(fence.admit(lock_b.tokens()));
    assert!(!fence.admit(lock_a.tokens()), "A woke up after B wrote");
}

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

#[test]
fn owner_ids_are_128_random_bits_in_hex() {
    let ids: BTreeSet<String> = (0..100).map(|_| owner_id().unwrap()).collect();
    assert_eq!(ids.len(), 100);
    for id in &ids {
        assert_eq!(id.len(), 32);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}

#[test]
fn jitter_stays_within_its_bound() {
    let mut jitter = Jitter::new();
    for _ in 0..1000 {
        assert_eq!(jitter.up_to(0), 0);
        assert!(jitter.up_to(7) <= 7);
    }
    let _ = jitter.up_to(u64::MAX);
}

#[test]
fn a_malformed_url_or_a_zero_timeout_is_refused_up_front() {
    let second = Duration::from_secs(1);
    for (url, timeout) in [
        ("not a url", second),
        ("redis://127.0.0.1:1/", Duration::ZERO),
    ] {
        match Redlock::connect(&[url], timeout, Config::default()) {
            Err(InstanceError::Config(_)) => {}
            Err(e) => panic!("{url} {timeout:?}: {e}"),
            Ok(_) => panic!("{url} {timeout:?}: accepted"),
        }
    }
    assert!(
        RedisInstance::open("redis://127.0.0.1:1/", second).is_ok(),
        "connects lazily"
    );
}

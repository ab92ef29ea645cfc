//! The Redlock algorithm over N independent instances.
//!
//! One *round* asks every instance the same question (acquire, extend or release) one after the
//! other. A lock exists when a *quorum*, floor(N/2)+1 instances, granted it: two quorums of the
//! same N always share an instance, and an instance grants to one owner at a time, so two clients
//! cannot both hold a quorum.
//!
//! Each instance expires its copy `ttl_ms` after it granted it. Every grant of a round happens
//! after the round began, so every copy lives at least until `round start + ttl_ms` (by the
//! servers' clocks). Shaving a drift allowance off for clocks that run at slightly different
//! rates gives the moment until which the client may rely on the lock:
//! `valid_until = round start + ttl_ms - drift_ms`. The validity reported is what is left of it
//! when the quorum was reached: `ttl_ms - elapsed - drift_ms`, elapsed being the time from the
//! round's start to its quorum. Rounds that failed before, and the delays between them, do not
//! count (node-redlock measured from the first attempt and could hand out a lock that had already
//! expired: #169, #296).

use crate::clock::{Clock, MonotonicClock};
use crate::error::{AcquireError, ExtendError, ReleaseError, Tally};
use crate::instance::{Instance, InstanceError, RedisInstance};
use crate::random::{owner_id, Jitter};
use std::time::Duration;

/// Retry and clock-drift settings. The defaults are node-redlock's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Attempts after the first one, for acquire and extend.
    pub retry_count: u32,
    /// Fixed part of the wait between two attempts.
    pub retry_delay_ms: u64,
    /// Random part of the wait, uniform in `0..=retry_jitter_ms`, so that competing clients do
    /// not retry in lockstep.
    pub retry_jitter_ms: u64,
    /// How fast the servers' and this client's clocks may drift apart, in parts per million of
    /// the TTL (10 000 = 1 %).
    pub drift_ppm: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            retry_count: 10,
            retry_delay_ms: 200,
            retry_jitter_ms: 200,
            drift_ppm: 10_000,
        }
    }
}

/// Fixed part of the drift allowance: the servers expire keys with millisecond resolution, and
/// [`Clock::now_ms`] truncates to whole milliseconds.
const DRIFT_FLOOR_MS: u64 = 2;

/// A fencing token and the instance (its index in the list given to [`Redlock`]) that issued it.
/// Tokens only compare within one instance: see [`crate::Fence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token {
    pub instance: usize,
    pub token: u64,
}

/// A lock held on a quorum of instances, until [`Lock::valid_until_ms`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    resource: String,
    owner: String,
    tokens: Vec<Token>,
    validity_ms: u64,
    valid_until_ms: u64,
}

impl Lock {
    /// The locked key.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// This lock's random owner id (128 bits, hex).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// One fencing token per instance that granted the lock (at least a quorum), by instance.
    /// Present all of them to the protected resource; check them with [`crate::Fence`].
    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    /// The validity left when the quorum was reached (of the acquire, or of the last extend).
    pub fn validity_ms(&self) -> u64 {
        self.validity_ms
    }

    /// The moment (on the [`Redlock`]'s clock) after which the lock must no longer be relied on.
    pub fn valid_until_ms(&self) -> u64 {
        self.valid_until_ms
    }
}

/// What one instance answered.
enum Answer {
    /// Granted (with its fencing token), extended or released.
    Yes(Option<u64>),
    No,
    /// No reply: an error or a timeout.
    Silent(InstanceError),
}

impl From<Result<bool, InstanceError>> for Answer {
    fn from(reply: Result<bool, InstanceError>) -> Self {
        match reply {
            Ok(true) => Answer::Yes(None),
            Ok(false) => Answer::No,
            Err(e) => Answer::Silent(e),
        }
    }
}

/// The result of one round.
#[derive(Default)]
struct Round {
    tally: Tally,
    /// Tokens of the instances that granted (acquire rounds only).
    tokens: Vec<Token>,
    /// When the quorum-th yes arrived.
    quorum_at_ms: Option<u64>,
}

/// A Redlock client over N independent instances (no replication between them).
pub struct Redlock<I, C = MonotonicClock> {
    instances: Vec<I>,
    config: Config,
    clock: C,
    jitter: Jitter,
}

impl Redlock<RedisInstance> {
    /// Instances at `urls` (e.g. `redis://10.0.0.1:6379/`), each call bounded by `timeout`, on
    /// the process's monotonic clock. Connects lazily, so a server that is down now only costs
    /// `timeout` per round.
    pub fn connect(
        urls: &[&str],
        timeout: Duration,
        config: Config,
    ) -> Result<Self, InstanceError> {
        let instances = urls
            .iter()
            .map(|url| RedisInstance::open(url, timeout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::with_clock(instances, config, MonotonicClock::new()))
    }
}

impl<I: Instance, C: Clock> Redlock<I, C> {
    /// `instances` in a fixed order (token indices refer to it). With no instance, nothing is
    /// ever acquired.
    pub fn with_clock(instances: Vec<I>, config: Config, clock: C) -> Self {
        Self {
            instances,
            config,
            clock,
            jitter: Jitter::new(),
        }
    }

    /// floor(N/2)+1.
    pub fn quorum(&self) -> usize {
        self.instances.len() / 2 + 1
    }

    /// The clock-drift allowance for a TTL: `ttl_ms * drift_ppm / 10^6` (rounded up) + 2 ms.
    pub fn drift_ms(&self, ttl_ms: u64) -> u64 {
        let scaled = u128::from(ttl_ms) * u128::from(self.config.drift_ppm);
        let drift = scaled.div_ceil(1_000_000);
        u64::try_from(drift)
            .unwrap_or(u64::MAX)
            .saturating_add(DRIFT_FLOOR_MS)
    }

    /// Milliseconds of validity `lock` has left now (0 once it must no longer be relied on).
    pub fn remaining_ms(&self, lock: &Lock) -> u64 {
        lock.valid_until_ms.saturating_sub(self.clock.now_ms())
    }

    /// Locks `resource` for `ttl_ms` on a quorum, with a fresh random owner per attempt. An
    /// attempt fails when the quorum is out of reach or reached too late; it then releases every
    /// instance that granted or did not answer, and waits before the next attempt.
    pub fn acquire(&mut self, resource: &str, ttl_ms: u64) -> Result<Lock, AcquireError> {
        let drift_ms = self.drift_ms(ttl_ms);
        let Some(budget_ms) = validity_budget(ttl_ms, drift_ms) else {
            return Err(AcquireError::InvalidTtl { ttl_ms, drift_ms });
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let owner = owner_id().map_err(AcquireError::Randomness)?;
            let started_ms = self.clock.now_ms();
            let deadline_ms = started_ms.saturating_add(budget_ms);
            let round = self.round(Some(deadline_ms), |instance| {
                match instance.acquire(resource, &owner, ttl_ms) {
                    Ok(Some(token)) => Answer::Yes(Some(token)),
                    Ok(None) => Answer::No,
                    Err(e) => Answer::Silent(e),
                }
            });
            if let Some(validity_ms) = self.validity_left(&round, deadline_ms) {
                return Ok(Lock {
                    resource: resource.to_owned(),
                    owner,
                    tokens: round.tokens,
                    validity_ms,
                    valid_until_ms: deadline_ms,
                });
            }
            self.release_possibly_granted(resource, &owner, &round);
            if attempts > self.config.retry_count {
                return Err(AcquireError::NotAcquired {
                    attempts,
                    last: round.tally,
                });
            }
            self.wait_before_retry();
        }
    }

    /// Sets the lock's TTL to `ttl_ms` on every instance that still holds it for this owner. It
    /// succeeds when a quorum did, and then the lock is valid until this round's start plus
    /// `ttl_ms` minus drift. Refused outright, with nothing sent, once the lock's validity has
    /// ended: a lapsed lock is lost, since another client may have held the resource meanwhile.
    /// A failed attempt may have shortened the TTL on some instances (when `ttl_ms` is less than
    /// what was left), so the lock's validity is then capped accordingly.
    pub fn extend(&mut self, lock: &mut Lock, ttl_ms: u64) -> Result<(), ExtendError> {
        let drift_ms = self.drift_ms(ttl_ms);
        let Some(budget_ms) = validity_budget(ttl_ms, drift_ms) else {
            return Err(ExtendError::InvalidTtl { ttl_ms, drift_ms });
        };
        let mut attempts = 0;
        let mut last = None;
        loop {
            let started_ms = self.clock.now_ms();
            if started_ms >= lock.valid_until_ms {
                return Err(match last {
                    None => ExtendError::Expired {
                        since_ms: started_ms - lock.valid_until_ms,
                    },
                    Some(last) => ExtendError::NotExtended { attempts, last },
                });
            }
            attempts += 1;
            let deadline_ms = started_ms.saturating_add(budget_ms);
            let round = self.round(Some(deadline_ms), |instance| {
                instance.extend(&lock.resource, &lock.owner, ttl_ms).into()
            });
            if let Some(validity_ms) = self.validity_left(&round, deadline_ms) {
                lock.validity_ms = validity_ms;
                lock.valid_until_ms = deadline_ms;
                return Ok(());
            }
            lock.valid_until_ms = lock.valid_until_ms.min(deadline_ms);
            if attempts > self.config.retry_count {
                return Err(ExtendError::NotExtended {
                    attempts,
                    last: round.tally,
                });
            }
            last = Some(round.tally);
            self.wait_before_retry();
        }
    }

    /// Releases the lock on every instance (also the ones that did not grant it: their acquire
    /// may have been executed after all). Succeeds when a quorum released it; a lock that had
    /// already expired is reported as [`ReleaseError::NotHeld`], not as a failure to release.
    pub fn release(&mut self, lock: &Lock) -> Result<Tally, ReleaseError> {
        let round = self.round(None, |instance| {
            instance.release(&lock.resource, &lock.owner).into()
        });
        let tally = round.tally;
        if tally.succeeded >= self.quorum() {
            Ok(tally)
        } else if tally.refused > self.instances.len() - self.quorum() {
            Err(ReleaseError::NotHeld { tally })
        } else {
            Err(ReleaseError::Unreachable { tally })
        }
    }

    /// Asks every instance in turn. With a deadline, stops early once it has passed or once too
    /// many instances said no or did not answer for a quorum to remain possible: a dead instance
    /// then costs its timeout at most once per round.
    fn round(&mut self, deadline_ms: Option<u64>, mut ask: impl FnMut(&mut I) -> Answer) -> Round {
        let n = self.instances.len();
        let quorum = self.quorum();
        let mut round = Round::default();
        for (index, instance) in self.instances.iter_mut().enumerate() {
            if let Some(deadline_ms) = deadline_ms {
                let lost = round.tally.refused + round.tally.failed.len();
                if self.clock.now_ms() >= deadline_ms || n - lost < quorum {
                    round.tally.skipped = n - index;
                    break;
                }
            }
            match ask(instance) {
                Answer::Yes(token) => {
                    round.tally.succeeded += 1;
                    if let Some(token) = token {
                        round.tokens.push(Token {
                            instance: index,
                            token,
                        });
                    }
                    if round.tally.succeeded == quorum {
                        round.quorum_at_ms = Some(self.clock.now_ms());
                    }
                }
                Answer::No => round.tally.refused += 1,
                Answer::Silent(e) => round.tally.failed.push((index, e)),
            }
        }
        round
    }

    /// The validity a round earned, measured from the moment of its quorum: `None` without a
    /// quorum, or when the deadline passed before the round ended.
    fn validity_left(&self, round: &Round, deadline_ms: u64) -> Option<u64> {
        let quorum_at_ms = round.quorum_at_ms?;
        (self.clock.now_ms() < deadline_ms).then(|| deadline_ms - quorum_at_ms)
    }

    /// After a failed acquire attempt: releases the instances that granted it and those that did
    /// not answer (their acquire may have been executed). Those that refused hold nothing of ours.
    /// Errors are ignored: an unreleased copy expires with its TTL.
    fn release_possibly_granted(&mut self, resource: &str, owner: &str, round: &Round) {
        let granted = round.tokens.iter().map(|t| t.instance);
        let unanswered = round.tally.failed.iter().map(|(index, _)| *index);
        for index in granted.chain(unanswered) {
            let _ = self.instances[index].release(resource, owner);
        }
    }

    fn wait_before_retry(&mut self) {
        let jitter_ms = self.jitter.up_to(self.config.retry_jitter_ms);
        let delay_ms = self.config.retry_delay_ms.saturating_add(jitter_ms);
        self.clock.sleep_ms(delay_ms);
    }
}

/// The longest validity a round with this TTL can earn; `None` when the drift eats all of it.
fn validity_budget(ttl_ms: u64, drift_ms: u64) -> Option<u64> {
    ttl_ms
        .checked_sub(drift_ms)
        .filter(|&budget_ms| budget_ms > 0)
}

//! Redlock over N independent servers running the redis-patterns module (`LOCK.*` commands).
//!
//! ```no_run
//! use patterns_redlock::{Config, Fence, Redlock};
//! use std::time::Duration;
//!
//! let urls = ["redis://10.0.0.1:6379/", "redis://10.0.0.2:6379/", "redis://10.0.0.3:6379/"];
//! let mut redlock = Redlock::connect(&urls, Duration::from_millis(50), Config::default())?;
//! let mut lock = redlock.acquire("orders:42", 10_000)?;
//! // ... work, presenting lock.tokens() with every write to the protected resource ...
//! redlock.extend(&mut lock, 10_000)?;
//! redlock.release(&lock)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The algorithm
//!
//! `acquire(resource, ttl_ms)` sends `LOCK.ACQUIRE resource owner ttl_ms` (a fresh 128-bit random
//! owner per attempt) to each instance in turn (not in parallel), each call bounded by the
//! instance's timeout. The lock is held when a quorum, floor(N/2)+1 instances, granted it and
//! some validity is left:
//! `validity = ttl - elapsed - drift`, with `elapsed` from the start of the successful attempt
//! to the moment the quorum was reached and `drift = ttl * drift_ppm / 10^6 + 2 ms`. Otherwise
//! the attempt releases every instance that granted it or did not answer, waits
//! `retry_delay_ms` plus a random jitter, and tries again, up to `retry_count` times.
//! `extend` re-runs the quorum with `LOCK.EXTEND`; it refuses a lock whose validity has already
//! ended. `release` sends `LOCK.RELEASE` everywhere. Each operation has its own error type
//! ([`AcquireError`], [`ExtendError`], [`ReleaseError`]); releasing a lock that had expired is
//! [`ReleaseError::NotHeld`], which a caller may log and ignore.
//!
//! The servers' FIFO waiting (`LOCK.ACQUIRE ... WAIT`) is not used: blocking on one instance
//! while the others are contended cannot build a quorum. It is for single-server locks.
//!
//! # What Redlock guarantees, and what it does not
//!
//! While [`Redlock::remaining_ms`] is positive, and **if** the timing assumptions hold, no other
//! client holds a quorum for the same resource. The assumptions are:
//!
//! * every server's clock advances at the rate of the client's, within the drift allowance
//!   (a server whose clock jumps forward, by an operator or NTP step, expires keys early);
//! * the servers keep their locks across restarts (AOF with `appendfsync always`), or a crashed
//!   server stays down for at least the longest TTL before rejoining; otherwise a restart forgets
//!   a grant and a second client can assemble a quorum. The same holds for a failover to an
//!   asynchronous replica that had not yet received the latest grant: the instances should be
//!   independent primaries;
//! * the client itself is not paused, nor its messages delayed, for longer than the remaining
//!   validity between checking it and using the resource.
//!
//! The last one cannot be guaranteed by any lease: a GC pause, page fault or stalled network
//! packet after the check lets the lease expire while the client still believes it holds the
//! lock (Martin Kleppmann, "How to do distributed locking", 2016). Redlock is therefore an
//! efficiency lock (it avoids doing the same work twice, almost always). For correctness the
//! protected resource must check **fencing tokens** and refuse writes from a holder that has
//! been superseded; that turns a timing assumption into a check the resource makes itself.
//!
//! # Fencing tokens across instances
//!
//! Each instance issues its own strictly increasing token per key (its counter survives expiry
//! and restarts with persistence; a grant lost to a crash or failover is lost with its token). [`Lock::tokens`] returns the token of every
//! instance that granted the lock, tagged with the instance's index: at least a quorum of them.
//! The resource keeps, per instance, the newest token it accepted, and refuses a writer that is
//! older on any instance they share ([`Fence`] implements the check). Two quorums always share
//! an instance, and there the newer holder's token is the larger one, so a superseded holder is
//! always caught. The largest token alone is **not** a safe fence: counters of different
//! instances are unrelated, so a stale holder can carry a larger number than the current one.
//!
//! The module's own storage-side check, `LOCK.FENCEDHSET resource token field value ...`, keeps
//! one newest token per resource: it fits a lock taken on one server, not Redlock, whose tokens
//! from different instances must not be compared with each other. With Redlock the resource
//! compares the whole token set.
#![forbid(unsafe_code)]

mod clock;
mod error;
mod fence;
mod instance;
mod random;
mod redlock;

#[cfg(test)]
mod tests;

pub use clock::{Clock, MonotonicClock};
pub use error::{AcquireError, Error, ExtendError, ReleaseError, Tally};
pub use fence::Fence;
pub use instance::{Instance, InstanceError, RedisInstance};
pub use redlock::{Config, Lock, Redlock, Token};

//! What went wrong, per operation: a failed acquire, a failed extend and a release that found the
//! lock gone are different types, so a caller can never mistake one for another (node-redlock
//! reports all three as one error, #185, and throws when releasing an expired lock, #131).

use std::fmt;
use std::io;

use crate::instance::InstanceError;

/// How the instances answered one round (one attempt to acquire, extend or release).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Instances that said yes: granted, extended or released.
    pub succeeded: usize,
    /// Instances that said no: another owner holds the lock (acquire), or this owner does not
    /// (extend, release).
    pub refused: usize,
    /// Instances that gave no answer, by index (an acquire may still have been executed there).
    pub failed: Vec<(usize, InstanceError)>,
    /// Instances not contacted: the round stopped once a quorum was out of reach or the
    /// validity it could give was already gone.
    pub skipped: usize,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} yes, {} no, {} without answer, {} not contacted",
            self.succeeded,
            self.refused,
            self.failed.len(),
            self.skipped
        )?;
        for (index, e) in &self.failed {
            write!(f, "; instance {index}: {e}")?;
        }
        Ok(())
    }
}

/// `acquire` did not return a lock. Nothing is left locked by it, except on instances that could
/// not be reached to release it: those drop it when its TTL passes.
#[derive(Debug)]
pub enum AcquireError {
    /// `ttl_ms` leaves no validity once the clock-drift allowance `drift_ms` is taken off.
    InvalidTtl { ttl_ms: u64, drift_ms: u64 },
    /// No owner id could be drawn from the operating system's random source.
    Randomness(io::Error),
    /// Every attempt ended without a quorum, or reached it too late to leave any validity (then
    /// `last.succeeded` is at least the quorum).
    NotAcquired { attempts: u32, last: Tally },
}

/// `extend` did not extend the lock: stop using the resource when the lock's (possibly
/// shortened) validity runs out.
#[derive(Debug)]
pub enum ExtendError {
    /// `ttl_ms` leaves no validity once the clock-drift allowance `drift_ms` is taken off.
    InvalidTtl { ttl_ms: u64, drift_ms: u64 },
    /// The lock's validity had already ended `since_ms` ago: nothing was sent. The lock is lost.
    Expired { since_ms: u64 },
    /// No attempt found a quorum of instances still holding the lock for this owner (or able to
    /// answer) before the lock's validity ended or the retries ran out.
    NotExtended { attempts: u32, last: Tally },
}

/// `release` did not find the lock held by a quorum. Instances that still held it released it.
#[derive(Debug)]
pub enum ReleaseError {
    /// Too many instances answered that this owner holds nothing: the lock had expired (or was
    /// released) before this call. Not a fault of the release; a warning that the work done under
    /// the lock may have outlived it.
    NotHeld { tally: Tally },
    /// Too few instances answered to tell; the unanswered ones drop the lock when its TTL passes.
    Unreachable { tally: Tally },
}

/// Any of the three, for callers that propagate with `?`.
#[derive(Debug)]
pub enum Error {
    Acquire(AcquireError),
    Extend(ExtendError),
    Release(ReleaseError),
}

fn invalid_ttl(f: &mut fmt::Formatter<'_>, ttl_ms: u64, drift_ms: u64) -> fmt::Result {
    write!(
        f,
        "ttl of {ttl_ms} ms leaves no validity after a clock drift allowance of {drift_ms} ms"
    )
}

/// Every attempt failed to find a quorum: how many there were, and how the last one went.
fn no_quorum(f: &mut fmt::Formatter<'_>, done: &str, attempts: u32, last: &Tally) -> fmt::Result {
    write!(
        f,
        "lock not {done} after {attempts} attempt(s); last: {last}"
    )
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::InvalidTtl { ttl_ms, drift_ms } => invalid_ttl(f, *ttl_ms, *drift_ms),
            AcquireError::Randomness(e) => write!(f, "cannot draw an owner id: {e}"),
            AcquireError::NotAcquired { attempts, last } => {
                no_quorum(f, "acquired", *attempts, last)
            }
        }
    }
}

impl fmt::Display for ExtendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtendError::InvalidTtl { ttl_ms, drift_ms } => invalid_ttl(f, *ttl_ms, *drift_ms),
            ExtendError::Expired { since_ms } => {
                write!(f, "lock not extended: its validity ended {since_ms} ms ago")
            }
            ExtendError::NotExtended { attempts, last } => {
                no_quorum(f, "extended", *attempts, last)
            }
        }
    }
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::NotHeld { tally } => {
                write!(
                    f,
                    "lock was no longer held (expired or released before): {tally}"
                )
            }
            ReleaseError::Unreachable { tally } => {
                write!(f, "release not confirmed by a quorum: {tally}")
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Acquire(e) => e.fmt(f),
            Error::Extend(e) => e.fmt(f),
            Error::Release(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcquireError::Randomness(e) => Some(e),
            _ => None,
        }
    }
}

impl std::error::Error for ExtendError {}
impl std::error::Error for ReleaseError {}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Acquire(e) => Some(e),
            Error::Extend(e) => Some(e),
            Error::Release(e) => Some(e),
        }
    }
}

impl From<AcquireError> for Error {
    fn from(e: AcquireError) -> Self {
        Error::Acquire(e)
    }
}

impl From<ExtendError> for Error {
    fn from(e: ExtendError) -> Self {
        Error::Extend(e)
    }
}

impl From<ReleaseError> for Error {
    fn from(e: ReleaseError) -> Self {
        Error::Release(e)
    }
}

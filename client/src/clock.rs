//! The client's sense of time: a monotonic millisecond clock and a way to wait.
//!
//! Redlock measures how long an acquisition took on the *client*, so the clock must never jump:
//! [`MonotonicClock`] reads [`Instant`], not the wall clock. Tests inject a fake clock instead.

use std::time::{Duration, Instant};

/// A monotonic clock in milliseconds (the origin is arbitrary) and a sleep on the same clock.
pub trait Clock {
    /// Milliseconds since an arbitrary origin; never goes backwards.
    fn now_ms(&self) -> u64;
    /// Waits `ms` milliseconds (the delay between two attempts).
    fn sleep_ms(&self, ms: u64);
}

/// The process's monotonic clock ([`Instant`]), counted from the moment it was created.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

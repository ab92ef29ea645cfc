//! Randomness: owner ids from the operating system's CSPRNG, retry jitter from a cheap generator.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};

/// Bytes in an owner id: 128 bits, so that no other client can guess (and release) a lock.
const OWNER_BYTES: usize = 16;

/// A fresh owner id: 128 bits from `/dev/urandom`, as 32 lowercase hex digits.
pub fn owner_id() -> io::Result<String> {
    let mut raw = [0u8; OWNER_BYTES];
    File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Jitter for retry delays (xorshift64*): spreads competing clients apart; not a secret, so it
/// needs no CSPRNG, only a seed that differs between clients.
pub struct Jitter {
    state: u64,
}

impl Jitter {
    pub fn new() -> Self {
        let seed = RandomState::new().build_hasher().finish();
        Self { state: seed | 1 }
    }

    /// Uniform in `0..=max_ms` (up to a negligible modulo bias).
    pub fn up_to(&mut self, max_ms: u64) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        match max_ms.checked_add(1) {
            Some(span) => x % span,
            None => x,
        }
    }
}

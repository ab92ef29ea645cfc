//! Helpers for core's unit tests.

/// A small deterministic generator (core has no dependencies).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }

    /// 1 to 24 bytes drawn from `alphabet`.
    pub fn name(&mut self, alphabet: &[u8]) -> Vec<u8> {
        let len = 1 + self.next() as usize % 24;
        (0..len)
            .map(|_| alphabet[self.next() as usize % alphabet.len()])
            .collect()
    }
}

//! Numbers as text without allocation.

/// Formats into a stack buffer (state values are short), for writes without allocation.
pub struct StackText {
    buf: [u8; 96],
    len: usize,
}

impl StackText {
    pub fn of(value: impl std::fmt::Display) -> Self {
        use std::io::Write;
        let mut text = Self {
            buf: [0; 96],
            len: 0,
        };
        let mut cursor = std::io::Cursor::new(&mut text.buf[..]);
        write!(cursor, "{value}").expect("state values fit in 96 bytes");
        text.len = cursor.position() as usize;
        text
    }

    /// An integer's decimal text, without the formatting machinery (a hot path's value).
    pub fn int(value: i64) -> Self {
        let mut text = Self {
            buf: [0; 96],
            len: 0,
        };
        let mut digits = [0u8; 20];
        let mut n = value.unsigned_abs();
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if value < 0 {
            text.buf[0] = b'-';
            text.len = 1;
        }
        let tail = &digits[at..];
        text.buf[text.len..text.len + tail.len()].copy_from_slice(tail);
        text.len += tail.len();
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

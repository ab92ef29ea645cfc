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

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

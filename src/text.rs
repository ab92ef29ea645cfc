//! Numbers as text without allocation.

use std::ffi::CStr;

use patterns_core::text::{digit_count, write_digits};

/// Formats into a stack buffer (state values are short), for writes without allocation; the
/// text is followed by a NUL, so it also reads as a C string.
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
        assert!(
            text.len < text.buf.len(),
            "state values fit in 95 bytes and a NUL"
        );
        text
    }

    /// An integer's decimal text, without the formatting machinery (a hot path's value):
    /// written in place from its last digit, two digits a step.
    pub fn int(value: i64) -> Self {
        let mut text = Self {
            buf: [0; 96],
            len: 0,
        };
        let n = value.unsigned_abs();
        let sign = usize::from(value < 0);
        text.buf[0] = b'-'; // a digit's, when there is no sign
        text.len = sign + digit_count(n);
        write_digits(n, &mut text.buf[sign..text.len]);
        text
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text as a C string (state values hold no NUL).
    pub fn as_c_str(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).expect("a NUL follows the text")
    }
}

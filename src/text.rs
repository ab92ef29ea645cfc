//! Numbers as text without allocation.

use std::ffi::CStr;

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
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839404142434445464748495051525354555657585960\
            616263646566676869707172737475767778798081828384858687888990919293949596979899";
        let mut text = Self {
            buf: [0; 96],
            len: 0,
        };
        let mut n = value.unsigned_abs();
        if value < 0 {
            text.buf[0] = b'-';
        }
        let digits = n.checked_ilog10().unwrap_or(0) as usize + 1;
        text.len = usize::from(value < 0) + digits;
        let mut at = text.len;
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            at -= 2;
            text.buf[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            text.buf[at - 2..at].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            text.buf[at - 1] = b'0' + n as u8;
        }
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

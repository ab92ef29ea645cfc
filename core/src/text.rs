//! Numbers as decimal text, without the formatting machinery (hot paths write them).

/// The two-digit texts of 0 to 99, one after another.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839404142434445464748495051525354555657585960\
    616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// How many decimal digits `n` takes (1 for 0).
pub fn digit_count(n: u64) -> usize {
    n.checked_ilog10().unwrap_or(0) as usize + 1
}

/// Writes `n`'s last `out.len()` decimal digits into `out`, zero-padded on the left: from the
/// last digit, two a step. With `out` [`digit_count`] long, `n`'s text.
pub fn write_digits(mut n: u64, out: &mut [u8]) {
    let mut at = out.len();
    while at >= 2 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        at -= 2;
        out[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if at == 1 {
        out[0] = b'0' + (n % 10) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: u64, width: usize) -> String {
        let mut out = vec![b'x'; width];
        write_digits(n, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn digits_are_the_numbers_text() {
        for n in [0, 7, 10, 99, 100, 101, 12_345, 987_654, u64::MAX] {
            assert_eq!(text(n, digit_count(n)), n.to_string());
        }
        assert_eq!(digit_count(0), 1);
        assert_eq!(digit_count(9), 1);
        assert_eq!(digit_count(10), 2);
        assert_eq!(digit_count(u64::MAX), 20);
    }

    #[test]
    fn a_wider_field_is_zero_padded_and_a_narrower_keeps_the_last_digits() {
        assert_eq!(text(42, 5), "00042");
        assert_eq!(text(42, 6), "000042");
        assert_eq!(text(0, 3), "000");
        assert_eq!(text(1_777_000_000_000, 16), "0001777000000000");
        assert_eq!(text(12_345, 3), "345");
        assert_eq!(text(12_345, 0), "");
    }
}

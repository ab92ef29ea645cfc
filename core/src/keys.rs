//! What every family shares about keys and stored values: Cluster hashtags and slots, keys
//! derived in another key's slot, random ids, reserved field names, and the longest time span.
//! The Lua twin's prelude mirrors `hashtag`, `derived_key` and `check_fields` (`reserved_fields`).

use crate::command::CmdError;

/// The longest time span any command accepts (a TTL, a timeout, a limiter's window): 2^52 ms,
/// about 142,000 years. Doubles (sorted-set scores, Lua numbers) hold every expiry up to there
/// exactly.
pub const MAX_MS: i64 = 1 << 52;

/// What a key holds, as the families' stores report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Empty,
    ZSet,
    Hash,
    Other,
}

// ---------------------------------------------------------------------------------------------
// Hashtags and slots

/// CRC16-CCITT (XMODEM), the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hashtag Redis hashes instead of the whole key: the bytes between the first `{` and the
/// first `}` after it, when there are any.
pub fn hashtag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let close = key[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &key[open + 1..open + 1 + close])
}

/// Redis's `keyHashSlot`.
pub fn slot(key: &[u8]) -> u16 {
    crc16(hashtag(key).unwrap_or(key)) & 16383
}

/// A key in `name`'s Cluster slot: `<name>:<suffix>` when the name has a hashtag, else
/// `{<name>}:<suffix>`. A name with braces but no hashtag (or the empty name) has none.
pub fn derived_key(name: &[u8], suffix: &[u8]) -> Option<Vec<u8>> {
    let mut key = Vec::with_capacity(name.len() + suffix.len() + 3);
    push_derived_prefix(&mut key, name)?;
    key.extend_from_slice(suffix);
    Some(key)
}

/// Appends what [`derived_key`] puts before the suffix (`<name>:` or `{<name>}:`) to `out`;
/// None, nothing appended, for a name that has no derived keys.
pub fn push_derived_prefix(out: &mut Vec<u8>, name: &[u8]) -> Option<()> {
    if hashtag(name).is_some() {
        out.extend_from_slice(name);
    } else if name.is_empty() || name.iter().any(|&b| b == b'{' || b == b'}') {
        return None;
    } else {
        out.push(b'{');
        out.extend_from_slice(name);
        out.push(b'}');
    }
    out.push(b':');
    Some(())
}

// ---------------------------------------------------------------------------------------------
// Ids

/// Bytes of CSPRNG output per id.
pub const ID_BYTES: usize = 16;
/// Characters of an encoded id (base64url, no padding).
pub const ID_LEN: usize = 22;
/// The id alphabet: base64url.
pub const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes 16 random bytes as 22 base64url characters (no padding).
pub fn encode_id(bytes: &[u8; ID_BYTES]) -> [u8; ID_LEN] {
    let mut out = [0u8; ID_LEN];
    let n = u128::from_be_bytes(*bytes);
    // 21 full sextets from the top, then the last 2 bits padded with 4 zero bits.
    for (i, c) in out.iter_mut().take(ID_LEN - 1).enumerate() {
        *c = ALPHABET[((n >> (122 - 6 * i)) & 63) as usize];
    }
    out[ID_LEN - 1] = ALPHABET[((n & 3) << 4) as usize];
    out
}

/// Whether `id` is an encoded id: 22 characters of the base64url alphabet.
pub fn is_id(id: &[u8]) -> bool {
    id.len() == ID_LEN && id.iter().all(|b| ALPHABET.contains(b))
}

// ---------------------------------------------------------------------------------------------
// Reserved field names

/// Field names a family keeps its own state in (a session's `__index`, a resource's
/// `__fence`) start with this; callers' fields may not.
pub const RESERVED_PREFIX: &str = "__";
pub const RESERVED: &str = "field names starting with __ are reserved";

/// Fails unless every field name (every other argument, from the first) is a caller's field.
pub fn check_fields(pairs: &[&[u8]]) -> Result<(), CmdError> {
    if pairs
        .iter()
        .step_by(2)
        .any(|f| f.starts_with(RESERVED_PREFIX.as_bytes()))
    {
        return Err(CmdError::BadState(RESERVED));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairs_keep_their_order_and_retain_in_place() {
        let mut p: super::Pairs = [&b"__a"[..], b"1", b"user", b"42", b"__b", b"", b"", b"x"]
            .into_iter()
            .collect();
        assert_eq!(p.len(), 8);
        assert_eq!(p.pairs().nth(1), Some((&b"user"[..], &b"42"[..])));
        p.retain(|f| !f.starts_with(b"__"));
        assert_eq!(
            p.to_vecs(),
            [b"user".to_vec(), b"42".to_vec(), vec![], b"x".to_vec()]
        );
        p.retain(|f| f.is_empty());
        assert_eq!(p.to_vecs(), [vec![], b"x".to_vec()]);
        p.retain(|_| false);
        assert!(p.is_empty());
    }

    #[test]
    fn pairs_keep_the_room_asked_for() {
        // A buffer reused from read to read: emptied, with room for the next one's bytes.
        let mut p = super::Pairs::with_capacity(4, 64);
        assert!(p.is_empty() && p.capacity() >= 64);
        p.push(b"field");
        p.push(b"value");
        assert!(!p.is_empty());
        p.clear_for(2, 256);
        assert!(p.is_empty() && p.capacity() >= 256);
        assert_eq!(p.strings().count(), 0);
    }

    use super::*;
    use crate::testing::XorShift;

    #[test]
    fn slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        // CLUSTER KEYSLOT on a real server.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
        assert_eq!(slot(b"foo{bar}{zap}"), slot(b"bar"));
        assert_eq!(hashtag(b"a{b"), None);
        assert_eq!(hashtag(b"a{}b"), None);
        assert_eq!(hashtag(b"}{x}"), Some(&b"x"[..]));
    }

    #[test]
    fn derived_keys_share_the_name_slot() {
        assert_eq!(derived_key(b"a{t}b", b"s").unwrap(), b"a{t}b:s".to_vec());
        assert_eq!(derived_key(b"ab", b"s").unwrap(), b"{ab}:s".to_vec());
        for bad in [&b""[..], b"a{b", b"a}b", b"a{}b", b"}{"] {
            assert_eq!(derived_key(bad, b"s"), None, "{bad:?}");
        }
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut derived = 0;
        for _ in 0..20_000 {
            let name = rng.name(b"ab:{}x_");
            let mut raw = [0u8; ID_BYTES];
            for b in raw.iter_mut() {
                *b = rng.next() as u8;
            }
            match derived_key(&name, &encode_id(&raw)) {
                Some(key) => {
                    assert_eq!(slot(&key), slot(&name), "{name:?}");
                    derived += 1;
                }
                None => assert!(hashtag(&name).is_none()),
            }
        }
        assert!(derived > 5_000, "{derived}");
    }

    #[test]
    fn ids_are_base64url_without_padding() {
        let mut counting = [0u8; ID_BYTES];
        for (i, b) in counting.iter_mut().enumerate() {
            *b = i as u8;
        }
        // base64 of 00 01 .. 0f is "AAECAwQFBgcICQoLDA0ODw==".
        assert_eq!(&encode_id(&counting), b"AAECAwQFBgcICQoLDA0ODw");
        assert_eq!(&encode_id(&[0xff; ID_BYTES]), b"_____________________w");
        assert_eq!(&encode_id(&[0xfb; ID_BYTES]), b"-_v7-_v7-_v7-_v7-_v7-w");
        assert_eq!(&encode_id(&[0; ID_BYTES]), b"AAAAAAAAAAAAAAAAAAAAAA");
        assert!(is_id(b"AAECAwQFBgcICQoLDA0ODw"));
        assert!(!is_id(b"AAECAwQFBgcICQoLDA0OD"));
        assert!(!is_id(b"AAECAwQFBgcICQoLDA0OD="));
        assert!(!is_id(b"AAECAwQFBgcICQoLDA0OD+"));
    }

    #[test]
    fn reserved_field_names_are_refused() {
        assert_eq!(
            check_fields(&[b"__x", b"1"]).unwrap_err().to_string(),
            "ERR field names starting with __ are reserved"
        );
        // Values may start with __; only names are reserved.
        assert!(check_fields(&[b"a", b"__x", b"_b", b"2"]).is_ok());
    }
}

/// A hash's fields and values, flat, in one buffer: two allocations however many fields
/// (a session read copies a dozen strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs {
    bytes: Vec<u8>,
    /// Where each field and each value ends in `bytes`: field, value, field, value, ...
    ends: Vec<usize>,
}

impl Pairs {
    /// Room for `n` strings (fields and values) of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
        }
    }

    /// Empties it, keeping room for `n` strings of `bytes` bytes in all (a buffer reused).
    pub fn clear_for(&mut self, n: usize, bytes: usize) {
        self.bytes.clear();
        self.ends.clear();
        self.bytes.reserve(bytes);
        self.ends.reserve(n);
    }

    /// The bytes it holds room for.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Appends a field or a value (a field, then its value).
    pub fn push(&mut self, s: &[u8]) {
        self.bytes.extend_from_slice(s);
        self.ends.push(self.bytes.len());
    }

    /// How many strings (twice the fields).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// The strings in order: field, value, field, value, ...
    pub fn strings(&self) -> impl Iterator<Item = &[u8]> + Clone + '_ {
        (0..self.ends.len()).map(|i| self.get(i))
    }

    /// The (field, value) pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + Clone + '_ {
        (0..self.ends.len() / 2).map(|i| (self.get(2 * i), self.get(2 * i + 1)))
    }

    /// Keeps the pairs whose field `keep` accepts, in order (in place).
    pub fn retain(&mut self, keep: impl Fn(&[u8]) -> bool) {
        let (mut len, mut kept, mut start) = (0, 0, 0);
        for i in (0..self.ends.len() / 2).map(|i| 2 * i) {
            let end = self.ends[i + 1];
            // (`start` and the ends from `i` on are not rewritten yet.)
            if keep(&self.bytes[start..self.ends[i]]) {
                let field_len = self.ends[i] - start;
                self.bytes.copy_within(start..end, len);
                self.ends[kept] = len + field_len;
                self.ends[kept + 1] = len + end - start;
                len += end - start;
                kept += 2;
            }
            start = end;
        }
        self.bytes.truncate(len);
        self.ends.truncate(kept);
    }

    /// Each string as its own vector.
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.strings().map(<[u8]>::to_vec).collect()
    }
}

impl<S: AsRef<[u8]>> FromIterator<S> for Pairs {
    fn from_iter<I: IntoIterator<Item = S>>(strings: I) -> Self {
        let mut out = Self::default();
        for s in strings {
            out.push(s.as_ref());
        }
        out
    }
}

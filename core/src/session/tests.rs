use super::*;
use crate::keys::{encode_id, hashtag, slot, ID_BYTES, MAX_MS};

/// A small deterministic generator (core has no dependencies).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn name(&mut self, alphabet: &[u8]) -> Vec<u8> {
        let len = 1 + self.next() as usize % 24;
        (0..len)
            .map(|_| alphabet[self.next() as usize % alphabet.len()])
            .collect()
    }
}

#[test]
fn session_keys_share_the_index_slot() {
    let id = b"AAECAwQFBgcICQoLDA0ODw";
    assert_eq!(
        session_key(b"sessions:{user:42}", id).unwrap(),
        b"sessions:{user:42}:AAECAwQFBgcICQoLDA0ODw".to_vec()
    );
    assert_eq!(
        session_key(b"sessions:u1", id).unwrap(),
        b"{sessions:u1}:AAECAwQFBgcICQoLDA0ODw".to_vec()
    );
    for bad in [&b""[..], b"a{b", b"a}b", b"a{}b", b"}{"] {
        assert_eq!(
            session_key(bad, id).unwrap_err().to_string(),
            "ERR index name cannot carry a session key in its slot",
            "{bad:?}"
        );
    }
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut derived = 0;
    for _ in 0..20_000 {
        let index = rng.name(b"ab:{}x_");
        let mut raw = [0u8; ID_BYTES];
        for b in raw.iter_mut() {
            *b = rng.next() as u8;
        }
        let id = encode_id(&raw);
        match session_key(&index, &id) {
            Ok(key) => {
                assert_eq!(slot(&key), slot(&index), "{index:?}");
                derived += 1;
            }
            Err(_) => assert!(hashtag(&index).is_none()),
        }
    }
    assert!(derived > 5_000, "{derived}");
}

#[test]
fn sliding_expiry_is_capped_by_the_absolute_deadline() {
    let t = Timeouts::new(300, 1000).unwrap();
    let d = t.start(10_000);
    assert_eq!(d.absolute_at, 11_000);
    // (now, expected expiry)
    let table = [
        (10_000, 10_300),
        (10_250, 10_550),
        (10_500, 10_800),
        (10_700, 11_000),
        (10_999, 11_000),
        (11_000, 11_000),
    ];
    for (now, want) in table {
        assert_eq!(d.expiry(now), want, "now {now}");
    }
    let same = Timeouts::new(500, 500).unwrap().start(0);
    assert_eq!(same.expiry(0), 500);
    assert_eq!(same.expiry(100), 500);
}

#[test]
fn bad_timeouts_and_fields_are_refused() {
    assert_eq!(
        Timeouts::new(10, 9).unwrap_err().to_string(),
        "ERR absolute_ms must be at least idle_ms"
    );
    assert_eq!(
        Timeouts::new(1, MAX_MS + 1).unwrap_err().to_string(),
        "ERR idle_ms and absolute_ms must be at most 2^52"
    );
    assert!(Timeouts::new(MAX_MS, MAX_MS).is_ok());
    let raw: Vec<&[u8]> = vec![b"1", b"2", b"f"];
    assert_eq!(
        CREATE.parse(&raw).unwrap_err().to_string(),
        "ERR wrong number of arguments for 'session.create' command"
    );
    let raw: Vec<&[u8]> = vec![b"0", b"2"];
    assert_eq!(
        CREATE.parse(&raw).unwrap_err().to_string(),
        "ERR idle_ms must be a positive integer"
    );
    assert_eq!(CREATE.arity(), -4);
    assert_eq!(SET.arity(), -4);
    assert_eq!(GET.arity(), 2);
}

#[test]
fn meta_reads_the_reserved_fields() {
    let pairs: Vec<(&[u8], &[u8])> = vec![
        (b"__idle_ms", b"300"),
        (b"__absolute_at", b"11000"),
        (b"__index", b"sessions:{u}"),
        (b"user", b"42"),
    ];
    let m = Meta::parse(&pairs).unwrap();
    assert_eq!(m.deadlines.idle_ms, 300);
    assert_eq!(m.deadlines.absolute_at, 11000);
    assert_eq!(m.index, b"sessions:{u}");
    assert_eq!(
        Meta::parse(&pairs[1..]).unwrap_err().to_string(),
        "ERR key does not hold a session"
    );
}

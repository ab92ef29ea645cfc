use super::*;
use crate::keys::MAX_MS;

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
    // That they share its slot is keys::derived_key's property (tested there).
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
    // A hash lists its fields in any order: an application field is never taken for a
    // reserved one, before them or without them.
    let user_first = [pairs[3], pairs[0], pairs[1], pairs[2]];
    assert_eq!(Meta::parse(&user_first).unwrap().index, b"sessions:{u}");
    assert!(Meta::parse(&user_first[..3]).is_err());
    assert_eq!(
        Meta::parse(&pairs[1..]).unwrap_err().to_string(),
        "ERR key does not hold a session"
    );
    let (no_index, negative) = (
        &pairs[..2],
        [(&b"__idle_ms"[..], &b"-1"[..]), pairs[1], pairs[2]],
    );
    for bad in [no_index, &negative[..]] {
        assert_eq!(
            Meta::parse(bad).unwrap_err().to_string(),
            "ERR key does not hold a session"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Write plans, on a store in memory

mod plans {
    use super::super::ops::{self, IndexChange, Store};
    use super::super::{Timeouts, BAD_INDEX};
    use crate::command::CmdError;
    use crate::keys::{Kind, Pairs, ID_LEN, RESERVED};
    use std::collections::{BTreeMap, BTreeSet};

    mod mutants;

    /// A hash's field/value pairs, in insertion order.
    type Hash = Vec<(Vec<u8>, Vec<u8>)>;

    /// Redis as the session commands see it: hashes, sorted sets (the indexes), other keys,
    /// expiries; and every write, in order, as the command that makes it.
    #[derive(Default)]
    struct Mem {
        hashes: BTreeMap<Vec<u8>, Hash>,
        zsets: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, i64>>,
        others: BTreeSet<Vec<u8>>,
        expiry: BTreeMap<Vec<u8>, i64>,
        denied: BTreeSet<Vec<u8>>,
        ids: Vec<[u8; ID_LEN]>,
        writes: Vec<String>,
    }

    fn show(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    impl Mem {
        fn with_ids(ids: &[&str]) -> Self {
            let ids = ids
                .iter()
                .rev()
                .map(|id| id.as_bytes().try_into().unwrap())
                .collect();
            Mem {
                ids,
                ..Mem::default()
            }
        }

        fn log(&mut self, words: &[&[u8]]) {
            let words: Vec<String> = words.iter().map(|w| show(w)).collect();
            self.writes.push(words.join(" "));
        }

        /// The writes since the last call.
        fn take(&mut self) -> Vec<String> {
            std::mem::take(&mut self.writes)
        }
    }

    impl Store for Mem {
        fn kind(&mut self, key: &[u8]) -> Kind {
            if self.hashes.contains_key(key) {
                Kind::Hash
            } else if self.zsets.contains_key(key) {
                Kind::ZSet
            } else if self.others.contains(key) {
                Kind::Other
            } else {
                Kind::Empty
            }
        }

        fn live_hash(&mut self, key: &[u8], now_ms: i64) -> Result<Option<Pairs>, CmdError> {
            let kind = match self.expiry.get(key) {
                Some(&at) if at <= now_ms => Kind::Empty,
                _ => self.kind(key),
            };
            match kind {
                Kind::Empty => Ok(None),
                Kind::Hash => Ok(Some(
                    self.hashes[key]
                        .iter()
                        .cloned()
                        .flat_map(|(f, v)| [f, v])
                        .collect(),
                )),
                _ => Err(CmdError::WrongType),
            }
        }

        fn may_access(&mut self, key: &[u8]) -> bool {
            !self.denied.contains(key)
        }

        fn new_id(&mut self) -> Result<[u8; ID_LEN], CmdError> {
            self.ids.pop().ok_or(CmdError::Internal)
        }

        fn expire_time(&mut self, key: &[u8]) -> i64 {
            self.expiry.get(key).copied().unwrap_or(-1)
        }

        fn members(&mut self, index: &[u8]) -> Vec<Vec<u8>> {
            let mut members: Vec<(i64, Vec<u8>)> = self
                .zsets
                .get(index)
                .map(|z| z.iter().map(|(m, s)| (*s, m.clone())).collect())
                .unwrap_or_default();
            members.sort();
            members.into_iter().map(|(_, m)| m).collect()
        }

        fn live_expiry(&mut self, key: &[u8], now_ms: i64) -> Option<i64> {
            if self.kind(key) == Kind::Empty {
                return None;
            }
            match self.expiry.get(key) {
                Some(&at) if at <= now_ms => None,
                at => Some(at.copied().unwrap_or(i64::MAX)),
            }
        }

        fn split_at(&mut self, index: &[u8], after: i64, edge: i64) -> (i64, Vec<Vec<u8>>) {
            let zset = self.zsets.get(index).cloned().unwrap_or_default();
            let above = zset.values().filter(|at| **at > edge).count() as i64;
            let within = |m: &Vec<u8>| (after + 1..=edge).contains(&zset[m]);
            (
                above,
                self.members(index).into_iter().filter(within).collect(),
            )
        }

        fn index_score(&mut self, index: &[u8], member: &[u8]) -> Option<i64> {
            self.zsets.get(index)?.get(member).copied()
        }

        fn hset(&mut self, key: &[u8], pairs: &[&[u8]]) -> i64 {
            self.log(&[&[b"HSET" as &[u8], key][..], pairs].concat());
            let hash = self.hashes.entry(key.to_vec()).or_default();
            let mut added = 0;
            for pair in pairs.chunks(2) {
                match hash.iter_mut().find(|(f, _)| f == pair[0]) {
                    Some((_, v)) => *v = pair[1].to_vec(),
                    None => {
                        hash.push((pair[0].to_vec(), pair[1].to_vec()));
                        added += 1;
                    }
                }
            }
            added
        }

        fn expire_at(&mut self, key: &[u8], at_ms: i64) {
            self.log(&[b"PEXPIREAT", key, at_ms.to_string().as_bytes()]);
            self.expiry.insert(key.to_vec(), at_ms);
        }

        fn rename(&mut self, from: &[u8], to: &[u8]) {
            self.log(&[b"RENAME", from, to]);
            let hash = self.hashes.remove(from).expect("a session");
            self.hashes.insert(to.to_vec(), hash);
            if let Some(at) = self.expiry.remove(from) {
                self.expiry.insert(to.to_vec(), at);
            }
        }

        fn del(&mut self, key: &[u8]) -> i64 {
            self.log(&[b"DEL", key]);
            self.expiry.remove(key);
            let gone = self.hashes.remove(key).is_some() || self.zsets.remove(key).is_some();
            i64::from(gone)
        }

        fn unlink(&mut self, key: &[u8]) {
            self.log(&[b"UNLINK", key]);
            self.expiry.remove(key);
            self.zsets.remove(key);
        }

        fn update_index(&mut self, index: &[u8], now_ms: i64, change: IndexChange<'_>) {
            let (remove, add) = (change.removed(), change.added());
            let mut words: Vec<Vec<u8>> = vec![b"INDEX".to_vec(), index.to_vec()];
            words.push(format!("prune<={now_ms}").into_bytes());
            words.extend(remove.map(|m| [b"-", m].concat()));
            words.extend(add.map(|(at, m)| [format!("+{at}:").as_bytes(), m].concat()));
            let words: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
            self.log(&words);
            let zset = self.zsets.entry(index.to_vec()).or_default();
            zset.retain(|_, score| *score > now_ms);
            if let Some(m) = remove {
                zset.remove(m);
            }
            if let Some((at, m)) = add {
                zset.insert(m.to_vec(), at);
            }
            match zset.values().max().copied() {
                Some(top) => {
                    self.expiry.insert(index.to_vec(), top);
                }
                None => {
                    self.zsets.remove(index);
                    self.expiry.remove(index);
                }
            }
        }
    }

    const ID1: &str = "AAAAAAAAAAAAAAAAAAAAAA";
    const ID2: &str = "BBBBBBBBBBBBBBBBBBBBBB";
    const KEY1: &[u8] = b"{idx}:AAAAAAAAAAAAAAAAAAAAAA";
    const KEY2: &[u8] = b"{idx}:BBBBBBBBBBBBBBBBBBBBBB";

    /// A store holding one session of `idx`, created at 0 with idle 100 and absolute 250.
    fn one_session() -> Mem {
        let mut s = Mem::with_ids(&[ID1, ID2]);
        let t = Timeouts::new(100, 250).unwrap();
        let key = ops::create(&mut s, b"idx", t, None, &[b"user", b"42"], 0).unwrap();
        assert_eq!(key, (KEY1.to_vec(), 0));
        s.take();
        s
    }

    #[test]
    fn create_writes_the_hash_then_its_expiry_then_the_index() {
        let mut s = one_session();
        s.ids.push(ID2.as_bytes().try_into().unwrap());
        let t = Timeouts::new(100, 250).unwrap();
        let key = ops::create(&mut s, b"idx", t, None, &[], 10).unwrap();
        assert_eq!(key, (KEY2.to_vec(), 0));
        assert_eq!(
            s.take(),
            [
                "HSET {idx}:BBBBBBBBBBBBBBBBBBBBBB __idle_ms 100 __absolute_at 260 __index idx",
                "PEXPIREAT {idx}:BBBBBBBBBBBBBBBBBBBBBB 110",
                // Scored a lead (idle / 8) ahead of its expiry.
                "INDEX idx prune<=10 +122:{idx}:BBBBBBBBBBBBBBBBBBBBBB",
            ]
        );
        assert_eq!(ops::count(&mut s, b"idx", 10), Ok(2));
    }

    #[test]
    fn a_refused_command_writes_nothing() {
        let t = Timeouts::new(100, 250).unwrap();
        let fields: &[&[u8]] = &[b"__index", b"x"];
        // (case, index, fields, store setup, error)
        type Case<'a> = (&'a str, &'a [u8], &'a [&'a [u8]], fn(&mut Mem), CmdError);
        let cases: [Case; 4] = [
            (
                "reserved field",
                b"idx",
                fields,
                |_| {},
                CmdError::BadState(RESERVED),
            ),
            (
                "no slot",
                b"a{b",
                &[],
                |_| {},
                CmdError::BadState(BAD_INDEX),
            ),
            (
                "index of another type",
                b"idx",
                &[],
                |s| {
                    s.others.insert(b"idx".to_vec());
                },
                CmdError::WrongType,
            ),
            (
                "derived key denied",
                b"idx",
                &[],
                |s| {
                    s.denied.insert(KEY1.to_vec());
                },
                CmdError::NoPerm,
            ),
        ];
        for (case, index, fields, setup, error) in cases {
            let mut s = Mem::with_ids(&[ID1]);
            setup(&mut s);
            assert_eq!(
                ops::create(&mut s, index, t, None, fields, 0),
                Err(error),
                "{case}"
            );
            assert!(s.take().is_empty(), "{case}");
        }
        let mut s = one_session();
        assert_eq!(
            ops::set(&mut s, KEY1, &[b"__x", b"1"], 5),
            Err(CmdError::BadState(RESERVED))
        );
        s.denied.insert(b"idx".to_vec());
        assert_eq!(ops::get(&mut s, KEY1, 5), Err(CmdError::NoPerm));
        s.denied.clear();
        s.denied.insert(KEY2.to_vec());
        assert_eq!(ops::rotate(&mut s, KEY1, 5), Err(CmdError::NoPerm));
        s.denied.insert(KEY1.to_vec());
        assert_eq!(ops::destroy_all(&mut s, b"idx", 5), Err(CmdError::NoPerm));
        assert!(s.take().is_empty());
    }

    #[test]
    fn each_use_slides_the_expiry_and_moves_the_index_only_past_its_score() {
        let mut s = one_session();
        // Created at 0: expiry 100, scored 112 (lead 100 / 8 = 12). (now, expiry written by
        // GET, the index's new score; None when the session is gone or the index stays.)
        let table = [
            (50, Some(150), Some(162)),
            (55, Some(155), None),
            (62, Some(162), None),
            (63, Some(163), Some(175)),
            (149, Some(249), Some(250)),
            (200, Some(250), None),
            (250, None, None),
        ];
        for (now, expiry, score) in table {
            let got = ops::get(&mut s, KEY1, now).unwrap().map(|p| p.to_vecs());
            let writes = s.take();
            let Some(at) = expiry else {
                assert_eq!((got, writes.len()), (None, 0), "{now}");
                continue;
            };
            assert_eq!(got, Some(vec![b"user".to_vec(), b"42".to_vec()]), "{now}");
            let mut want = vec![format!("PEXPIREAT {} {at}", show(KEY1))];
            want.extend(score.map(|sc| format!("INDEX idx prune<={now} +{sc}:{}", show(KEY1))));
            assert_eq!(writes, want, "{now}");
            // The score never falls behind the expiry, nor runs more than the lead ahead.
            let stored = s.zsets[&b"idx"[..]][KEY1];
            assert!((at..=at + 12).contains(&stored), "{now}: {stored}");
        }
    }

    #[test]
    fn set_writes_the_fields_then_slides() {
        let mut s = one_session();
        assert_eq!(
            ops::set(&mut s, KEY1, &[b"user", b"7", b"role", b"admin"], 20),
            Ok(Some(1))
        );
        assert_eq!(
            s.take(),
            [
                format!("HSET {} user 7 role admin", show(KEY1)),
                format!("PEXPIREAT {} 120", show(KEY1)),
                format!("INDEX idx prune<=20 +132:{}", show(KEY1)),
            ]
        );
        assert_eq!(ops::set(&mut s, b"{idx}:gone", &[b"a", b"b"], 20), Ok(None));
    }

    #[test]
    fn rotate_moves_the_session_and_keeps_its_expiry() {
        let mut s = one_session();
        assert_eq!(ops::rotate(&mut s, KEY1, 30), Ok(Some(KEY2.to_vec())));
        assert_eq!(
            s.take(),
            [
                format!("RENAME {} {}", show(KEY1), show(KEY2)),
                format!("INDEX idx prune<=30 -{} +100:{}", show(KEY1), show(KEY2)),
            ]
        );
        assert_eq!(ops::list(&mut s, b"idx", 30), Ok(vec![KEY2.to_vec()]));
        assert_eq!(ops::get(&mut s, KEY1, 30), Ok(None));
    }

    #[test]
    fn destroy_and_destroy_all_count_live_sessions_only() {
        let mut s = one_session();
        s.ids.push(ID2.as_bytes().try_into().unwrap());
        let short = Timeouts::new(10, 10).unwrap();
        ops::create(&mut s, b"idx", short, None, &[], 0).unwrap();
        s.take();
        // At 20 the second session has expired: left to its expiry, not counted.
        assert_eq!(ops::destroy_all(&mut s, b"idx", 20), Ok(1));
        assert_eq!(
            s.take(),
            [format!("DEL {}", show(KEY1)), "UNLINK idx".to_string()]
        );
        let mut s = one_session();
        assert_eq!(ops::destroy(&mut s, KEY1, 40), Ok(true));
        assert_eq!(
            s.take(),
            [
                format!("DEL {}", show(KEY1)),
                format!("INDEX idx prune<=40 -{}", show(KEY1)),
            ]
        );
        assert_eq!(ops::destroy(&mut s, KEY1, 40), Ok(false));
        assert_eq!(ops::count(&mut s, b"idx", 40), Ok(0));
    }

    const ID3: &str = "CCCCCCCCCCCCCCCCCCCCCC";
    const ID4: &str = "DDDDDDDDDDDDDDDDDDDDDD";
    const ID5: &str = "EEEEEEEEEEEEEEEEEEEEEE";
    const KEY3: &[u8] = b"{idx}:CCCCCCCCCCCCCCCCCCCCCC";

    #[test]
    fn a_cap_destroys_the_sessions_soonest_to_expire_first() {
        let t = Timeouts::new(100, 250).unwrap();
        let mut s = Mem::with_ids(&[ID1, ID2, ID3, ID4, ID5]);
        // KEY1 expires at 100, KEY2 at 110; at 20 KEY1 is used again (expiry 120).
        ops::create(&mut s, b"idx", t, None, &[], 0).unwrap();
        ops::create(&mut s, b"idx", t, Some(2), &[], 10).unwrap();
        ops::get(&mut s, KEY1, 20).unwrap();
        s.take();
        // (cap, sessions destroyed): the index holds 2 live sessions, KEY2 the soonest to expire.
        assert_eq!(
            ops::create(&mut s, b"idx", t, Some(2), &[], 30),
            Ok((KEY3.to_vec(), 1))
        );
        assert_eq!(
            s.take(),
            [
                format!("DEL {}", show(KEY2)),
                format!("INDEX idx prune<=30 -{}", show(KEY2)),
                format!(
                    "HSET {} __idle_ms 100 __absolute_at 280 __index idx",
                    show(KEY3)
                ),
                format!("PEXPIREAT {} 130", show(KEY3)),
                format!("INDEX idx prune<=30 +142:{}", show(KEY3)),
            ]
        );
        assert_eq!(
            ops::list(&mut s, b"idx", 30),
            Ok(vec![KEY1.to_vec(), KEY3.to_vec()])
        );
        // Expired sessions do not count: at 125 only KEY3 is alive, under a cap of 2 (KEY1
        // expired at 120 but is still scored 132, within the look-ahead window).
        let (_, destroyed) = ops::create(&mut s, b"idx", t, Some(2), &[], 125).unwrap();
        assert_eq!(destroyed, 0);
        // MAX 1: the new session is the only one left.
        let (key, destroyed) = ops::create(&mut s, b"idx", t, Some(1), &[], 126).unwrap();
        assert_eq!(destroyed, 2);
        assert_eq!(ops::list(&mut s, b"idx", 126), Ok(vec![key]));
    }

    #[test]
    fn a_cap_over_a_session_the_user_cannot_touch_writes_nothing() {
        let mut s = one_session();
        s.ids.push(ID2.as_bytes().try_into().unwrap());
        s.denied.insert(KEY1.to_vec());
        let t = Timeouts::new(100, 250).unwrap();
        assert_eq!(
            ops::create(&mut s, b"idx", t, Some(1), &[], 5),
            Err(CmdError::NoPerm)
        );
        assert!(s.take().is_empty());
        s.ids.push(ID2.as_bytes().try_into().unwrap());
        assert_eq!(
            ops::create(&mut s, b"idx", t, Some(2), &[], 5),
            Ok((KEY2.to_vec(), 0))
        );
    }

    /// Sessions with a lead of a whole look-ahead window (idle 8000 ms: scored 1000 ms ahead).
    fn long_sessions(ids: &[&str], at: &[i64]) -> Mem {
        let mut s = Mem::with_ids(ids);
        let t = Timeouts::new(8000, 100_000).unwrap();
        for &now in at {
            ops::create(&mut s, b"idx", t, None, &[], now).unwrap();
        }
        s.take();
        s
    }

    #[test]
    fn count_is_exact_at_the_edges_of_the_look_ahead_window() {
        // KEY1 expires at 8000, scored 9000: past the window until 7999, within it from 8000.
        let mut s = long_sessions(&[ID1], &[0]);
        assert_eq!(s.zsets[&b"idx"[..]][KEY1], 9000);
        // (now, live sessions)
        for (now, live) in [
            (6999, 1),
            (7000, 1),
            (7999, 1),
            (8000, 0),
            (8999, 0),
            (9000, 0),
        ] {
            assert_eq!(ops::count(&mut s, b"idx", now), Ok(live), "{now}");
        }
        // Shorter leads put live sessions within the window: each is checked against its key
        // (KEY1 expires at 100, KEY2 at 60; both scored within (50, 1050]).
        let mut s = one_session();
        s.ids.push(ID2.as_bytes().try_into().unwrap());
        ops::create(
            &mut s,
            b"idx",
            Timeouts::new(60, 250).unwrap(),
            None,
            &[],
            0,
        )
        .unwrap();
        s.take();
        for (now, live) in [(50, 2), (59, 2), (60, 1), (99, 1), (100, 0)] {
            assert_eq!(ops::count(&mut s, b"idx", now), Ok(live), "{now}");
        }
        // One whose key is gone is not counted either.
        s.hashes.remove(KEY2);
        assert_eq!(ops::count(&mut s, b"idx", 50), Ok(1));
        assert!(s.take().is_empty());
    }

    #[test]
    fn list_cap_and_destroy_all_follow_the_real_expiries_after_slides() {
        // KEY1 expires at 8000 (scored 9000), KEY2 at 8100 (scored 9100), KEY3 at 8100 (scored
        // 9100); at 500 KEY1 is read: expiry 8500, still under its score, so the index stays.
        let mut s = long_sessions(&[ID1, ID2, ID3, ID4], &[0, 100, 100]);
        ops::get(&mut s, KEY1, 500).unwrap();
        assert_eq!(s.take(), [format!("PEXPIREAT {} 8500", show(KEY1))]);
        // Scores say KEY1, KEY2, KEY3; the expiries say KEY2 and KEY3 (tied, by key), then KEY1.
        let by_expiry = vec![KEY2.to_vec(), KEY3.to_vec(), KEY1.to_vec()];
        assert_eq!(ops::list(&mut s, b"idx", 600), Ok(by_expiry));
        // MAX 2 destroys the two sessions soonest to expire: KEY2 and KEY3, not KEY1.
        let t = Timeouts::new(8000, 100_000).unwrap();
        assert_eq!(
            ops::create(&mut s, b"idx", t, Some(2), &[], 600).unwrap().1,
            2
        );
        let victims: Vec<String> = s
            .take()
            .into_iter()
            .filter(|w| w.starts_with("DEL"))
            .collect();
        assert_eq!(
            victims,
            [format!("DEL {}", show(KEY2)), format!("DEL {}", show(KEY3))]
        );
        // At 8500 KEY1 is dead though scored 9000: LIST and DESTROYALL leave it out.
        let key4 = b"{idx}:DDDDDDDDDDDDDDDDDDDDDD".to_vec();
        assert_eq!(ops::list(&mut s, b"idx", 8500), Ok(vec![key4.clone()]));
        assert_eq!(ops::destroy_all(&mut s, b"idx", 8500), Ok(1));
        assert_eq!(
            s.take(),
            [
                "INDEX idx prune<=8500".to_string(),
                format!("DEL {}", show(&key4)),
                "UNLINK idx".to_string()
            ]
        );
    }
}

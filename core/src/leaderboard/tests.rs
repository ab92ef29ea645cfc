use super::*;
use crate::testing::XorShift;
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

mod mutants;

// ---------------------------------------------------------------------------------------------
// The pure parts

#[test]
fn windows_stay_full_at_both_ends() {
    // (position, count, total, start, end)
    let around = [
        (0, 5, 10, 0, 5),
        (1, 5, 10, 0, 5),
        (2, 5, 10, 0, 5),
        (3, 5, 10, 1, 6),
        (5, 4, 10, 3, 7),
        (8, 5, 10, 5, 10),
        (9, 5, 10, 5, 10),
        (9, 1, 10, 9, 10),
        (0, 1, 1, 0, 1),
        (2, 100, 3, 0, 3),
        (4, i64::MAX, 10, 0, 10),
    ];
    for (position, count, total, start, end) in around {
        assert_eq!(
            Window::around(position, count, total),
            Window { start, end },
            "around({position}, {count}, {total})"
        );
    }
    // (offset, count, total, start, end)
    let top = [
        (0, 3, 10, 0, 3),
        (8, 3, 10, 8, 10),
        (10, 3, 10, 10, 10),
        (20, 3, 10, 10, 10),
        (i64::MAX, i64::MAX, 10, 10, 10),
        (2, i64::MAX, 10, 2, 10),
        (0, 5, 0, 0, 0),
    ];
    for (offset, count, total, start, end) in top {
        assert_eq!(
            Window::top(offset, count, total),
            Window { start, end },
            "top({offset}, {count}, {total})"
        );
    }
    // (page, size, total, pages, start, end)
    let pages = [
        (1, 3, 10, 4, 0, 3),
        (4, 3, 10, 4, 9, 10),
        (5, 3, 10, 4, 10, 10),
        (1, 5, 10, 2, 0, 5),
        (2, 5, 10, 2, 5, 10),
        (1, 5, 0, 0, 0, 0),
        (i64::MAX, i64::MAX, 10, 1, 10, 10),
        (1, i64::MAX, 10, 1, 0, 10),
        (2, 1, 1, 1, 1, 1),
    ];
    for (page, size, total, want_pages, start, end) in pages {
        assert_eq!(
            Window::page(page, size, total),
            (want_pages, Window { start, end }),
            "page({page}, {size}, {total})"
        );
    }
}

#[test]
fn rankings_share_ranks_among_equal_scores() {
    let scores = [9.0, 7.0, 7.0, 5.0];
    // A whole board: no members outside the window.
    assert_eq!(ranks(Ranking::Ordinal, 0, &scores, 0), [1, 2, 3, 4]);
    assert_eq!(ranks(Ranking::Dense, 0, &scores, 0), [1, 2, 2, 3]);
    assert_eq!(ranks(Ranking::Competition, 0, &scores, 0), [1, 2, 2, 4]);
    assert_eq!(ranks(Ranking::Modified, 0, &scores, 4), [1, 3, 3, 4]);
    // A window from place 10 of a board 9 9 9 ... whose first entry ties with 2 above it and
    // whose last ties with 1 below it.
    let scores = [9.0, 8.0, 8.0, 7.0];
    assert_eq!(ranks(Ranking::Ordinal, 10, &scores, 0), [11, 12, 13, 14]);
    assert_eq!(ranks(Ranking::Competition, 10, &scores, 8), [9, 12, 12, 14]);
    assert_eq!(ranks(Ranking::Dense, 10, &scores, 4), [5, 6, 6, 7]);
    assert_eq!(ranks(Ranking::Modified, 10, &scores, 15), [11, 13, 13, 15]);
    assert!(ranks(Ranking::Modified, 0, &[], 0).is_empty());
}

/// A stamp as stored: an order entry's text before its member.
fn stamp_text(stamp: i64) -> Vec<u8> {
    order_entry(stamp, b"")
}

#[test]
fn stamps_sort_as_numbers_and_break_same_millisecond_ties() {
    assert_eq!(stamp_text(0), b"0000000000000000");
    assert_eq!(stamp_text(1_764_000_000_123), b"0001764000000123");
    assert_eq!(stamp_of(b"0001764000000123alice"), Some(1_764_000_000_123));
    assert_eq!(stamp_of(b"000176400000012"), None);
    assert_eq!(stamp_of(b"00017640000001x3alice"), None);
    assert_eq!(stamp_of(b"9999999999999999"), Some(9_999_999_999_999_999));
    assert_eq!(stamp_of(b"-001764000000123alice"), None);
    assert!(stamp_text(99) < stamp_text(100));
    // The widest stamp, and past it the formatter's text (as before the fast path).
    let widest = 9_999_999_999_999_999;
    assert_eq!(stamp_text(widest), b"9999999999999999");
    assert_eq!(stamp_of(&stamp_text(widest)), Some(widest));
    assert_eq!(stamp_text(widest + 1), b"10000000000000000");
    assert_eq!(stamp_text(-5), b"-000000000000005");
    // An order entry is its stamp's text then the member, past the widest stamp too.
    assert_eq!(order_entry(1_764_000_000_123, b"al"), b"0001764000000123al");
    assert_eq!(order_entry(widest + 1, b"al"), b"10000000000000000al");
    // (now, last stamp at the score, new stamp)
    let table = [
        (1000, None, 1000),
        (1000, Some(999), 1000),
        (1000, Some(1000), 1001),
        (1000, Some(1005), 1006),
        (500, Some(1000), 1001),
    ];
    for (now, last, want) in table {
        assert_eq!(next_stamp(now, last), want, "{now} {last:?}");
    }
}

#[test]
fn companions_share_the_board_slot() {
    use crate::keys::{derived_key, slot};
    // (board, the prefix its tie-break keys' names share)
    let cases: [(&[u8], Option<&str>); 5] = [
        (b"lb:{game1}", Some("lb:{game1}:")),
        (b"weekly", Some("{weekly}:")),
        (b"a{b", None),
        (b"a{}b", None),
        (b"", None),
    ];
    let suffixes = ["lb-order", "lb-stamps", "lb-scores", "lb-names"];
    for (board, prefix) in cases {
        let names = Companions::of(board);
        let want = prefix.map(|p| suffixes.map(|s| format!("{p}{s}").into_bytes()));
        let got = names.as_ref().map(|n| n.all().map(<[u8]>::to_vec));
        assert_eq!(got, want, "{board:?}");
        let Some(names) = names else { continue };
        assert_eq!(names.name(Key::Board), None);
        // A read's: the order key's name first, the others once asked for.
        let mut first = Companions::order_first(board).unwrap();
        assert_eq!(Some(first.order()), names.name(Key::Order));
        assert_eq!(first.name(Key::Stamps), None);
        assert_eq!(first.all()[1..], [b"", b"", b""]);
        first.make_others();
        assert_eq!(first, names);
        first.make_others();
        assert_eq!(first, names, "made once");
        let keys = [Key::Order, Key::Stamps, Key::Scores, Key::Names];
        for (key, suffix) in keys.into_iter().zip(suffixes) {
            let name = names.name(key).unwrap();
            assert_eq!(Some(name.to_vec()), derived_key(board, suffix.as_bytes()));
            assert_eq!(slot(name), slot(board));
        }
    }
}

#[test]
fn desc_places_map_into_the_ascending_group() {
    // Board of 10: 3 above the group, 4 in it (DESC places 3..=6), 3 below (ascending 3..=6).
    assert_eq!(desc_slice(3, 6, 3, 3), (3, 6));
    assert_eq!(desc_slice(5, 6, 3, 3), (5, 6));
    // 1 above, group of 5 (DESC 1..=5), 4 below (ascending 4..=8).
    assert_eq!(desc_slice(1, 2, 1, 4), (4, 5));
    assert_eq!(desc_slice(4, 5, 1, 4), (7, 8));
}

#[test]
fn percentile_is_the_share_strictly_below() {
    assert_eq!(percentile(0, 1), 0.0);
    assert_eq!(percentile(1, 2), 50.0);
    assert_eq!(percentile(3, 4), 75.0);
    assert_eq!(percentile(1, 3), 100.0 / 3.0);
}

#[test]
fn definitions_parse_their_options() {
    let raw = |a: &[&'static str]| a.iter().map(|s| s.as_bytes()).collect::<Vec<_>>();
    let args = raw(&["m", "5", "asc", "ranking", "dense"]);
    let p = AROUND.parse(&args).unwrap();
    assert_eq!(p.int("count"), 5);
    assert_eq!(Order::from_slot(p.choice("ASC|DESC")), Order::Asc);
    assert_eq!(Ranking::from_slot(p.choice("RANKING")), Ranking::Dense);
    let args = raw(&["3"]);
    let p = TOP.parse(&args).unwrap();
    assert_eq!(
        [p.int("OFFSET"), p.choice("ASC|DESC"), p.choice("RANKING")],
        [0, Order::Desc as i64, Ranking::Ordinal as i64]
    );
    for (args, want) in [
        (&["m", "0"][..], "ERR count must be a positive integer"),
        (&["m", "-1"], "ERR count must be a positive integer"),
        (&["m", "x"], "ERR count must be a positive integer"),
        (&["m", "3", "RANKING", "bogus"], "ERR syntax error"),
        (&["m", "3", "RANKING"], "ERR syntax error"),
        (&["m", "3", "UP"], "ERR syntax error"),
    ] {
        assert_eq!(AROUND.parse(&raw(args)).unwrap_err().to_string(), want);
    }
    assert_eq!(
        INCR.parse(&raw(&["nan", "m"])).unwrap_err().to_string(),
        "ERR increment must be a number"
    );
    assert_eq!(ADD.arity(), -4);
    assert_eq!(INCR.arity(), -4);
    assert_eq!(PERCENTILE.arity(), -3);
}

// ---------------------------------------------------------------------------------------------
// The algorithms on a store in memory, against a brute-force model

#[derive(Clone, Copy, Debug, PartialEq)]
struct Score(f64);
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.partial_cmp(&other.0).expect("no NaN")
    }
}

#[derive(Default)]
struct ZSet {
    scores: HashMap<Vec<u8>, f64>,
    sorted: BTreeSet<(Score, Vec<u8>)>,
}

impl ZSet {
    fn add(&mut self, score: f64, member: &[u8]) -> bool {
        let score = if score == 0.0 { 0.0 } else { score };
        let old = self.scores.insert(member.to_vec(), score);
        if let Some(old) = old {
            self.sorted.remove(&(Score(old), member.to_vec()));
        }
        self.sorted.insert((Score(score), member.to_vec()));
        old.is_none()
    }

    fn rem(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(old) => self.sorted.remove(&(Score(old), member.to_vec())),
            None => false,
        }
    }
}

fn text(v: f64) -> Vec<u8> {
    format!("{v}").into_bytes()
}

fn bound(raw: &[u8]) -> (f64, bool) {
    let s = std::str::from_utf8(raw).unwrap();
    match s.strip_prefix('(') {
        Some(v) => (v.parse().unwrap(), true),
        None => (s.parse().unwrap(), false),
    }
}

#[derive(Default)]
struct Mem {
    sets: [ZSet; 4],
    stamps: HashMap<Vec<u8>, Vec<u8>>,
    /// Calls of `placed_before_score`: every other one answers, the others leave the count
    /// to ZCOUNT (as a store that cannot read the board directly does).
    placed_asked: u32,
    /// What the writes asked of the store that a write may skip when it knows the answer.
    calls: Calls,
}

/// Calls a write makes only when it needs them.
#[derive(Default, Debug, PartialEq)]
struct Calls {
    /// `any_at`: whether a score is still held.
    any_at: u32,
    /// ZADDs to the scores key.
    scores_zadd: u32,
    /// HDELs, found or not.
    hdel: u32,
}

impl Mem {
    fn set(&mut self, key: Key) -> &mut ZSet {
        match key {
            Key::Board => &mut self.sets[0],
            Key::Order => &mut self.sets[1],
            Key::Scores => &mut self.sets[2],
            Key::Names => &mut self.sets[3],
            Key::Stamps => panic!("the stamps are a hash"),
        }
    }
}

fn scored(score: f64, member: &[u8]) -> Scored {
    Scored {
        member: member.to_vec(),
        score,
        text: text(score),
    }
}

impl Store for Mem {
    fn kind(&mut self, key: Key) -> Kind {
        let empty = match key {
            Key::Stamps => self.stamps.is_empty(),
            k => self.set(k).scores.is_empty(),
        };
        match (empty, key) {
            (true, _) => Kind::Empty,
            (false, Key::Stamps) => Kind::Hash,
            _ => Kind::ZSet,
        }
    }
    fn card(&mut self, key: Key) -> i64 {
        match key {
            Key::Stamps => self.stamps.len() as i64,
            k => self.set(k).scores.len() as i64,
        }
    }
    fn score(&mut self, member: &[u8]) -> Option<Scored> {
        let v = *self.set(Key::Board).scores.get(member)?;
        Some(scored(v, member))
    }
    fn count(&mut self, key: Key, min: &[u8], max: &[u8]) -> i64 {
        let ((lo, lo_ex), (hi, hi_ex)) = (bound(min), bound(max));
        self.set(key)
            .sorted
            .iter()
            .filter(|(s, _)| {
                (if lo_ex { s.0 > lo } else { s.0 >= lo })
                    && (if hi_ex { s.0 < hi } else { s.0 <= hi })
            })
            .count() as i64
    }
    fn lexcount(&mut self, min: &[u8], max: &[u8]) -> i64 {
        let above = |m: &[u8]| match min.split_first() {
            Some((b'[', v)) => m >= v,
            Some((b'(', v)) => m > v,
            _ => panic!("bound {min:?}"),
        };
        let below = |m: &[u8]| match max.split_first() {
            Some((b'[', v)) => m <= v,
            Some((b'(', v)) => m < v,
            _ => panic!("bound {max:?}"),
        };
        let names = &self.sets[3].sorted;
        assert!(
            names.iter().all(|(s, _)| s.0 == 0.0),
            "names are all scored 0"
        );
        names.iter().filter(|(_, m)| above(m) && below(m)).count() as i64
    }
    fn range(&mut self, key: Key, start: i64, stop: i64, rev: bool) -> Vec<Scored> {
        let set = self.set(key);
        let all: Vec<&(Score, Vec<u8>)> = if rev {
            set.sorted.iter().rev().collect()
        } else {
            set.sorted.iter().collect()
        };
        all.iter()
            .skip(start as usize)
            .take((stop - start + 1).max(0) as usize)
            .map(|(s, m)| scored(s.0, m))
            .collect()
    }
    fn placed_before_score(&mut self, key: Key, near: &Scored, rev: bool) -> Option<i64> {
        self.placed_asked += 1;
        if self.placed_asked % 2 == 0 {
            return None;
        }
        let mut at_score = self
            .set(key)
            .sorted
            .iter()
            .filter(|(s, _)| s.0 == near.score);
        let first = if rev {
            at_score.next_back()
        } else {
            at_score.next()
        };
        let first = first?.1.clone();
        self.rank(key, &first, rev)
    }
    fn rank(&mut self, key: Key, member: &[u8], rev: bool) -> Option<i64> {
        let set = self.set(key);
        let at = set
            .sorted
            .iter()
            .position(|(_, m)| m.as_slice() == member)?;
        Some(if rev { set.sorted.len() - 1 - at } else { at } as i64)
    }
    fn last_at(&mut self, score: &[u8]) -> Option<Vec<u8>> {
        let (v, _) = bound(score);
        self.set(Key::Order)
            .sorted
            .iter()
            .rev()
            .find(|(s, _)| s.0 == v)
            .map(|(_, m)| m.clone())
    }
    fn group_head(&mut self, score: &[u8], n: i64) -> Vec<Vec<u8>> {
        let (v, _) = bound(score);
        self.set(Key::Order)
            .sorted
            .iter()
            .filter(|(s, _)| s.0 == v)
            .take(n as usize)
            .map(|(_, m)| m.clone())
            .collect()
    }
    fn stamp(&mut self, member: &[u8]) -> Option<Vec<u8>> {
        self.stamps.get(member).cloned()
    }
    fn any_at(&mut self, key: Key, score: &[u8]) -> bool {
        self.calls.any_at += 1;
        self.count(key, score, score) > 0
    }
    fn zadd(&mut self, key: Key, pairs: &[(&[u8], &[u8])]) -> i64 {
        self.calls.scores_zadd += u32::from(key == Key::Scores);
        let set = self.set(key);
        pairs.iter().filter(|(s, m)| set.add(bound(s).0, m)).count() as i64
    }
    fn zincrby(&mut self, increment: &[u8], member: &[u8]) -> Scored {
        let set = self.set(Key::Board);
        let v = set.scores.get(member).copied().unwrap_or(0.0) + bound(increment).0;
        set.add(v, member);
        scored(v, member)
    }
    fn zrem(&mut self, key: Key, member: &[u8]) -> bool {
        self.set(key).rem(member)
    }
    fn hset(&mut self, pairs: &[(&[u8], &[u8])]) {
        for (m, v) in pairs {
            self.stamps.insert(m.to_vec(), v.to_vec());
        }
    }
    fn hdel(&mut self, member: &[u8]) {
        self.calls.hdel += 1;
        self.stamps.remove(member);
    }
    fn del(&mut self, key: Key) {
        match key {
            Key::Stamps => self.stamps.clear(),
            k => *self.set(k) = ZSet::default(),
        }
    }
}

/// The model: each member's score and the arrival number of its current score.
#[derive(Default)]
struct Model {
    members: HashMap<Vec<u8>, (f64, u64)>,
    arrivals: u64,
    /// Arrivals up to this one are a ZADD board's members: while only they are left, the
    /// board has no tie-break keys and ranks in Redis's order (by name, reversed for DESC).
    legacy: u64,
}

impl Model {
    fn set(&mut self, member: &[u8], score: f64) {
        match self.members.get(member) {
            Some((old, _)) if *old == score => {}
            _ => {
                self.arrivals += 1;
                self.members.insert(member.to_vec(), (score, self.arrivals));
            }
        }
    }

    /// (member, score) in the order, earlier arrival first among equal scores.
    fn sorted(&self, order: Order) -> Vec<(Vec<u8>, f64)> {
        let mut all: Vec<(&Vec<u8>, &(f64, u64))> = self.members.iter().collect();
        let plain = self.members.values().all(|e| e.1 <= self.legacy);
        all.sort_by(|a, b| {
            let by_arrival = a.1 .1.cmp(&b.1 .1);
            let by_score = a.1 .0.partial_cmp(&b.1 .0).unwrap();
            let by_score = if order == Order::Desc {
                by_score.reverse()
            } else {
                by_score
            };
            if plain && order == Order::Desc {
                by_score.then(by_arrival.reverse())
            } else {
                by_score.then(by_arrival)
            }
        });
        all.into_iter().map(|(m, (s, _))| (m.clone(), *s)).collect()
    }

    /// Every member's rank, by brute force.
    fn ranks(&self, order: Order, ranking: Ranking) -> Vec<(Vec<u8>, f64, i64)> {
        let sorted = self.sorted(order);
        sorted
            .iter()
            .enumerate()
            .map(|(i, (m, s))| {
                let strictly_better = sorted
                    .iter()
                    .filter(|(_, o)| if order == Order::Desc { o > s } else { o < s })
                    .count() as i64;
                let equal = sorted.iter().filter(|(_, o)| o == s).count() as i64;
                let mut distinct: Vec<f64> = sorted
                    .iter()
                    .map(|(_, o)| *o)
                    .filter(|o| if order == Order::Desc { o > s } else { o < s })
                    .collect();
                distinct.dedup();
                let rank = match ranking {
                    Ranking::Ordinal => i as i64 + 1,
                    Ranking::Competition => strictly_better + 1,
                    Ranking::Modified => strictly_better + equal,
                    Ranking::Dense => distinct.len() as i64 + 1,
                };
                (m.clone(), *s, rank)
            })
            .collect()
    }
}

const ORDERS: [Order; 2] = [Order::Asc, Order::Desc];
const RANKINGS: [Ranking; 4] = [
    Ranking::Ordinal,
    Ranking::Dense,
    Ranking::Competition,
    Ranking::Modified,
];

fn check_against_model(mem: &mut Mem, model: &Model, rng: &mut XorShift) {
    let total = model.members.len() as i64;
    for order in ORDERS {
        for ranking in RANKINGS {
            let want = model.ranks(order, ranking);
            let mut board = Board::open(mem, order).unwrap();
            assert_eq!(board.total, total);
            let all = board
                .entries(Window::top(0, total.max(1), total), ranking)
                .unwrap();
            let got: Vec<(Vec<u8>, f64, i64)> = all
                .iter()
                .map(|e| {
                    let s: f64 = std::str::from_utf8(&e.score).unwrap().parse().unwrap();
                    (e.member.clone(), s, e.rank)
                })
                .collect();
            assert_eq!(got, want, "{order:?} {ranking:?}");
            // Windows at random places, both edges included.
            for _ in 0..6 {
                if total == 0 {
                    break;
                }
                let count = 1 + rng.below(7);
                let offset = match rng.below(3) {
                    0 => 0,
                    1 => (total - count).max(0),
                    _ => rng.below(total as u64),
                };
                let w = Window::top(offset, count, total);
                let entries = board.entries(w, ranking).unwrap();
                let expected = &want[w.start as usize..w.end as usize];
                let got: Vec<(Vec<u8>, i64)> =
                    entries.iter().map(|e| (e.member.clone(), e.rank)).collect();
                let expected: Vec<(Vec<u8>, i64)> =
                    expected.iter().map(|(m, _, r)| (m.clone(), *r)).collect();
                assert_eq!(got, expected, "{order:?} {ranking:?} {w:?}");
                let (m, _, _) = &want[rng.below(total as u64) as usize];
                let s = board.score(m).unwrap();
                let p = board.position(&s).unwrap();
                assert_eq!(&want[p as usize].0, m);
                let rank = board.rank_of(&s, p, ranking).unwrap();
                assert_eq!(
                    rank, want[p as usize].2,
                    "{order:?} {ranking:?} rank of {m:?}"
                );
                assert_eq!(
                    board.rank(&s, ranking).unwrap(),
                    rank,
                    "{m:?} without its place"
                );
            }
        }
        // The percentile: members with a strictly worse score.
        for (m, score, _) in model.ranks(order, Ranking::Ordinal).iter().take(20) {
            let worse = model
                .members
                .values()
                .filter(|(o, _)| {
                    if order == Order::Desc {
                        o < score
                    } else {
                        o > score
                    }
                })
                .count() as i64;
            let got = percentile_of(mem, m, order).unwrap();
            assert_eq!(got, Some(percentile(worse, total)), "{m:?} {order:?}");
        }
    }
    assert_eq!(percentile_of(mem, b"nobody", Order::Desc).unwrap(), None);
}

/// The stamps hash's invariant: every order entry of a score group of more than SMALL_GROUP
/// entries has a stamps entry, and every stamps entry is its member's order entry.
fn check_stamps(mem: &Mem) {
    let order = &mem.sets[1].sorted;
    for (score, entry) in order {
        let group = order.iter().filter(|(s, _)| s == score).count() as i64;
        let (stamp, member) = entry.split_at(STAMP_DIGITS);
        if group > SMALL_GROUP {
            assert_eq!(
                mem.stamps.get(member).map(Vec::as_slice),
                Some(stamp),
                "{member:?} in a group of {group}"
            );
        }
    }
    for (member, stamp) in &mem.stamps {
        let score = mem.sets[0].scores[member];
        let entry = order_member(stamp, member);
        assert!(
            order.contains(&(Score(score), entry)),
            "a stale stamp for {member:?}"
        );
    }
}

/// The members of the stamps hash, sorted.
fn hashed(mem: &Mem) -> Vec<Vec<u8>> {
    let mut members: Vec<Vec<u8>> = mem.stamps.keys().cloned().collect();
    members.sort();
    members
}

#[test]
fn reads_and_writes_match_a_brute_force_model() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    for round in 0..8 {
        let (mut mem, mut model) = (Mem::default(), Model::default());
        // A plain board first (ZADD), but for two rounds: its members keep no stamp and rank
        // as if they had arrived at time 0 in member order. Their names mix with those the
        // writes use, so legacy and stamped members interleave by name within a score.
        let plain = if round < 2 { 0 } else { 10 + rng.below(40) };
        // Odd rounds write 2 scores and more members: groups of about 35 cross SMALL_GROUP
        // both ways.
        let few_scores = round % 2 == 1;
        let names = if few_scores { 70 } else { 60 };
        for _ in 0..plain {
            let m = format!("m{:02}", rng.below(60)).into_bytes();
            let v = rng.below(5) as f64;
            mem.sets[0].add(v, &m);
        }
        let mut adopted: Vec<(Vec<u8>, f64)> = mem.sets[0]
            .sorted
            .iter()
            .map(|(s, m)| (m.clone(), s.0))
            .collect();
        adopted.sort_by(|a, b| a.0.cmp(&b.0));
        for (m, s) in adopted {
            model.set(&m, s);
        }
        model.legacy = model.arrivals;
        let mut now = 1_000;
        for step in 0..400 {
            now += rng.below(3); // several writes per millisecond
            let m = format!("m{:02}", rng.below(names)).into_bytes();
            let scores = [1.0, 3.0, -2.5, 0.0, 9_007_199_254_740_992.0, f64::INFINITY];
            let choices = if few_scores { 2 } else { scores.len() as u64 };
            let v = scores[rng.below(choices) as usize];
            match if step == 0 { 0 } else { rng.below(10) } {
                0..=5 => {
                    let raw = text(v);
                    let change = [(Change::Set(v, &raw), m.as_slice())];
                    check_write(&mut mem, &change).unwrap();
                    write(&mut mem, now, &change);
                    model.set(&m, v);
                }
                6..=8 => {
                    let by = [-1.0, 0.0, 2.0][rng.below(3) as usize];
                    let raw = text(by);
                    let change = [(Change::Add(by, &raw), m.as_slice())];
                    check_write(&mut mem, &change).unwrap();
                    let (_, new) = write(&mut mem, now, &change).remove(0);
                    let old = model.members.get(&m).map_or(0.0, |e| e.0);
                    model.set(&m, old + by);
                    assert_eq!(new, text(old + by));
                }
                _ => {
                    let removed = remove(&mut mem, &[&m]).unwrap();
                    assert_eq!(removed, i64::from(model.members.remove(&m).is_some()));
                }
            }
            check_stamps(&mem);
            if step % 50 == 0 {
                check_against_model(&mut mem, &model, &mut rng);
            }
        }
        check_against_model(&mut mem, &model, &mut rng);
        if mem.sets[3].scores.is_empty() {
            // Born from LB.ADD: the scores key holds exactly the distinct scores.
            let mut distinct: Vec<f64> = model.members.values().map(|e| e.0).collect();
            distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
            distinct.dedup();
            assert_eq!(mem.sets[2].scores.len(), distinct.len(), "round {round}");
        } else {
            // Born from ZADD: the names key lists exactly the stamped members, no scores key.
            assert!(plain > 0, "round {round}");
            assert!(mem.sets[2].scores.is_empty(), "round {round}");
            let stamped: Vec<Vec<u8>> = mem.sets[1]
                .sorted
                .iter()
                .map(|(_, e)| e[STAMP_DIGITS..].to_vec())
                .collect();
            let mut names: Vec<Vec<u8>> = stamped
                .iter()
                .map(|m| name_entry(&mem.score(m).unwrap(), m))
                .collect();
            names.sort();
            let listed: Vec<Vec<u8>> = mem.sets[3].sorted.iter().map(|e| e.1.clone()).collect();
            assert_eq!(listed, names, "round {round}");
        }
    }
}

/// A ZADD board ranks its ties by name, so a rank other than ORDINAL needs no member's place:
/// it counts the members scored better, from where the score starts on the board (or, every
/// other time here, by score).
#[test]
fn plain_boards_rank_by_score_without_places() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4 {
        let (mut mem, mut model) = (Mem::default(), Model::default());
        for _ in 0..60 {
            let m = format!("m{:02}", rng.below(80)).into_bytes();
            mem.sets[0].add(rng.below(6) as f64 - 2.0, &m);
        }
        let mut members: Vec<(Vec<u8>, f64)> = mem.sets[0]
            .sorted
            .iter()
            .map(|(s, m)| (m.clone(), s.0))
            .collect();
        members.sort_by(|a, b| a.0.cmp(&b.0));
        for (m, s) in members {
            model.set(&m, s);
        }
        model.legacy = model.arrivals;
        check_against_model(&mut mem, &model, &mut rng);
        assert!(mem.sets[1].scores.is_empty(), "still a plain board");
        assert!(mem.placed_asked > 10);
    }
}

#[test]
fn the_first_write_to_a_zadd_board_converts_nothing() {
    let mut mem = Mem::default();
    for i in 0..5_000 {
        mem.sets[0].add(f64::from(i % 3), format!("p{i:05}").as_bytes());
    }
    let change = [(Change::Set(1.0, b"1"), &b"p00042"[..])];
    check_write(&mut mem, &change).unwrap();
    write(&mut mem, 7, &change);
    assert_eq!(mem.sets[1].scores.len(), 1, "one order entry");
    assert!(mem.stamps.is_empty(), "no stamps entry: its group is small");
    assert_eq!(mem.sets[3].scores.len(), 1, "one name");
    assert!(mem.sets[2].scores.is_empty(), "no scores key");
    // p00042 arrived last at 1: after the 1,666 members at 2 and the 1,667 legacy members
    // at 1, which keep their name order.
    let mut b = Board::open(&mut mem, Order::Desc).unwrap();
    let p = b.score(b"p00042").unwrap();
    assert_eq!(b.position(&p).unwrap(), 1_666 + 1_667);
    let p1 = b.score(b"p00001").unwrap();
    assert_eq!(b.position(&p1).unwrap(), 1_666);
    // A legacy member written with ZADD behind the family's back joins the legacy ones.
    mem.sets[0].add(1.0, b"a");
    let mut b = Board::open(&mut mem, Order::Asc).unwrap();
    let a = b.score(b"a").unwrap();
    assert_eq!(b.position(&a).unwrap(), 1_666);
}

#[test]
fn dense_on_a_zadd_board_scans_at_most_its_limit() {
    let mut mem = Mem::default();
    for i in 0..50 {
        mem.sets[0].add(f64::from(i / 2), format!("p{i:02}").as_bytes());
    }
    let mut b = Board::open(&mut mem, Order::Desc)
        .unwrap()
        .with_dense_max(10);
    // 10 members above places 10 and 11 (score 19): scanned; 12 above place 12: refused.
    let w = Window::top(10, 2, 50);
    assert_eq!(b.entries(w, Ranking::Dense).unwrap()[1].rank, 6);
    let w = Window::top(12, 1, 50);
    assert_eq!(
        b.entries(w, Ranking::Dense).unwrap_err().to_string(),
        format!("ERR {DENSE_TOO_MANY}")
    );
    // Other rankings count, they do not scan.
    assert_eq!(b.entries(w, Ranking::Competition).unwrap()[0].rank, 13);
}

#[test]
fn equal_scores_rank_by_arrival_up_to_2_pow_53_and_below_zero() {
    for v in [9_007_199_254_740_992.0, -7.0, 0.5] {
        let mut mem = Mem::default();
        let raw = text(v);
        let mut now = 50;
        // z arrives first, a last: arrival order, not name order, in both directions.
        for m in [&b"z"[..], b"m", b"a"] {
            let change = [(Change::Set(v, &raw), m)];
            check_write(&mut mem, &change).unwrap();
            write(&mut mem, now, &change);
            now += 1;
        }
        for order in ORDERS {
            let mut b = Board::open(&mut mem, order).unwrap();
            let names: Vec<Vec<u8>> = b
                .entries(Window::top(0, 3, 3), Ranking::Ordinal)
                .unwrap()
                .into_iter()
                .map(|e| e.member)
                .collect();
            assert_eq!(names, [b"z".to_vec(), b"m".to_vec(), b"a".to_vec()]);
        }
        // z improves, then falls back: it arrived at v again last.
        for w in [v + 1.0, v] {
            let raw = text(w);
            let change = [(Change::Set(w, &raw), &b"z"[..])];
            write(&mut mem, now, &change);
        }
        let mut b = Board::open(&mut mem, Order::Desc).unwrap();
        let names: Vec<Vec<u8>> = b
            .entries(Window::top(0, 3, 3), Ranking::Ordinal)
            .unwrap()
            .into_iter()
            .map(|e| e.member)
            .collect();
        if v + 1.0 != v {
            assert_eq!(names, [b"m".to_vec(), b"a".to_vec(), b"z".to_vec()]);
        }
    }
}

#[test]
fn a_nan_increment_and_a_stale_tie_break_are_refused() {
    let mut mem = Mem::default();
    let inf = text(f64::INFINITY);
    write(
        &mut mem,
        1,
        &[(Change::Set(f64::INFINITY, &inf), &b"a"[..])],
    );
    let minus = text(f64::NEG_INFINITY);
    assert_eq!(
        check_write(
            &mut mem,
            &[(Change::Add(f64::NEG_INFINITY, &minus), &b"a"[..])]
        )
        .unwrap_err()
        .to_string(),
        "ERR resulting score is not a number (NaN)"
    );
    // A plain ZADD behind the family's back.
    mem.sets[0].add(1.0, b"b");
    assert!(Board::open(&mut mem, Order::Desc).is_err());
    assert_eq!(
        check_write(&mut mem, &[]).unwrap_err().to_string(),
        format!("ERR {OUT_OF_STEP}")
    );
    // Tie-break keys that outlived their board are dropped at the next write.
    let mut mem = Mem::default();
    write(&mut mem, 1, &[(Change::Set(1.0, b"1"), &b"a"[..])]);
    mem.sets[0] = ZSet::default();
    write(&mut mem, 2, &[(Change::Set(2.0, b"2"), &b"b"[..])]);
    assert_eq!(mem.sets[1].scores.len(), 1);
    assert_eq!(mem.sets[2].scores.len(), 1);
}

/// The names of members `from..to`, `p00`, `p01`, ...
fn players(from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to)
        .map(|i| format!("p{i:02}").into_bytes())
        .collect()
}

/// Writes `members` at `score`, one per millisecond from `now`.
fn write_each(mem: &mut Mem, members: &[Vec<u8>], score: f64, now: i64) {
    let raw = text(score);
    for (i, m) in members.iter().enumerate() {
        let change = [(Change::Set(score, &raw), m.as_slice())];
        check_write(mem, &change).unwrap();
        write(mem, now + i as i64, &change);
    }
}

/// The board's members, best first (DESC), and each one's place as `position` finds it.
fn desc_names(mem: &mut Mem) -> Vec<Vec<u8>> {
    let mut b = Board::open(mem, Order::Desc).unwrap();
    let all = b.entries(Window::top(0, b.total, b.total), Ranking::Ordinal);
    let names: Vec<Vec<u8>> = all.unwrap().into_iter().map(|e| e.member).collect();
    for (place, m) in names.iter().enumerate() {
        let s = b.score(m).unwrap();
        assert_eq!(b.position(&s).unwrap(), place as i64, "{m:?}");
    }
    names
}

#[test]
fn a_group_past_its_limit_lists_its_members_in_the_stamps_hash() {
    let mut mem = Mem::default();
    let small = SMALL_GROUP as usize;
    let all = players(0, small + 3);
    // Up to SMALL_GROUP members at one score: found by scanning, no stamps entry.
    write_each(&mut mem, &all[..small], 5.0, 100);
    assert!(mem.stamps.is_empty());
    assert_eq!(desc_names(&mut mem), all[..small]);
    // One more: the whole group is listed, with its stamps.
    write_each(&mut mem, &all[small..small + 1], 5.0, 200);
    assert_eq!(hashed(&mem), all[..=small]);
    assert_eq!(mem.stamps[&all[0]], stamp_text(100));
    // Later joiners are listed as they come.
    write_each(&mut mem, &all[small + 1..], 5.0, 300);
    assert_eq!(hashed(&mem), all);
    check_stamps(&mem);
    assert_eq!(desc_names(&mut mem), all);
    // Leaving for a small group drops a member's entry; the large group keeps the others'.
    write_each(&mut mem, &all[..1], 6.0, 400);
    assert_eq!(hashed(&mem), all[1..]);
    // Shrunk to SMALL_GROUP and below, the group keeps its entries (accurate: not moved).
    write_each(&mut mem, &all[1..4], 6.0, 500);
    assert_eq!(hashed(&mem), all[4..]);
    check_stamps(&mem);
    let want: Vec<Vec<u8>> = all[..4].iter().chain(&all[4..]).cloned().collect();
    assert_eq!(desc_names(&mut mem), want);
    // A member of the shrunk group found through its kept entry moves and is found again.
    assert_eq!(remove(&mut mem, &[&all[4]]).unwrap(), 1);
    assert!(!mem.stamps.contains_key(&all[4]));
    write_each(&mut mem, &all[4..5], 5.0, 600);
    check_stamps(&mem);
    let want: Vec<Vec<u8>> = all[..4]
        .iter()
        .chain(&all[5..])
        .chain(&all[4..5])
        .cloned()
        .collect();
    assert_eq!(desc_names(&mut mem), want);
    // Growing past the limit again rewrites the group's entries, new members' included.
    write_each(&mut mem, &all[..4], 5.0, 700);
    check_stamps(&mem);
    assert_eq!(hashed(&mem).len(), all.len());
}

#[test]
fn a_board_with_a_stamp_for_every_member_reads_and_migrates() {
    // As written before SMALL_GROUP: every member in the stamps hash, groups of 3.
    let mut mem = Mem::default();
    let all = players(0, 9);
    for (i, group) in all.chunks(3).enumerate() {
        write_each(&mut mem, group, i as f64, 10 * i as i64);
    }
    let entries: Vec<Vec<u8>> = mem.sets[1].sorted.iter().map(|e| e.1.clone()).collect();
    for e in &entries {
        mem.hset(&[(&e[STAMP_DIGITS..], &e[..STAMP_DIGITS])]);
    }
    check_write(&mut mem, &[]).unwrap();
    let before = desc_names(&mut mem);
    assert_eq!(before.len(), 9);
    // A member moving to a small group sheds its entry; one removed takes its entry along.
    write_each(&mut mem, &all[0..1], 1.0, 100);
    assert_eq!(remove(&mut mem, &[&all[8]]).unwrap(), 1);
    assert_eq!(hashed(&mem), all[1..8]);
    check_stamps(&mem);
    let names = desc_names(&mut mem);
    let want: Vec<Vec<u8>> = ["p06", "p07", "p03", "p04", "p05", "p00", "p01", "p02"]
        .iter()
        .map(|m| m.as_bytes().to_vec())
        .collect();
    assert_eq!(names, want);
    // Nothing is out of step for a write either.
    assert!(Board::open(&mut mem, Order::Asc).is_ok());
}

#[test]
fn unstamped_members_of_a_large_group_rank_before_its_stamped_ones() {
    // A ZADD board of 5 members at 1, then SMALL_GROUP + 2 stamped arrivals at 1.
    let mut mem = Mem::default();
    let legacy = players(90, 95);
    for m in &legacy {
        mem.sets[0].add(1.0, m);
    }
    let stamped = players(0, SMALL_GROUP as usize + 2);
    write_each(&mut mem, &stamped, 1.0, 10);
    assert_eq!(hashed(&mem), stamped);
    check_stamps(&mem);
    let want: Vec<Vec<u8>> = legacy.iter().chain(&stamped).cloned().collect();
    assert_eq!(desc_names(&mut mem), want);
    // A legacy member is found by neither the hash nor the scan: a legacy one, by name.
    let mut b = Board::open(&mut mem, Order::Asc).unwrap();
    let s = b.score(&legacy[3]).unwrap();
    assert_eq!(b.position(&s).unwrap(), 3);
}

#[test]
fn the_documented_limit_is_small_group() {
    assert!(WRITE_KEYS.contains(&format!("more than {SMALL_GROUP} members")));
}

//! Behaviours `make mutants` found no test observing (see ARCHITECTURE.md, Mutation testing).

use super::*;

fn raw(a: &[&'static str]) -> Vec<&'static [u8]> {
    a.iter().map(|s| s.as_bytes()).collect()
}

#[test]
fn every_ranking_word_reads_as_its_ranking() {
    for (word, want) in [
        ("ORDINAL", Ranking::Ordinal),
        ("DENSE", Ranking::Dense),
        ("COMPETITION", Ranking::Competition),
        ("MODIFIED", Ranking::Modified),
    ] {
        let args = raw(&["m", "5", "RANKING", word]);
        let p = AROUND.parse(&args).unwrap();
        assert_eq!(Ranking::from_slot(p.choice("RANKING")), want, "{word}");
    }
    let args = raw(&["m", "5"]);
    let p = AROUND.parse(&args).unwrap();
    assert_eq!(Ranking::from_slot(p.choice("RANKING")), Ranking::Ordinal);
}

/// Every window around each member reads the same given that member (as LB.AROUND reads it)
/// as by places alone.
fn check_windows_near_each_member(mem: &mut Mem) {
    for order in ORDERS {
        for ranking in RANKINGS {
            let mut b = Board::open(mem, order).unwrap();
            let names: Vec<Vec<u8>> = b
                .entries(Window::top(0, b.total, b.total), Ranking::Ordinal)
                .unwrap()
                .into_iter()
                .map(|e| e.member)
                .collect();
            assert_eq!(names.len() as i64, b.total);
            for m in &names {
                let s = b.score(m).unwrap();
                let at = b.position(&s).unwrap();
                for count in [1, 3, 5] {
                    let w = Window::around(at, count, b.total);
                    let near = b.entries_near(w, ranking, Some((&s, at))).unwrap();
                    let by_place = b.entries(w, ranking).unwrap();
                    assert_eq!(near.len() as i64, w.end - w.start, "{order:?} {m:?}");
                    assert_eq!(near, by_place, "{order:?} {ranking:?} {m:?} {count}");
                }
            }
        }
    }
}

#[test]
fn windows_near_a_member_read_as_windows_by_place() {
    // A plain board (ZADD's), and one written by LB.ADD with ties in both directions.
    let mut plain = Mem::default();
    for (i, m) in players(0, 9).iter().enumerate() {
        plain.sets[0].add((i % 3) as f64, m);
    }
    check_windows_near_each_member(&mut plain);
    let mut native = Mem::default();
    write_each(&mut native, &players(0, 4), 5.0, 10);
    write_each(&mut native, &players(4, 8), 3.0, 20);
    write_each(&mut native, &players(8, 9), 7.0, 30);
    check_windows_near_each_member(&mut native);
}

/// A store whose key `other` holds another type (a string): everything else is `mem`'s.
struct Retyped {
    mem: Mem,
    other: Key,
}

impl Store for Retyped {
    fn kind(&mut self, key: Key) -> Kind {
        match key == self.other {
            true => Kind::Other,
            false => self.mem.kind(key),
        }
    }
    fn card(&mut self, key: Key) -> i64 {
        self.mem.card(key)
    }
    fn score(&mut self, member: &[u8]) -> Option<Scored> {
        self.mem.score(member)
    }
    fn count(&mut self, key: Key, min: &[u8], max: &[u8]) -> i64 {
        self.mem.count(key, min, max)
    }
    fn lexcount(&mut self, min: &[u8], max: &[u8]) -> i64 {
        self.mem.lexcount(min, max)
    }
    fn range(&mut self, key: Key, start: i64, stop: i64, rev: bool) -> Vec<Scored> {
        self.mem.range(key, start, stop, rev)
    }
    fn rank(&mut self, key: Key, member: &[u8], rev: bool) -> Option<i64> {
        self.mem.rank(key, member, rev)
    }
    fn last_at(&mut self, score: &[u8]) -> Option<Vec<u8>> {
        self.mem.last_at(score)
    }
    fn group_head(&mut self, score: &[u8], n: i64) -> Vec<Vec<u8>> {
        self.mem.group_head(score, n)
    }
    fn stamp(&mut self, member: &[u8]) -> Option<Vec<u8>> {
        self.mem.stamp(member)
    }
    fn zadd(&mut self, key: Key, pairs: &[(&[u8], &[u8])]) -> i64 {
        self.mem.zadd(key, pairs)
    }
    fn zincrby(&mut self, increment: &[u8], member: &[u8]) -> Scored {
        self.mem.zincrby(increment, member)
    }
    fn zrem(&mut self, key: Key, member: &[u8]) -> bool {
        self.mem.zrem(key, member)
    }
    fn hset(&mut self, pairs: &[(&[u8], &[u8])]) {
        self.mem.hset(pairs)
    }
    fn hdel(&mut self, member: &[u8]) {
        self.mem.hdel(member)
    }
    fn del(&mut self, key: Key) {
        self.mem.del(key)
    }
}

#[test]
fn a_key_of_another_type_is_wrongtype_where_it_is_read() {
    let native = || {
        let mut mem = Mem::default();
        write_each(&mut mem, &players(0, 3), 5.0, 10);
        mem
    };
    let plain = || {
        let mut mem = Mem::default();
        mem.sets[0].add(1.0, b"a");
        mem
    };
    let opens = |mem: Mem, other: Key| {
        let mut s = Retyped { mem, other };
        Board::open(&mut s, Order::Desc).map(|b| b.total)
    };
    // A read looks at the tie-break keys only when the order key exists.
    for key in [Key::Board, Key::Order, Key::Stamps, Key::Scores, Key::Names] {
        assert_eq!(opens(native(), key), Err(CmdError::WrongType), "{key:?}");
    }
    assert_eq!(opens(plain(), Key::Board), Err(CmdError::WrongType));
    assert_eq!(opens(plain(), Key::Order), Err(CmdError::WrongType));
    for key in [Key::Stamps, Key::Scores, Key::Names] {
        assert_eq!(opens(plain(), key), Ok(1), "{key:?}");
    }
    // A write looks at every key, even on a plain board.
    let raw = text(2.0);
    for key in [Key::Board, Key::Order, Key::Stamps, Key::Scores, Key::Names] {
        let mut s = Retyped {
            mem: plain(),
            other: key,
        };
        let change = [(Change::Set(2.0, &raw), &b"b"[..])];
        assert_eq!(
            check_write(&mut s, &change),
            Err(CmdError::WrongType),
            "{key:?}"
        );
    }
}

#[test]
fn a_board_out_of_step_with_its_tie_break_is_refused() {
    // More stamps than there are order entries.
    let mut mem = Mem::default();
    write_each(&mut mem, &players(0, 3), 5.0, 10);
    for ghost in players(10, 14) {
        mem.stamps.insert(ghost, b"1".to_vec());
    }
    let out_of_step = Err(CmdError::BadState(OUT_OF_STEP));
    assert_eq!(
        Board::open(&mut mem, Order::Asc).map(|b| b.total),
        out_of_step
    );
    // An order entry more than there are members.
    let mut mem = Mem::default();
    write_each(&mut mem, &players(0, 3), 5.0, 10);
    mem.sets[0].rem(b"p00");
    assert_eq!(
        Board::open(&mut mem, Order::Asc).map(|b| b.total),
        out_of_step
    );
}

#[test]
fn every_window_of_a_board_with_legacy_members_reads_in_group_order() {
    // ZADD members (legacy) at 0.5, 1 and 2; LB.ADD arrivals at 1 and 3. In each score group
    // the legacy members come first, by name, then the stamped ones, by arrival.
    let mut mem = Mem::default();
    let legacy = players(90, 98);
    for (m, score) in legacy.iter().zip([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 0.5]) {
        mem.sets[0].add(score, m);
    }
    write_each(&mut mem, &players(0, 3), 1.0, 10);
    write_each(&mut mem, &players(3, 5), 3.0, 20);
    let p = |i: usize| format!("p{i:02}").into_bytes();
    let group_1: Vec<Vec<u8>> = [90, 91, 92, 93, 94, 0, 1, 2].map(p).to_vec();
    let (group_2, group_3, group_half) = ([95, 96].map(p), [3, 4].map(p), [97].map(p));
    let asc: Vec<Vec<u8>> = [&group_half[..], &group_1, &group_2, &group_3].concat();
    let desc: Vec<Vec<u8>> = [&group_3[..], &group_2, &group_1, &group_half].concat();
    for (order, want) in [(Order::Asc, asc), (Order::Desc, desc)] {
        let mut b = Board::open(&mut mem, order).unwrap();
        let total = b.total;
        assert_eq!(total as usize, want.len());
        for offset in 0..total {
            for count in 1..=total - offset {
                let w = Window::top(offset, count, total);
                let got: Vec<Vec<u8>> = b
                    .entries(w, Ranking::Ordinal)
                    .unwrap()
                    .into_iter()
                    .map(|e| e.member)
                    .collect();
                let end = (offset + count) as usize;
                assert_eq!(got, want[offset as usize..end], "{order:?} {w:?}");
            }
        }
    }
}

#[test]
fn a_write_whose_dense_rank_would_scan_past_the_limit_is_refused() {
    // A ZADD board scored 1 to 5: DENSE counts the members above by scanning them.
    let mut zadd = Mem::default();
    for (i, m) in players(1, 6).iter().enumerate() {
        zadd.sets[0].add(i as f64 + 1.0, m);
    }
    let too_many = Err(CmdError::BadState(DENSE_TOO_MANY));
    let low = text(0.5);
    let set = [(Change::Set(0.5, &low), &b"new"[..])];
    // DESC: the 5 members above, plus the one written, against the limit.
    assert_eq!(check_dense_rank(&mut zadd, &set, Order::Desc, 6), Ok(()));
    assert_eq!(check_dense_rank(&mut zadd, &set, Order::Desc, 5), too_many);
    assert_eq!(check_dense_rank(&mut zadd, &set, Order::Asc, 1), Ok(()));
    // An increment is checked at the score it makes: p03 (3) + 1 = 4, below only p05.
    let one = text(1.0);
    let incr = [(Change::Add(1.0, &one), &b"p03"[..])];
    assert_eq!(check_dense_rank(&mut zadd, &incr, Order::Desc, 2), Ok(()));
    assert_eq!(check_dense_rank(&mut zadd, &incr, Order::Desc, 1), too_many);
    // An empty board, and one that records its distinct scores, scan nothing.
    assert_eq!(
        check_dense_rank(&mut Mem::default(), &set, Order::Desc, 0),
        Ok(())
    );
    let mut native = Mem::default();
    write_each(&mut native, &players(0, 5), 5.0, 10);
    assert!(!native.sets[2].scores.is_empty(), "the scores key is kept");
    assert_eq!(check_dense_rank(&mut native, &set, Order::Desc, 0), Ok(()));
}

/// How many of the board's tie-break keys exist.
fn tie_break_keys(mem: &mut Mem) -> usize {
    [Key::Order, Key::Stamps, Key::Scores, Key::Names]
        .into_iter()
        .filter(|&k| mem.kind(k) != Kind::Empty)
        .count()
}

#[test]
fn removing_the_last_member_drops_the_tie_break_and_only_then() {
    // A stamp left over for no member: only the board's going takes it with it.
    let ghost = |mem: &mut Mem| mem.stamps.insert(b"ghost".to_vec(), b"1".to_vec());
    let mut mem = Mem::default();
    let all = players(0, 3);
    write_each(&mut mem, &all, 5.0, 10);
    ghost(&mut mem);
    let kept = tie_break_keys(&mut mem);
    assert!(kept > 0);
    assert_eq!(remove(&mut mem, &[&all[0], &all[1]]), Ok(2));
    assert_eq!(
        tie_break_keys(&mut mem),
        kept,
        "the board still has a member"
    );
    assert_eq!(remove(&mut mem, &[b"absent"]), Ok(0));
    assert_eq!(tie_break_keys(&mut mem), kept);
    assert_eq!(remove(&mut mem, &[&all[2]]), Ok(1));
    assert_eq!(
        tie_break_keys(&mut mem),
        0,
        "nothing left of an empty board"
    );
    // Removing nothing writes nothing, even beside leftovers of a board gone.
    ghost(&mut mem);
    assert_eq!(remove(&mut mem, &[b"absent"]), Ok(0));
    assert_eq!(tie_break_keys(&mut mem), 1);
    // A plain (ZADD) board that keeps a member keeps the rest too.
    let mut plain = Mem::default();
    plain.sets[0].add(1.0, b"a");
    plain.sets[0].add(2.0, b"b");
    ghost(&mut plain);
    assert_eq!(remove(&mut plain, &[b"a"]), Ok(1));
    assert_eq!(tie_break_keys(&mut plain), 1);
}

#[test]
fn dense_ranks_on_a_board_recording_its_scores_never_scan() {
    // Ten distinct scores above the last member: past a limit of 1, read from the scores key.
    let mut mem = Mem::default();
    for (i, m) in players(0, 11).iter().enumerate() {
        write_each(&mut mem, std::slice::from_ref(m), i as f64, 10 + i as i64);
    }
    let mut b = Board::open(&mut mem, Order::Desc)
        .unwrap()
        .with_dense_max(1);
    let last = b.entries(Window::top(10, 1, 11), Ranking::Dense).unwrap();
    assert_eq!(last[0].rank, 11);
}

#[test]
fn a_rank_on_a_board_out_of_step_with_its_order_key_is_refused() {
    // p00's order entry moved to another score: the counts agree, its place cannot be found.
    let mut mem = Mem::default();
    write_each(&mut mem, &players(0, 3), 5.0, 10);
    let (_, entry) = mem.sets[1].sorted.iter().next().unwrap().clone();
    mem.sets[1].add(6.0, &entry);
    let mut b = Board::open(&mut mem, Order::Desc).unwrap();
    let s = b.score(b"p00").unwrap();
    for ranking in RANKINGS {
        let rank = b.rank(&s, ranking);
        assert_eq!(rank, Err(CmdError::BadState(OUT_OF_STEP)), "{ranking:?}");
    }
}

/// A write skips what it knows: the old score is kept when the group scan passed another
/// member of it, the new one is in the scores key when others hold it, and a member found by
/// scanning has no stamps entry to drop.
#[test]
fn a_write_asks_only_what_it_does_not_know() {
    let mut mem = Mem::default();
    write_each(&mut mem, &players(0, 3), 5.0, 10);
    write_each(&mut mem, &players(3, 4), 7.0, 20);
    mem.calls = Calls::default();
    // p01, behind p00 at 5, moves to 7, which p03 holds.
    write_each(&mut mem, &players(1, 2), 7.0, 30);
    assert_eq!(mem.calls, Calls::default());
    // p00, first at 5 (p02 keeps it), moves to 9, a new score.
    write_each(&mut mem, &players(0, 1), 9.0, 40);
    let asked = Calls {
        any_at: 1,
        scores_zadd: 1,
        hdel: 0,
    };
    assert_eq!(mem.calls, asked);
    let scores = &mem.sets[2].scores;
    assert_eq!(scores.len(), 3, "5, 7 and 9");
}

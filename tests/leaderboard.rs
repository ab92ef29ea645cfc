//! The leaderboard family's own semantics on Redis 7.0 and Valkey 8.0: every read against a
//! brute-force model on boards up to 100k members with many ties, the exact time tie-break,
//! plain ZADD boards, ACL checks the twin makes as the module does, bad input, scores read as
//! ZADD reads them, and the twin's reads of a large board.
//! What every command shares (COMMAND DOCS, README, Cluster, ACL, effects replication,
//! AOF, the twin differential) is in tests/conformance.rs.

mod common;

use common::*;
use patterns_core::leaderboard as lb;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::{BTreeMap, HashMap};

/// An entry as replied: (rank, member, score).
type Entry = (i64, String, f64);

fn entries(c: &mut Connection, args: &[String]) -> Vec<Entry> {
    let raw: Vec<(i64, String, String)> = redis::cmd(&args[0])
        .arg(&args[1..])
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    raw.into_iter()
        .map(|(r, m, s)| (r, m, s.parse().unwrap()))
        .collect()
}

/// The stamps hash's invariant on a board's tie-break keys: every order entry of a score group
/// of more than SMALL_GROUP entries is in the hash, and every hash entry is its member's entry.
fn check_stamps(c: &mut Connection, board: &str) {
    let names = lb::Companions::of(board.as_bytes()).unwrap();
    let [order_key, stamps_key, ..] = names.all();
    let order: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
        .arg(order_key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(c)
        .unwrap();
    let stamps: HashMap<Vec<u8>, Vec<u8>> = redis::cmd("HGETALL").arg(stamps_key).query(c).unwrap();
    let mut groups: HashMap<&str, i64> = HashMap::new();
    for (_, score) in &order {
        *groups.entry(score.as_str()).or_default() += 1;
    }
    let entries: HashMap<&[u8], &str> = order
        .iter()
        .map(|(e, s)| (&e[lb::STAMP_DIGITS..], s.as_str()))
        .collect();
    for (entry, score) in &order {
        let (stamp, member) = entry.split_at(lb::STAMP_DIGITS);
        if groups[score.as_str()] > lb::SMALL_GROUP {
            assert_eq!(
                stamps.get(member).map(Vec::as_slice),
                Some(stamp),
                "{board}"
            );
        }
    }
    for (member, stamp) in &stamps {
        let score = entries
            .get(member.as_slice())
            .expect("a stamp for an entry");
        let entry = [stamp.as_slice(), member].concat();
        assert!(
            order.contains(&(entry, score.to_string())),
            "{board}: stale stamp"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The brute-force model

const ORDERS: [&str; 2] = ["ASC", "DESC"];
const RANKINGS: [&str; 4] = ["ORDINAL", "DENSE", "COMPETITION", "MODIFIED"];

/// The board as the model knows it: member → (score, arrival of that score), where `None`
/// means "no time recorded" (a plain ZADD board: ties in member order, reversed for DESC).
#[derive(Default)]
struct Model {
    members: HashMap<String, (f64, Option<u64>)>,
    arrivals: u64,
}

/// One order of the model, every rank precomputed: entries by place.
struct Ranked {
    entries: Vec<(String, f64)>,
    /// Per place: ORDINAL, DENSE, COMPETITION, MODIFIED.
    ranks: Vec<[i64; 4]>,
    place: HashMap<String, usize>,
}

impl Model {
    fn set(&mut self, member: &str, score: f64) {
        if self.members.get(member).map(|e| e.0) != Some(score) {
            self.arrivals += 1;
            self.members
                .insert(member.to_string(), (score, Some(self.arrivals)));
        }
    }

    fn ranked(&self, desc: bool) -> Ranked {
        let mut all: Vec<(&String, &(f64, Option<u64>))> = self.members.iter().collect();
        all.sort_by(|a, b| {
            let mut by_score = a.1 .0.partial_cmp(&b.1 .0).unwrap();
            if desc {
                by_score = by_score.reverse();
            }
            let by_time = match (a.1 .1, b.1 .1) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ if desc => b.0.cmp(a.0),
                _ => a.0.cmp(b.0),
            };
            by_score.then(by_time)
        });
        let entries: Vec<(String, f64)> = all.iter().map(|(m, e)| ((*m).clone(), e.0)).collect();
        let n = entries.len();
        let mut ranks = vec![[0i64; 4]; n];
        let mut dense = 0;
        let mut group_start = 0;
        for i in 0..n {
            if i == 0 || entries[i].1 != entries[i - 1].1 {
                dense += 1;
                group_start = i;
            }
            ranks[i][0] = i as i64 + 1;
            ranks[i][1] = dense;
            ranks[i][2] = group_start as i64 + 1;
        }
        let mut group_end = n;
        for i in (0..n).rev() {
            if i + 1 < n && entries[i].1 != entries[i + 1].1 {
                group_end = i + 1;
            }
            ranks[i][3] = group_end as i64;
        }
        let place = entries
            .iter()
            .enumerate()
            .map(|(i, (m, _))| (m.clone(), i))
            .collect();
        Ranked {
            entries,
            ranks,
            place,
        }
    }
}

impl Ranked {
    fn window(&self, start: usize, end: usize, ranking: usize) -> Vec<Entry> {
        (start..end.min(self.entries.len()))
            .map(|i| {
                let (m, s) = &self.entries[i];
                (self.ranks[i][ranking], m.clone(), *s)
            })
            .collect()
    }

    /// Asserts that a windowed read (`cmd`) answers the entries `start..end` ranked so.
    fn assert_window(
        &self,
        c: &mut Connection,
        cmd: &[String],
        start: usize,
        end: usize,
        ranking: usize,
    ) {
        assert_eq!(entries(c, cmd), self.window(start, end, ranking), "{cmd:?}");
    }
}

fn args(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Random reads of every kind against the model; `dense_reads` bounds the DENSE ones (on a
/// plain board they scan the members above the window).
fn check_reads(
    c: &mut Connection,
    board: &str,
    model: &Model,
    rng: &mut StdRng,
    reads: usize,
    dense_reads: usize,
) {
    let total = model.members.len();
    let mut dense_done = 0;
    for (o, order) in ORDERS.iter().enumerate() {
        let ranked = model.ranked(o == 1);
        let members: Vec<&String> = ranked.entries.iter().map(|(m, _)| m).collect();
        for _ in 0..reads {
            let mut r = rng.gen_range(0..RANKINGS.len());
            if r == 1 {
                if dense_done >= dense_reads {
                    r = 2;
                } else {
                    dense_done += 1;
                }
            }
            let ranking = RANKINGS[r];
            let count = *[1usize, 2, 5, 10, 25].choose(rng).unwrap();
            // A member near either end, or anywhere.
            let at = match rng.gen_range(0..4) {
                0 => rng.gen_range(0..total.min(3)),
                1 => total - 1 - rng.gen_range(0..total.min(3)),
                _ => rng.gen_range(0..total),
            };
            let member = members[at].as_str();
            let place = ranked.place[member];
            // LB.RANK
            let got: (i64, String, i64) =
                query(c, &["LB.RANK", board, member, order, "RANKING", ranking]);
            assert_eq!(
                (got.0, got.1.parse::<f64>().unwrap(), got.2),
                (
                    ranked.ranks[place][r],
                    ranked.entries[place].1,
                    total as i64
                ),
                "LB.RANK {member} {order} {ranking}"
            );
            // LB.AROUND: count/2 above when possible, full at either end.
            let n = count.min(total);
            let start = place.saturating_sub(count / 2).min(total - n);
            let cmd = args(&[
                "LB.AROUND",
                board,
                member,
                &count.to_string(),
                order,
                "RANKING",
                ranking,
            ]);
            ranked.assert_window(c, &cmd, start, start + n, r);
            // LB.TOP with an offset, at the ends and past them.
            let offset = match rng.gen_range(0..3) {
                0 => 0,
                1 => total.saturating_sub(rng.gen_range(0..count + 2)),
                _ => rng.gen_range(0..total + 3),
            };
            let cmd = args(&[
                "LB.TOP",
                board,
                &count.to_string(),
                "OFFSET",
                &offset.to_string(),
                order,
                "RANKING",
                ranking,
            ]);
            ranked.assert_window(c, &cmd, offset, offset + count, r);
            // LB.PAGE, pages past the end included.
            let pages = total.div_ceil(count);
            let page = rng.gen_range(1..pages + 3);
            let got: (i64, Vec<(i64, String, String)>) = query(
                c,
                &[
                    "LB.PAGE",
                    board,
                    &page.to_string(),
                    &count.to_string(),
                    order,
                    "RANKING",
                    ranking,
                ],
            );
            assert_eq!(got.0, pages as i64);
            let got: Vec<Entry> = got
                .1
                .into_iter()
                .map(|(a, m, s)| (a, m, s.parse().unwrap()))
                .collect();
            assert_eq!(
                got,
                ranked.window((page - 1) * count, page * count, r),
                "LB.PAGE {page} {count} {order} {ranking}"
            );
            // LB.PERCENTILE: the share with a strictly worse score.
            let score = ranked.entries[place].1;
            let worse = ranked
                .entries
                .iter()
                .filter(|(_, s)| if o == 1 { *s < score } else { *s > score })
                .count();
            let got: f64 = query::<String>(c, &["LB.PERCENTILE", board, member, order])
                .parse()
                .unwrap();
            assert_eq!(
                got,
                100.0 * worse as f64 / total as f64,
                "LB.PERCENTILE {member} {order}"
            );
        }
    }
}

/// Writes a board of `n` members through LB.ADD and LB.INCR (pipelined, many per millisecond,
/// scores from a small set: many ties), tracking arrivals in the model.
fn build_board(c: &mut Connection, board: &str, n: usize, rng: &mut StdRng, model: &mut Model) {
    let scores = [-3.5, 0.0, 1.0, 2.0, 7.0, 1e15, 9_007_199_254_740_992.0];
    let mut done = 0;
    while done < n {
        let mut pipe = redis::pipe();
        for _ in 0..1000.min(n - done) {
            let member = format!("m{}", rng.gen_range(0..n * 6 / 5));
            if rng.gen_bool(0.8) {
                let score = *scores.choose(rng).unwrap();
                pipe.cmd("LB.ADD")
                    .arg(board)
                    .arg(score.to_string())
                    .arg(&member)
                    .ignore();
                model.set(&member, score);
            } else {
                let by = *[1.0, -1.0, 0.0].choose(rng).unwrap();
                pipe.cmd("LB.INCR")
                    .arg(board)
                    .arg(by.to_string())
                    .arg(&member)
                    .ignore();
                let old = model.members.get(&member).map_or(0.0, |e| e.0);
                model.set(&member, old + by);
            }
            done += 1;
        }
        let () = pipe.query(c).unwrap();
    }
}

#[test]
fn reads_match_a_brute_force_model_up_to_100k_members() {
    for_each_server(|_, mut c| {
        let mut rng = StdRng::seed_from_u64(61);
        for (size, reads) in [(1, 4), (7, 10), (300, 25), (100_000, 12)] {
            let board = format!("board:{{{size}}}");
            let mut model = Model::default();
            build_board(&mut c, &board, size, &mut rng, &mut model);
            assert_eq!(
                query::<i64>(&mut c, &["ZCARD", &board]),
                model.members.len() as i64
            );
            check_reads(&mut c, &board, &model, &mut rng, reads, reads);
            check_stamps(&mut c, &board);
            // The scores key holds the distinct scores.
            let mut distinct: Vec<f64> = model.members.values().map(|e| e.0).collect();
            distinct.sort_by(|a, b| a.partial_cmp(b).unwrap());
            distinct.dedup();
            let scores_key = format!("{board}:lb-scores");
            assert_eq!(
                query::<usize>(&mut c, &["ZCARD", &scores_key]),
                distinct.len()
            );
        }
    });
}

#[test]
fn plain_zadd_boards_rank_in_redis_member_order() {
    for_each_server(|_, mut c| {
        let mut rng = StdRng::seed_from_u64(62);
        // DENSE may scan the whole 100,000-member board here.
        let _: () = query(
            &mut c,
            &["CONFIG", "SET", "patterns.lb-dense-max", "1000000"],
        );
        for size in [5i32, 2_000, 100_000] {
            let board = format!("plain{size}");
            let mut model = Model::default();
            let mut pipe = redis::pipe();
            for i in 0..size {
                let member = format!("p{}", rng.gen_range(0..size * 2));
                let score = f64::from(rng.gen_range(-5..(size / 50).max(3)));
                pipe.cmd("ZADD")
                    .arg(&board)
                    .arg(score)
                    .arg(&member)
                    .ignore();
                model.members.insert(member, (score, None));
                if i % 5000 == 4999 {
                    let () = pipe.query(&mut c).unwrap();
                    pipe = redis::pipe();
                }
            }
            let () = pipe.query(&mut c).unwrap();
            // DENSE scans the members above on a plain board: a few reads are enough.
            check_reads(&mut c, &board, &model, &mut rng, 10, 3);
            assert_eq!(
                query::<i64>(&mut c, &["EXISTS", &format!("{{{board}}}:lb-order")]),
                0
            );
        }
        // The first LB.ADD records nothing for the members it finds: they rank as if tied
        // since time 0, in name order.
        let mut model = Model::default();
        for (m, s) in [("b", 1.0), ("a", 1.0), ("c", 1.0), ("d", 2.0)] {
            let _: i64 = query(&mut c, &["ZADD", "adopt", &s.to_string(), m]);
            model.members.insert(m.to_string(), (s, None));
        }
        let _: i64 = query(&mut c, &["LB.ADD", "adopt", "1", "e"]);
        let desc = entries(&mut c, &args(&["LB.TOP", "adopt", "10"]));
        let names: Vec<&str> = desc.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(names, ["d", "a", "b", "c", "e"]);
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "{adopt}:lb-order"]), 1);
        // A score group this small is scanned: no stamps entry.
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "{adopt}:lb-stamps"]), 0);
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "{adopt}:lb-names"]), 1);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "{adopt}:lb-scores"]), 0);
    });
}

#[test]
fn dense_on_a_zadd_board_is_refused_past_its_config() {
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let max: Vec<String> = query(&mut c, &["CONFIG", "GET", "patterns.lb-dense-max"]);
        assert_eq!(max[1], lb::DENSE_MAX.to_string());
        for i in 0..50 {
            let _: i64 = query(
                &mut c,
                &["ZADD", "z", &(i / 2).to_string(), &format!("p{i:02}")],
            );
        }
        let _: () = query(&mut c, &["CONFIG", "SET", "patterns.lb-dense-max", "10"]);
        // 10 members above p39 (score 19): scanned; 12 above p37: refused, whatever the
        // command; counted rankings are not limited.
        let got: (i64, String, i64) = query(&mut c, &["LB.RANK", "z", "p39", "RANKING", "DENSE"]);
        assert_eq!(got, (6, "19".to_string(), 50));
        let refused = format!("ERR {}", lb::DENSE_TOO_MANY);
        for cmd in [
            &["LB.RANK", "z", "p37", "RANKING", "DENSE"][..],
            &["LB.AROUND", "z", "p35", "3", "RANKING", "DENSE"],
            &["LB.TOP", "z", "3", "OFFSET", "12", "RANKING", "DENSE"],
            &["LB.PAGE", "z", "5", "3", "RANKING", "DENSE"],
        ] {
            assert_eq!(error_of(&mut c, cmd), refused, "{cmd:?}");
        }
        let got: (i64, String, i64) =
            query(&mut c, &["LB.RANK", "z", "p37", "RANKING", "COMPETITION"]);
        assert_eq!(got.0, 13);
        // A board written by LB.ADD from the start keeps its distinct scores: never refused.
        for i in 0..50 {
            let _: i64 = query(
                &mut c,
                &["LB.ADD", "n", &(i / 2).to_string(), &format!("p{i:02}")],
            );
        }
        let got: (i64, String, i64) = query(&mut c, &["LB.RANK", "n", "p00", "RANKING", "DENSE"]);
        assert_eq!(got.0, 25);
        // The twin has no configs: it refuses past the default, as the module does by default.
        let _: () = query(
            &mut c,
            &[
                "CONFIG",
                "SET",
                "patterns.lb-dense-max",
                &lb::DENSE_MAX.to_string(),
            ],
        );
        let twin = Server::start_without_module(flavor, &[]);
        let mut t = twin.conn();
        load_twin(&mut t);
        let n = lb::DENSE_MAX + 2;
        for conn in [&mut c, &mut t] {
            let mut pipe = redis::pipe();
            for start in (0..n).step_by(1000) {
                let cmd = pipe.cmd("ZADD").arg("big");
                for i in start..(start + 1000).min(n) {
                    cmd.arg(i).arg(format!("m{i}"));
                }
                cmd.ignore();
            }
            let () = pipe.query(conn).unwrap();
        }
        // DESC: m5 has n - 6 members above (scanned), m0 has n - 1 (refused).
        let top: (i64, String, i64) = query(
            &mut t,
            &["FCALL", "lb_rank", "1", "big", "m5", "RANKING", "DENSE"],
        );
        assert_eq!(top.0, n - 5);
        assert_eq!(
            error_of(
                &mut t,
                &["FCALL", "lb_rank", "1", "big", "m0", "RANKING", "DENSE"]
            ),
            refused
        );
        assert_eq!(
            error_of(&mut c, &["LB.RANK", "big", "m0", "RANKING", "DENSE"]),
            refused
        );
    });
}

#[test]
fn a_write_with_rank_answers_what_lb_rank_answers_after_it() {
    for_each_server(|_, mut c| {
        let mut rng = StdRng::seed_from_u64(64);
        build_board(&mut c, "native:{1}", 2_000, &mut rng, &mut Model::default());
        zadd_board(&mut c, "legacy:{1}", 2_000, 20, &mut rng);
        let mut legacy = legacy_model(&mut c, "legacy:{1}");
        write_legacy_board(&mut c, "legacy:{1}", 300, &mut rng, &mut legacy);
        zadd_board(&mut c, "plain:{1}", 2_000, 20, &mut rng);
        for step in 0..300 {
            let board = ["native:{1}", "legacy:{1}", "plain:{1}"][step % 3];
            let member = format!("{}{}", ["m", "p"][step % 2], rng.gen_range(0..2_400));
            let by = ["1", "0", "-2", "0.5"][rng.gen_range(0..4)];
            let order = ORDERS[rng.gen_range(0..2)];
            let ranking = RANKINGS[rng.gen_range(0..4)];
            let with: Value = query(
                &mut c,
                &[
                    "LB.INCR", board, by, &member, "WITHRANK", order, "RANKING", ranking,
                ],
            );
            let after: Value = query(
                &mut c,
                &["LB.RANK", board, &member, order, "RANKING", ranking],
            );
            assert_eq!(
                with, after,
                "LB.INCR {board} {by} {member} {order} {ranking}"
            );
            assert!(matches!(&with, Value::Array(v) if v.len() == 3), "{with:?}");
        }
        // LB.ADD: one LB.RANK reply per pair, after the whole write.
        for _ in 0..30 {
            let board = ["native:{1}", "legacy:{1}", "plain:{1}"][rng.gen_range(0..3)];
            let order = ORDERS[rng.gen_range(0..2)];
            let ranking = RANKINGS[rng.gen_range(0..4)];
            let members: Vec<String> = (0..3)
                .map(|_| format!("p{}", rng.gen_range(0..2_400)))
                .collect();
            let scores: Vec<String> = (0..3).map(|_| rng.gen_range(0..20).to_string()).collect();
            let mut cmd = vec!["LB.ADD", board, "WITHRANK", order, "RANKING", ranking];
            for (s, m) in scores.iter().zip(&members) {
                cmd.extend([s.as_str(), m.as_str()]);
            }
            let with: Vec<Value> = query(&mut c, &cmd);
            assert_eq!(with.len(), 3);
            for (got, m) in with.iter().zip(&members) {
                let after: Value = query(&mut c, &["LB.RANK", board, m, order, "RANKING", ranking]);
                assert_eq!(got, &after, "{cmd:?}");
            }
        }
        // Options lead LB.ADD's pairs: after them, a word is a score.
        assert_eq!(
            error_of(&mut c, &["LB.ADD", "native:{1}", "1", "x", "WITHRANK"]),
            arity("lb.add")
        );
        assert_eq!(
            error_of(&mut c, &["LB.ADD", "native:{1}", "1", "x", "WITHRANK", "y"]),
            "ERR score must be a number"
        );
        // Without WITHRANK the reply is the score, options or not.
        let score: String = query(&mut c, &["LB.INCR", "native:{1}", "1", "x", "ASC"]);
        assert_eq!(score, "1");
        // A DENSE rank that would scan past the limit is refused before anything is written.
        let _: () = query(&mut c, &["CONFIG", "SET", "patterns.lb-dense-max", "10"]);
        let before: Value = query(&mut c, &["ZSCORE", "plain:{1}", "p1"]);
        let refused = format!("ERR {}", lb::DENSE_TOO_MANY);
        let incr = [
            "LB.INCR",
            "plain:{1}",
            "-1000",
            "p1",
            "WITHRANK",
            "RANKING",
            "DENSE",
        ];
        let add = [
            "LB.ADD",
            "plain:{1}",
            "WITHRANK",
            "RANKING",
            "DENSE",
            "-1000",
            "p1",
        ];
        for args in [incr, add] {
            assert_eq!(error_of(&mut c, &args), refused);
            let after: Value = query(&mut c, &["ZSCORE", "plain:{1}", "p1"]);
            assert_eq!(before, after, "{args:?}");
        }
        // The top needs no scan: answered.
        let top: (i64, String, i64) = query(
            &mut c,
            &[
                "LB.INCR",
                "plain:{1}",
                "1000",
                "p1",
                "WITHRANK",
                "RANKING",
                "DENSE",
            ],
        );
        assert_eq!(top.0, 1);
    });
}

/// A ZADD board of `n` members `p<i>` with scores in 0..`scores` (many ties), pipelined.
fn zadd_board(c: &mut Connection, board: &str, n: usize, scores: i32, rng: &mut StdRng) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let member = format!("p{}", rng.gen_range(0..n * 2));
        pipe.cmd("ZADD")
            .arg(board)
            .arg(rng.gen_range(0..scores))
            .arg(member)
            .ignore();
        if i % 5000 == 4999 {
            let () = pipe.query(c).unwrap();
            pipe = redis::pipe();
        }
    }
    let () = pipe.query(c).unwrap();
}

/// Writes `n` random LB.ADD/LB.INCR to a board made by `zadd_board` (members old and new,
/// names interleaved with the old ones), tracking arrivals in the model.
fn write_legacy_board(
    c: &mut Connection,
    board: &str,
    n: usize,
    rng: &mut StdRng,
    model: &mut Model,
) {
    let mut pipe = redis::pipe();
    for _ in 0..n {
        let member = format!("p{}", rng.gen_range(0..model.members.len() * 2));
        if rng.gen_bool(0.7) {
            let score = rng.gen_range(0..20);
            pipe.cmd("LB.ADD")
                .arg(board)
                .arg(score)
                .arg(&member)
                .ignore();
            model.set(&member, f64::from(score));
        } else {
            pipe.cmd("LB.INCR").arg(board).arg(1).arg(&member).ignore();
            let old = model.members.get(&member).map_or(0.0, |e| e.0);
            model.set(&member, old + 1.0);
        }
    }
    let () = pipe.query(c).unwrap();
}

/// The model of a ZADD board once written by LB.*: its members arrived first, in name order.
fn legacy_model(c: &mut Connection, board: &str) -> Model {
    let flat: Vec<(String, f64)> = query(c, &["ZRANGE", board, "0", "-1", "WITHSCORES"]);
    let mut by_name = flat;
    by_name.sort_by(|a, b| a.0.cmp(&b.0));
    let mut model = Model::default();
    for (m, s) in by_name {
        model.set(&m, s);
    }
    model
}

#[test]
fn the_first_write_to_a_big_zadd_board_converts_nothing() {
    for_each_server(|_, mut c| {
        let mut rng = StdRng::seed_from_u64(63);
        let board = "legacy:{1}";
        // DENSE may scan the whole board here (it has no :lb-scores).
        let _: () = query(
            &mut c,
            &["CONFIG", "SET", "patterns.lb-dense-max", "1000000"],
        );
        zadd_board(&mut c, board, 20_000, 20, &mut rng);
        let mut model = legacy_model(&mut c, board);
        let legacy = model.arrivals;
        // One write: one stamp, one order entry, one name; nothing else is recorded.
        let _: i64 = query(&mut c, &["LB.ADD", board, "3", "p7"]);
        model.set("p7", 3.0);
        for key in ["legacy:{1}:lb-order", "legacy:{1}:lb-names"] {
            assert_eq!(query::<i64>(&mut c, &["ZCARD", key]), 1, "{key}");
        }
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "legacy:{1}:lb-stamps"]), 0);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "legacy:{1}:lb-scores"]), 0);
        check_reads(&mut c, board, &model, &mut rng, 10, 2);
        // Many writes, old members and new, interleaved by name within each score.
        write_legacy_board(&mut c, board, 3_000, &mut rng, &mut model);
        check_reads(&mut c, board, &model, &mut rng, 25, 3);
        check_stamps(&mut c, board);
        let stamped: i64 = query(&mut c, &["ZCARD", "legacy:{1}:lb-order"]);
        assert_eq!(
            query::<i64>(&mut c, &["ZCARD", "legacy:{1}:lb-names"]),
            stamped
        );
        assert!(stamped < model.members.len() as i64);
        // A member added with ZADD behind the family's back is one more legacy member.
        let _: i64 = query(&mut c, &["ZADD", board, "5", "p"]);
        let mut fresh = Model::default();
        let mut all: Vec<(String, (f64, Option<u64>))> = model.members.into_iter().collect();
        all.push(("p".to_string(), (5.0, Some(0))));
        // Legacy members (arrived with the ZADD board, or since by ZADD) first, by name.
        all.sort_by_key(|(m, (_, arrival))| {
            let stamped = arrival.filter(|a| *a > legacy);
            (stamped.is_some(), stamped, m.clone())
        });
        for (m, (s, _)) in all {
            fresh.set(&m, s);
        }
        check_reads(&mut c, board, &fresh, &mut rng, 8, 1);
    });
}

#[test]
fn equal_scores_rank_by_who_got_there_first() {
    for_each_server(|_, mut c| {
        for score in ["9007199254740992", "-1e300", "-0.5", "0", "inf"] {
            let board = format!("ties:{{{score}}}");
            // zed first, then amy, then mia: arrival order, not name order.
            for m in ["zed", "amy", "mia"] {
                let _: i64 = query(&mut c, &["LB.ADD", &board, score, m]);
            }
            for order in ORDERS {
                let top = entries(&mut c, &args(&["LB.TOP", &board, "3", order]));
                let names: Vec<&str> = top.iter().map(|e| e.1.as_str()).collect();
                assert_eq!(names, ["zed", "amy", "mia"], "{score} {order}");
            }
            // zed improves (the others are now behind it in DESC), then falls back: it reached
            // the score again last, so it ranks last among the three.
            let up = if score == "inf" { "-inf" } else { "1e301" };
            let _: i64 = query(&mut c, &["LB.ADD", &board, up, "zed"]);
            let top = entries(
                &mut c,
                &args(&[
                    "LB.TOP",
                    &board,
                    "3",
                    if score == "inf" { "ASC" } else { "DESC" },
                ]),
            );
            assert_eq!(top[0].1, "zed");
            let _: i64 = query(&mut c, &["LB.ADD", &board, score, "zed"]);
            for order in ORDERS {
                let top = entries(
                    &mut c,
                    &args(&["LB.TOP", &board, "3", order, "RANKING", "COMPETITION"]),
                );
                let names: Vec<&str> = top.iter().map(|e| e.1.as_str()).collect();
                assert_eq!(names, ["amy", "mia", "zed"], "{score} {order}");
                assert!(top.iter().all(|e| e.0 == 1));
            }
            // Re-adding the same score keeps the time it was reached.
            let _: i64 = query(&mut c, &["LB.ADD", &board, score, "amy"]);
            let rank: (i64, String, i64) = query(&mut c, &["LB.RANK", &board, "amy"]);
            assert_eq!(rank.0, 1);
            // The true score stays in the board.
            let zscore: String = query(&mut c, &["ZSCORE", &board, "amy"]);
            assert_eq!(
                zscore.parse::<f64>().unwrap(),
                score.parse::<f64>().unwrap()
            );
        }
        // 2^53 and 2^53 + 2 differ; a time packed into the score would have lost that.
        let _: i64 = query(
            &mut c,
            &[
                "LB.ADD",
                "big",
                "9007199254740994",
                "b",
                "9007199254740992",
                "a",
            ],
        );
        let top = entries(&mut c, &args(&["LB.TOP", "big", "2"]));
        assert_eq!((top[0].1.as_str(), top[1].1.as_str()), ("b", "a"));
        // LB.INCR returns the new score as ZINCRBY does.
        assert_eq!(
            query::<String>(&mut c, &["LB.INCR", "big", "2", "a"]),
            query::<String>(&mut c, &["ZSCORE", "big", "a"])
        );
        let top = entries(&mut c, &args(&["LB.TOP", "big", "2"]));
        assert_eq!(
            (top[0].1.as_str(), top[1].1.as_str()),
            ("b", "a"),
            "a reached b's score later"
        );
    });
}

#[test]
fn a_board_written_behind_the_familys_back_is_refused_until_its_tie_break_is_dropped() {
    for_each_server(|_, mut c| {
        let _: i64 = query(&mut c, &["LB.ADD", "b", "1", "x", "2", "y"]);
        let _: i64 = query(&mut c, &["ZADD", "b", "3", "z"]);
        let stale = format!("ERR {}", lb::OUT_OF_STEP);
        assert_eq!(error_of(&mut c, &["LB.TOP", "b", "3"]), stale);
        assert_eq!(error_of(&mut c, &["LB.ADD", "b", "4", "w"]), stale);
        let _: i64 = query(
            &mut c,
            &["DEL", "{b}:lb-order", "{b}:lb-stamps", "{b}:lb-scores"],
        );
        assert_eq!(entries(&mut c, &args(&["LB.TOP", "b", "3"])).len(), 3);
        // LB.REM keeps them in step; removing the last member drops them.
        let _: i64 = query(&mut c, &["LB.ADD", "b", "4", "w"]);
        assert_eq!(
            query::<i64>(&mut c, &["LB.REM", "b", "w", "x", "nobody"]),
            2
        );
        assert_eq!(entries(&mut c, &args(&["LB.TOP", "b", "5"])).len(), 2);
        assert_eq!(query::<i64>(&mut c, &["LB.REM", "b", "y", "z"]), 2);
        assert_eq!(query::<i64>(&mut c, &["DBSIZE"]), 0);
        // Tie-break keys that outlived their board (it expired) are dropped at the next write.
        let _: i64 = query(&mut c, &["LB.ADD", "e", "1", "x"]);
        let _: i64 = query(&mut c, &["DEL", "e"]);
        let _: i64 = query(&mut c, &["LB.ADD", "e", "2", "y"]);
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "{e}:lb-order"]), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// ACL: the twin checks as the module does

#[test]
fn acl_checks_the_tie_break_keys() {
    for_each_server(|server, mut admin| {
        // The twin on the same server: its checks must agree with the module's.
        load_twin(&mut admin);
        let nope =
            "NOPERM this user has no permissions to access one of the keys used as arguments";
        let _: i64 = query(&mut admin, &["LB.ADD", "scores", "1", "x"]);
        let _: i64 = query(&mut admin, &["LB.ADD", "lb:{g}", "1", "x"]);
        let before = snapshot(&mut admin);
        let both = |c: &mut Connection, cmd: &[&str]| -> [String; 2] {
            let function = cmd[0].to_ascii_lowercase().replace('.', "_");
            let mut fcall = vec!["FCALL", &function, "1"];
            fcall.extend_from_slice(&cmd[1..]);
            let show = |v: Value| match v {
                Value::ServerError(e) => format!("{} {}", e.code(), e.details().unwrap_or("")),
                other => format!("{other:?}"),
            };
            let mut native = redis::cmd(cmd[0]);
            native.arg(&cmd[1..]);
            let mut twin = redis::cmd("FCALL");
            twin.arg(&fcall[1..]);
            let replies = pipeline(c, &[native, twin]);
            [show(replies[0].clone()), show(replies[1].clone())]
        };
        // `~scores` covers the board but not `{scores}:lb-*`.
        let mut exact = login(&server, "exact", &["~scores"]);
        for cmd in [
            &["LB.ADD", "scores", "2", "y"][..],
            &["LB.INCR", "scores", "2", "x"],
            &["LB.REM", "scores", "x"],
            &["LB.TOP", "scores", "3"],
            &["LB.RANK", "scores", "x"],
        ] {
            assert_eq!(both(&mut exact, cmd), [nope, nope], "{cmd:?}");
        }
        // The percentile reads the board only.
        let [native, twin] = both(&mut exact, &["LB.PERCENTILE", "scores", "x"]);
        assert_eq!(native, twin);
        assert!(native.contains('0'), "{native}");
        // A read-only user reads boards and their tie-break keys (the twin's read functions
        // are `no-writes`: through FCALL_RO), and writes nothing.
        let mut reader = login(&server, "reader", &["%R~*"]);
        let top = ["LB.TOP", "lb:{g}", "3"];
        let native: Vec<(i64, String, String)> = query(&mut reader, &top);
        let twin: Vec<(i64, String, String)> =
            query(&mut reader, &["FCALL_RO", "lb_top", "1", "lb:{g}", "3"]);
        assert_eq!(native, twin);
        assert_eq!(native[0].1, "x");
        // The server refuses the declared key itself, in its own words (Valkey's differ).
        let [native, twin] = both(&mut reader, &["LB.ADD", "lb:{g}", "2", "y"]);
        assert_eq!(native, twin);
        assert!(native.starts_with("NOPERM"), "{native}");
        assert_same_state(&before, &snapshot(&mut admin), 0);
        // A read looks past the order key only when it exists: a user who may read a plain
        // board and its (absent) order key reads it; once the board has a tie-break, the
        // other keys are checked too.
        let _: i64 = query(&mut admin, &["ZADD", "flat", "1", "x", "2", "y"]);
        let mut ordered = login(&server, "ordered", &["~flat", "~{flat}:lb-order"]);
        let rank = ["LB.RANK", "flat", "y"];
        let [native, twin] = both(&mut ordered, &rank);
        assert_eq!(native, twin);
        assert!(native.starts_with("array([int(1),"), "{native}");
        let _: i64 = query(&mut admin, &["LB.ADD", "flat", "3", "z"]);
        assert_eq!(both(&mut ordered, &rank), [nope, nope]);
        // `~lb:*` covers a hashtagged board's tie-break keys.
        let mut wide = login(&server, "wide", &["~lb:*"]);
        assert_eq!(query::<i64>(&mut wide, &["LB.ADD", "lb:{g}", "2", "y"]), 1);
        assert_eq!(
            entries(&mut wide, &args(&["LB.TOP", "lb:{g}", "3"])).len(),
            2
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input

/// Issue 11, defect 3: one rule for every LB command on a board named with braces but no
/// hashtag (`a{b`): every write (LB.ADD, LB.INCR, LB.REM) is refused and writes nothing, in
/// the module and the twin alike; every read serves the plain board in Redis's order.
#[test]
fn a_board_that_cannot_carry_its_tie_break_keys_is_read_but_never_written() {
    for_each_module_and_twin(|_, mut c, mut t| {
        for board in ["a{b", "x}{y", ""] {
            for conn in [&mut c, &mut t] {
                let _: i64 = query(conn, &["ZADD", board, "1", "x", "2", "y"]);
            }
            let bad_board = format!("ERR {}", lb::BAD_BOARD);
            let writes: [&[&str]; 4] = [
                &["LB.ADD", board, "3", "z"],
                &["LB.INCR", board, "1", "x"],
                &["LB.REM", board, "x"],
                &["LB.REM", board, "nobody"],
            ];
            for write in writes {
                let before = snapshot(&mut c);
                assert_eq!(error_of(&mut c, write), bad_board, "{write:?}");
                assert_same_state(&before, &snapshot(&mut c), 0);
                let fcall = twin_fcall(write);
                assert_eq!(error_of(&mut t, &fcall), bad_board, "twin {write:?}");
            }
            assert_eq!(
                query::<Vec<String>>(&mut c, &["ZRANGE", board, "0", "-1"]),
                ["x", "y"]
            );
            let rank: Vec<Value> = query(&mut c, &["LB.RANK", board, "y"]);
            assert_eq!(rank[0], Value::Int(1), "{rank:?}");
            assert_eq!(entries(&mut c, &args(&["LB.TOP", board, "2"])).len(), 2);
            let page: (i64, Vec<Value>) = query(&mut c, &["LB.PAGE", board, "1", "10"]);
            assert_eq!(page.0, 1);
            let around: Vec<Value> = query(&mut c, &["LB.AROUND", board, "x", "3"]);
            assert_eq!(around.len(), 2);
            let share: Option<String> = query(&mut c, &["LB.PERCENTILE", board, "y"]);
            assert!(share.is_some());
        }
    });
}

/// A write makes its changes through the key API, and fires the keyspace events of the
/// commands it stands for: the same events, in the same order, as the twin, which runs those
/// commands (a change that changes nothing fires nothing, an emptied key also fires `del`).
#[test]
fn writes_fire_the_keyspace_events_of_their_commands() {
    for_each_server(|server, mut c| {
        load_twin(&mut c);
        let _: () = query(&mut c, &["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
        let mut sub = server.conn();
        let mut pubsub = sub.as_pubsub();
        pubsub.psubscribe("__keyevent@*__:*").unwrap();
        pubsub
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        // A score group grown past SMALL_GROUP lists its members in the stamps hash (hset); one
        // leaving it, or removed, drops its entry (hdel).
        let group: Vec<String> = (0..=lb::SMALL_GROUP).map(|i| format!("g{i}")).collect();
        let mut events_of = |c: &mut Connection, board: &str, native: bool| {
            let mut fill = vec!["LB.ADD", board];
            fill.extend(group.iter().flat_map(|m| ["9", m.as_str()]));
            let mut rem_all = vec!["LB.REM", board, "a", "b", "c"];
            rem_all.extend(group.iter().map(String::as_str));
            let writes: [&[&str]; 8] = [
                &["LB.ADD", board, "1", "a", "2", "b"],
                &["LB.ADD", board, "1", "a"],
                &["LB.ADD", board, "3", "a"],
                &["LB.INCR", board, "2", "b"],
                &["LB.INCR", board, "0.5", "c"],
                &fill,
                &["LB.ADD", board, "4", "g0"],
                &rem_all,
            ];
            for write in writes {
                let argv = if native {
                    write.to_vec()
                } else {
                    twin_fcall(write)
                };
                let _: Value = query(c, &argv);
            }
            let done = format!("done:{board}");
            let _: () = query(c, &["SET", &done, "1"]);
            let mut events = Vec::new();
            loop {
                let message = pubsub.get_message().expect("a keyspace event");
                let key: String = message.get_payload().unwrap();
                if key == done {
                    return events;
                }
                let event = message.get_channel_name().rsplit(':').next().unwrap();
                let key = key.replace(&format!("{{{board}}}"), "{B}");
                events.push(format!("{event} {}", if key == board { "B" } else { &key }));
            }
        };
        let native = events_of(&mut c, "nat", true);
        let twin = events_of(&mut c, "twn", false);
        assert_eq!(native, twin);
        for expected in [
            "zadd B",
            "zincr B",
            "hset {B}:lb-stamps",
            "hdel {B}:lb-stamps",
        ] {
            assert!(
                native.iter().any(|e| e == expected),
                "{expected}: {native:?}"
            );
        }
        assert!(
            native.contains(&"del {B}:lb-order".to_string()),
            "{native:?}"
        );
    });
}

/// `FCALL` of the twin's function for a keyed LB command.
fn twin_fcall<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let function = match args[0] {
        "LB.ADD" => "lb_add",
        "LB.INCR" => "lb_incr",
        "LB.REM" => "lb_rem",
        other => panic!("{other}"),
    };
    let mut fcall = vec!["FCALL", function, "1"];
    fcall.extend_from_slice(&args[1..]);
    fcall
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    for_each_server(|_, mut c| {
        let _: i64 = query(&mut c, &["LB.ADD", "b", "1", "x", "inf", "top"]);
        let _: () = query(&mut c, &["SET", "text", "v"]);
        let _: () = query(&mut c, &["SET", "{typed}:lb-order", "v"]);
        let _: i64 = query(&mut c, &["ZADD", "typed", "1", "x"]);
        // A plain board whose name cannot carry tie-break keys: writes are refused.
        let _: i64 = query(&mut c, &["ZADD", "a{b", "1", "x"]);
        let refusals: &Refusals = &[
            (
                &arity("lb.add"),
                &[&["LB.ADD", "b", "1"], &["LB.ADD", "b", "1", "x", "2"]],
            ),
            (
                "ERR score must be a number",
                &[
                    &["LB.ADD", "b", "abc", "x"],
                    &["LB.ADD", "b", "nan", "x"],
                    &["LB.ADD", "b", "1", "x", "1e", "y"],
                    &["LB.ADD", "b", "", "x"],
                ],
            ),
            (
                WRONGTYPE,
                &[
                    &["LB.ADD", "text", "1", "x"],
                    &["LB.ADD", "typed", "1", "x"],
                ],
            ),
            (
                &format!("ERR {}", lb::BAD_BOARD),
                &[&["LB.ADD", "a{b", "1", "x"]],
            ),
            (
                "ERR increment must be a number",
                &[&["LB.INCR", "b", "x", "m"], &["LB.INCR", "b", "NaN", "m"]],
            ),
            (
                &format!("ERR {}", lb::NAN_SCORE),
                &[&["LB.INCR", "b", "-inf", "top"]],
            ),
            (&arity("lb.incr"), &[&["LB.INCR", "b", "1"]]),
            (
                "ERR syntax error",
                &[
                    &["LB.INCR", "b", "1", "m", "WITHRANK", "RANKING"],
                    &["LB.INCR", "b", "1", "m", "WITHRANK", "RANKING", "BOGUS"],
                    &["LB.INCR", "b", "1", "m", "WITHRANKS"],
                ],
            ),
            (&arity("lb.rem"), &[&["LB.REM", "b"]]),
            (WRONGTYPE, &[&["LB.REM", "text", "x"]]),
            (
                &format!("ERR {}", lb::BAD_BOARD),
                &[&["LB.REM", "a{b", "x"], &["LB.INCR", "a{b", "1", "x"]],
            ),
            (
                &positive("count"),
                &[
                    &["LB.TOP", "b", "0"],
                    &["LB.TOP", "b", "-1"],
                    &["LB.TOP", "b", "1.5"],
                ],
            ),
            (&non_negative("n"), &[&["LB.TOP", "b", "3", "OFFSET", "-1"]]),
            (
                "ERR syntax error",
                &[
                    &["LB.TOP", "b", "3", "OFFSET"],
                    &["LB.TOP", "b", "3", "RANKING", "BEST"],
                    &["LB.TOP", "b", "3", "SIDEWAYS"],
                ],
            ),
            (
                WRONGTYPE,
                &[&["LB.TOP", "text", "3"], &["LB.TOP", "typed", "3"]],
            ),
            (&positive("page"), &[&["LB.PAGE", "b", "0", "10"]]),
            (&positive("page_size"), &[&["LB.PAGE", "b", "1", "0"]]),
            (&arity("lb.page"), &[&["LB.PAGE", "b", "1"]]),
            (
                &positive("count"),
                &[
                    &["LB.AROUND", "b", "x", "0"],
                    &["LB.AROUND", "b", "x", "inf"],
                ],
            ),
            (&arity("lb.rank"), &[&["LB.RANK", "b"]]),
            (
                WRONGTYPE,
                &[&["LB.RANK", "text", "x"], &["LB.PERCENTILE", "text", "x"]],
            ),
            (
                "ERR syntax error",
                &[&["LB.PERCENTILE", "b", "x", "RANKING", "DENSE"]],
            ),
        ];
        let before = snapshot(&mut c);
        assert_refusals(&mut c, refusals);
        assert_same_state(&before, &snapshot(&mut c), 0);
        // Absent members and boards: nil, or nothing.
        assert_eq!(
            query::<Option<Vec<i64>>>(&mut c, &["LB.RANK", "b", "nobody"]),
            None
        );
        assert_eq!(
            query::<Option<Vec<i64>>>(&mut c, &["LB.AROUND", "b", "nobody", "3"]),
            None
        );
        assert_eq!(
            query::<Option<String>>(&mut c, &["LB.PERCENTILE", "nope", "x"]),
            None
        );
        assert!(entries(&mut c, &args(&["LB.TOP", "nope", "3"])).is_empty());
        let page: (i64, Vec<Value>) = query(&mut c, &["LB.PAGE", "nope", "1", "3"]);
        assert_eq!(page, (0, vec![]));
        assert_eq!(query::<i64>(&mut c, &["LB.REM", "nope", "x"]), 0);
        assert_eq!(
            query::<i64>(&mut c, &["EXISTS", "nope", "{nope}:lb-order"]),
            0
        );
        // Huge counts and offsets are fine.
        let max = i64::MAX.to_string();
        assert_eq!(
            entries(&mut c, &args(&["LB.TOP", "b", &max, "OFFSET", &max])).len(),
            0
        );
        assert_eq!(
            entries(&mut c, &args(&["LB.AROUND", "b", "x", &max])).len(),
            2
        );
        let page: (i64, Vec<Value>) = query(&mut c, &["LB.PAGE", "b", &max, &max]);
        assert_eq!(page, (1, vec![]));
    });
}

/// LB.ADD and LB.INCR take exactly the numbers ZADD and ZINCRBY take (a score ZADD refused after
/// the family had started writing would leave a half-done write), and store the same double.
#[test]
fn scores_are_read_as_zadd_reads_them() {
    let inputs = FLOAT_EDGE_CASES;
    for_each_server(|_, mut c| {
        for (i, input) in inputs.iter().enumerate() {
            let member = format!("m{i}");
            let mut zadd = redis::cmd("ZADD");
            zadd.arg("plain").arg(input).arg(&member);
            let mut add = redis::cmd("LB.ADD");
            add.arg("lb:{x}").arg(input).arg(&member);
            let mut zincr = redis::cmd("ZINCRBY");
            zincr.arg("plain2").arg(input).arg(&member);
            let mut incr = redis::cmd("LB.INCR");
            incr.arg("lb:{y}").arg(input).arg(&member);
            let replies = pipeline(&mut c, &[zadd, add, zincr, incr]);
            let ok = |v: &Value| !matches!(v, Value::ServerError(_));
            // The module may refuse what ZADD takes (never the reverse): hex is such a case.
            if ok(&replies[1]) {
                assert!(ok(&replies[0]), "{input:?}: LB.ADD took what ZADD refused");
            }
            if ok(&replies[3]) {
                assert!(
                    ok(&replies[2]),
                    "{input:?}: LB.INCR took what ZINCRBY refused"
                );
            }
            let refused_by_both = !ok(&replies[0]) && !ok(&replies[1]);
            assert!(
                refused_by_both || ok(&replies[1]) || *input == "0x10",
                "{input:?}: ZADD took it, LB.ADD did not: {:?}",
                replies[1]
            );
            if ok(&replies[1]) {
                let a: Option<String> = query(&mut c, &["ZSCORE", "plain", &member]);
                let b: Option<String> = query(&mut c, &["ZSCORE", "lb:{x}", &member]);
                assert_eq!(a, b, "{input:?}");
            }
        }
        let n: i64 = query(&mut c, &["ZCARD", "lb:{x}"]);
        assert!(n >= 15, "{n}");
        // Nothing half-written: the tie-break keys hold exactly the board's members.
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "lb:{x}:lb-order"]), n);
        check_stamps(&mut c, "lb:{x}");
    });
}

// ---------------------------------------------------------------------------------------------
// The Lua twin

/// Reads depend on no clock: on a copy of a large board with big tie groups (and on a plain
/// board), the twin's replies are the module's, reply for reply.
#[test]
fn lua_twin_reads_a_large_board_as_the_module_does() {
    for_each_module_and_twin(|flavor, mut a, mut b| {
        let mut rng = StdRng::seed_from_u64(44);
        let mut model = Model::default();
        build_board(&mut a, "big:{1}", 5_000, &mut rng, &mut model);
        let mut pipe = redis::pipe();
        for i in 0..3_000 {
            let score = rng.gen_range(0..40);
            pipe.cmd("ZADD")
                .arg("plainbig")
                .arg(score)
                .arg(format!("p{i}"))
                .ignore();
        }
        let () = pipe.query(&mut a).unwrap();
        zadd_board(&mut a, "mix:{2}", 3_000, 30, &mut rng);
        let mut mix = legacy_model(&mut a, "mix:{2}");
        write_legacy_board(&mut a, "mix:{2}", 600, &mut rng, &mut mix);
        let keys = [
            "big:{1}",
            "big:{1}:lb-order",
            "big:{1}:lb-stamps",
            "big:{1}:lb-scores",
            "plainbig",
            "mix:{2}",
            "mix:{2}:lb-order",
            "mix:{2}:lb-stamps",
            "mix:{2}:lb-names",
        ];
        for key in keys {
            assert_eq!(copy_key(&mut a, &mut b, key), None, "{key}");
        }
        let members: Vec<String> = model.members.keys().cloned().collect();
        let mixed: Vec<String> = mix.members.keys().cloned().collect();
        for step in 0..400 {
            let (board, member) = match step % 4 {
                0 => ("plainbig", format!("p{}", rng.gen_range(0..3_000))),
                1 => ("mix:{2}", mixed.choose(&mut rng).unwrap().clone()),
                _ => ("big:{1}", members.choose(&mut rng).unwrap().clone()),
            };
            let count = rng.gen_range(1..60).to_string();
            let order = ORDERS[rng.gen_range(0..2)];
            let ranking = RANKINGS[rng.gen_range(0..4)];
            let offset = rng.gen_range(0..5_100).to_string();
            let page = rng.gen_range(1..120).to_string();
            let call = match step % 5 {
                0 => args(&["LB.RANK", board, &member, order, "RANKING", ranking]),
                1 => args(&[
                    "LB.AROUND",
                    board,
                    &member,
                    &count,
                    order,
                    "RANKING",
                    ranking,
                ]),
                2 => args(&[
                    "LB.TOP", board, &count, "OFFSET", &offset, order, "RANKING", ranking,
                ]),
                3 => args(&["LB.PAGE", board, &page, &count, order, "RANKING", ranking]),
                _ => args(&["LB.PERCENTILE", board, &member, order]),
            };
            let mut native = redis::cmd(&call[0]);
            native.arg(&call[1..]);
            let reply_a = pipeline(&mut a, &[native]).remove(0);
            let reply_b = pipeline(
                &mut b,
                &[twin_cmd(
                    TwinPath::Fcall,
                    &BTreeMap::new(),
                    &call,
                    &one_key(&call),
                )],
            )
            .remove(0);
            assert_eq!(
                shown(&reply_a),
                shown(&reply_b),
                "{call:?} on {}",
                flavor.name()
            );
            assert!(
                !matches!(reply_a, Value::ServerError(_)),
                "{call:?}: {reply_a:?}"
            );
        }
    });
}

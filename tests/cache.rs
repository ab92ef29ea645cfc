//! The cache family's own semantics on Redis 7.0 and Valkey 8.0: invalidation under concurrent
//! writers, single-flight leases, XFetch's statistics (module and twin), tag indexes that never
//! leak, pub/sub, the key specs that find tags, and bad input.
//! What every command shares (COMMAND DOCS, README, Cluster, ACL, effects replication,
//! AOF, the twin differential) is in tests/conformance.rs.

mod common;

use common::*;
use patterns_core::cache::{early, early_probability, Times, DRAW_MAX};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A CACHE.GET reply: (state, value, lease token or retry_ms as text).
fn parts(v: &Value) -> (String, Option<String>, Option<String>) {
    let Value::Array(items) = v else {
        panic!("not a CACHE.GET reply: {v:?}")
    };
    let extra = match &items[2] {
        Value::Int(n) => Some(n.to_string()),
        other => text(other),
    };
    (text(&items[0]).unwrap(), text(&items[1]), extra)
}

fn get(c: &mut Connection, args: &[&str]) -> (String, Option<String>, Option<String>) {
    let mut cmd = redis::cmd("CACHE.GET");
    cmd.arg(args);
    parts(&cmd.query::<Value>(c).unwrap())
}

fn set(c: &mut Connection, args: &[&str]) {
    let ok: String = redis::cmd("CACHE.SET").arg(args).query(c).unwrap();
    assert_eq!(ok, "OK");
}

// ---------------------------------------------------------------------------------------------
// Invalidation

/// Writers keep rewriting their keys under one tag while an invalidator runs: no key written
/// before an invalidation began survives it, and every live key is listed under its tag.
#[test]
fn invalidation_under_concurrent_writers_leaves_no_key_behind() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let tag = "tag:{inv}";
        let writers = 4;
        let keys_per_writer = 5;
        // done[w]: the last sequence number writer w's CACHE.SET has returned for.
        let done: Arc<Vec<AtomicI64>> = Arc::new((0..writers).map(|_| AtomicI64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let (done, stop) = (done.clone(), stop.clone());
                let mut c = server.conn();
                std::thread::spawn(move || {
                    let mut seq = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let key = format!("k:{{inv}}:{w}:{}", seq % keys_per_writer);
                        let value = seq.to_string();
                        set(&mut c, &[&key, &value, "60000", "TAGS", tag]);
                        done[w].store(seq, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut c = server.conn();
        let (mut rounds, mut deleted_total) = (0, 0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) {
            let before: Vec<i64> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
            deleted_total += query::<i64>(&mut c, &["CACHE.INVALIDATE", tag]);
            for (w, &written) in before.iter().enumerate() {
                for k in 0..keys_per_writer {
                    let key = format!("k:{{inv}}:{w}:{k}");
                    // One atomic look: the key's value, and whether its tag lists it.
                    let (value, score): (Option<i64>, Option<f64>) = redis::pipe()
                        .atomic()
                        .cmd("HGET")
                        .arg(&key)
                        .arg("value")
                        .cmd("ZSCORE")
                        .arg(tag)
                        .arg(&key)
                        .query(&mut c)
                        .unwrap();
                    if let Some(v) = value {
                        assert!(
                            v > written,
                            "{key} = {v} survived an invalidation begun after write {written}"
                        );
                        assert!(
                            score.is_some(),
                            "{key} is live but not listed under its tag"
                        );
                    }
                }
            }
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("writer");
        }
        assert!(
            rounds > 20 && deleted_total > 20,
            "{rounds} rounds, {deleted_total} deleted"
        );
        // At rest: every live key is listed, and one invalidation empties everything.
        let live: Vec<String> = query(&mut c, &["KEYS", "k:{inv}:*"]);
        let mut listed: Vec<String> = query(&mut c, &["ZRANGE", tag, "0", "-1"]);
        listed.retain(|m| m != tag); // the last invalidation's marker
        assert_eq!(
            live.iter().collect::<BTreeSet<_>>(),
            listed.iter().collect::<BTreeSet<_>>()
        );
        assert_eq!(
            query::<i64>(&mut c, &["CACHE.INVALIDATE", tag]),
            live.len() as i64
        );
        // Only the tag's marker is left, expiring once no lease from before it can fill.
        assert_eq!(query::<i64>(&mut c, &["DBSIZE"]), 1);
        let pttl: i64 = query(&mut c, &["PTTL", tag]);
        assert!((59_000..=60_000).contains(&pttl), "{pttl}");
    }
}

#[test]
fn invalidation_publishes_each_tag_and_spares_other_tags() {
    for_each_server(|server, mut c| {
        let mut sub = server.conn();
        let mut sub = sub.as_pubsub();
        sub.subscribe("patterns:invalidate").unwrap();
        set(
            &mut c,
            &["p:{x}:1", "a", "60000", "TAGS", "t:{x}:a", "t:{x}:b"],
        );
        set(&mut c, &["p:{x}:2", "b", "60000", "TAGS", "t:{x}:b"]);
        set(&mut c, &["p:{x}:3", "c", "60000", "TAGS", "t:{x}:c"]);
        assert_eq!(
            query::<i64>(&mut c, &["CACHE.TAG", "p:{x}:3", "t:{x}:c", "t:{x}:d"]),
            1
        );
        assert_eq!(
            query::<i64>(
                &mut c,
                &["CACHE.INVALIDATE", "t:{x}:a", "t:{x}:b", "t:{x}:none"]
            ),
            2
        );
        for tag in ["t:{x}:a", "t:{x}:b", "t:{x}:none"] {
            let msg = sub.get_message().unwrap();
            assert_eq!(msg.get_channel_name(), "patterns:invalidate");
            assert_eq!(msg.get_payload::<String>().unwrap(), tag);
        }
        let left: Vec<String> = query(&mut c, &["KEYS", "*"]);
        let left: BTreeSet<String> = left.into_iter().collect();
        // The invalidated tags hold only their markers now.
        let want: BTreeSet<String> = [
            "p:{x}:3",
            "t:{x}:a",
            "t:{x}:b",
            "t:{x}:c",
            "t:{x}:d",
            "t:{x}:none",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(left, want);
        for tag in ["t:{x}:a", "t:{x}:b", "t:{x}:none"] {
            let members: Vec<String> = query(&mut c, &["ZRANGE", tag, "0", "-1"]);
            assert_eq!(members, vec![tag.to_string()]);
        }
        // A key deleted behind the module's back: nothing to delete, the tag is emptied anyway.
        let _: i64 = query(&mut c, &["DEL", "p:{x}:3"]);
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t:{x}:c"]), 0);
        let members: Vec<String> = query(&mut c, &["ZRANGE", "t:{x}:c", "0", "-1"]);
        assert_eq!(members, vec!["t:{x}:c".to_string()]);
        // Invalidating again replaces the marker; the marker is never counted as a key.
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t:{x}:c"]), 0);
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "t:{x}:c"]), 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Leases

#[test]
fn concurrent_misses_give_exactly_one_lease() {
    for flavor in flavors() {
        let server = Server::start(flavor);
        for round in 0..5 {
            let key = format!("miss:{round}");
            let n = 16;
            let barrier = Arc::new(Barrier::new(n));
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let (barrier, key) = (barrier.clone(), key.clone());
                    let mut c = server.conn();
                    std::thread::spawn(move || {
                        barrier.wait();
                        get(&mut c, &[&key])
                    })
                })
                .collect();
            let replies: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
            let misses: Vec<_> = replies.iter().filter(|r| r.0 == "MISS").collect();
            assert_eq!(misses.len(), 1, "{replies:?}");
            assert_eq!(misses[0].2.as_ref().map(String::len), Some(22));
            for r in replies.iter().filter(|r| r.0 != "MISS") {
                assert_eq!(r.0, "WAIT", "{r:?}");
                let retry: i64 = r.2.as_ref().unwrap().parse().unwrap();
                assert!((1..=50).contains(&retry), "{retry}");
            }
            let lease = misses[0].2.clone().unwrap();
            let mut c = server.conn();
            let filled: Option<String> = redis::cmd("CACHE.FILL")
                .arg(&key)
                .arg(&lease)
                .arg("computed")
                .arg(60_000)
                .query(&mut c)
                .unwrap();
            assert_eq!(filled.as_deref(), Some("OK"));
            assert_eq!(
                get(&mut c, &[&key]),
                ("HIT".into(), Some("computed".into()), None)
            );
        }
    }
}

fn fill(c: &mut Connection, key: &str, lease: &str, value: &str, rest: &[&str]) -> Option<String> {
    redis::cmd("CACHE.FILL")
        .arg(key)
        .arg(lease)
        .arg(value)
        .arg(rest)
        .query(c)
        .unwrap()
}

#[test]
fn voided_and_expired_leases_cannot_fill() {
    for_each_server(|_, mut c| {
        // A write voids the lease: the stale fill is rejected, the fresh value stays.
        let (state, _, lease) = get(&mut c, &["v:1"]);
        assert_eq!(state, "MISS");
        set(&mut c, &["v:1", "fresh", "60000"]);
        assert_eq!(
            fill(&mut c, "v:1", &lease.unwrap(), "stale", &["60000"]),
            None
        );
        assert_eq!(get(&mut c, &["v:1"]).1.as_deref(), Some("fresh"));
        // An invalidation voids a refresh lease.
        set(
            &mut c,
            &["v:{2}", "old", "30", "GRACE", "60000", "TAGS", "t:{2}"],
        );
        sleep(Duration::from_millis(40));
        let (state, value, lease) = get(&mut c, &["v:{2}"]);
        assert_eq!((state.as_str(), value.as_deref()), ("REFRESH", Some("old")));
        // Meanwhile others read the stale value.
        assert_eq!(
            get(&mut c, &["v:{2}"]),
            ("STALE".into(), Some("old".into()), None)
        );
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t:{2}"]), 1);
        assert_eq!(
            fill(&mut c, "v:{2}", &lease.unwrap(), "new", &["60000"]),
            None
        );
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "v:{2}"]), 0);
        // An invalidation voids the leases granted before it on keys a fill would tag with it,
        // though they were not listed under the tag yet.
        let (_, _, lease) = get(&mut c, &["v:{5}"]);
        let lease = lease.unwrap();
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t:{5}"]), 0);
        assert_eq!(
            fill(
                &mut c,
                "v:{5}",
                &lease,
                "old",
                &["60000", "TAGS", "t:{5}:other", "t:{5}"]
            ),
            None
        );
        // The refused fill gave its lease up: it cannot fill any more, even under other tags,
        // and the next reader gets a new lease instead of waiting on it.
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "v:{5}"]), 0);
        assert_eq!(
            fill(
                &mut c,
                "v:{5}",
                &lease,
                "ok",
                &["60000", "TAGS", "t:{5}:other"]
            ),
            None
        );
        let (state, _, renewed) = get(&mut c, &["v:{5}"]);
        assert_eq!(state, "MISS");
        assert_eq!(
            fill(
                &mut c,
                "v:{5}",
                &renewed.unwrap(),
                "ok",
                &["60000", "TAGS", "t:{5}:other"]
            )
            .as_deref(),
            Some("OK")
        );
        // A refused refresh lease goes and leaves the value, which expires as before.
        set(&mut c, &["v:{6}", "old", "30", "GRACE", "60000"]);
        sleep(Duration::from_millis(40));
        let (state, _, lease) = get(&mut c, &["v:{6}"]);
        assert_eq!(state, "REFRESH");
        let expiry: i64 = query(&mut c, &["HGET", "v:{6}", "stale_until"]);
        assert_eq!(query::<i64>(&mut c, &["CACHE.INVALIDATE", "t:{6}"]), 0);
        assert_eq!(
            fill(
                &mut c,
                "v:{6}",
                &lease.unwrap(),
                "new",
                &["60000", "TAGS", "t:{6}"]
            ),
            None
        );
        assert_eq!(query::<i64>(&mut c, &["HEXISTS", "v:{6}", "lease"]), 0);
        assert_eq!(query::<i64>(&mut c, &["PEXPIRETIME", "v:{6}"]), expiry);
        assert_eq!(get(&mut c, &["v:{6}"]).0, "REFRESH");
        // A lease granted after the invalidation fills under that tag.
        let (_, _, lease) = get(&mut c, &["v:{5}:b"]);
        assert_eq!(
            fill(
                &mut c,
                "v:{5}:b",
                &lease.unwrap(),
                "new",
                &["60000", "TAGS", "t:{5}"]
            )
            .as_deref(),
            Some("OK")
        );
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "t:{5}"]), 2);
        // A lease expires on its own: the next reader gets a new one, the old cannot fill.
        let (_, _, first) = get(&mut c, &["v:3", "LEASE", "30"]);
        assert_eq!(get(&mut c, &["v:3"]).0, "WAIT");
        sleep(Duration::from_millis(40));
        let (state, _, second) = get(&mut c, &["v:3"]);
        assert_eq!(state, "MISS");
        assert_ne!(first, second);
        assert_eq!(
            fill(&mut c, "v:3", &first.unwrap(), "late", &["60000"]),
            None
        );
        assert_eq!(
            fill(
                &mut c,
                "v:3",
                &second.clone().unwrap(),
                "ok",
                &["60000", "TAGS", "t3"]
            )
            .as_deref(),
            Some("OK")
        );
        // The fill consumed the lease.
        assert_eq!(
            fill(&mut c, "v:3", &second.unwrap(), "again", &["60000"]),
            None
        );
        assert_eq!(get(&mut c, &["v:3"]).1.as_deref(), Some("ok"));
        assert_eq!(query::<i64>(&mut c, &["ZCARD", "t3"]), 1);
        // Past the grace the value is gone; the lease holder's key lives as long as its lease.
        set(&mut c, &["v:4", "x", "20", "GRACE", "20"]);
        sleep(Duration::from_millis(50));
        assert_eq!(get(&mut c, &["v:4", "LEASE", "5000"]).0, "MISS");
        let pttl: i64 = query(&mut c, &["PTTL", "v:4"]);
        assert!((4000..=5000).contains(&pttl), "{pttl}");
    });
}

/// Issue 11, defect 2: "write the database, invalidate, read again at once". A lease granted
/// just after an invalidation, in the same millisecond (one pipeline), fills under that tag;
/// one granted just before it is refused and given up, so the next reader does not WAIT.
#[test]
fn leases_are_ordered_against_invalidations_within_a_millisecond() {
    const TRIALS: usize = 100;
    for_each_server(|server, mut c| {
        let flavor = server.flavor();
        let mut same_ms = 0;
        for trial in 0..TRIALS {
            let (k, t) = (format!("o:{{{trial}}}"), format!("o:{{{trial}}}:t"));
            set(&mut c, &[&k, "v", "60000", "TAGS", &t]);
            // Invalidate, then read: the lease comes after the invalidation.
            let replies = pipeline(
                &mut c,
                &[
                    redis::cmd("TIME"),
                    redis::cmd("CACHE.INVALIDATE").arg(&t).clone(),
                    redis::cmd("CACHE.GET").arg(&k).clone(),
                    redis::cmd("TIME"),
                ],
            );
            same_ms += usize::from(ms_of(&replies[0]) == ms_of(&replies[3]));
            let (state, _, lease) = parts(&replies[2]);
            assert_eq!(state, "MISS", "{} trial {trial}", flavor.name());
            assert_eq!(
                fill(&mut c, &k, &lease.unwrap(), "new", &["60000", "TAGS", &t]).as_deref(),
                Some("OK"),
                "{} trial {trial}: a lease granted after the invalidation must fill",
                flavor.name()
            );
            assert_eq!(get(&mut c, &[&k]), ("HIT".into(), Some("new".into()), None));
            // Read, then invalidate: the fill is refused and its lease given up.
            let k2 = format!("{k}:2");
            let replies = pipeline(
                &mut c,
                &[
                    redis::cmd("CACHE.GET").arg(&k2).clone(),
                    redis::cmd("CACHE.INVALIDATE").arg(&t).clone(),
                ],
            );
            let (state, _, lease) = parts(&replies[0]);
            assert_eq!(state, "MISS");
            assert_eq!(
                fill(&mut c, &k2, &lease.unwrap(), "old", &["60000", "TAGS", &t]),
                None,
                "{} trial {trial}: a lease granted before the invalidation must not fill",
                flavor.name()
            );
            assert_eq!(
                get(&mut c, &[&k2]).0,
                "MISS",
                "{} trial {trial}",
                flavor.name()
            );
        }
        // The point is the same millisecond: most trials must have had it.
        assert!(
            same_ms * 2 >= TRIALS,
            "{}: only {same_ms} trials in one ms",
            flavor.name()
        );
    });
}

/// HIT, STALE and WAIT replies, and refused fills, change nothing: no write, no replication,
/// no WATCH invalidation.
#[test]
fn reads_without_a_lease_write_and_replicate_nothing() {
    for flavor in flavors() {
        // The primary's periodic PING to its replica also moves the offset: keep it out.
        let pair = Pair::start_with(flavor, &["--repl-ping-replica-period", "3600"]);
        let mut c = pair.primary.conn();
        set(&mut c, &["r:hit", "v", "60000", "DELTA", "10"]);
        set(&mut c, &["r:stale", "v", "20", "GRACE", "60000"]);
        sleep(Duration::from_millis(30));
        assert_eq!(get(&mut c, &["r:stale"]).0, "REFRESH");
        assert_eq!(get(&mut c, &["r:wait"]).0, "MISS");
        pair.sync();
        let before = snapshot(&mut c);
        let expiries = |c: &mut Connection| -> Vec<i64> {
            ["r:hit", "r:stale", "r:wait"]
                .iter()
                .map(|k| query(c, &["PEXPIRETIME", k]))
                .collect()
        };
        let expiries_before = expiries(&mut c);
        let offset = pair.primary.info_value("replication", "master_repl_offset");
        let _: () = query(&mut c, &["WATCH", "r:hit", "r:stale", "r:wait"]);
        for _ in 0..50 {
            assert_eq!(get(&mut c, &["r:hit"]).0, "HIT");
            assert_eq!(get(&mut c, &["r:stale"]).0, "STALE");
            assert_eq!(get(&mut c, &["r:wait"]).0, "WAIT");
            assert_eq!(
                fill(&mut c, "r:wait", "not-the-lease", "v", &["1000"]),
                None
            );
        }
        let exec: Option<Vec<String>> = redis::pipe().atomic().cmd("PING").query(&mut c).unwrap();
        assert_eq!(exec, Some(vec!["PONG".to_string()]), "WATCH saw no change");
        assert_same_state(&before, &snapshot(&mut c), 100);
        assert_eq!(expiries_before, expiries(&mut c), "no TTL touched");
        assert_eq!(
            offset,
            pair.primary.info_value("replication", "master_repl_offset"),
            "reads replicate nothing"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// XFetch

/// Early refreshes happen with XFetch's probability `exp(-(fresh_until - now) / (delta*beta))`:
/// each trial sets a fresh key and reads it at a known `now`; the count of REFRESH replies must
/// lie within 4 standard deviations of the sum of the trials' probabilities.
#[test]
fn xfetch_refreshes_early_with_the_papers_probability() {
    for_each_server(|_, mut c| {
        for (ttl, delta, beta) in [
            (100, 100, "1"),
            (100, 50, "2"),
            (300, 100, "1"),
            (60, 200, "0.5"),
            (50, 1000, "0"),
        ] {
            let (mut expected, mut variance, mut refreshed, mut trials) = (0.0, 0.0, 0, 0);
            for batch in 0..30 {
                let mut cmds = Vec::new();
                for i in 0..100 {
                    let key = format!("x:{ttl}:{delta}:{beta}:{batch}:{i}");
                    cmds.push(redis::cmd("TIME"));
                    let mut s = redis::cmd("CACHE.SET");
                    s.arg(&key).arg("v").arg(ttl).arg("DELTA").arg(delta);
                    cmds.push(s);
                    let mut g = redis::cmd("CACHE.GET");
                    g.arg(&key).arg("BETA").arg(beta);
                    cmds.push(g);
                    cmds.push(redis::cmd("TIME"));
                    let mut h = redis::cmd("HGET");
                    h.arg(&key).arg("fresh_until");
                    cmds.push(h);
                }
                let replies = pipeline(&mut c, &cmds);
                for r in replies.chunks(5) {
                    let (t0, t1) = (ms_of(&r[0]), ms_of(&r[3]));
                    if t0 != t1 {
                        continue; // `now` unknown
                    }
                    let fresh_until: i64 = text(&r[4]).unwrap().parse().unwrap();
                    let times = Times {
                        fresh_until,
                        stale_until: fresh_until,
                        delta_ms: delta,
                    };
                    let p = early_probability(t0, times, beta.parse().unwrap());
                    expected += p;
                    variance += p * (1.0 - p);
                    trials += 1;
                    if parts(&r[2]).0 == "REFRESH" {
                        refreshed += 1;
                    }
                }
            }
            assert!(trials > 1000, "{trials}");
            let sd = variance.sqrt();
            assert!(
                (refreshed as f64 - expected).abs() <= 4.0 * sd + 1e-9,
                "ttl {ttl} delta {delta} beta {beta}: {refreshed} refreshes in {trials}, expected {expected:.1} ± {sd:.1}"
            );
            if beta == "0" {
                assert_eq!(refreshed, 0);
            } else {
                assert!(refreshed > 0);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Tag indexes never leak

/// Keys cycle through short TTLs under one tag: the tag's index is pruned as it is written, so
/// its size and MEMORY USAGE stay bounded; once the writes stop, it expires by itself.
#[test]
fn tag_index_memory_stays_bounded_under_churn() {
    for_each_server(|_, mut c| {
        let tag = "tag:{soak}";
        let start = Instant::now();
        let (mut written, mut peak_card, mut peak_bytes) = (0usize, 0i64, 0i64);
        let mut samples = Vec::new();
        // At least 3 s and 20,000 writes (a loaded machine writes slower), at most 30 s.
        while (start.elapsed() < Duration::from_secs(3) || written < 20_000)
            && start.elapsed() < Duration::from_secs(30)
        {
            let mut pipe = redis::pipe();
            for _ in 0..200 {
                written += 1;
                pipe.cmd("CACHE.SET")
                    .arg(format!("soak:{{soak}}:{written}"))
                    .arg("v".repeat(100))
                    .arg(20)
                    .arg("GRACE")
                    .arg(10)
                    .arg("TAGS")
                    .arg(tag)
                    .ignore();
            }
            let _: () = pipe.query(&mut c).unwrap();
            let card: i64 = query(&mut c, &["ZCARD", tag]);
            // Nil when every listed entry expired meanwhile (a loaded machine is that slow).
            let bytes: i64 = query::<Option<i64>>(&mut c, &["MEMORY", "USAGE", tag]).unwrap_or(0);
            peak_card = peak_card.max(card);
            peak_bytes = peak_bytes.max(bytes);
            samples.push(bytes);
        }
        assert!(written >= 20_000, "{written} writes");
        // Only entries alive within the last 30 ms are listed: a few thousand at most, while
        // an index that never pruned would list every one of the writes.
        assert!(peak_card < written as i64 / 5, "{peak_card} of {written}");
        // Memory follows the listed members (no hidden growth): at its peak a member with a key
        // this long costs about 130 bytes, the hash table it shrinks from adds a little. (A fixed
        // byte bound failed on a faster machine, which writes more per 30 ms and so lists more
        // live entries at once.)
        assert!(
            peak_bytes <= 256 * peak_card + 131_072,
            "{peak_bytes} bytes for {peak_card} members"
        );
        // No growth: the second half's peak is not above twice the first half's.
        let (first, second) = samples.split_at(samples.len() / 2);
        let (p1, p2) = (first.iter().max().unwrap(), second.iter().max().unwrap());
        assert!(p2 <= &(2 * p1), "{p1} then {p2}");
        // No cron: the index and its keys expire by themselves.
        assert!(wait_until(Duration::from_secs(3), || {
            query::<i64>(&mut c, &["EXISTS", tag]) == 0
        }));
        assert!(wait_until(Duration::from_secs(5), || {
            query::<i64>(&mut c, &["DBSIZE"]) == 0
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    for_each_server(|_, mut c| {
        set(&mut c, &["ok", "v", "60000", "TAGS", "tag"]);
        let _: () = query(&mut c, &["SET", "text", "x"]);
        let _: () = query(&mut c, &["HSET", "plainhash", "a", "1"]);
        let _: () = query(
            &mut c,
            &["HSET", "halfentry", "value", "v", "fresh_until", "1"],
        );
        let (_, _, lease) = get(&mut c, &["leased"]);
        let lease = lease.unwrap();
        let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
        let too_long = "ERR ttl_ms + GRACE and DELTA must be at most 2^52";
        let lease_too_long = "ERR lease_ms must be at most 60000";
        let not_cache = "ERR key does not hold a cache entry";
        let arity = |name: &str| format!("ERR wrong number of arguments for '{name}' command");
        let cases: Vec<(Vec<&str>, String)> = vec![
            (vec!["CACHE.SET", "k", "v"], arity("cache.set")),
            (
                vec!["CACHE.SET", "k", "v", "0"],
                "ERR ttl_ms must be a positive integer".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "-1"],
                "ERR ttl_ms must be a positive integer".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "1.5"],
                "ERR ttl_ms must be a positive integer".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "DELTA", "-1"],
                "ERR delta_ms must be a non-negative integer".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "GRACE", "x"],
                "ERR grace_ms must be a non-negative integer".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "GRACE"],
                "ERR syntax error".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "TAGS"],
                "ERR syntax error".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "BOGUS"],
                "ERR syntax error".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "4503599627370496", "GRACE", "1"],
                too_long.into(),
            ),
            (
                vec![
                    "CACHE.SET",
                    "k",
                    "v",
                    "9223372036854775807",
                    "GRACE",
                    "9223372036854775807",
                ],
                too_long.into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "DELTA", "4503599627370497"],
                too_long.into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "TAGS", "k"],
                "ERR a key cannot be its own tag".into(),
            ),
            (
                vec!["CACHE.SET", "k", "v", "10", "TAGS", "tag", "text"],
                wrongtype.into(),
            ),
            (vec!["CACHE.SET", "text", "v", "10"], wrongtype.into()),
            (vec!["CACHE.SET", "plainhash", "v", "10"], not_cache.into()),
            (vec!["CACHE.SET", "halfentry", "v", "10"], not_cache.into()),
            (
                vec!["CACHE.SET", "k", "v", "10", "TAGS", "ok"],
                wrongtype.into(),
            ),
            (vec!["CACHE.GET"], arity("cache.get")),
            (
                vec!["CACHE.GET", "k", "BETA", "x"],
                "ERR BETA must be a number".into(),
            ),
            (
                vec!["CACHE.GET", "k", "BETA", "nan"],
                "ERR BETA must be a number".into(),
            ),
            (
                vec!["CACHE.GET", "k", "BETA", "-1"],
                "ERR BETA must be a finite non-negative number".into(),
            ),
            (
                vec!["CACHE.GET", "k", "BETA", "inf"],
                "ERR BETA must be a finite non-negative number".into(),
            ),
            (
                vec!["CACHE.GET", "k", "LEASE", "0"],
                "ERR lease_ms must be a positive integer".into(),
            ),
            (
                vec!["CACHE.GET", "k", "LEASE", "60001"],
                lease_too_long.into(),
            ),
            (
                vec!["CACHE.GET", "k", "LEASE", "4503599627370497"],
                lease_too_long.into(),
            ),
            (vec!["CACHE.GET", "k", "extra"], "ERR syntax error".into()),
            (vec!["CACHE.GET", "text"], wrongtype.into()),
            (vec!["CACHE.GET", "plainhash"], not_cache.into()),
            (vec!["CACHE.FILL", "k", "lease", "v"], arity("cache.fill")),
            (
                vec!["CACHE.FILL", "leased", &lease, "v", "0"],
                "ERR ttl_ms must be a positive integer".into(),
            ),
            (
                vec!["CACHE.FILL", "leased", &lease, "v", "10", "TAGS", "text"],
                wrongtype.into(),
            ),
            (
                vec!["CACHE.FILL", "text", "lease", "v", "10"],
                wrongtype.into(),
            ),
            (vec!["CACHE.TAG", "ok"], arity("cache.tag")),
            (
                vec!["CACHE.TAG", "nope", "tag"],
                "ERR no cached value at key".into(),
            ),
            (
                vec!["CACHE.TAG", "leased", "tag"],
                "ERR no cached value at key".into(),
            ),
            (vec!["CACHE.TAG", "ok", "text"], wrongtype.into()),
            (
                vec!["CACHE.TAG", "ok", "ok"],
                "ERR a key cannot be its own tag".into(),
            ),
            (vec!["CACHE.TAG", "text", "tag"], wrongtype.into()),
            (vec!["CACHE.INVALIDATE"], arity("cache.invalidate")),
            (vec!["CACHE.INVALIDATE", "tag", "text"], wrongtype.into()),
        ];
        let before = snapshot(&mut c);
        for (args, want) in &cases {
            assert_eq!(&error_of(&mut c, args), want, "{args:?}");
        }
        assert_same_state(&before, &snapshot(&mut c), 100);
        // A fill without the lease answers nil and writes nothing.
        assert_eq!(fill(&mut c, "ok", "nope", "v", &["10"]), None);
        assert_eq!(fill(&mut c, "absent", "nope", "v", &["10"]), None);
        assert_eq!(query::<i64>(&mut c, &["EXISTS", "absent"]), 0);
        assert_same_state(&before, &snapshot(&mut c), 100);
    });
}

// ---------------------------------------------------------------------------------------------
// The Lua twin

/// The twin's XFetch decides as `patterns_core::cache::early` (the module's function) on every
/// draw: random draws against a fresh value at a known `now`.
#[test]
fn twin_xfetch_matches_the_core_on_explicit_draws() {
    for_each_twin(|_, mut b| {
        let mut rng = StdRng::seed_from_u64(3);
        let (mut compared, mut refreshed) = (0, 0);
        for i in 0..3000 {
            let key = format!("xf:{i}");
            let delta = rng.gen_range(1..400);
            let beta = ["0.5", "1", "1.7", "3"][rng.gen_range(0..4)];
            let draw: u64 = rng.gen_range(1..=DRAW_MAX);
            let mut s = redis::cmd("FCALL");
            s.arg("cache_set")
                .arg(1)
                .arg(&key)
                .arg("v")
                .arg(100)
                .arg("DELTA")
                .arg(delta);
            let mut g = redis::cmd("FCALL");
            g.arg("cache_get")
                .arg(1)
                .arg(&key)
                .arg(draw)
                .arg("A".repeat(22))
                .arg("BETA")
                .arg(beta);
            let mut h = redis::cmd("HGET");
            h.arg(&key).arg("fresh_until");
            let r = pipeline(&mut b, &[redis::cmd("TIME"), s, g, redis::cmd("TIME"), h]);
            let (t0, t1) = (ms_of(&r[0]), ms_of(&r[3]));
            if t0 != t1 {
                continue;
            }
            let fresh_until: i64 = text(&r[4]).unwrap().parse().unwrap();
            let times = Times {
                fresh_until,
                stale_until: fresh_until,
                delta_ms: delta,
            };
            let want = early(t0, times, beta.parse().unwrap(), draw);
            let got = parts(&r[2]).0 == "REFRESH";
            assert_eq!(
                got,
                want,
                "draw {draw}, delta {delta}, beta {beta}, {} ms left",
                fresh_until - t0
            );
            compared += 1;
            refreshed += usize::from(got);
        }
        assert!(
            compared > 1500 && refreshed > 50 && refreshed < compared,
            "{compared} {refreshed}"
        );
    });
}

/// The key specs find the key and every tag after the last `TAGS` token, past values that
/// look like it, and no tag in other options.
#[test]
fn key_specs_find_the_tags_after_the_token() {
    for_each_server(|_, mut c| {
        let getkeys = |c: &mut Connection, args: &[&str]| -> Vec<String> {
            let mut argv = vec!["COMMAND", "GETKEYS"];
            argv.extend_from_slice(args);
            query(c, &argv)
        };
        let set = [
            "CACHE.SET",
            "k",
            "TAGS",
            "9",
            "GRACE",
            "1",
            "TAGS",
            "a",
            "b",
        ];
        assert_eq!(getkeys(&mut c, &set), ["k", "a", "b"]);
        let fill = ["CACHE.FILL", "k", "TAGS", "TAGS", "9", "TAGS", "a"];
        assert_eq!(getkeys(&mut c, &fill), ["k", "a"]);
        assert_eq!(getkeys(&mut c, &["CACHE.GET", "k", "BETA", "1"]), ["k"]);
    });
}

use super::*;

const T: Times = Times {
    fresh_until: 1_000,
    stale_until: 1_500,
    delta_ms: 100,
};

fn entry(value: bool, lease_until: Option<i64>) -> Entry<'static> {
    Entry {
        value: value.then_some((&b"v"[..], T)),
        lease: lease_until.map(|until| Lease {
            token: b"tok",
            until,
            since: 700,
        }),
    }
}

/// Draws: `rand = 1` never refreshes early; `rand = 2^-53` looks `36.7 * delta * beta` ahead.
const NEVER: u64 = DRAW_MAX;
const SOONEST: u64 = 1;

#[test]
fn decisions_follow_the_entry_and_the_lease() {
    use Outcome::*;
    // (now, value stored, lease until, beta, draw, outcome)
    type Case = (i64, bool, Option<i64>, f64, u64, Outcome);
    let table: &[Case] = &[
        // absent: the first caller gets the lease, the others wait (at most 50 ms at a time)
        (900, false, None, 1.0, NEVER, Miss),
        (900, false, Some(2_000), 1.0, NEVER, Wait { retry_ms: 50 }),
        (900, false, Some(920), 1.0, NEVER, Wait { retry_ms: 20 }),
        (900, false, Some(900), 1.0, NEVER, Miss), // the lease expired
        // fresh
        (900, true, None, 1.0, NEVER, Hit),
        (900, true, None, 1.0, SOONEST, Refresh), // 36.7 * 100 ms ahead of 1000
        (900, true, None, 0.0, SOONEST, Hit),     // BETA 0: no early refresh
        (900, true, Some(950), 1.0, SOONEST, Hit), // someone else is refreshing
        (999, true, None, 1.0, NEVER / 2, Refresh), // ln(1/2) * 100 = -69 ms: 1 ms to go
        (900, true, None, 1.0, NEVER / 2, Hit),   // 100 ms to go > 69
        // stale, within the grace
        (1_000, true, None, 1.0, NEVER, Refresh),
        (1_499, true, None, 0.0, NEVER, Refresh),
        (1_000, true, Some(1_200), 1.0, NEVER, Stale),
        (1_200, true, Some(1_200), 1.0, NEVER, Refresh), // the lease just expired
        // past the grace: absent
        (1_500, true, None, 1.0, NEVER, Miss),
        (1_500, true, Some(1_600), 1.0, NEVER, Wait { retry_ms: 50 }),
    ];
    for (i, &(now, value, lease, beta, draw, want)) in table.iter().enumerate() {
        let e = entry(value, lease);
        assert_eq!(decide(now, Some(&e), beta, draw), want, "case {i}");
    }
    assert_eq!(decide(0, None, 1.0, SOONEST), Outcome::Miss);
    assert!(Outcome::Miss.grants_lease() && Outcome::Refresh.grants_lease());
    assert!(!Outcome::Stale.grants_lease() && !Outcome::Hit.grants_lease());
}

#[test]
fn xfetch_refreshes_with_the_papers_probability() {
    // P(early) = P(-delta*beta*ln(rand) >= gap) = P(rand <= exp(-gap/(delta*beta))).
    let t = Times {
        fresh_until: 10_000,
        stale_until: 10_000,
        delta_ms: 200,
    };
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for (now, beta) in [(9_900, 1.0), (9_700, 1.0), (9_500, 2.0), (9_990, 0.5)] {
        let want = early_probability(now, t, beta);
        let n = 200_000;
        let hits = (0..n)
            .filter(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                early(now, t, beta, (x >> 11) + 1)
            })
            .count();
        let got = hits as f64 / n as f64;
        // Four standard deviations of a binomial proportion.
        let sd = (want * (1.0 - want) / n as f64).sqrt();
        assert!(
            (got - want).abs() <= 4.0 * sd + 1e-9,
            "{now} {beta}: {got} vs {want}"
        );
    }
    assert_eq!(early_probability(9_000, t, 0.0), 0.0);
    // The threshold is exact at the boundary draw.
    let at = |draw| early(9_999, t, 1.0, draw);
    let boundary = ((-1.0f64 / 200.0).exp() * DRAW_MAX as f64) as u64;
    assert!(at(boundary - 1));
    assert!(!at(boundary + 2));
}

#[test]
fn times_are_bounded_and_exact() {
    let t = Times::new(1_000, 500, 200, 30).unwrap();
    assert_eq!(
        t,
        Times {
            fresh_until: 1_500,
            stale_until: 1_700,
            delta_ms: 30
        }
    );
    assert!(Times::new(0, MAX_MS, 0, MAX_MS).is_ok());
    for (ttl, grace, delta) in [(MAX_MS, 1, 0), (1, 0, MAX_MS + 1), (i64::MAX, i64::MAX, 0)] {
        assert_eq!(
            Times::new(0, ttl, grace, delta).unwrap_err().to_string(),
            "ERR ttl_ms + GRACE and DELTA must be at most 2^52"
        );
    }
    assert_eq!(lease_until(10, 5).unwrap(), 15);
    assert_eq!(lease_until(10, MAX_LEASE_MS).unwrap(), 10 + MAX_LEASE_MS);
    assert_eq!(
        lease_until(10, MAX_LEASE_MS + 1).unwrap_err().to_string(),
        "ERR lease_ms must be at most 60000"
    );
    assert_eq!(check_beta(0.0).unwrap(), 0.0);
    for bad in [-1.0, f64::INFINITY, f64::NAN] {
        assert_eq!(
            check_beta(bad).unwrap_err().to_string(),
            "ERR BETA must be a finite non-negative number"
        );
    }
    assert_eq!(key_expiry(Some(T), Some(1_200)), 1_500);
    assert_eq!(key_expiry(Some(T), Some(2_000)), 2_000);
    assert_eq!(key_expiry(None, Some(2_000)), 2_000);
}

#[test]
fn entries_parse_strictly() {
    let full: Vec<(&[u8], &[u8])> = vec![
        (b"value", b"v"),
        (b"fresh_until", b"1000"),
        (b"stale_until", b"1500"),
        (b"delta_ms", b"100"),
        (b"lease", b"tok"),
        (b"lease_until", b"2000"),
        (b"leased_at", b"700"),
    ];
    assert_eq!(Entry::parse(&full).unwrap(), entry(true, Some(2_000)));
    assert_eq!(Entry::parse(&full[..4]).unwrap(), entry(true, None));
    assert_eq!(Entry::parse(&full[4..]).unwrap(), entry(false, Some(2_000)));
    let e = entry(false, Some(2_000));
    assert!(e.holds(b"tok", 1_999) && !e.holds(b"tok", 2_000) && !e.holds(b"x", 0));
    let broken: &[&[(&[u8], &[u8])]] = &[
        &[],
        &full[..3],
        &full[1..4],
        &full[4..5],
        &full[5..],
        &full[4..6],
        &[
            (b"value", b"v"),
            (b"fresh_until", b"x"),
            (b"stale_until", b"1"),
            (b"delta_ms", b"1"),
        ],
        &[
            (b"lease", b"t"),
            (b"lease_until", b"-1"),
            (b"leased_at", b"0"),
        ],
        &[
            (b"lease", b"t"),
            (b"lease_until", b"1"),
            (b"leased_at", b"0"),
            (b"other", b"1"),
        ],
    ];
    for pairs in broken {
        assert_eq!(
            Entry::parse(pairs).unwrap_err().to_string(),
            "ERR key does not hold a cache entry",
            "{pairs:?}"
        );
    }
}

#[test]
fn compact_entries_round_trip_byte_for_byte() {
    for e in [
        entry(true, None),
        entry(true, Some(2_000)),
        entry(false, Some(2_000)),
    ] {
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes), Some(e.clone()));
        assert_eq!(bytes[0] & !3, FORMAT);
        assert_eq!(bytes[0] & HAS_VALUE != 0, e.value.is_some());
        let lease = e.lease.as_ref().map_or(0, |l| 18 + l.token.len());
        assert_eq!(
            bytes.len(),
            HEADER_LEN + lease + usize::from(e.value.is_some())
        );
    }
    // The exact bytes the twin's struct.pack('>Bi7i7i7', ...) and '>i7i7I4' make.
    let mut want = vec![FORMAT | HAS_VALUE | HAS_LEASE];
    for n in [1_000i64, 1_500, 100, 2_000, 700] {
        want.extend_from_slice(&n.to_be_bytes()[1..]);
    }
    want.extend_from_slice(&[0, 0, 0, 3]);
    want.extend_from_slice(b"tokv");
    assert_eq!(entry(true, Some(2_000)).encode(), want);
    assert_eq!(
        want[LEASED_AT_OFFSET..LEASED_AT_OFFSET + 7],
        700i64.to_be_bytes()[1..]
    );
    // An empty value is a value.
    let empty = Entry {
        value: Some((b"", T)),
        lease: None,
    };
    assert_eq!(Entry::decode(&empty.encode()), Some(empty));
}

#[test]
fn compact_entries_decode_strictly() {
    let good = entry(true, Some(2_000)).encode();
    let lease_only = entry(false, Some(2_000)).encode();
    let with = |at: usize, byte: u8, bytes: &[u8]| {
        let mut b = bytes.to_vec();
        b[at] = byte;
        b
    };
    let broken: Vec<Vec<u8>> = vec![
        vec![],
        b"plain text value of thirty bytes".to_vec(),
        good[..HEADER_LEN - 1].to_vec(),
        with(0, FORMAT, &good),
        with(0, FORMAT | 4, &good),
        with(0, 0xCF, &good),
        with(1, 0x80, &good),                   // a negative time
        with(1, 0x20, &good),                   // fresh_until beyond 2^53
        good[..LEASED_AT_OFFSET + 4].to_vec(),  // a lease cut short
        good[..good.len() - 2].to_vec(),        // a token cut short
        [lease_only.as_slice(), b"x"].concat(), // value bytes without a value
        with(7, 1, &lease_only),                // times without a value
    ];
    for bytes in &broken {
        assert_eq!(Entry::decode(bytes), None, "{bytes:?}");
    }
}

#[test]
fn an_invalidation_voids_the_leases_granted_before_it() {
    // (lease granted at, invalidated at, voided), in µs: one microsecond orders them.
    let now_us = 1_733_000_000_123_456;
    let table = [
        (now_us, now_us - 1, false),
        (now_us, now_us, true),
        (now_us, now_us + 1, true),
        (1_000, 999, false),
    ];
    for (since, at, voided) in table {
        let score: f64 = marker_score(at).parse().unwrap();
        assert_eq!(invalidated_at_us(score), at, "{}", marker_score(at));
        assert_eq!(
            voids(invalidated_at_us(score), since),
            voided,
            "{since} {at}"
        );
    }
    assert_eq!(marker_score(now_us), "1733000060123.456");
    assert_eq!(marker_score(5_000_007), "65000.007");
    // Every microsecond of a day round-trips through the double score.
    for at in (now_us..now_us + 86_400_000_000).step_by(999_983) {
        let score: f64 = marker_score(at).parse().unwrap();
        assert_eq!(invalidated_at_us(score), at);
    }
    // The marker outlives every lease granted before its invalidation.
    let (granted_ms, invalidated_us) = (5_000, (5_000 + MAX_LEASE_MS - 1) * 1000);
    let marker: f64 = marker_score(invalidated_us).parse().unwrap();
    assert!(lease_until(granted_ms, MAX_LEASE_MS).unwrap() as f64 <= marker);
}

#[test]
fn a_refused_fill_keeps_only_a_live_value() {
    let leased_value = entry(true, Some(2_000));
    assert_eq!(after_giving_up(&leased_value, 1_000), Some(T.stale_until));
    assert_eq!(after_giving_up(&leased_value, T.stale_until), None);
    assert_eq!(after_giving_up(&entry(false, Some(2_000)), 1_000), None);
}

#[test]
fn the_draw_matters_only_for_a_fresh_unleased_value_with_a_delta() {
    // (now, value stored, lease until, beta, matters)
    let table = [
        (900, true, None, 1.0, true),
        (900, true, None, 0.0, false),
        (900, true, Some(950), 1.0, false),
        (1_000, true, None, 1.0, false), // stale
        (900, false, None, 1.0, false),
    ];
    for (now, value, lease, beta, matters) in table {
        let e = entry(value, lease);
        assert_eq!(
            draw_matters(now, Some(&e), beta),
            matters,
            "{now} {value} {lease:?}"
        );
        // Where it does not matter, every draw decides alike.
        if !matters {
            assert_eq!(
                decide(now, Some(&e), beta, 1),
                decide(now, Some(&e), beta, DRAW_MAX)
            );
        }
    }
    let no_delta = Entry {
        value: Some((b"v", Times { delta_ms: 0, ..T })),
        lease: None,
    };
    assert!(!draw_matters(900, Some(&no_delta), 1.0));
    assert!(!draw_matters(0, None, 1.0));
}

#[test]
fn stores_without_tags_list_none() {
    let args: [&[u8]; 4] = [b"v", b"1000", b"DELTA", b"5"];
    assert!(SET.parse(&args).unwrap().list("TAGS").is_empty());
    let fill: [&[u8]; 3] = [b"lease-token", b"v", b"1000"];
    assert!(FILL.parse(&fill).unwrap().list("TAGS").is_empty());
    let tagged: [&[u8]; 5] = [b"v", b"1000", b"TAGS", b"t1", b"t2"];
    assert_eq!(SET.parse(&tagged).unwrap().list("TAGS"), [b"t1", b"t2"]);
}

#[test]
fn a_stray_unreadable_field_spoils_an_old_entry() {
    // The other half is whole; a field of the missing half is present but no time.
    let value: [(&[u8], &[u8]); 5] = [
        (b"value", b"v"),
        (b"fresh_until", b"1000"),
        (b"stale_until", b"1500"),
        (b"delta_ms", b"100"),
        (b"leased_at", b"x"),
    ];
    let lease: [(&[u8], &[u8]); 4] = [
        (b"lease", b"tok"),
        (b"lease_until", b"2000"),
        (b"leased_at", b"700"),
        (b"stale_until", b"-1"),
    ];
    for pairs in [&value[..], &lease[..]] {
        assert_eq!(
            Entry::parse(pairs).unwrap_err().to_string(),
            "ERR key does not hold a cache entry",
            "{pairs:?}"
        );
        assert!(Entry::parse(&pairs[..pairs.len() - 1]).is_ok(), "{pairs:?}");
    }
}

#[test]
fn compact_times_stop_below_2_pow_53() {
    // 7 bytes hold more, but the twin reads a time exactly only below 2^53.
    let with_time = |t: i64| {
        let mut bytes = vec![FORMAT | HAS_VALUE];
        for n in [t, 0, 0] {
            bytes.extend_from_slice(&n.to_be_bytes()[1..]);
        }
        bytes.push(b'v');
        bytes
    };
    let below = with_time(LUA_EXACT_MAX - 1);
    let at = Entry::decode(&below).unwrap().value.unwrap().1.fresh_until;
    assert_eq!(at, LUA_EXACT_MAX - 1);
    assert_eq!(Entry::decode(&with_time(LUA_EXACT_MAX)), None);
}

#[test]
fn a_lease_tells_when_it_was_granted() {
    assert_eq!(entry(false, Some(2_000)).leased_at(), 700);
    assert_eq!(entry(true, Some(2_000)).leased_at(), 700);
    assert_eq!(entry(true, None).leased_at(), 0);
}

#[test]
fn outcomes_reply_with_their_words() {
    let words = [
        Outcome::Hit,
        Outcome::Refresh,
        Outcome::Miss,
        Outcome::Stale,
        Outcome::Wait { retry_ms: 50 },
    ]
    .map(Outcome::word);
    assert_eq!(words, ["HIT", "REFRESH", "MISS", "STALE", "WAIT"]);
}

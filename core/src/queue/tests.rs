use super::*;

fn raw(args: &[&'static str]) -> Vec<&'static [u8]> {
    args.iter().map(|a| a.as_bytes()).collect()
}

#[test]
fn push_reads_delay_and_a_trailing_dedupe() {
    let args = raw(&["job"]);
    let p = parse_push(&args).unwrap();
    assert_eq!((p.payload, p.delay_ms, p.dedupe), (&b"job"[..], 0, None));
    let args = raw(&["job", "DELAY", "50", "DEDUPE", "d1", "1000"]);
    let p = parse_push(&args).unwrap();
    assert_eq!(p.delay_ms, 50);
    assert_eq!(p.dedupe, Some((&b"d1"[..], 1000)));
    for bad in [
        &["job", "DEDUPE", "d1"][..],
        &["job", "DEDUPE", "d1", "5", "DELAY", "1"],
        &["job", "DEDUPE"],
    ] {
        assert_eq!(
            parse_push(&raw(bad)).unwrap_err(),
            CmdError::Syntax,
            "{bad:?}"
        );
    }
    let e = parse_push(&raw(&["job", "DEDUPE", "d1", "0"])).unwrap_err();
    assert_eq!(e.to_string(), "ERR ttl_ms must be a positive integer");
    let e = parse_push(&raw(&["job", "DELAY", "4503599627370497"])).unwrap_err();
    assert_eq!(e, CmdError::OutOfRange(TOO_LONG));
}

#[test]
fn pop_defaults_and_the_reserved_consumer() {
    let p = parse_pop(&raw(&["g", "c"])).unwrap();
    assert_eq!(
        (p.count, p.block_ms, p.lease_ms, p.max_deliveries),
        (1, NO_BLOCK, DEFAULT_LEASE_MS, DEFAULT_MAX_DELIVERIES)
    );
    let p = parse_pop(&raw(&["g", "c", "COUNT", "5", "BLOCK", "0", "LEASE", "9"])).unwrap();
    assert_eq!((p.count, p.block_ms, p.lease_ms), (5, 0, 9));
    assert_eq!(
        parse_pop(&raw(&["g", PARKED])).unwrap_err(),
        CmdError::BadState(RESERVED_CONSUMER)
    );
    assert!(parse_pop(&raw(&["g", "c", "MAXDELIVERIES", "0"])).is_err());
}

#[test]
fn stream_ids_parse_and_step() {
    assert_eq!(StreamId::parse(b"5-3"), Some(StreamId { ms: 5, seq: 3 }));
    assert_eq!(
        StreamId::parse(b"18446744073709551615-0"),
        Some(StreamId {
            ms: u64::MAX,
            seq: 0
        })
    );
    for bad in [
        "5",
        "-3",
        "5-",
        "a-1",
        "18446744073709551616-0",
        "1-2-3",
        "+1-2",
        "",
    ] {
        assert_eq!(StreamId::parse(bad.as_bytes()), None, "{bad}");
    }
    let id = StreamId {
        ms: 7,
        seq: u64::MAX,
    };
    assert_eq!(id.next(), Some(StreamId { ms: 8, seq: 0 }));
    let last = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };
    assert_eq!(last.next(), None);
    assert_eq!(StreamId { ms: 1, seq: 2 }.text(), "1-2");
}

#[test]
fn a_job_goes_dead_after_exactly_max_deliveries() {
    let max = 3;
    let mut deliveries = 1; // the first delivery, from XREADGROUP
    let mut delivered = 1;
    while let Redelivery::Deliver(n) = redeliver(deliveries, max) {
        assert_eq!(n, deliveries + 1);
        deliveries = n;
        delivered += 1;
    }
    assert_eq!(delivered, max);
    assert_eq!(redeliver(deliveries, max), Redelivery::Dead(3));
    // A parked job that was never delivered (delayed push) is delivered.
    assert_eq!(redeliver(0, 1), Redelivery::Deliver(1));
}

#[test]
fn fresh_jobs_deliver_park_or_skip() {
    assert_eq!(fresh(None, None, b"g", 100), Fresh::Deliver);
    assert_eq!(fresh(Some(100), None, b"g", 100), Fresh::Deliver);
    assert_eq!(fresh(Some(101), None, b"g", 100), Fresh::Park(101));
    assert_eq!(fresh(None, Some(b"g"), b"g", 100), Fresh::Deliver);
    assert_eq!(fresh(Some(500), Some(b"h"), b"g", 100), Fresh::Skip);
    assert_eq!(parse_due(Some(b"42")), Some(42));
    assert_eq!(parse_due(Some(b"x")), None);
}

#[test]
fn the_trim_keeps_what_any_group_still_needs() {
    let id = |ms, seq| StreamId { ms, seq };
    assert_eq!(trim_bound(&[]), None);
    let read_all = GroupView {
        last_read: id(9, 0),
        oldest_pending: None,
    };
    assert_eq!(trim_bound(&[read_all]), Some(id(9, 1)));
    let busy = GroupView {
        last_read: id(9, 0),
        oldest_pending: Some(id(3, 0)),
    };
    assert_eq!(trim_bound(&[read_all, busy]), Some(id(3, 0)));
    let behind = GroupView {
        last_read: id(1, 0),
        oldest_pending: None,
    };
    assert_eq!(trim_bound(&[busy, behind]), Some(id(1, 1)));
    let at_end = GroupView {
        last_read: id(u64::MAX, u64::MAX),
        oldest_pending: None,
    };
    assert_eq!(trim_bound(&[read_all, at_end]), None);
}

#[test]
fn an_ack_moves_the_bound_only_when_it_completes_the_groups_oldest_job() {
    let id = |ms, seq| StreamId { ms, seq };
    let still_pending = GroupView {
        last_read: id(9, 0),
        oldest_pending: Some(id(3, 0)),
    };
    // The oldest job (2-0) completed: the group now needs 3-0.
    assert!(ack_moves_bound(&[id(2, 0)], still_pending));
    assert!(ack_moves_bound(&[id(5, 0), id(2, 5)], still_pending));
    // Newer jobs completed: 3-0 was and is the oldest the group needs.
    assert!(!ack_moves_bound(&[id(5, 0)], still_pending));
    assert!(!ack_moves_bound(&[id(3, 1), id(9, 0)], still_pending));
    assert!(!ack_moves_bound(&[], still_pending));
    // Nothing pending any more: the group needs what follows its last read.
    let done = GroupView {
        last_read: id(9, 0),
        oldest_pending: None,
    };
    assert!(ack_moves_bound(&[id(9, 0)], done));
    // Its last read moved back (XGROUP SETID) behind the completed job: the bound cannot rise.
    let rewound = GroupView {
        last_read: id(1, 0),
        oldest_pending: None,
    };
    assert!(!ack_moves_bound(&[id(4, 0)], rewound));
    // A group that read the last id there is needs nothing more: no bound, no trim.
    let at_end = GroupView {
        last_read: id(u64::MAX, u64::MAX),
        oldest_pending: None,
    };
    assert!(!ack_moves_bound(&[id(1, 0)], at_end));
}

#[test]
fn derived_keys_share_the_slot() {
    assert_eq!(
        queue_key(b"q", LEASES_SUFFIX, b"g").unwrap(),
        b"{q}:leases:g"
    );
    assert_eq!(queue_key(b"{t}q", DEAD_SUFFIX, b"").unwrap(), b"{t}q:dead");
    assert_eq!(
        queue_key(b"a{b", DEAD_SUFFIX, b"").unwrap_err(),
        CmdError::BadState(BAD_NAME)
    );
}

#[test]
fn options_absent_read_as_absent() {
    // No DEDUPE: the other options' words are not taken for its id and ttl.
    let args = raw(&["job", "DELAY", "50"]);
    let p = parse_push(&args).unwrap();
    assert_eq!((p.delay_ms, p.dedupe), (50, None));
    // No BLOCK is told from every timeout (0: no limit, 1 ms).
    for timeout in ["0", "1"] {
        let p = parse_pop(&raw(&["g", "c", "BLOCK", timeout])).unwrap();
        assert_ne!(p.block_ms, NO_BLOCK, "BLOCK {timeout}");
    }
}

#[test]
fn spans_of_exactly_2_pow_52_ms_are_accepted() {
    assert_eq!(check_ms(MAX_MS), Ok(MAX_MS));
    let args = raw(&["job", "DELAY", "4503599627370496"]);
    assert_eq!(parse_push(&args).unwrap().delay_ms, MAX_MS);
    assert!(check_ms(MAX_MS + 1).is_err());
}

#[test]
fn acking_the_job_a_group_needs_next_leaves_the_bound() {
    // 9-1 is unread, so its ACK completed nothing: the group still needs it, as before.
    let done = GroupView {
        last_read: StreamId { ms: 9, seq: 0 },
        oldest_pending: None,
    };
    let next = StreamId { ms: 9, seq: 1 };
    assert_eq!(done.needs(), Some(next));
    assert!(!ack_moves_bound(&[next], done));
}

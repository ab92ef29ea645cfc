//! Behaviours `make mutants` found no test observing (see ARCHITECTURE.md, Mutation testing).

use super::*;

#[test]
fn reply_array_is_allowed_limit_remaining_retry_reset() {
    let allowed = rate_reply(true, 7, 3, -1, 2500);
    assert_eq!(allowed.to_array(), [1, 7, 3, -1, 2500]);
    let denied = rate_reply(false, 7, 0, 40, 9000);
    assert_eq!(denied.to_array(), [0, 7, 0, 40, 9000]);
}

#[test]
fn cell_reply_of_a_full_bucket_resets_in_zero_seconds() {
    // A peek at a fresh key: nothing to wait for, reset in 0 s (redis-cell's reply), not -1.
    let b = TokenBucket::from_cell(4, 1, 1).unwrap();
    let out = b.decide(None, T0, 0).unwrap();
    assert_eq!(out.reply.reset_after_ms, 0);
    assert_eq!(out.reply.to_cell_array(), [0, 5, 5, -1, 0]);
}

#[test]
fn windows_of_exactly_2_pow_52_ms_are_accepted() {
    // The limit is inclusive, as for the token bucket's span.
    assert!(FixedWindow::new(1, MAX_MS).is_ok());
    assert!(SlidingWindow::new(1, MAX_MS).is_ok());
    assert!(FixedWindow::new(1, MAX_MS + 1).is_err());
    assert!(SlidingWindow::new(1, MAX_MS + 1).is_err());
}

#[test]
fn fixed_window_cost_equal_to_the_limit_waits_for_the_next_window() {
    // A cost of exactly the limit fits an empty window: a denial waits for it, not -1.
    Harness::new(FixedWindow::new(3, 10_000).unwrap()).run(
        3,
        &[
            (0, W0 + 1000, 1, true, 2, -1, 9000),
            (1, W0 + 4000, 3, false, 2, 6000, 6000),
            (2, W0 + 10_000, 3, true, 0, -1, 10_000),
        ],
    );
}

#[test]
fn sliding_window_resets_when_the_counts_it_still_sees_expire() {
    Harness::new(SlidingWindow::new(10, 10_000).unwrap()).run(
        10,
        &[
            // Counted in this window: seen until the end of the next one.
            (0, W0 + 1000, 3, true, 7, -1, 19_000),
            // Only the previous window counts (3 weigh 2.25): seen until this window's end.
            (1, W0 + 12_500, 0, true, 7, -1, 7500),
            // Nothing counted: nothing to wait for.
            (2, W0 + 25_000, 0, true, 10, -1, 0),
        ],
    );
}

#[test]
fn sliding_window_cost_equal_to_the_limit_waits_for_the_counts_to_leave() {
    // 1 counted 1000 ms in; a cost of 3 fits once it has fully left: at the next window's end.
    Harness::new(SlidingWindow::new(3, 10_000).unwrap()).run(
        3,
        &[
            (0, W0 + 1000, 1, true, 2, -1, 19_000),
            (1, W0 + 1000, 3, false, 2, 19_000, 19_000),
        ],
    );
}

#[test]
fn sliding_window_state_expires_two_windows_after_its_start() {
    let w = SlidingWindow::new(3, 10_000).unwrap();
    let write = w.decide(None, W0 + 1000, 1).unwrap().write.unwrap();
    assert_eq!(write.expire_at_ms, W0 + 20_000);
}

#[test]
fn exact_log_members_are_time_and_sequence() {
    let write = LogWrite {
        prune_through_ms: None,
        at_ms: 1_700_000_000_123,
        first_seq: 2,
        count: 3,
        expire_at_ms: 1_700_000_001_123,
    };
    let members: Vec<String> = write.members().collect();
    assert_eq!(
        members,
        ["1700000000123:2", "1700000000123:3", "1700000000123:4"]
    );
}

#[test]
fn exact_cost_equal_to_the_limit_waits_for_the_oldest_entry_to_leave() {
    let w = SlidingWindow::new(3, 1000).unwrap();
    let mut log = MemLog::default();
    let (reply, write) = w.decide_exact(&mut log, T0, 1).unwrap();
    assert!(reply.allowed);
    let write = write.unwrap();
    assert_eq!(
        write.expire_at_ms,
        T0 + 1000,
        "the log expires a window after its newest"
    );
    log.apply(&write);
    let (reply, write) = w.decide_exact(&mut log, T0 + 200, 3).unwrap();
    assert_eq!((reply.allowed, reply.retry_after_ms), (false, 800));
    assert!(write.is_none());
    // A peek writes nothing, and resets when the newest entry leaves.
    let (reply, write) = w.decide_exact(&mut log, T0 + 200, 0).unwrap();
    assert_eq!((reply.allowed, reply.reset_after_ms), (true, 800));
    assert!(write.is_none());
}

#[test]
fn sliding_refund_counts_what_stays_in_the_current_window() {
    let w = SlidingWindow::new(10, 1000).unwrap();
    let state = w.decide(None, T0 + 100, 4).unwrap().write.unwrap();
    let r = refund_of(&|s| w.refund(s, T0 + 200, 1), Some(&state));
    assert_eq!(r.remaining, 7);
}

#[test]
fn exact_refund_counts_only_the_window_and_takes_the_newest() {
    // LIMIT 40 prunes only from 8 stale entries, so T0's two stay in the log, outside the window.
    let w = SlidingWindow::new(40, 1000).unwrap();
    let mut log = MemLog::default();
    for (now, cost) in [(T0, 2), (T0 + 1500, 2), (T0 + 1600, 1), (T0 + 1700, 2)] {
        let (_, write) = w.decide_exact(&mut log, now, cost).unwrap();
        log.apply(&write.unwrap());
    }
    assert_eq!(log.0.len(), 7);
    // The two newest are both T0 + 1700's: nothing above it goes, and the two at it.
    let (remaining, r) = w.refund_exact(&mut log, T0 + 1800, 2).unwrap();
    assert_eq!(remaining, 37);
    assert_eq!(
        r,
        Some(LogRefund {
            above_ms: T0 + 1700,
            at_count: 2
        })
    );
    assert!(w.refund_exact(&mut log, T0 + 1800, MAX_EXACT_COST).is_ok());
}

#[test]
fn members_of_another_shape_are_the_oldest_at_their_ms() {
    // An unreadable sequence number ranks below every real one (0 included).
    let members = words(&["5:x", "5:0"]);
    assert_eq!(newest_members(&members, 1), [1]);
}

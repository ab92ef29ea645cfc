use super::*;

fn lease(owner: &'static str, token: i64, holds: i64) -> Lease<'static> {
    Lease {
        owner: owner.as_bytes(),
        token,
        holds,
    }
}

#[test]
fn acquire_grants_new_tokens_and_reenters() {
    // (held, fence, owner, now) -> (token, holds, fence written) or busy
    type Case = (
        Option<Lease<'static>>,
        i64,
        &'static str,
        Option<(i64, i64, Option<i64>)>,
    );
    let table: [Case; 6] = [
        (None, 0, "a", Some((1, 1, Some(1)))),
        (None, 41, "a", Some((42, 1, Some(42)))),
        (Some(lease("a", 7, 1)), 7, "a", Some((7, 2, None))),
        (Some(lease("a", 7, 5)), 9, "a", Some((7, 6, None))),
        (Some(lease("a", 7, 1)), 7, "b", None),
        (Some(lease("a", 7, 1)), 7, "A", None),
    ];
    for (i, (held, fence, owner, want)) in table.into_iter().enumerate() {
        let got = acquire(held, fence, owner.as_bytes(), 500, 10_000).unwrap();
        match (got, want) {
            (
                Acquire::Granted {
                    lease,
                    expire_at_ms,
                    fence,
                },
                Some((token, holds, wrote)),
            ) => {
                assert_eq!(lease.owner, owner.as_bytes(), "case {i}");
                assert_eq!(
                    (lease.token, lease.holds, fence),
                    (token, holds, wrote),
                    "case {i}"
                );
                assert_eq!(expire_at_ms, 10_500, "case {i}: the TTL is reset");
            }
            (Acquire::Busy, None) => {}
            (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn tokens_strictly_increase_grant_after_grant() {
    // A lock taken, released or left to expire, taken by someone else: the fence only grows.
    let mut fence = 0;
    let mut last = 0;
    for round in 0..1000 {
        let owner: &[u8] = if round % 3 == 0 { b"x" } else { b"y" };
        let Acquire::Granted {
            lease, fence: f, ..
        } = acquire(None, fence, owner, 10, round).unwrap()
        else {
            panic!("a free lock is granted");
        };
        assert!(lease.token > last);
        last = lease.token;
        fence = f.unwrap();
    }
    assert_eq!(last, 1000);
}

#[test]
fn counters_never_overflow() {
    assert_eq!(
        acquire(None, i64::MAX, b"a", 1, 0).unwrap_err().to_string(),
        "ERR the fencing counter is exhausted"
    );
    assert_eq!(
        acquire(Some(lease("a", 1, i64::MAX)), 1, b"a", 1, 0)
            .unwrap_err()
            .to_string(),
        "ERR the lock's hold count is exhausted"
    );
    assert_eq!(check_ttl(MAX_MS), Ok(MAX_MS));
    assert_eq!(
        check_ttl(MAX_MS + 1).unwrap_err().to_string(),
        "ERR ttl_ms must be at most 2^52"
    );
}

#[test]
fn release_drops_one_hold_of_the_owner_only() {
    assert_eq!(release(None, b"a"), Release::NotHeld);
    assert_eq!(release(Some(lease("a", 3, 1)), b"b"), Release::NotHeld);
    assert_eq!(release(Some(lease("a", 3, 1)), b"a"), Release::Freed);
    assert_eq!(
        release(Some(lease("a", 3, 4)), b"a"),
        Release::Kept(lease("a", 3, 3))
    );
}

#[test]
fn extend_needs_the_owner() {
    let held = lease("a", 3, 2);
    assert_eq!(extend(Some(&held), b"a", 250, 1000), Some(1250));
    assert_eq!(extend(Some(&held), b"b", 250, 1000), None);
    assert_eq!(extend(None, b"a", 250, 1000), None);
}

#[test]
fn state_parsing() {
    let l = Lease::parse(Some(b"me"), Some(b"12"), Some(b"2")).unwrap();
    assert_eq!(l, lease("me", 12, 2));
    type Fields = (
        Option<&'static [u8]>,
        Option<&'static [u8]>,
        Option<&'static [u8]>,
    );
    let bad: [Fields; 5] = [
        (None, Some(b"1"), Some(b"1")),
        (Some(b"me"), None, Some(b"1")),
        (Some(b"me"), Some(b"0"), Some(b"1")),
        (Some(b"me"), Some(b"1"), Some(b"x")),
        (Some(b"me"), Some(b"1"), Some(b"-1")),
    ];
    for (o, t, h) in bad {
        assert_eq!(
            Lease::parse(o, t, h).unwrap_err().to_string(),
            "ERR key does not hold a lock"
        );
    }
    assert_eq!(parse_fence(None), Ok(0));
    assert_eq!(parse_fence(Some(b"0")), Ok(0));
    assert_eq!(parse_fence(Some(b"77")), Ok(77));
    for v in [&b"-1"[..], b"x", b"1.5", b""] {
        assert_eq!(
            parse_fence(Some(v)).unwrap_err().to_string(),
            "ERR the fencing counter is not a non-negative integer"
        );
    }
    assert_eq!(parse_resource_fence(None), Ok(None));
    assert_eq!(parse_resource_fence(Some(b"5")), Ok(Some(5)));
    assert!(parse_resource_fence(Some(b"0")).is_err());
}

#[test]
fn fence_keys_share_the_lock_slot() {
    use crate::keys::slot;
    assert_eq!(fence_key(b"orders").unwrap(), b"{orders}:fence".to_vec());
    assert_eq!(
        fence_key(b"lock:{o1}").unwrap(),
        b"lock:{o1}:fence".to_vec()
    );
    for name in [&b"orders"[..], b"lock:{o1}", b"x{y}z"] {
        assert_eq!(slot(&fence_key(name).unwrap()), slot(name));
    }
    for bad in [&b""[..], b"a{b", b"a{}b"] {
        assert_eq!(
            fence_key(bad).unwrap_err().to_string(),
            "ERR lock name cannot carry its fencing counter in its slot"
        );
    }
}

#[test]
fn semaphore_permits() {
    // (live permits, owner holds one, limit, granted)
    let table = [
        (0, false, 1, true),
        (1, false, 1, false),
        (1, true, 1, true),
        (2, false, 3, true),
        (3, false, 3, false),
        (5, true, 3, true),
    ];
    for (live, holds, limit, want) in table {
        assert_eq!(
            permit_granted(live, holds, limit),
            want,
            "{live} {holds} {limit}"
        );
    }
}

#[test]
fn fences_admit_equal_or_newer_tokens() {
    assert!(fence_admits(None, 1));
    assert!(fence_admits(Some(5), 5));
    assert!(fence_admits(Some(5), 6));
    assert!(!fence_admits(Some(5), 4));
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let mut q: WaitQueue<(u32, &str)> = WaitQueue::default();
    for (i, owner) in ["a", "b", "c", "b"].into_iter().enumerate() {
        q.push((i as u32, owner));
    }
    assert_eq!(q.peek(), Some(&(0, "a")));
    assert_eq!(q.remove(|w| w.0 == 0), Some((0, "a")));
    // One that timed out leaves the queue wherever it stands; the others keep their order.
    assert_eq!(q.remove(|w| w.0 == 2), Some((2, "c")));
    assert_eq!(q.remove(|w| w.0 == 2), None);
    assert_eq!(q.len(), 2);
    assert_eq!(q.iter().collect::<Vec<_>>(), vec![&(1, "b"), &(3, "b")]);
    assert_eq!(q.peek(), Some(&(1, "b")));
    q.push((4, "d"));
    assert_eq!(
        q.drain().collect::<Vec<_>>(),
        vec![(1, "b"), (3, "b"), (4, "d")]
    );
    assert!(q.is_empty());
    assert_eq!(q.peek(), None);
}

// ---------------------------------------------------------------------------------------------
// Read/write locks

mod rw_locks {
    use super::super::rw::*;
    use super::*;

    fn holds(writer: Option<Lease<'static>>, readers: i64, reads: bool) -> Holds<'static> {
        Holds {
            writer,
            readers,
            reads,
        }
    }

    /// `rw_acquire` for owner `a` at 10,000 ms with a 500 ms lease and the last token 7.
    fn decide(h: Holds<'static>, mode: Mode, waiters: bool) -> RwAcquire<'static> {
        rw_acquire(h, 7, mode, b"a", 500, 10_000, waiters).unwrap()
    }

    #[test]
    fn readers_share_and_a_writer_excludes_everyone() {
        let read = RwAcquire::Read {
            expire_at_ms: 10_500,
        };
        // Free, or only readers: a reader gets its own lease, ending at now + ttl.
        assert_eq!(decide(holds(None, 0, false), Mode::Read, false), read);
        assert_eq!(decide(holds(None, 3, false), Mode::Read, false), read);
        let (other, own) = (Some(lease("b", 5, 1)), Some(lease("a", 5, 1)));
        let busy = [
            // A writer (another owner, or the asking one: no downgrade) keeps readers out.
            (holds(other.clone(), 0, false), Mode::Read),
            (holds(own, 0, false), Mode::Read),
            // A writer waits for every reader, its own read hold included (no upgrade).
            (holds(None, 1, true), Mode::Write),
            (holds(None, 2, false), Mode::Write),
            (holds(other, 0, false), Mode::Write),
        ];
        for (i, (h, mode)) in busy.into_iter().enumerate() {
            assert_eq!(decide(h, mode, false), RwAcquire::Busy, "case {i}");
        }
    }

    #[test]
    fn a_writer_gets_the_next_token_and_reenters_with_the_same() {
        let RwAcquire::Write(Acquire::Granted {
            lease,
            expire_at_ms,
            fence,
        }) = decide(holds(None, 0, false), Mode::Write, false)
        else {
            panic!("a free lock goes to the writer");
        };
        assert_eq!((lease.token, lease.holds, fence), (8, 1, Some(8)));
        assert_eq!(expire_at_ms, 10_500);
        let again = decide(holds(Some(lease), 0, false), Mode::Write, false);
        let RwAcquire::Write(Acquire::Granted { lease, fence, .. }) = again else {
            panic!("the writer re-enters");
        };
        assert_eq!((lease.token, lease.holds, fence), (8, 2, None));
    }

    #[test]
    fn with_waiters_only_a_refresh_is_granted_at_once() {
        // A reader arriving behind a waiting writer waits, though only readers hold the lock.
        assert_eq!(
            decide(holds(None, 2, false), Mode::Read, true),
            RwAcquire::Busy
        );
        assert_eq!(
            decide(holds(None, 0, false), Mode::Write, true),
            RwAcquire::Busy
        );
        // Refreshing one's own hold overtakes nobody.
        assert!(matches!(
            decide(holds(None, 2, true), Mode::Read, true),
            RwAcquire::Read { .. }
        ));
        let own = Some(lease("a", 5, 1));
        assert!(matches!(
            decide(holds(own, 0, false), Mode::Write, true),
            RwAcquire::Write(Acquire::Granted { .. })
        ));
    }

    #[test]
    fn the_lease_follows_the_injected_clock() {
        for now in [0, 1, 1 << 40] {
            let got = rw_acquire(holds(None, 0, false), 0, Mode::Read, b"a", 250, now, false);
            assert_eq!(
                got.unwrap(),
                RwAcquire::Read {
                    expire_at_ms: now + 250
                }
            );
        }
    }

    #[test]
    fn modes_and_keys() {
        assert_eq!(parse_mode(b"read").unwrap(), Mode::Read);
        assert_eq!(parse_mode(b"WRITE").unwrap(), Mode::Write);
        assert_eq!(parse_mode(b"Write").unwrap(), Mode::Write);
        assert_eq!(parse_mode(b"BOTH").unwrap_err(), CmdError::Syntax);
        assert_eq!(writer_key(b"doc").unwrap(), b"{doc}:writer");
        assert_eq!(writer_key(b"doc:{7}").unwrap(), b"doc:{7}:writer");
        assert!(writer_key(b"a{b").is_err());
        assert!(writer_key(b"").is_err());
    }

    #[test]
    fn exhausted_counters_are_errors() {
        let err = rw_acquire(
            holds(None, 0, false),
            i64::MAX,
            Mode::Write,
            b"a",
            1,
            0,
            false,
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "ERR the fencing counter is exhausted"
        );
    }
}

#[test]
fn wait_absent_is_told_from_every_timeout() {
    // Absent, WAIT reads as NO_WAIT, which no accepted timeout (0 or more) equals.
    let once: [&[u8]; 2] = [b"me", b"1000"];
    assert_eq!(ACQUIRE.parse(&once).unwrap().int("WAIT"), NO_WAIT);
    for timeout in ["0", "1"] {
        let waits: [&[u8]; 4] = [b"me", b"1000", b"WAIT", timeout.as_bytes()];
        let read = ACQUIRE.parse(&waits).unwrap().int("WAIT");
        assert_ne!(read, NO_WAIT, "WAIT {timeout}");
    }
}

#[test]
fn a_queue_with_waiters_is_not_empty() {
    let mut q = WaitQueue::default();
    assert!(q.is_empty());
    q.push("a");
    assert!(!q.is_empty());
}

#[test]
fn the_write_hold_is_fenced_by_its_own_counter_in_the_key_slot() {
    use super::rw::rw_fence_key;
    use crate::keys::slot;
    assert_eq!(rw_fence_key(b"doc").unwrap(), b"{doc}:writer:fence");
    assert_eq!(rw_fence_key(b"doc:{7}").unwrap(), b"doc:{7}:writer:fence");
    assert_eq!(slot(&rw_fence_key(b"doc").unwrap()), slot(b"doc"));
    assert!(rw_fence_key(b"a{b").is_err());
}

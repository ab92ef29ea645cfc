//! The table: a row per command, by family: how to call it validly, the keys the call
//! touches, and what it must answer and leave. A new family adds its rows here (and its
//! workload and twin calling convention in its own file).

use crate::*;
use patterns_core::keys::ID_LEN;
use patterns_core::queue::PARKED;

// ---------------------------------------------------------------------------------------------
// Rate limiting

/// A fixed window no scenario reaches the end of. Windows start at multiples of their length,
/// so a 60 s window's end can fall between a row's call and its check (or the call its setup
/// made), and its key is gone; this one (about 317 years) ends in 2286. The other limits'
/// keys live 60 s from the call.
const FAR_WINDOW_MS: &str = "10000000000000";

pub fn ratelimit() -> Vec<Row> {
    use patterns_core::ratelimit::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, k| Call::new(&["RL.TOKENBUCKET", k, "5", "1", "60000"], &[k], &[]),
            check: |c, call, v| admitted(c, call, v, &[1, 5, 4]),
        },
        Row {
            def: COMMANDS[1],
            call: |_, k| Call::new(&["RL.FIXEDWINDOW", k, "5", FAR_WINDOW_MS], &[k], &[]),
            check: |c, call, v| admitted(c, call, v, &[1, 5, 4]),
        },
        Row {
            def: COMMANDS[2],
            call: |_, k| Call::new(&["RL.SLIDINGWINDOW", k, "3", "60000", "EXACT"], &[k], &[]),
            check: |c, call, v| admitted(c, call, v, &[1, 3, 2]),
        },
        Row {
            def: COMMANDS[3],
            call: |_, k| Call::new(&["CL.THROTTLE", k, "1", "1", "60"], &[k], &[]),
            check: |c, call, v| admitted(c, call, v, &[0, 2, 1]),
        },
        // Every kind of limit at once, the keys in one slot: all admit, each consumes.
        Row {
            def: COMMANDS[4],
            call: |_, k| {
                let (b, c) = (derived(k, "fw"), derived(k, "ex"));
                Call::new(
                    &[
                        "RL.ALL",
                        "TOKENBUCKET",
                        k,
                        "5",
                        "1",
                        "60000",
                        "COST",
                        "2",
                        "FIXEDWINDOW",
                        &b,
                        "5",
                        FAR_WINDOW_MS,
                        "SLIDINGWINDOW",
                        &c,
                        "3",
                        "60000",
                        "EXACT",
                    ],
                    &[k, &b, &c],
                    &[],
                )
            },
            check: |c, call, v| {
                let Value::Array(items) = v else {
                    panic!("{v:?}")
                };
                assert_eq!(ints(&Value::Array(items[..2].to_vec())), [1, 0]);
                let heads: Vec<Vec<i64>> =
                    items[2..].iter().map(|f| ints(f)[..3].to_vec()).collect();
                assert_eq!(heads, [[1, 5, 3], [1, 5, 4], [1, 3, 2]], "{:?}", call.argv);
                for key in &call.keys {
                    assert_eq!(query::<i64>(c, &["EXISTS", key]), 1, "{key}");
                }
            },
        },
        // A refund after consumption: the counts go back.
        Row {
            def: COMMANDS[5],
            call: |c, k| {
                let b = derived(k, "fw");
                let _: Vec<i64> =
                    query(c, &["RL.FIXEDWINDOW", &b, "5", FAR_WINDOW_MS, "COST", "3"]);
                let _: Vec<i64> = query(c, &["RL.TOKENBUCKET", k, "5", "1", "60000", "COST", "4"]);
                Call::new(
                    &[
                        "RL.REFUND",
                        "FIXEDWINDOW",
                        &b,
                        "5",
                        FAR_WINDOW_MS,
                        "COST",
                        "2",
                        "TOKENBUCKET",
                        k,
                        "5",
                        "1",
                        "60000",
                        "COST",
                        "1",
                    ],
                    &[&b, k],
                    &[],
                )
            },
            check: |c, call, v| {
                assert_eq!(ints(v), [4, 2], "{:?}", call.argv);
                assert_eq!(query::<String>(c, &["GET", &call.keys[0]]), "1");
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[1]]), 1);
            },
        },
    ]
}

/// An admission on a fresh key: the reply starts with `head`, and the key exists.
fn admitted(c: &mut dyn ConnectionLike, call: &Call, v: &Value, head: &[i64]) {
    assert_eq!(&ints(v)[..3], head, "{:?}", call.argv);
    assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 1);
}

// ---------------------------------------------------------------------------------------------
// Sessions: a session key lives in its index's slot, `{index}:<id>` (or `index:<id>` when the
// index has a hash tag).

pub fn session() -> Vec<Row> {
    use patterns_core::session::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, index| {
                let sessions = derived(index, "*");
                Call::new(
                    &["SESSION.CREATE", index, "60000", "120000", "n", "1"],
                    &[index],
                    &[sessions],
                )
            },
            check: |c, call, v| {
                let key = text(v).expect("a session key");
                assert_session(c, &call.keys[0], &key);
                assert_eq!(query::<i64>(c, &["SESSION.COUNT", &call.keys[0]]), 1);
            },
        },
        Row {
            def: COMMANDS[1],
            call: |c, index| {
                let key = create(c, index);
                Call::new(&["SESSION.GET", &key], &[&key], &[index.to_string()])
            },
            check: |_, _, v| {
                let fields: Vec<String> = redis::from_redis_value(v).unwrap();
                assert_eq!(fields, ["n", "1"]);
            },
        },
        Row {
            def: COMMANDS[2],
            call: |c, index| {
                let key = create(c, index);
                Call::new(
                    &["SESSION.SET", &key, "f", "v"],
                    &[&key],
                    &[index.to_string()],
                )
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(1));
                assert_eq!(query::<String>(c, &["HGET", &call.keys[0], "f"]), "v");
            },
        },
        Row {
            def: COMMANDS[3],
            call: |c, index| {
                let key = create(c, index);
                let sessions = derived(index, "*");
                Call::new(
                    &["SESSION.ROTATE", &key],
                    &[&key],
                    &[index.to_string(), sessions],
                )
            },
            check: |c, call, v| {
                let new = text(v).expect("the new key");
                assert_ne!(new, call.keys[0]);
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                assert_session(c, index_of(call), &new);
            },
        },
        Row {
            def: COMMANDS[4],
            call: |c, index| {
                let key = create(c, index);
                Call::new(&["SESSION.DESTROY", &key], &[&key], &[index.to_string()])
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(1));
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
            },
        },
        Row {
            def: COMMANDS[5],
            call: |c, index| {
                create(c, index);
                Call::new(
                    &["SESSION.DESTROYALL", index],
                    &[index],
                    &[derived(index, "*")],
                )
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(1));
                assert_eq!(query::<i64>(c, &["SESSION.COUNT", &call.keys[0]]), 0);
            },
        },
        Row {
            def: COMMANDS[6],
            call: |c, index| {
                create(c, index);
                Call::new(&["SESSION.LIST", index], &[index], &[])
            },
            check: |_, call, v| {
                let keys: Vec<String> = redis::from_redis_value(v).unwrap();
                assert_eq!(keys.len(), 1, "{keys:?}");
                assert!(keys[0].starts_with(&derived(&call.keys[0], "")), "{keys:?}");
            },
        },
        Row {
            def: COMMANDS[7],
            call: |c, index| {
                create(c, index);
                Call::new(&["SESSION.COUNT", index], &[index], &[])
            },
            check: |_, _, v| {
                assert_eq!(v, &Value::Int(1));
            },
        },
    ]
}

/// A session of `index` with one field, made by the admin.
fn create(c: &mut dyn ConnectionLike, index: &str) -> String {
    query(c, &["SESSION.CREATE", index, "60000", "120000", "n", "1"])
}

/// The index a session key of the row's base belongs to: the call's derived key.
fn index_of(call: &Call) -> &str {
    &call.derived[0]
}

/// `key` is a session of `index`, holding the row's field.
fn assert_session(c: &mut dyn ConnectionLike, index: &str, key: &str) {
    let id = key
        .strip_prefix(&derived(index, ""))
        .unwrap_or_else(|| panic!("{key} is not a session key of {index}"));
    assert_eq!(id.len(), ID_LEN, "{key}");
    let fields: Vec<String> = query(c, &["SESSION.GET", key]);
    assert_eq!(fields, ["n", "1"]);
}

// ---------------------------------------------------------------------------------------------
// Leaderboards: a board's tie-break keys live in its slot, `{board}:lb-order`, `lb-stamps`,
// `lb-scores` and `lb-names` (or `board:lb-...` with a hash tag).

pub fn leaderboard() -> Vec<Row> {
    use patterns_core::leaderboard::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, k| {
                let argv = ["LB.ADD", k, "5", "a", "5", "b", "7", "c"];
                Call::new(&argv, &[k], &tie_break_keys(k))
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(3));
                // A new board: no names key (only a board that held ZADD members has one), and
                // no stamps key (its score groups are small: found by scanning).
                for key in &call.derived {
                    let want = i64::from(!key.ends_with("lb-names") && !key.ends_with("lb-stamps"));
                    assert_eq!(query::<i64>(c, &["EXISTS", key]), want, "{key}");
                }
            },
        },
        Row {
            def: COMMANDS[1],
            call: |c, k| {
                board(c, k);
                read(&["LB.INCR", k, "2", "a"])
            },
            check: |c, call, v| {
                assert_eq!(text(v).as_deref(), Some("7"));
                let top: Value = query(c, &["LB.TOP", &call.keys[0], "1"]);
                assert_eq!(entries(&top), [entry(1, "c", "7")], "c reached 7 first");
            },
        },
        Row {
            def: COMMANDS[2],
            call: |c, k| {
                board(c, k);
                read(&["LB.REM", k, "a"])
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(1));
                assert_eq!(query::<i64>(c, &["ZCARD", &call.keys[0]]), 2);
            },
        },
        Row {
            def: COMMANDS[3],
            call: |c, k| {
                board(c, k);
                read(&["LB.TOP", k, "3"])
            },
            check: |_, _, v| {
                let want = [entry(1, "c", "7"), entry(2, "a", "5"), entry(3, "b", "5")];
                assert_eq!(entries(v), want);
            },
        },
        Row {
            def: COMMANDS[4],
            call: |c, k| {
                board(c, k);
                read(&["LB.RANK", k, "b"])
            },
            check: |_, _, v| {
                let rank: (i64, String, i64) = redis::from_redis_value(v).unwrap();
                assert_eq!(rank, (3, "5".into(), 3));
            },
        },
        Row {
            def: COMMANDS[5],
            call: |c, k| {
                board(c, k);
                read(&["LB.AROUND", k, "a", "2", "ASC"])
            },
            check: |_, _, v| {
                assert_eq!(entries(v), [entry(1, "a", "5"), entry(2, "b", "5")]);
            },
        },
        Row {
            def: COMMANDS[6],
            call: |c, k| {
                board(c, k);
                read(&["LB.PAGE", k, "1", "2"])
            },
            check: |_, _, v| {
                let (pages, page): (i64, Value) = redis::from_redis_value(v).unwrap();
                assert_eq!(pages, 2);
                assert_eq!(entries(&page), [entry(1, "c", "7"), entry(2, "a", "5")]);
            },
        },
        Row {
            def: COMMANDS[7],
            // The percentile reads the board only.
            call: |c, k| {
                board(c, k);
                Call::new(&["LB.PERCENTILE", k, "c"], &[k], &[])
            },
            check: |_, _, v| {
                let share: f64 = text(v).unwrap().parse().unwrap();
                assert!((share - 200.0 / 3.0).abs() < 1e-9, "{share}");
            },
        },
    ]
}

/// c (7) first, then a and b (5, in arrival order).
fn board(c: &mut dyn ConnectionLike, key: &str) {
    assert_eq!(
        query::<i64>(c, &["LB.ADD", key, "5", "a", "5", "b", "7", "c"]),
        3
    );
}

pub fn tie_break_keys(board: &str) -> Vec<String> {
    ["lb-order", "lb-stamps", "lb-scores", "lb-names"]
        .iter()
        .map(|s| derived(board, s))
        .collect()
}

/// A read of the row's board.
fn read(argv: &[&str]) -> Call {
    Call::new(argv, &[argv[1]], &tie_break_keys(argv[1]))
}

/// Entries as replied: (rank, member, score).
fn entries(v: &Value) -> Vec<(i64, String, String)> {
    redis::from_redis_value(v).unwrap_or_else(|e| panic!("{e}: {v:?}"))
}

fn entry(rank: i64, member: &str, score: &str) -> (i64, String, String) {
    (rank, member.into(), score.into())
}

// ---------------------------------------------------------------------------------------------
// Tagged caching: tags are declared keys (the row's tags share its key's slot), and
// CACHE.INVALIDATE also deletes the keys its tags list.

pub fn cache() -> Vec<Row> {
    use patterns_core::cache::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, k| {
                let (t1, t2) = (derived(k, "t1"), derived(k, "t2"));
                Call::new(
                    &["CACHE.SET", k, "v", "60000", "TAGS", &t1, &t2],
                    &[k, &t1, &t2],
                    &[],
                )
            },
            check: ok,
        },
        Row {
            def: COMMANDS[1],
            call: |c, k| {
                set(c, &[k, "v", "60000"]);
                Call::new(&["CACHE.GET", k], &[k], &[])
            },
            check: |_, _, v| {
                let (state, value, extra): (String, String, Option<String>) =
                    redis::from_redis_value(v).unwrap();
                assert_eq!((state.as_str(), value.as_str(), extra), ("HIT", "v", None));
            },
        },
        Row {
            def: COMMANDS[2],
            call: |c, k| {
                let (state, _, lease): (String, Option<String>, String) =
                    query(c, &["CACHE.GET", k]);
                assert_eq!(state, "MISS");
                let t1 = derived(k, "t1");
                Call::new(
                    &["CACHE.FILL", k, &lease, "v", "60000", "TAGS", &t1],
                    &[k, &t1],
                    &[],
                )
            },
            check: ok,
        },
        Row {
            def: COMMANDS[3],
            call: |c, k| {
                set(c, &[k, "v", "60000"]);
                let t1 = derived(k, "t1");
                Call::new(&["CACHE.TAG", k, &t1], &[k, &t1], &[])
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(1));
                assert_cached(c, &call.keys[0], Some(&call.keys[1]));
            },
        },
        Row {
            def: COMMANDS[4],
            // The tags' listed keys are touched too.
            call: |c, k| {
                let (t1, t2, other) = (derived(k, "t1"), derived(k, "t2"), derived(k, "e2"));
                set(c, &[k, "v", "60000", "TAGS", &t1]);
                set(c, &[&other, "v", "60000", "TAGS", &t2]);
                Call::new(
                    &["CACHE.INVALIDATE", &t1, &t2],
                    &[&t1, &t2],
                    &[k.into(), other],
                )
            },
            check: |c, call, v| {
                assert_eq!(v, &Value::Int(2));
                for key in &call.derived {
                    assert_eq!(query::<i64>(c, &["EXISTS", key]), 0, "{key}");
                }
            },
        },
    ]
}

pub fn set(c: &mut dyn ConnectionLike, args: &[&str]) {
    let mut argv = vec!["CACHE.SET"];
    argv.extend_from_slice(args);
    assert_eq!(query::<String>(c, &argv), "OK");
}

/// `key` holds `value`, listed under `tag` when one is given.
fn assert_cached(c: &mut dyn ConnectionLike, key: &str, tag: Option<&String>) {
    let reply: Value = query(c, &["CACHE.GET", key]);
    let Value::Array(items) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(text(&items[0]).as_deref(), Some("HIT"), "{key}");
    assert_eq!(text(&items[1]).as_deref(), Some("v"), "{key}");
    if let Some(tag) = tag {
        let listed: Option<f64> = query(c, &["ZSCORE", tag, key]);
        assert!(listed.is_some(), "{key} is not listed under {tag}");
    }
}

fn ok(c: &mut dyn ConnectionLike, call: &Call, v: &Value) {
    assert_eq!(text(v).as_deref(), Some("OK"), "{:?}", call.argv);
    assert_cached(c, &call.keys[0], call.keys.get(1));
}

// ---------------------------------------------------------------------------------------------
// Locks and semaphores: a lock's fencing counter lives in its slot, `{lock}:fence` (or
// `lock:fence` when the name has a hash tag).

pub fn lock() -> Vec<Row> {
    use patterns_core::lock::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, k| {
                Call::new(
                    &["LOCK.ACQUIRE", k, "me", "60000"],
                    &[k],
                    &[derived(k, "fence")],
                )
            },
            check: |c, call, v| {
                assert_eq!(query::<i64>(c, &["GET", &call.derived[0]]), 1);
                assert_eq!(query::<String>(c, &["HGET", &call.keys[0], "owner"]), "me");
                one(v)
            },
        },
        Row {
            def: COMMANDS[1],
            call: |c, k| {
                acquire(c, k);
                Call::new(&["LOCK.RELEASE", k, "me"], &[k], &[])
            },
            check: |c, call, v| {
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                one(v)
            },
        },
        Row {
            def: COMMANDS[2],
            call: |c, k| {
                acquire(c, k);
                Call::new(&["LOCK.EXTEND", k, "me", "90000"], &[k], &[])
            },
            check: |c, call, v| {
                assert!(query::<i64>(c, &["PTTL", &call.keys[0]]) > 60_000);
                one(v)
            },
        },
        Row {
            def: COMMANDS[3],
            call: |c, k| {
                acquire(c, k);
                Call::new(&["LOCK.INFO", k], &[k], &[])
            },
            check: |_, _, v| {
                let info: Vec<Value> = redis::from_redis_value(v).unwrap();
                assert_eq!(text(&info[0]).as_deref(), Some("owner"));
                assert_eq!(text(&info[1]).as_deref(), Some("me"));
            },
        },
        Row {
            def: COMMANDS[4],
            call: |_, k| Call::new(&["LOCK.FENCEDHSET", k, "1", "f", "v"], &[k], &[]),
            check: |c, call, v| {
                assert_eq!(query::<String>(c, &["HGET", &call.keys[0], "f"]), "v");
                one(v)
            },
        },
        Row {
            def: COMMANDS[5],
            call: |_, k| Call::new(&["SEM.ACQUIRE", k, "me", "1", "60000"], &[k], &[]),
            check: |c, call, v| {
                assert_eq!(query::<i64>(c, &["SEM.COUNT", &call.keys[0]]), 1);
                one(v)
            },
        },
        Row {
            def: COMMANDS[6],
            call: |c, k| {
                acquire_permit(c, k);
                Call::new(&["SEM.RELEASE", k, "me"], &[k], &[])
            },
            check: |c, call, v| {
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                one(v)
            },
        },
        Row {
            def: COMMANDS[7],
            call: |c, k| {
                acquire_permit(c, k);
                Call::new(&["SEM.COUNT", k], &[k], &[])
            },
            check: |_, _, v| one(v),
        },
        Row {
            def: COMMANDS[8],
            call: |_, k| {
                let argv = ["RWLOCK.ACQUIRE", k, "me", "60000", "WRITE"];
                Call::new(
                    &argv,
                    &[k],
                    &[derived(k, "writer"), derived(k, "writer:fence")],
                )
            },
            check: |c, call, v| {
                assert_eq!(
                    query::<String>(c, &["HGET", &call.derived[0], "owner"]),
                    "me"
                );
                assert_eq!(query::<i64>(c, &["GET", &call.derived[1]]), 1);
                one(v)
            },
        },
        Row {
            def: COMMANDS[9],
            call: |c, k| {
                read_hold(c, k);
                Call::new(&["RWLOCK.RELEASE", k, "me"], &[k], &[derived(k, "writer")])
            },
            check: |c, call, v| {
                assert_eq!(query::<i64>(c, &["EXISTS", &call.keys[0]]), 0);
                one(v)
            },
        },
        Row {
            def: COMMANDS[10],
            call: |c, k| {
                read_hold(c, k);
                let argv = ["RWLOCK.EXTEND", k, "me", "90000"];
                Call::new(&argv, &[k], &[derived(k, "writer")])
            },
            check: |c, call, v| {
                assert!(query::<i64>(c, &["PTTL", &call.keys[0]]) > 60_000);
                one(v)
            },
        },
        Row {
            def: COMMANDS[11],
            call: |c, k| {
                read_hold(c, k);
                Call::new(&["RWLOCK.INFO", k], &[k], &[derived(k, "writer")])
            },
            check: |_, _, v| {
                let info: Vec<Value> = redis::from_redis_value(v).unwrap();
                assert_eq!(text(&info[0]).as_deref(), Some("mode"));
                assert_eq!(text(&info[1]).as_deref(), Some("read"));
            },
        },
    ]
}

fn read_hold(c: &mut dyn ConnectionLike, key: &str) {
    let argv = ["RWLOCK.ACQUIRE", key, "me", "60000", "READ"];
    assert_eq!(query::<i64>(c, &argv), 1);
}

fn acquire(c: &mut dyn ConnectionLike, key: &str) {
    assert_eq!(query::<i64>(c, &["LOCK.ACQUIRE", key, "me", "60000"]), 1);
}

fn acquire_permit(c: &mut dyn ConnectionLike, key: &str) {
    assert_eq!(
        query::<i64>(c, &["SEM.ACQUIRE", key, "me", "1", "60000"]),
        1
    );
}

fn one(v: &Value) {
    assert_eq!(v, &Value::Int(1));
}

// ---------------------------------------------------------------------------------------------
// Queues: a queue's group leases, dead letters and dedupe ids live in its slot,
// `{queue}:leases:<group>`, `{queue}:dead`, `{queue}:dedupe:<id>` (or `queue:...` with a hash
// tag). Every group command checks the user may use the group's leases and the dead letters.

pub fn queue() -> Vec<Row> {
    use patterns_core::queue::COMMANDS;
    vec![
        Row {
            def: COMMANDS[0],
            call: |_, q| {
                let argv = ["QUEUE.PUSH", q, "p", "DEDUPE", "d", "60000"];
                Call::new(&argv, &[q], &[derived(q, "dedupe:d")])
            },
            check: |c, call, v| {
                let id = text(v).expect("a job id");
                let entries: Vec<(String, Vec<String>)> =
                    query(c, &["XRANGE", &call.keys[0], "-", "+"]);
                assert_eq!(entries, [(id.clone(), strings(&["payload", "p"]))]);
                assert_eq!(query::<String>(c, &["GET", &call.derived[0]]), id);
            },
        },
        Row {
            def: COMMANDS[1],
            call: |c, q| {
                push_job(c, q);
                group_call(&["QUEUE.POP", q, "g", "w", "LEASE", "60000"])
            },
            check: |c, call, v| {
                let jobs: Vec<(String, String, i64)> = redis::from_redis_value(v).unwrap();
                let [(id, payload, deliveries)] = &jobs[..] else {
                    panic!("{jobs:?}")
                };
                assert_eq!((payload.as_str(), *deliveries), ("p", 1));
                assert_eq!(pending_of(c, call), [(id.clone(), "w".to_string(), 1)]);
                let lease_end: i64 = query(c, &["ZSCORE", &call.derived[0], id]);
                assert!(lease_end > now_ms(c) + 50_000, "{lease_end}");
            },
        },
        Row {
            def: COMMANDS[2],
            call: |c, q| {
                let id = pop_job(c, q, "60000");
                group_call(&["QUEUE.ACK", q, "g", &id])
            },
            check: |c, call, v| {
                one(v);
                assert!(pending_of(c, call).is_empty());
                // Done by its only group: trimmed, its lease gone.
                assert_eq!(query::<i64>(c, &["XLEN", &call.keys[0]]), 0);
                assert_eq!(query::<i64>(c, &["EXISTS", &call.derived[0]]), 0);
            },
        },
        Row {
            def: COMMANDS[3],
            call: |c, q| {
                let id = pop_job(c, q, "60000");
                group_call(&["QUEUE.NACK", q, "g", &id, "DELAY", "60000"])
            },
            check: |c, call, v| {
                one(v);
                let [(id, who, deliveries)] = &pending_of(c, call)[..] else {
                    panic!("one pending job")
                };
                assert_eq!((who.as_str(), *deliveries), (PARKED, 1));
                let due: i64 = query(c, &["ZSCORE", &call.derived[0], id]);
                assert!(due > now_ms(c) + 50_000, "{due}");
            },
        },
        Row {
            def: COMMANDS[4],
            call: |c, q| {
                let id = pop_job(c, q, "1000");
                group_call(&["QUEUE.EXTEND", q, "g", "w", &id, "90000"])
            },
            check: |c, call, v| {
                one(v);
                let lease_end: i64 = query(c, &["ZSCORE", &call.derived[0], &call.argv[4]]);
                assert!(lease_end > now_ms(c) + 80_000, "{lease_end}");
            },
        },
        Row {
            def: COMMANDS[5],
            call: |c, q| {
                // Nacked once, the job is past MAXDELIVERIES 1 at the next POP: dead.
                let id = pop_job(c, q, "60000");
                assert_eq!(query::<i64>(c, &["QUEUE.NACK", q, "g", &id]), 1);
                let none: Value = query(c, &["QUEUE.POP", q, "g", "w", "MAXDELIVERIES", "1"]);
                assert_eq!(none, Value::Nil);
                group_call(&["QUEUE.REDRIVE", q, "g"])
            },
            check: |c, call, v| {
                one(v);
                assert_eq!(query::<i64>(c, &["XLEN", &call.derived[1]]), 0);
                let stats: Vec<Value> = query(c, &["QUEUE.STATS", &call.keys[0], "g"]);
                assert_eq!(counts(&stats), [1, 0, 0, 0, 1], "ready again");
            },
        },
        Row {
            def: COMMANDS[6],
            call: |c, q| {
                pop_job(c, q, "60000");
                push_job(c, q);
                group_call(&["QUEUE.STATS", q, "g"])
            },
            check: |_, _, v| {
                let stats: Vec<Value> = redis::from_redis_value(v).unwrap();
                let names: Vec<String> = stats.iter().step_by(2).filter_map(text).collect();
                assert_eq!(names, ["ready", "delayed", "pending", "dead", "consumers"]);
                assert_eq!(counts(&stats), [1, 0, 1, 0, 1]);
            },
        },
    ]
}

fn push_job(c: &mut dyn ConnectionLike, q: &str) -> String {
    query(c, &["QUEUE.PUSH", q, "p"])
}

/// A job pushed and delivered to `w` of group `g` for `lease_ms`: its id.
fn pop_job(c: &mut dyn ConnectionLike, q: &str, lease_ms: &str) -> String {
    let id = push_job(c, q);
    let jobs: Vec<(String, String, i64)> = query(c, &["QUEUE.POP", q, "g", "w", "LEASE", lease_ms]);
    assert_eq!(jobs[0].0, id, "{jobs:?}");
    id
}

/// A call on group `g` of `argv[1]`: it touches the group's leases and the dead letters.
fn group_call(argv: &[&str]) -> Call {
    let q = argv[1];
    let derived = [derived(q, "leases:g"), derived(q, "dead")];
    Call::new(argv, &[q], &derived)
}

/// The group's pending jobs: (id, consumer, deliveries).
fn pending_of(c: &mut dyn ConnectionLike, call: &Call) -> Vec<(String, String, i64)> {
    let pending: Vec<(String, String, i64, i64)> =
        query(c, &["XPENDING", &call.keys[0], "g", "-", "+", "10"]);
    pending
        .into_iter()
        .map(|(id, w, _, n)| (id, w, n))
        .collect()
}

/// The counts of a QUEUE.STATS reply.
fn counts(stats: &[Value]) -> Vec<i64> {
    stats
        .iter()
        .skip(1)
        .step_by(2)
        .map(|v| redis::from_redis_value(v).unwrap())
        .collect()
}

/// The server's clock in ms.
fn now_ms(c: &mut dyn ConnectionLike) -> i64 {
    let (s, us): (i64, i64) = query(c, &["TIME"]);
    s * 1000 + us / 1000
}

//! What every command of every family must do, from one table (tests/conformance/<family>.rs:
//! a row per command, a random workload and the Lua twin's calling convention per family), on
//! Redis 7.0 and Valkey 8.0:
//!
//! - COMMAND INFO, COMMAND DOCS and COMMAND GETKEYS come from the command's definition, and
//!   README holds each family's table as the definitions generate it;
//! - in Cluster every key a command touches (declared or derived) lives in its key's slot, and
//!   declared keys in different slots get CROSSSLOT;
//! - ACL key patterns apply to every declared key and to every derived key, and a refused call
//!   writes nothing;
//! - effects replicate (never the command), also from MULTI/EXEC and scripts: the AOF holds no
//!   family command, a replica and an AOF reload hold the primary's bytes after a random
//!   workload (or, for a family whose bytes carry each server's clock, its logical state:
//!   `Family.state`);
//! - the Lua twin answers and writes as the module does on random histories, through FCALL and
//!   EVALSHA.
//!
//! A new family gets all of this by adding its file to `families()`; a command without a row
//! fails `every_command_has_a_row`. Family semantics stay in tests/<family>.rs.

mod common;

/// Each family's rows, workload and twin calling convention: tests/conformance/<family>.rs.
mod conformance {
    pub mod cache;
    pub mod leaderboard;
    pub mod lock;
    pub mod queue;
    pub mod ratelimit;
    pub mod rows;
    pub mod session;
}

use common::*;
use patterns_core::command::{CommandDef, Keys, OptValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{ConnectionLike, Value};
use std::collections::{BTreeMap, BTreeSet};

// ---------------------------------------------------------------------------------------------
// The table

/// One family as the shared scenarios see it.
pub struct Family {
    pub name: &'static str,
    pub commands: &'static [&'static CommandDef],
    pub rows: Vec<Row>,
    /// A random, time-spread workload of mostly valid calls (run on a primary and on an AOF
    /// server), and its seed.
    pub workload: fn(&Server, &mut StdRng),
    pub seed: u64,
    /// The least number of keys the workload leaves, so that a comparison compares something.
    pub min_keys: usize,
    /// PTTL tolerance when a replica's or a reloaded server's keys are compared.
    pub pttl_tolerance_ms: i64,
    /// How a replica's or a reloaded server's keys of this family are compared: the logical
    /// state it makes of a key of a type it claims, else (`by_dump`) DUMP bytes. (The twin
    /// differential always compares bytes: it compares a step only when both servers ran it
    /// in the same millisecond.)
    pub state: Normalize,
    pub twin: Twin,
}

/// One command: how to call it validly, and what that call must answer and leave.
pub struct Row {
    pub def: &'static CommandDef,
    /// Writes what the call needs (as the admin, on names built from `base`) and returns it.
    pub call: fn(&mut dyn ConnectionLike, &str) -> Call,
    /// Asserts the reply to the call on a fresh `base` and the state it leaves (touching only
    /// the call's keys: it also runs as a user limited to them).
    pub check: fn(&mut dyn ConnectionLike, &Call, &Value),
}

/// A valid call and the keys it touches.
pub struct Call {
    /// The command and its arguments.
    pub argv: Vec<String>,
    /// The keys it declares (Cluster routes and ACL checks by them), in argument order.
    pub keys: Vec<String>,
    /// The other keys it reads or writes (in its first key's slot): a glob pattern where the
    /// name is drawn at random (`{index}:*`), and the reply names the key it made.
    pub derived: Vec<String>,
}

impl Call {
    /// The key a reply names when the call made one its derived patterns cover.
    fn named(&self, reply: &Value) -> Option<String> {
        let key = text(reply)?;
        let patterns = self.derived.iter().filter(|p| p.ends_with('*'));
        patterns.clone().any(|p| covers(p, &key)).then_some(key)
    }
}

impl Call {
    pub fn new(argv: &[&str], keys: &[&str], derived: &[String]) -> Call {
        Call {
            argv: strings(argv),
            keys: strings(keys),
            derived: derived.to_vec(),
        }
    }
}

/// The Lua twin's calling convention for a family, and its differential test's parameters.
pub struct Twin {
    /// A random call, valid most of the time, given the module's replies so far (the session
    /// keys and leases it drew).
    pub random_call: fn(&mut StdRng, &[Value]) -> Vec<String>,
    /// The twin's arguments after the function (numkeys, keys, arguments) for a module call,
    /// given the module's reply (the id or lease it drew, which the twin is handed).
    pub args: fn(&[String], &Value) -> Vec<String>,
    /// Writes both servers start from (keys of other types, plain boards).
    pub seed: fn(&mut redis::Connection),
    /// The keys compared after a call, given the module's replies so far.
    pub tracked: fn(&[String], &[Value]) -> Vec<String>,
    /// How far a key's expiry may differ (the clock may tick between two relative TTLs).
    pub tolerance_ms: i64,
    /// Makes what each server read from its own clock below the millisecond equal on the
    /// twin's key (module, twin, key) before keys are compared; most families read none.
    pub align: fn(&mut redis::Connection, &mut redis::Connection, &str),
    /// A reply's kind, and how many of each kind a history must compare at least.
    pub kind: fn(&Value) -> String,
    pub least: &'static [(&'static str, usize)],
    /// The random histories' seeds, by path (FCALL, EVALSHA), on every flavor; their length.
    pub seeds: [u64; 2],
    pub steps: usize,
    /// How often a step is followed by a pause, and its longest length in ms.
    pub pause: (f64, u64),
}

/// A reply's kind for the twin's tally: an error, nil, or what `rest` calls it.
pub fn error_nil_or(v: &Value, rest: fn(&Value) -> &'static str) -> String {
    match v {
        Value::ServerError(_) => "error",
        Value::Nil => "nil",
        other => rest(other),
    }
    .into()
}

/// Every key compared by its DUMP bytes.
pub fn by_dump(_: &mut redis::Connection, _: &str, _: &str) -> Option<Vec<u8>> {
    None
}

/// A server's keys as they are compared across servers: DUMP bytes, or the logical state the
/// family claiming the key's type makes of it.
fn comparable(c: &mut redis::Connection) -> Snapshot {
    let mut keys = snapshot(c);
    let families = families();
    for (key, state) in keys.iter_mut() {
        let name = String::from_utf8_lossy(key).into_owned();
        if let Some(logical) = families
            .iter()
            .find_map(|f| (f.state)(c, &name, &state.kind))
        {
            state.dump = logical;
        }
    }
    keys
}

pub fn families() -> Vec<Family> {
    vec![
        conformance::ratelimit::family(),
        conformance::session::family(),
        conformance::leaderboard::family(),
        conformance::cache::family(),
        conformance::lock::family(),
        conformance::queue::family(),
    ]
}

fn rows() -> Vec<Row> {
    families().into_iter().flat_map(|f| f.rows).collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers the rows use

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A key derived from `key` in its slot, as README's key layout puts it: `key:suffix` when
/// `key` has a hash tag, `{key}:suffix` otherwise.
pub fn derived(key: &str, suffix: &str) -> String {
    let tagged = key
        .find('{')
        .is_some_and(|open| key[open + 1..].find('}').is_some_and(|len| len > 0));
    if tagged {
        format!("{key}:{suffix}")
    } else {
        format!("{{{key}}}:{suffix}")
    }
}

/// The reply to `args`, or its error as wire text (`NOPERM ...`).
pub fn send(c: &mut dyn ConnectionLike, args: &[String]) -> Result<Value, String> {
    let mut cmd = redis::cmd(&args[0]);
    cmd.arg(&args[1..]);
    cmd.query::<Value>(c).map_err(|e| match e.detail() {
        Some(d) => format!("{} {d}", e.code().unwrap_or("")),
        None => e.to_string(),
    })
}

/// Integers of an array reply.
pub fn ints(v: &Value) -> Vec<i64> {
    redis::from_redis_value(v).unwrap_or_else(|e| panic!("{e}: {v:?}"))
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// Bases for a row's calls: one with a hash tag, one without (their derived keys differ).
/// Neither contains the other, nor another row's.
fn bases(scenario: &str, i: usize) -> [String; 2] {
    [
        format!("{scenario}{i}t:{{t{i}}}"),
        format!("{scenario}{i}p"),
    ]
}

/// Sets up and makes `row`'s call on `base`, checks it, and returns it with the key its reply
/// names.
fn call_and_check(c: &mut dyn ConnectionLike, row: &Row, base: &str) -> (Call, Option<String>) {
    let call = (row.call)(c, base);
    let reply = send(c, &call.argv).unwrap_or_else(|e| panic!("{:?}: {e}", call.argv));
    (row.check)(c, &call, &reply);
    let named = call.named(&reply);
    (call, named)
}

#[test]
fn every_command_has_a_row() {
    let families = families();
    let mut defined: Vec<&str> = patterns_core::lua::families()
        .iter()
        .flat_map(|f| f.commands.iter().map(|c| c.def.name))
        .collect();
    let mut covered: Vec<&str> = families
        .iter()
        .flat_map(|f| f.commands.iter().map(|d| d.name))
        .collect();
    defined.sort_unstable();
    covered.sort_unstable();
    assert_eq!(covered, defined, "a family is missing from families()");
    for family in &families {
        let rows: Vec<&str> = family.rows.iter().map(|r| r.def.name).collect();
        let commands: Vec<&str> = family.commands.iter().map(|d| d.name).collect();
        assert_eq!(
            rows, commands,
            "{}: one row per command, in order",
            family.name
        );
    }
}

#[test]
fn readme_holds_every_familys_table() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    for family in families() {
        let table = patterns_core::command::markdown_table(family.commands);
        assert!(
            readme.contains(&table),
            "README's {} table is stale; `cargo run -p patterns-core --bin patterns-lua -- --readme` prints it:\n{table}",
            family.name
        );
    }
}

/// The words COMMAND DOCS must show for a definition's arguments: every positional's name,
/// every option's token (each word of `ASC|DESC`) and every trailing group's names.
fn argument_words(def: &CommandDef) -> Vec<&'static str> {
    let mut words: Vec<&'static str> = def.positionals.iter().map(|p| p.arg.name).collect();
    for option in def.options {
        words.extend(option.token.split('|'));
        if let OptValue::Choice(choices) | OptValue::Word(choices) = option.value {
            words.extend(choices);
        }
    }
    if let Some(trailing) = def.trailing {
        words.extend(trailing.names);
    }
    // A command of blocks: each kind's token, then its own command's words.
    if let Keys::Blocks { name, kinds } = def.key_positions {
        words.push(name);
        for kind in kinds {
            words.push(kind.token);
            words.extend(argument_words(kind.def));
        }
    }
    words
}

/// Whether the definition takes a list (`[tag ...]`, `[field value ...]`).
fn takes_a_list(def: &CommandDef) -> bool {
    def.trailing.is_some()
        || def.key_positions == Keys::All
        || matches!(def.key_positions, Keys::Blocks { .. })
        || def
            .options
            .iter()
            .any(|o| matches!(o.value, OptValue::Rest { .. }))
}

#[test]
fn command_info_docs_and_keys_come_from_the_definitions() {
    for_each_server(|_, mut c| {
        for (i, row) in rows().iter().enumerate() {
            let def = row.def;
            let name = def.name.to_ascii_lowercase();
            let info: Value = query(&mut c, &["COMMAND", "INFO", &name]);
            let Value::Array(info) = info else {
                panic!("{name}: {info:?}")
            };
            let Some(Value::Array(entry)) = info.first() else {
                panic!("{name} is not registered")
            };
            let arity: i64 = redis::from_redis_value(&entry[1]).unwrap();
            assert_eq!(arity, i64::from(def.arity()), "{name}");
            let info_text = format!("{entry:?}");
            if let Keys::FirstAndAfter { token, .. } = def.key_positions {
                assert!(
                    info_text.contains("keyword") && info_text.contains(token),
                    "{name}: the key spec searches for {token}: {info_text}"
                );
            }
            let docs: Value = query(&mut c, &["COMMAND", "DOCS", &name]);
            let docs = format!("{docs:?}");
            for word in [def.summary, def.complexity, "key_spec_index"]
                .into_iter()
                .chain(argument_words(def))
            {
                assert!(docs.contains(word), "{name}: {word:?} not in {docs}");
            }
            assert_eq!(
                docs.contains("multiple"),
                takes_a_list(def),
                "{name}: {docs}"
            );
            // The server finds the keys the definition declares.
            let [base, _] = bases("docs", i);
            let call = (row.call)(&mut c, &base);
            let mut getkeys = strings(&["COMMAND", "GETKEYS"]);
            getkeys.extend(call.argv.iter().cloned());
            let keys: Vec<String> = redis::from_redis_value(
                &send(&mut c, &getkeys).unwrap_or_else(|e| panic!("{getkeys:?}: {e}")),
            )
            .unwrap();
            assert_eq!(keys, call.keys, "{:?}", call.argv);
        }
    });
}

/// The server's slot for `key`.
fn keyslot(node: &mut redis::Connection, key: &str) -> i64 {
    query(node, &["CLUSTER", "KEYSLOT", key])
}

/// Every key on any node, with the port of the node holding it.
fn cluster_keys(cluster: &Cluster) -> BTreeMap<String, u16> {
    let mut keys = BTreeMap::new();
    for node in &cluster.nodes {
        let found: Vec<String> = query(&mut node.conn(), &["KEYS", "*"]);
        keys.extend(found.into_iter().map(|k| (k, node.port())));
    }
    keys
}

#[test]
fn cluster_keeps_every_key_a_command_touches_in_its_slot() {
    for flavor in flavors() {
        let cluster = Cluster::start(flavor);
        let mut c = cluster.client();
        let mut any = cluster.nodes[0].conn();
        for (i, row) in rows().iter().enumerate() {
            for base in bases("cl", i) {
                let (call, named) = call_and_check(&mut c, row, &base);
                let context = format!("{:?}", call.argv);
                let slot = keyslot(&mut any, &call.keys[0]);
                let exact = call.derived.iter().filter(|k| !k.ends_with('*'));
                for key in call.keys.iter().chain(exact).chain(&named) {
                    assert_eq!(keyslot(&mut any, key), slot, "{key} of {context}");
                }
                // What the call left lives on the node serving that slot.
                let owner = cluster.node_for_key(call.keys[0].as_bytes()).port();
                for (key, port) in cluster_keys(&cluster) {
                    if key.contains(&base) {
                        assert_eq!(port, owner, "{key} after {context}");
                    }
                }
                // Declared keys in two slots: the server refuses before the module runs.
                if call.keys.len() > 1 {
                    let mut crossed = call.argv.clone();
                    let last = crossed.iter().rposition(|a| a == call.keys.last().unwrap());
                    crossed[last.unwrap()] = format!("{{elsewhere{i}}}");
                    assert_ne!(keyslot(&mut any, &crossed[last.unwrap()]), slot);
                    let mut node = cluster.node_for_key(call.keys[0].as_bytes()).conn();
                    let error = send(&mut node, &crossed).expect_err(&context);
                    assert!(
                        error.to_ascii_uppercase().contains("CROSSSLOT"),
                        "{context}: {error}"
                    );
                }
            }
        }
    }
}

/// The module's refusal of a derived key, in the server's own words.
const NOPERM: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// Whether an ACL key pattern (a name, or a prefix and `*`) covers `key`.
fn covers(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => pattern == key,
    }
}

#[test]
fn acl_key_patterns_apply_to_declared_and_derived_keys() {
    for_each_server(|server, mut admin| {
        let mut users = 0;
        let mut user_for = |keys: &mut dyn Iterator<Item = &String>| {
            users += 1;
            let patterns: Vec<String> = keys.map(|k| format!("~{k}")).collect();
            let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
            login(&server, &format!("user{users}"), &patterns)
        };
        for (i, row) in rows().iter().enumerate() {
            for base in bases("acl", i) {
                let call = (row.call)(&mut admin, &base);
                let context = format!("{:?}", call.argv);
                let before = snapshot(&mut admin);
                // Every declared key is checked: a user with all the others is refused.
                for (j, missing) in call.keys.iter().enumerate() {
                    let others = call.keys.iter().enumerate().filter(|(i, _)| *i != j);
                    let uncovered = call.derived.iter().filter(|p| !covers(p, missing));
                    let mut user = user_for(&mut others.map(|(_, k)| k).chain(uncovered));
                    let error = send(&mut user, &call.argv).expect_err(&context);
                    assert!(error.starts_with("NOPERM"), "{context}: {error}");
                }
                // And every derived key, by the module.
                if !call.derived.is_empty() {
                    let mut user = user_for(&mut call.keys.iter());
                    assert_eq!(send(&mut user, &call.argv), Err(NOPERM.into()), "{context}");
                }
                assert_same_state(&before, &snapshot(&mut admin), 100);
                // With all of them, the call goes through.
                let mut user = user_for(&mut call.keys.iter().chain(&call.derived));
                let reply =
                    send(&mut user, &call.argv).unwrap_or_else(|e| panic!("{context}: {e}"));
                (row.check)(&mut user, &call, &reply);
            }
        }
    });
}

/// Every key's absolute expiry (PEXPIRETIME).
fn expiries(c: &mut redis::Connection) -> BTreeMap<Vec<u8>, i64> {
    snapshot(c)
        .into_keys()
        .map(|k| {
            let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(c).unwrap();
            (k, at)
        })
        .collect()
}

/// The primary's time travels in the effects (`PXAT`, `PEXPIREAT`): the same absolute expiry
/// on both sides, to the clock tick between two reads.
fn assert_expiries_close(a: &BTreeMap<Vec<u8>, i64>, b: &BTreeMap<Vec<u8>, i64>) {
    for (key, at) in a {
        // -2: the key expired between the two reads (the sides are read one after the other).
        if let Some(other) = b.get(key).filter(|&&o| o != -2 && *at != -2) {
            assert!(
                (at - other).abs() <= 2,
                "{}: expires at {at} vs {other}",
                String::from_utf8_lossy(key)
            );
        }
    }
}

/// Snapshots of a primary and its replica, and the PTTL tolerance to compare them with:
/// `tolerance_ms` plus the time that passed between the two reads (PTTLs fall meanwhile; the
/// absolute expiries are compared to the tick by `assert_expiries_close`).
type Snapshot = BTreeMap<Vec<u8>, KeyState>;
fn snapshots(
    p: &mut redis::Connection,
    r: &mut redis::Connection,
    tolerance_ms: i64,
) -> (Snapshot, (Snapshot, i64)) {
    let start = server_ms(p);
    let primary = comparable(p);
    let replica = comparable(r);
    let elapsed = server_ms(r) - start;
    (primary, (replica, tolerance_ms + elapsed))
}

/// `args` run from a script, its keys declared.
fn scripted(call: &Call) -> Vec<String> {
    let mut eval = strings(&["EVAL", "return redis.call(unpack(ARGV))"]);
    eval.push(call.keys.len().to_string());
    eval.extend(call.keys.iter().cloned());
    eval.extend(call.argv.iter().cloned());
    eval
}

/// Called inside MULTI/EXEC and from a script, every command still replicates its effects,
/// once, and the replica ends up with the primary's bytes and absolute expiries.
#[test]
fn effects_replicate_from_multi_and_scripts() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let mut c = pair.primary.conn();
        for (i, row) in rows().iter().enumerate() {
            let [in_multi, in_script] = bases("tx", i);
            let call = (row.call)(&mut c, &in_multi);
            let mut multi = redis::cmd(&call.argv[0]);
            multi.arg(&call.argv[1..]);
            let replies: Vec<Value> = redis::pipe()
                .atomic()
                .add_command(multi)
                .query(&mut c)
                .unwrap_or_else(|e| panic!("MULTI {:?}: {e}", call.argv));
            (row.check)(&mut c, &call, &replies[0]);
            let call = (row.call)(&mut c, &in_script);
            let reply = send(&mut c, &scripted(&call))
                .unwrap_or_else(|e| panic!("EVAL {:?}: {e}", call.argv));
            (row.check)(&mut c, &call, &reply);
        }
        pair.sync();
        let mut r = pair.replica.conn();
        let (primary, replica) = snapshots(&mut c, &mut r, 50);
        assert!(primary.len() > rows().len(), "{}", primary.len());
        assert_same_state(&primary, &replica.0, replica.1);
        assert_expiries_close(&expiries(&mut c), &expiries(&mut r));
    }
}

/// Runs each family's workload on `server`, checking it left keys of its own.
fn run_workloads(server: &Server, round: u64) {
    let mut c = server.conn();
    for family in families() {
        let before = key_names(&mut c);
        (family.workload)(server, &mut StdRng::seed_from_u64(family.seed + round));
        let new = key_names(&mut c).difference(&before).count();
        assert!(
            new >= family.min_keys,
            "{}'s workload left {new} keys",
            family.name
        );
    }
}

#[test]
fn a_replica_holds_the_primarys_bytes_after_random_workloads() {
    for flavor in flavors() {
        let pair = Pair::start(flavor);
        let (mut p, mut r) = (pair.primary.conn(), pair.replica.conn());
        for family in families() {
            let mut rng = StdRng::seed_from_u64(family.seed);
            for round in 0..2 {
                (family.workload)(&pair.primary, &mut rng);
                pair.sync();
                let (primary, replica) = snapshots(&mut p, &mut r, family.pttl_tolerance_ms);
                assert!(
                    primary.len() >= family.min_keys,
                    "{} round {round}",
                    family.name
                );
                assert_same_state(&primary, &replica.0, replica.1);
                assert_expiries_close(&expiries(&mut p), &expiries(&mut r));
            }
            let _: () = query(&mut p, &["FLUSHALL"]);
        }
    }
}

/// Effects only: no family command reaches the AOF (ids, leases and times come from the
/// primary), and replaying it rebuilds the same bytes and absolute expiries.
#[test]
fn the_aof_holds_only_effects_and_replays_to_the_same_bytes() {
    for flavor in flavors() {
        let mut server =
            Server::start_with(flavor, &["--appendonly", "yes", "--appendfsync", "always"]);
        let mut c = server.conn();
        for (i, row) in rows().iter().enumerate() {
            for base in bases("aof", i) {
                call_and_check(&mut c, row, &base);
            }
        }
        run_workloads(&server, 1);
        let before = comparable(&mut c);
        let before_expiries = expiries(&mut c);
        drop(c);
        let names: Vec<&str> = rows().iter().map(|r| r.def.name).collect();
        assert!(assert_aof_holds_only_effects(&server, &names) > 10_000);
        server.restart();
        let mut c = server.conn();
        // PTTLs moved on by the restart's duration: bytes are compared here, and the absolute
        // expiries below.
        assert_same_state(&before, &comparable(&mut c), 10_000);
        assert_expiries_close(&before_expiries, &expiries(&mut c));
        // And carries on from the reloaded state.
        for (i, row) in rows().iter().enumerate() {
            for base in bases("reloaded", i) {
                call_and_check(&mut c, row, &base);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The Lua twin against the module: both servers read the same machine clock, and each call is
// pipelined between two TIME calls, so a step whose four clock readings share one millisecond
// ran at the same `now` on both servers and must match exactly. A step that straddles a
// millisecond is not compared; the twin's keys are then re-synced from the module's.

/// Runs a random history on the module and on the twin, comparing replies and keys.
fn differential(flavor: Flavor, path: TwinPath, family: &Family, seed: u64) {
    let twin = &family.twin;
    let module = Server::start(flavor);
    let plain = Server::start_without_module(flavor, &[]);
    let (mut a, mut b) = (module.conn(), plain.conn());
    let shas = load_twin(&mut b);
    (twin.seed)(&mut a);
    (twin.seed)(&mut b);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut replies: Vec<Value> = Vec::new();
    let mut compared = 0;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    // How many steps land in one millisecond, and which reply kinds they produce (a STALE
    // reply needs a stale value and a lease within a few ms), depend on timing: on a loaded
    // machine the history runs on past its steps, up to four times as long, until 60% of its
    // nominal steps have been compared and every kind as often as `least` asks.
    let enough = |compared: usize, kinds: &BTreeMap<String, usize>| {
        compared * 10 >= twin.steps * 6
            && twin
                .least
                .iter()
                .all(|(kind, least)| kinds.get(*kind).copied().unwrap_or(0) >= *least)
    };
    let mut step = 0;
    // Until this ms is over a re-synced key may be missing from the twin (`copy_key`).
    let mut unsynced_through = i64::MIN;
    while step < twin.steps || (!enough(compared, &kinds) && step < 4 * twin.steps) {
        step += 1;
        let argv = (twin.random_call)(&mut rng, &replies);
        let mut native = redis::cmd(&argv[0]);
        native.arg(&argv[1..]);
        at_ms_start(&mut a);
        let (a0, reply, a1) = timed(&mut a, &native);
        let call = twin_cmd(path, &shas, &argv, &(twin.args)(&argv, &reply));
        let (b0, twin_reply, b1) = timed(&mut b, &call);
        replies.push(reply.clone());
        let tracked = (twin.tracked)(&argv, &replies);
        let context = format!("step {step}: {argv:?} on {} via {path:?}", flavor.name());
        if a0 == a1 && a1 == b0 && b0 == b1 && a0 > unsynced_through {
            assert_eq!(shown(&reply), shown(&twin_reply), "{context}");
            for key in &tracked {
                (twin.align)(&mut a, &mut b, key);
                assert_same_key(&mut a, &mut b, key, twin.tolerance_ms, &context);
            }
            compared += 1;
            *kinds.entry((twin.kind)(&reply)).or_insert(0) += 1;
        } else {
            for key in &tracked {
                let missing = copy_key(&mut a, &mut b, key);
                unsynced_through = unsynced_through.max(missing.unwrap_or(i64::MIN));
            }
        }
        if rng.gen_bool(twin.pause.0) {
            std::thread::sleep(std::time::Duration::from_millis(
                rng.gen_range(1..twin.pause.1),
            ));
        }
    }
    // A history that compared little proves little: most steps must land in one ms.
    assert!(
        compared * 10 >= twin.steps * 6,
        "{}: only {compared} steps compared in {step} (at least 60% of {} needed)",
        family.name,
        twin.steps
    );
    for (kind, least) in twin.least {
        assert!(
            kinds.get(*kind).copied().unwrap_or(0) >= *least,
            "{}: too few {kind} replies: {kinds:?}",
            family.name
        );
    }
}

#[test]
fn the_functions_library_matches_the_module() {
    for family in families() {
        for flavor in flavors() {
            differential(flavor, TwinPath::Fcall, &family, family.twin.seeds[0]);
        }
    }
}

#[test]
fn the_evalsha_scripts_match_the_module() {
    for family in families() {
        for flavor in flavors() {
            differential(flavor, TwinPath::Evalsha, &family, family.twin.seeds[1]);
        }
    }
}

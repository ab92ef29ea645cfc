//! Binds the queue family (`patterns_core::queue`) to Redis: jobs in a real stream, read by
//! real consumer groups, with leases, delays, retries, dead letters and dedupe kept in keys of
//! the queue's slot (see the core module for the layout). Consumers that wait
//! (`BLOCK timeout_ms`) are blocked on the server and queued in `wait`.
//!
//! Every write is a stream, sorted-set or string command run through `RedisModule_Call` and
//! replicated as itself, with what makes it deterministic spelled out: `XADD` with the id it
//! chose (Redis rewrites `*`), `XREADGROUP` and `XCLAIM` as `XCLAIM ... TIME ... RETRYCOUNT`
//! (Redis's own propagation), `ZADD` with absolute due times, `SET ... PXAT`, `XACK`, `XTRIM
//! MINID ~` as `XTRIM MINID = <first id kept>` (Redis's own), `XDEL`. Each command validates
//! everything before its first write.

#![deny(unsafe_code)]

mod wait;

use patterns_core::command::CmdError;
use patterns_core::queue::{
    self as q, ack_moves_bound, check_ms, fresh, job_id, parse_due, parse_pop, parse_push,
    queue_key, redeliver, trim_bound, Fresh, GroupView, Pop, Redelivery, StreamId, DEAD_SUFFIX,
    DEDUPE_SUFFIX, DUE_FIELD, GROUP_FIELD, LEASES_SUFFIX, PARKED, PAYLOAD_FIELD, STREAM_FULL,
};

use crate::command;
use crate::ffi::{
    check_key_access, check_keys_access, key_type, now_ms, redis_call, Call, CallValue, Command,
    Ctx, KeyType, OwnedKey, OwnedString, Reply, ScoreRange, Value,
};
use crate::stats::{self, Stat};
use crate::text::StackText;
pub use wait::{waiting, HOOKS};

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(q::PUSH, push),
    command!(q::POP, pop),
    command!(q::ACK, ack),
    command!(q::NACK, nack),
    command!(q::EXTEND, extend),
    command!(q::REDRIVE, redrive),
    command!(q::STATS, stats),
];

/// A read (not replicated).
fn read(ctx: Ctx, command: &std::ffi::CStr, args: &[&[u8]]) -> CallValue {
    redis_call(ctx, command, args, false).value()
}

/// A write, replicated as itself.
fn write(ctx: Ctx, command: &std::ffi::CStr, args: &[&[u8]]) -> CallValue {
    redis_call(ctx, command, args, true).value()
}

/// Whether `name` exists; WRONGTYPE unless it is absent or of `kind`.
fn expect_type(ctx: Ctx, name: &[u8], kind: KeyType) -> Result<bool, CmdError> {
    match key_type(ctx, name) {
        KeyType::Empty => Ok(false),
        k if k == kind => Ok(true),
        _ => Err(CmdError::WrongType),
    }
}

/// A queue's keys, checked: the stream (whether it exists), its group's leases, its dead
/// letters.
struct Keys {
    exists: bool,
    leases: Vec<u8>,
    dead: Vec<u8>,
}

/// The queue's keys, after checking the current user may use the derived ones.
fn keys(ctx: Ctx, queue: &[u8], group: &[u8]) -> Result<Keys, CmdError> {
    let keys = layout(ctx, queue, group)?;
    check_keys_access(ctx, [&keys.leases[..], &keys.dead[..]])?;
    Ok(keys)
}

/// The queue's keys, their types checked (no user: a timer serving waiters, whose access was
/// checked when they called).
fn layout(ctx: Ctx, queue: &[u8], group: &[u8]) -> Result<Keys, CmdError> {
    let exists = expect_type(ctx, queue, KeyType::Stream)?;
    let leases = queue_key(queue, LEASES_SUFFIX, group)?;
    let dead = queue_key(queue, DEAD_SUFFIX, b"")?;
    expect_type(ctx, &leases, KeyType::ZSet)?;
    expect_type(ctx, &dead, KeyType::Stream)?;
    Ok(Keys {
        exists,
        leases,
        dead,
    })
}

/// The value named `name` in a flat name/value list (a stream entry's fields, a group's info).
fn named<'v>(pairs: &'v [CallValue], name: &str) -> Option<&'v CallValue> {
    pairs
        .chunks(2)
        .find(|kv| kv[0].bytes() == Some(name.as_bytes()))
        .and_then(|kv| kv.get(1))
}

/// A stream entry's field, from its flat field/value list.
fn field<'v>(fields: &'v CallValue, name: &str) -> Option<&'v [u8]> {
    named(fields.items(), name)?.bytes()
}

/// The (consumer, deliveries) of a job pending in the group, None when it is not.
fn pending(ctx: Ctx, queue: &[u8], group: &[u8], id: &[u8]) -> Option<(Vec<u8>, i64)> {
    let reply = read(ctx, c"XPENDING", &[queue, group, id, id, b"1"]);
    let entry = reply.items().first()?.items();
    let consumer = entry.get(1)?.bytes()?.to_vec();
    Some((consumer, entry.get(3)?.int()?))
}

fn zadd(ctx: Ctx, key: &[u8], at_ms: i64, id: &[u8]) {
    write(ctx, c"ZADD", &[key, StackText::of(at_ms).as_bytes(), id]);
}

/// A delivered job: `[job_id, payload, deliveries]`.
fn job(id: &[u8], payload: &[u8], deliveries: i64) -> Value {
    Value::Array(vec![
        Value::Bulk(id.to_vec()),
        Value::Bulk(payload.to_vec()),
        Value::Int(deliveries),
    ])
}

// QUEUE.PUSH key payload [DELAY delay_ms] [DEDUPE dedupe_id ttl_ms]
fn push(call: &Call) -> Result<Reply, CmdError> {
    let args = parse_push(call.rest())?;
    let (ctx, queue) = (call.ctx(), call.key_name());
    expect_type(ctx, queue, KeyType::Stream)?;
    // A queue its consumers could not use is refused from the first push.
    queue_key(queue, DEAD_SUFFIX, b"")?;
    let now = now_ms();
    let dedupe = match args.dedupe {
        Some((id, ttl_ms)) => {
            let key = queue_key(queue, DEDUPE_SUFFIX, id)?;
            check_key_access(ctx, &key)?;
            if expect_type(ctx, &key, KeyType::String)? {
                let first = read(ctx, c"GET", &[&key]);
                return Ok(Reply::Bulk(first.bytes().unwrap_or_default().to_vec()));
            }
            Some((key, now + ttl_ms))
        }
        None => None,
    };
    let due = StackText::of(now + args.delay_ms);
    let mut xadd: Vec<&[u8]> = vec![queue, b"*", PAYLOAD_FIELD.as_bytes(), args.payload];
    if args.delay_ms > 0 {
        xadd.extend([DUE_FIELD.as_bytes(), due.as_bytes()]);
    }
    let added = redis_call(ctx, c"XADD", &xadd, true);
    if added.is_error() {
        return Err(CmdError::BadState(STREAM_FULL));
    }
    stats::bump(Stat::QueuePushed);
    let id = added.value().bytes().unwrap_or_default().to_vec();
    if let Some((key, at)) = dedupe {
        let at = StackText::of(at);
        write(ctx, c"SET", &[&key, &id, b"PXAT", at.as_bytes()]);
    }
    wait::wake(ctx, queue, None);
    Ok(Reply::Bulk(id))
}

// QUEUE.POP key group consumer [COUNT n] [BLOCK timeout_ms] [LEASE lease_ms] [MAXDELIVERIES n]
fn pop(call: &Call) -> Result<Reply, CmdError> {
    let args = parse_pop(call.rest())?;
    let (ctx, queue) = (call.ctx(), call.key_name());
    let keys = keys(ctx, queue, &args.group)?;
    // Waiters come first: serving them before this call's try keeps the group's FIFO. What
    // they write leaves `keys` true: keys of the types checked, and the stream never deleted.
    wait::wake(ctx, queue, Some(&args.group));
    let jobs = deliver(ctx, queue, &keys, &args);
    if !jobs.is_empty() {
        return Ok(Reply::Value(Value::Array(jobs)));
    }
    if args.block_ms != q::NO_BLOCK && ctx.can_block() && wait::block(ctx, queue, args) {
        return Ok(Reply::Blocked);
    }
    Ok(Reply::Null)
}

/// [`deliver`] to a waiter: the keys' types checked again (they may have changed meanwhile).
fn try_pop(ctx: Ctx, queue: &[u8], args: &Pop) -> Result<Vec<Value>, CmdError> {
    let keys = layout(ctx, queue, &args.group)?;
    Ok(deliver(ctx, queue, &keys, args))
}

/// Delivers up to `args.count` jobs to the consumer now: first the jobs whose lease ended or
/// that fell due (oldest first; one past its deliveries goes to the dead letters), then new
/// ones. None (nothing written) when the queue does not exist. The keys were checked by the
/// caller.
fn deliver(ctx: Ctx, queue: &[u8], keys: &Keys, args: &Pop) -> Vec<Value> {
    if !keys.exists {
        return Vec::new();
    }
    let mut round = Round {
        ctx,
        queue,
        args,
        keys,
        now: now_ms(),
        group_made: false,
        jobs: Vec::new(),
    };
    let mut completed = round.redeliver_due();
    while (round.jobs.len() as i64) < args.count {
        let (read, done) = round.read_new();
        completed |= done;
        if !read {
            break;
        }
    }
    if completed {
        trim(ctx, queue);
    }
    stats::add(Stat::QueueDelivered, round.jobs.len() as u64);
    round.jobs
}

/// One POP's delivery: what each step reads (the queue, the pop, the group's keys, the time),
/// whether it made sure the group exists, and the jobs given so far.
struct Round<'a> {
    ctx: Ctx<'a>,
    queue: &'a [u8],
    args: &'a Pop,
    keys: &'a Keys,
    now: i64,
    group_made: bool,
    jobs: Vec<Value>,
}

impl Round<'_> {
    /// Creates the group from the oldest job (as the group's first POP does), the first time
    /// this round finds a sign it may be missing: then, and only then, it costs a command
    /// (BUSYGROUP when the group exists: nothing done). Whether it tried now.
    fn make_group(&mut self) -> bool {
        if self.group_made {
            return false;
        }
        self.group_made = true;
        let create: [&[u8]; 4] = [b"CREATE", self.queue, &self.args.group, b"0"];
        redis_call(self.ctx, c"XGROUP", &create, true);
        true
    }

    /// Redelivers (or dead-letters) the group's jobs whose lease ended or that fell due; whether
    /// any job was completed (dead-lettered).
    fn redeliver_due(&mut self) -> bool {
        let due = due_leases(self.ctx, &self.keys.leases, self.now, self.args.count);
        let lease_end = self.now + self.args.lease_ms;
        let mut completed = false;
        for id in due.iter().map(OwnedString::bytes) {
            let Some((holder, deliveries)) = pending(self.ctx, self.queue, &self.args.group, id)
            else {
                // Not pending, or no group (deleted by hand: its leases are stale). Made before
                // the ZREM, the effects keep the order they had when every POP made the group.
                self.make_group();
                write(self.ctx, c"ZREM", &[&self.keys.leases, id]);
                continue;
            };
            match redeliver(deliveries, self.args.max_deliveries) {
                Redelivery::Dead(deliveries) => {
                    self.dead_letter((id, &holder, deliveries));
                    completed = true;
                }
                Redelivery::Deliver(n) => {
                    let claimed = write(
                        self.ctx,
                        c"XCLAIM",
                        &[self.queue, &self.args.group, &self.args.consumer, b"0", id],
                    );
                    let Some(entry) = claimed.items().first().filter(|e| e.items().len() == 2)
                    else {
                        // Deleted from the stream (XCLAIM dropped it from the pending list).
                        write(self.ctx, c"ZREM", &[&self.keys.leases, id]);
                        continue;
                    };
                    let payload = field(&entry.items()[1], PAYLOAD_FIELD).unwrap_or_default();
                    zadd(self.ctx, &self.keys.leases, lease_end, id);
                    if n > 1 {
                        stats::bump(Stat::QueueRedelivered);
                    }
                    self.jobs.push(job(id, payload, n));
                }
            }
        }
        completed
    }

    /// Moves a job to the dead letters (`job`, `payload`, `deliveries`, `group`, `consumer`,
    /// `time`) and completes it in the group.
    fn dead_letter(&self, (id, holder, deliveries): (&[u8], &[u8], i64)) {
        let entry = read(self.ctx, c"XRANGE", &[self.queue, id, id]);
        if let Some(entry) = entry.items().first() {
            let payload = field(&entry.items()[1], PAYLOAD_FIELD).unwrap_or_default();
            let (deliveries, time) = (StackText::of(deliveries), StackText::of(self.now));
            let xadd: [&[u8]; 14] = [
                &self.keys.dead,
                b"*",
                b"job",
                id,
                PAYLOAD_FIELD.as_bytes(),
                payload,
                b"deliveries",
                deliveries.as_bytes(),
                GROUP_FIELD.as_bytes(),
                &self.args.group,
                b"consumer",
                holder,
                b"time",
                time.as_bytes(),
            ];
            write(self.ctx, c"XADD", &xadd);
        }
        stats::bump(Stat::QueueDead);
        write(self.ctx, c"XACK", &[self.queue, &self.args.group, id]);
        write(self.ctx, c"ZREM", &[&self.keys.leases, id]);
    }

    /// Reads the group's next new jobs: delivers the ready ones, parks the delayed ones, completes
    /// the ones redriven for another group. (whether any were read, whether any were completed)
    fn read_new(&mut self) -> (bool, bool) {
        let want = StackText::of(self.args.count - self.jobs.len() as i64);
        let xreadgroup: [&[u8]; 8] = [
            b"GROUP",
            &self.args.group,
            &self.args.consumer,
            b"COUNT",
            want.as_bytes(),
            b"STREAMS",
            self.queue,
            b">",
        ];
        let mut read = redis_call(self.ctx, c"XREADGROUP", &xreadgroup, true);
        // NOGROUP (nothing done) on the group's first POP: made, then read again.
        if read.is_error() && self.make_group() {
            read = redis_call(self.ctx, c"XREADGROUP", &xreadgroup, true);
        }
        let reply = read.value();
        let entries = reply
            .items()
            .first()
            .and_then(|stream| stream.items().get(1))
            .map(CallValue::items)
            .unwrap_or_default();
        let lease_end = self.now + self.args.lease_ms;
        let mut completed = false;
        for entry in entries {
            let (Some(id), Some(fields)) = (entry.items()[0].bytes(), entry.items().get(1)) else {
                continue;
            };
            let due = parse_due(field(fields, DUE_FIELD));
            match fresh(due, field(fields, GROUP_FIELD), &self.args.group, self.now) {
                Fresh::Deliver => {
                    zadd(self.ctx, &self.keys.leases, lease_end, id);
                    let payload = field(fields, PAYLOAD_FIELD).unwrap_or_default();
                    self.jobs.push(job(id, payload, 1));
                }
                Fresh::Park(at) => {
                    park(self.ctx, self.queue, &self.args.group, id, Some(0));
                    zadd(self.ctx, &self.keys.leases, at, id);
                }
                Fresh::Skip => {
                    write(self.ctx, c"XACK", &[self.queue, &self.args.group, id]);
                    completed = true;
                }
            }
        }
        (!entries.is_empty(), completed)
    }
}

/// The first `count` jobs of the lease set `leases` due by `now` (`ZRANGE leases -inf now
/// BYSCORE LIMIT 0 count`, read through the key API: no command run). The key is closed on
/// return, before anything writes it.
fn due_leases(ctx: Ctx, leases: &[u8], now: i64, count: i64) -> Vec<OwnedString> {
    let Some(key) = OwnedKey::open_read(ctx, OwnedString::new(ctx, leases)) else {
        return Vec::new();
    };
    key.read(|k| k.zset_first(ScoreRange::through(now), count as usize))
}

/// Hands a pending job to [`PARKED`] (no worker holds it until it falls due), its deliveries
/// set to `deliveries` or kept.
fn park(ctx: Ctx, queue: &[u8], group: &[u8], id: &[u8], deliveries: Option<i64>) {
    let mut xclaim: Vec<&[u8]> = vec![queue, group, PARKED.as_bytes(), b"0", id];
    let count = deliveries.map(StackText::of);
    if let Some(count) = &count {
        xclaim.extend([&b"RETRYCOUNT"[..], count.as_bytes()]);
    }
    xclaim.push(b"JUSTID");
    write(ctx, c"XCLAIM", &xclaim);
}

/// A consumer group as `XINFO GROUPS` shows it.
struct Group {
    name: Vec<u8>,
    pending: i64,
    last_read: Option<StreamId>,
}

/// The queue's consumer groups.
fn groups(ctx: Ctx, queue: &[u8]) -> Vec<Group> {
    let reply = read(ctx, c"XINFO", &[b"GROUPS", queue]);
    reply
        .items()
        .iter()
        .filter_map(|g| {
            let get = |name: &str| named(g.items(), name);
            Some(Group {
                name: get("name")?.bytes()?.to_vec(),
                pending: get("pending")?.int()?,
                last_read: get("last-delivered-id")?.bytes().and_then(StreamId::parse),
            })
        })
        .collect()
}

/// What the trim needs to know of group `name` holding `pending` jobs: its last read and
/// its oldest pending job (`XPENDING`); None when either cannot be read (then nothing is
/// trimmed).
fn view(
    ctx: Ctx,
    queue: &[u8],
    name: &[u8],
    pending: i64,
    last_read: Option<StreamId>,
) -> Option<GroupView> {
    let last_read = last_read?;
    let oldest_pending = if pending > 0 {
        Some(oldest_pending(ctx, queue, name)?)
    } else {
        None
    };
    Some(GroupView {
        last_read,
        oldest_pending,
    })
}

/// The group's oldest pending job (`XPENDING key group - + 1`).
fn oldest_pending(ctx: Ctx, queue: &[u8], group: &[u8]) -> Option<StreamId> {
    let reply = read(ctx, c"XPENDING", &[queue, group, b"-", b"+", b"1"]);
    let id = reply.items().first()?.items().first()?.bytes()?;
    StreamId::parse(id)
}

/// Trims the jobs every group has completed (see [`trim_to_bound`]).
fn trim(ctx: Ctx, queue: &[u8]) {
    let groups = groups(ctx, queue);
    let views = groups
        .iter()
        .map(|g| view(ctx, queue, &g.name, g.pending, g.last_read))
        .collect();
    trim_to_bound(ctx, queue, views);
}

/// After `acked` of the jobs `ids` were completed in `group` (`groups`: the queue's groups
/// read before): trims, unless the group's oldest needed job is unchanged, so the bound is.
fn trim_after_ack(
    ctx: Ctx,
    queue: &[u8],
    (group, ids, acked): (&[u8], &[StreamId], i64),
    groups: &[Group],
) {
    let Some(mine) = groups.iter().find(|g| g.name == group) else {
        return;
    };
    let Some(after) = view(ctx, queue, group, mine.pending - acked, mine.last_read) else {
        return;
    };
    if !ack_moves_bound(ids, after) {
        return;
    }
    let others = groups
        .iter()
        .filter(|g| g.name != group)
        .map(|g| view(ctx, queue, &g.name, g.pending, g.last_read));
    let views = std::iter::once(Some(after)).chain(others).collect();
    trim_to_bound(ctx, queue, views);
}

/// Removes the jobs below the lowest id any group still needs, a whole stream node at a time
/// (`XTRIM MINID ~`, without its default limit): a node goes once every job in it is
/// completed, which costs the server no scan of a node's entries (an exact trim walks the
/// first node on every completion). Nothing when a group's view is unknown.
fn trim_to_bound(ctx: Ctx, queue: &[u8], views: Option<Vec<GroupView>>) {
    if let Some(bound) = views.as_deref().and_then(trim_bound) {
        let bound = bound.text();
        write(
            ctx,
            c"XTRIM",
            &[queue, b"MINID", b"~", bound.as_bytes(), b"LIMIT", b"0"],
        );
    }
}

/// The group's keys (access checked) and the queue's groups, None when the queue or the group
/// does not exist.
fn group_keys(
    ctx: Ctx,
    queue: &[u8],
    group: &[u8],
) -> Result<Option<(Keys, Vec<Group>)>, CmdError> {
    let keys = keys(ctx, queue, group)?;
    if !keys.exists {
        return Ok(None);
    }
    let groups = groups(ctx, queue);
    Ok(groups
        .iter()
        .any(|g| g.name == group)
        .then_some((keys, groups)))
}

/// The group's keys and the consumer holding job `id` (`PARKED` when a delay holds it), None
/// when the queue, the group or the job's pending entry does not exist (`XPENDING` answers
/// NOGROUP without a group: no `XINFO GROUPS` needed to know).
fn pending_job(
    ctx: Ctx,
    queue: &[u8],
    group: &[u8],
    id: &[u8],
) -> Result<Option<(Keys, Vec<u8>)>, CmdError> {
    let keys = keys(ctx, queue, group)?;
    if !keys.exists {
        return Ok(None);
    }
    Ok(pending(ctx, queue, group, id).map(|(holder, _)| (keys, holder)))
}

// QUEUE.ACK key group job_id [job_id ...]
fn ack(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&q::ACK)?;
    let (group, ids) = (p.text("group"), p.trailing());
    let parsed = ids
        .iter()
        .map(|id| job_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    let (ctx, queue) = (call.ctx(), call.key_name());
    let Some((keys, groups)) = group_keys(ctx, queue, group)? else {
        return Ok(Reply::Integer(0));
    };
    let mut xack: Vec<&[u8]> = vec![queue, group];
    xack.extend_from_slice(ids);
    let acked = write(ctx, c"XACK", &xack).int().unwrap_or(0);
    let mut zrem: Vec<&[u8]> = vec![&keys.leases];
    zrem.extend_from_slice(ids);
    write(ctx, c"ZREM", &zrem);
    if acked > 0 {
        stats::add(Stat::QueueAcked, acked as u64);
        trim_after_ack(ctx, queue, (group, &parsed, acked), &groups);
    }
    Ok(Reply::Integer(acked))
}

// QUEUE.NACK key group job_id [DELAY delay_ms]
fn nack(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&q::NACK)?;
    let (group, id) = (p.text("group"), p.text("job_id"));
    job_id(id)?;
    let delay_ms = check_ms(p.int("DELAY"))?;
    let (ctx, queue) = (call.ctx(), call.key_name());
    match pending_job(ctx, queue, group, id)? {
        Some((keys, holder)) if holder != PARKED.as_bytes() => {
            park(ctx, queue, group, id, None);
            zadd(ctx, &keys.leases, now_ms() + delay_ms, id);
            wait::wake(ctx, queue, Some(group));
            Ok(Reply::Integer(1))
        }
        _ => Ok(Reply::Integer(0)),
    }
}

// QUEUE.EXTEND key group consumer job_id lease_ms
fn extend(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&q::EXTEND)?;
    let (group, consumer, id) = (p.text("group"), p.text("consumer"), p.text("job_id"));
    job_id(id)?;
    let lease_ms = check_ms(p.int("lease_ms"))?;
    let (ctx, queue) = (call.ctx(), call.key_name());
    match pending_job(ctx, queue, group, id)? {
        Some((keys, holder)) if holder == consumer => {
            zadd(ctx, &keys.leases, now_ms() + lease_ms, id);
            Ok(Reply::Integer(1))
        }
        _ => Ok(Reply::Integer(0)),
    }
}

/// The group's dead letters, oldest first: (dead letter id, payload).
fn dead_letters(ctx: Ctx, dead: &[u8], group: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let reply = read(ctx, c"XRANGE", &[dead, b"-", b"+"]);
    reply
        .items()
        .iter()
        .filter_map(|e| {
            let fields = e.items().get(1)?;
            (field(fields, GROUP_FIELD) == Some(group)).then(|| {
                let payload = field(fields, PAYLOAD_FIELD).unwrap_or_default();
                (
                    e.items()[0].bytes().unwrap_or_default().to_vec(),
                    payload.to_vec(),
                )
            })
        })
        .collect()
}

// QUEUE.REDRIVE key group [COUNT n]
fn redrive(call: &Call) -> Result<Reply, CmdError> {
    let p = call.parse(&q::REDRIVE)?;
    let (group, count) = (p.text("group"), p.int("COUNT"));
    let (ctx, queue) = (call.ctx(), call.key_name());
    let keys = keys(ctx, queue, group)?;
    let mut moved = 0;
    for (dead_id, payload) in dead_letters(ctx, &keys.dead, group) {
        if moved == count {
            break;
        }
        let xadd: [&[u8]; 6] = [
            queue,
            b"*",
            PAYLOAD_FIELD.as_bytes(),
            &payload,
            GROUP_FIELD.as_bytes(),
            group,
        ];
        if redis_call(ctx, c"XADD", &xadd, true).is_error() {
            break;
        }
        write(ctx, c"XDEL", &[&keys.dead, &dead_id]);
        moved += 1;
    }
    if moved > 0 {
        wait::wake(ctx, queue, Some(group));
    }
    Ok(Reply::Integer(moved))
}

// QUEUE.STATS key group
fn stats(call: &Call) -> Result<Reply, CmdError> {
    let group = call.parse(&q::STATS)?.text("group");
    let (ctx, queue) = (call.ctx(), call.key_name());
    let keys = keys(ctx, queue, group)?;
    let now = now_ms();
    let (mut ready, mut delayed, mut pending, mut consumers) = (0, 0, 0, 0);
    let info = groups(ctx, queue).into_iter().find(|g| g.name == group);
    let from = match &info {
        Some(g) => {
            let last = g
                .last_read
                .map_or_else(|| "0-0".to_string(), StreamId::text);
            format!("({last}")
        }
        None => "-".to_string(),
    };
    if keys.exists {
        let unread = read(ctx, c"XRANGE", &[queue, from.as_bytes(), b"+"]);
        for entry in unread.items() {
            let Some(fields) = entry.items().get(1) else {
                continue;
            };
            let due = parse_due(field(fields, DUE_FIELD));
            match fresh(due, field(fields, GROUP_FIELD), group, now) {
                Fresh::Deliver => ready += 1,
                Fresh::Park(_) => delayed += 1,
                Fresh::Skip => {}
            }
        }
    }
    if info.is_some() {
        let list = read(ctx, c"XINFO", &[b"CONSUMERS", queue, group]);
        for c in list.items() {
            let c = c.items();
            let name = c.get(1).and_then(CallValue::bytes);
            let held = c.get(3).and_then(CallValue::int).unwrap_or(0);
            if name == Some(PARKED.as_bytes()) {
                delayed += held;
            } else {
                consumers += 1;
                pending += held;
            }
        }
    }
    let dead = dead_letters(ctx, &keys.dead, group).len() as i64;
    let pair = |name: &str, n: i64| (Value::Bulk(name.as_bytes().to_vec()), Value::Int(n));
    Ok(Reply::Value(Value::Map(vec![
        pair("ready", ready),
        pair("delayed", delayed),
        pair("pending", pending),
        pair("dead", dead),
        pair("consumers", consumers),
    ])))
}

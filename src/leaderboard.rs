//! Binds the leaderboard family (`patterns_core::leaderboard`) to Redis: the core's `Store` is
//! a handful of sorted-set and hash commands, the very commands the Lua twin runs. Writes make
//! them through the key API (`Writer`) and replicate each as the command it stands for, with
//! explicit stamps (the server's clock never reaches a replica or the AOF as such). Reads
//! answer through the key API where it can (a member's score, a window near either end of the
//! board) and run the commands through `RedisModule_Call` where only a command can (ranks,
//! counts, deep windows), or where a score's text might differ from the server's; reads
//! replicate nothing.
//!
//! Each command validates everything (arguments, ACL of the tie-break keys, types, the
//! tie-break in step with the board, a NaN increment) before its first write.
#![deny(unsafe_code)]

use patterns_core::command::{parse_f64, CmdError};
use patterns_core::leaderboard::{
    self as lb, check_dense_rank, check_write, percentile_of, remove, write, Board, Change,
    Companions, Key, Kind, Order, Ranking, Scored, Store, Window,
};

use crate::ffi::{
    now_ms, redis_call, redis_call_strs, Call, CallReply, Command, Ctx, CurrentUser,
    Key as KeyHandle, KeyType, Notify, OwnedKey, OwnedString, Put, Reply, ScoreRange, Str, Value,
};
use crate::stats::{self, Stat};
use crate::{command, config};

/// The family's commands, as registered.
pub const COMMANDS: &[Command] = &[
    command!(lb::ADD, add),
    command!(lb::INCR, incr),
    command!(lb::REM, rem),
    command!(lb::RANK, rank),
    command!(lb::AROUND, around),
    command!(lb::TOP, top),
    command!(lb::PAGE, page),
    command!(lb::PERCENTILE, percentile),
];

/// Windows starting at most this far from either end of the board are walked with the key
/// API (O(start + count)); deeper ones are one ZRANGE (O(log N + count)).
const WALK_LIMIT: i64 = 64;

/// The board and its tie-break keys (None when the board's name cannot carry them): a read's
/// (key API and Redis commands) or a write's (`Writer`).
struct RedisStore<'a> {
    ctx: Ctx<'a>,
    board: &'a [u8],
    /// A read's tie-break keys' names (the stamps, scores and names keys' made once the order
    /// key exists), None when the board's name cannot carry them (and for a write, whose key
    /// handles hold them).
    names: Option<Companions>,
    /// The board opened for reading through the key API (None when it does not exist, and
    /// for writes: a write run as a command could delete the value under an open handle).
    reader: Option<KeyHandle<'a>>,
    /// A read's tie-break keys (order, stamps, scores, names: [`RedisStore::companion`]),
    /// each opened for reading once its ACL is checked; None when absent or not opened (the
    /// stamps, scores and names keys are opened only when the order key exists).
    companions: [Option<OwnedKey<'a>>; 4],
    /// For a read (which changes no key), each key's type once asked (indexed by `Key`); a
    /// write asks its handles, whose keys change under it.
    kinds: [Option<Kind>; 5],
    /// A write's keys, open through the key API.
    writer: Option<Writer<'a>>,
    /// The command's key as the server's string.
    board_str: Str<'a>,
    /// The member a read names (its score, then its rank), as a server string.
    member: Named<'a>,
}

/// The tie-break keys' names as server strings (order, stamps, scores, names), made once for
/// a write's key handles.
type WriteNames = [OwnedString; 4];

/// A write's five keys, open through the key API for the whole write (indexed by `Key`). Every
/// change to them goes through these handles (a command run meanwhile only reads, so no value
/// is deleted under a handle), and reaches replicas and the AOF as the command it stands for,
/// with that command's keyspace events; unchanged values replicate nothing, as the commands'
/// own propagation does.
struct Writer<'a> {
    ctx: Ctx<'a>,
    keys: [KeyHandle<'a>; 5],
    /// Members and order entries named: the command's last member, or a string made.
    member: Named<'a>,
    /// Scores named: the command's last score or increment, or a score's text made (the
    /// order and scores keys' ZADDs name the same one, also as the scores key's member).
    score: Named<'a>,
    /// What the write knows of the board score of the command's last member.
    member_score: Known,
}

/// What a write knows of a member's board score, once read or written.
#[derive(Clone, Copy)]
enum Known {
    Unread,
    Absent,
    Score(f64),
}

impl Known {
    fn of(score: Option<f64>) -> Self {
        score.map_or(Known::Absent, Known::Score)
    }
}

/// Server strings for bytes a store names: a string of the command's own (`arg`, with its
/// bytes, read once) when it holds them, else one made, kept while the same bytes are named in
/// a row.
struct Named<'a> {
    arg: Option<(Str<'a>, &'a [u8])>,
    made: Option<OwnedString>,
}

impl<'a> Named<'a> {
    fn new(arg: Option<Str<'a>>) -> Self {
        Self {
            arg: arg.map(|arg| (arg, arg.bytes())),
            made: None,
        }
    }

    /// Whether `bytes` are the command's string's.
    fn is_arg(&self, bytes: &[u8]) -> bool {
        self.arg.is_some_and(|(_, arg)| arg == bytes)
    }

    /// `bytes` as a server string.
    fn get(&mut self, ctx: Ctx, bytes: &[u8]) -> Str<'_> {
        match self.arg {
            Some((arg, held)) if held == bytes => arg,
            _ => {
                let made = match self.made.take() {
                    Some(made) if made.bytes() == bytes => made,
                    _ => OwnedString::new(ctx, bytes),
                };
                self.made.insert(made).as_str()
            }
        }
    }

    /// Keeps `made`, a string the server made, for its bytes named next.
    fn keep(&mut self, made: OwnedString) {
        self.made = Some(made);
    }
}

impl<'a> Writer<'a> {
    fn key(&mut self, key: Key) -> &mut KeyHandle<'a> {
        &mut self.keys[key as usize]
    }

    /// Records the board score of `member` (None: absent), read or just written.
    fn learn_score(&mut self, member: &[u8], score: Option<f64>) {
        if self.member.is_arg(member) {
            self.member_score = Known::of(score);
        }
    }

    /// The board score of `member`, through the key API unless known.
    fn board_score(&mut self, member: &[u8]) -> Option<f64> {
        match self.member_score {
            Known::Absent if self.member.is_arg(member) => return None,
            Known::Score(score) if self.member.is_arg(member) => return Some(score),
            _ => {}
        }
        let held = self.member.get(self.ctx, member);
        let score = self.keys[Key::Board as usize].zset_score(held);
        self.learn_score(member, score);
        score
    }

    /// ZADD key score member: whether it was added.
    fn zadd(&mut self, key: Key, score: &[u8], member: &[u8]) -> bool {
        let ctx = self.ctx;
        let Some(value) = parse_f64(score) else {
            return false; // the server's ZADD refuses what parse_f64 refuses
        };
        let score_str = self.score.get(ctx, score);
        let member_str = if score_str.bytes() == member {
            score_str // a scores-key entry
        } else {
            self.member.get(ctx, member)
        };
        let k = &mut self.keys[key as usize];
        let put = k.zset_put(value, member_str);
        if put != Put::Unchanged {
            k.modified(&[(Notify::ZSET, c"zadd")]);
            ctx.replicate(c"ZADD", (k.name(), score_str, member_str));
            if key == Key::Board {
                self.learn_score(member, Some(value));
            }
        }
        put == Put::Added
    }

    /// ZINCRBY board increment member: the new score.
    fn zincrby(&mut self, increment: &[u8], member: &[u8]) -> f64 {
        let ctx = self.ctx;
        let by = parse_f64(increment).unwrap_or(f64::NAN);
        let member_str = self.member.get(ctx, member);
        let k = &mut self.keys[Key::Board as usize];
        let Some((put, score)) = k.zset_incr(by, member_str) else {
            return f64::NAN; // a NaN sum, refused before the write
        };
        if put != Put::Unchanged {
            k.modified(&[(Notify::ZSET, c"zincr")]);
            let increment = self.score.get(ctx, increment);
            ctx.replicate(c"ZINCRBY", (k.name(), increment, member_str));
        }
        self.learn_score(member, Some(score));
        score
    }

    /// ZREM key member: whether it was there.
    fn zrem(&mut self, key: Key, member: &[u8]) -> bool {
        let ctx = self.ctx;
        let member_str = self.member.get(ctx, member);
        let k = &mut self.keys[key as usize];
        let removed = k.zset_remove_one(member_str);
        if removed {
            removed_from(k, c"zrem", Notify::ZSET);
            ctx.replicate(c"ZREM", (k.name(), member_str));
            if key == Key::Board {
                self.learn_score(member, None);
            }
        }
        removed
    }

    /// HSET stamps field value.
    fn hset(&mut self, field: &[u8], value: &[u8]) {
        let ctx = self.ctx;
        let (field, value) = (self.member.get(ctx, field), OwnedString::new(ctx, value));
        let k = &mut self.keys[Key::Stamps as usize];
        k.hash_put(field, value.as_str());
        k.modified(&[(Notify::HASH, c"hset")]);
        ctx.replicate(c"HSET", (k.name(), field, value.as_str()));
    }

    /// HDEL stamps field.
    fn hdel(&mut self, field: &[u8]) {
        let ctx = self.ctx;
        let field = self.member.get(ctx, field);
        let k = &mut self.keys[Key::Stamps as usize];
        if k.hash_delete(field) {
            removed_from(k, c"hdel", Notify::HASH);
            ctx.replicate(c"HDEL", (k.name(), field));
        }
    }

    /// DEL key.
    fn del(&mut self, key: Key) {
        let ctx = self.ctx;
        let k = self.key(key);
        if k.kind() != KeyType::Empty {
            k.delete();
            k.modified(&[(Notify::GENERIC, c"del")]);
            ctx.replicate(c"DEL", (k.name(),));
        }
    }
}

/// The events of a removal (ZREM, HDEL): `event`, and `del` when it left the key empty.
fn removed_from(k: &KeyHandle, event: &std::ffi::CStr, class: Notify) {
    if k.kind() == KeyType::Empty {
        k.modified(&[(class, event), (Notify::GENERIC, c"del")]);
    } else {
        k.modified(&[(class, event)]);
    }
}

/// The names of a write's tie-break keys, after checking the user may read and write them;
/// refused when the board's name cannot carry them.
fn write_names(call: &Call) -> Result<WriteNames, CmdError> {
    let ctx = call.ctx();
    let names = Companions::of(call.key_name()).ok_or(CmdError::BadState(lb::BAD_BOARD))?;
    let names = names.all().map(|name| OwnedString::new(ctx, name));
    let user = CurrentUser::of(ctx);
    for name in &names {
        user.check_read_write(name.as_str())?;
    }
    Ok(names)
}

impl<'a> RedisStore<'a> {
    /// The store of a write to the call's board, its keys open through the key API;
    /// `member` and `score`: the command's strings of the last member it writes and of its
    /// score or increment, named without making them again.
    fn open_write(
        call: &Call<'a>,
        names: &'a WriteNames,
        member: Option<Str<'a>>,
        score: Option<Str<'a>>,
    ) -> Self {
        let ctx = call.ctx();
        let [order, stamps, scores, names] =
            names.each_ref().map(|n| KeyHandle::open_named(ctx, n));
        let keys = [KeyHandle::open(call), order, stamps, scores, names];
        Self {
            writer: Some(Writer {
                ctx,
                keys,
                member: Named::new(member),
                score: Named::new(score),
                member_score: Known::Unread,
            }),
            ..Self::bare(call)
        }
    }

    /// The store of the call's board for a read, after checking the user may read its order
    /// key, and, when that exists, its other tie-break keys: a board without an order key is
    /// read as a plain sorted set, so they are not looked at (nor are their types).
    fn open_read(call: &Call<'a>) -> Result<Self, CmdError> {
        let ctx = call.ctx();
        let mut store = Self {
            names: Companions::order_first(call.key_name()),
            ..Self::bare(call)
        };
        if let Some(names) = &mut store.names {
            let user = CurrentUser::of(ctx);
            let name = OwnedString::new(ctx, names.order());
            user.check_read(name.as_str())?;
            let [order, others @ ..] = &mut store.companions;
            *order = OwnedKey::open_read(ctx, name);
            if order.is_some() {
                names.make_others();
                let [_, other_names @ ..] = names.all();
                let other_names = other_names.map(|name| OwnedString::new(ctx, name));
                for name in &other_names {
                    user.check_read(name.as_str())?;
                }
                for (key, name) in others.iter_mut().zip(other_names) {
                    *key = OwnedKey::open_read(ctx, name);
                }
            }
        }
        store.reader = KeyHandle::open_read(call);
        Ok(store)
    }

    /// A read's tie-break key `key`, None when absent or not opened (and for the board).
    fn companion(&self, key: Key) -> Option<&OwnedKey<'a>> {
        self.companions[(key as usize).checked_sub(1)?].as_ref()
    }

    /// `f` of a read's key `key` (the board or a tie-break key), None when it is absent or
    /// not opened.
    fn read_key<R>(&self, key: Key, f: impl FnOnce(&KeyHandle) -> R) -> Option<R> {
        match key {
            Key::Board => self.reader.as_ref().map(f),
            _ => self.companion(key).map(|k| k.read(f)),
        }
    }

    /// The store of the call's board, nothing open and no tie-break key named: a write names
    /// its keys through its handles.
    fn bare(call: &Call<'a>) -> Self {
        Self {
            ctx: call.ctx(),
            board: call.key_name(),
            names: None,
            reader: None,
            companions: [None, None, None, None],
            kinds: [None; 5],
            writer: None,
            board_str: call.key(),
            member: Named::new(None),
        }
    }

    /// The store of the call's board alone (no tie-break keys: LB.PERCENTILE).
    fn board_only(call: &Call<'a>) -> Self {
        Self {
            reader: KeyHandle::open_read(call),
            ..Self::bare(call)
        }
    }

    fn name(&self, key: Key) -> Option<&[u8]> {
        if let Some(w) = &self.writer {
            return Some(w.keys[key as usize].name().bytes());
        }
        match key {
            Key::Board => Some(self.board),
            _ => self.names.as_ref()?.name(key),
        }
    }

    /// A key the store only touches when the board has tie-break keys.
    fn must(&self, key: Key) -> &[u8] {
        self.name(key)
            .expect("tie-break keys exist when they are used")
    }

    /// A window of the board near either end, through the key API; None to ask ZRANGE.
    fn walk(&self, key: Key, start: i64, stop: i64, rev: bool) -> Option<Vec<Scored>> {
        match key {
            Key::Board | Key::Order => {
                self.read_key(key, |k| walk_window(k, (start, stop), rev))?
            }
            _ => None,
        }
    }

    /// Places `start..=stop` of the board read outwards from `near` (at place `at`) through
    /// the key API: a deep window without ZRANGE, when `near` is found within WALK_LIMIT
    /// members of its score and every score's text is certain; None to ask ZRANGE.
    fn walk_near(
        &self,
        (start, stop): (i64, i64),
        rev: bool,
        near: &Scored,
        at: i64,
    ) -> Option<Vec<Scored>> {
        let reader = self.reader.as_ref()?;
        let side = |from_top: bool, take: i64| {
            let walk = reader.zset_walk_from(&near.member, near.score, from_top, take, WALK_LIMIT);
            walked(walk?).filter(|w| w.len() as i64 == take)
        };
        // Before `near` in this order: below it in ZRANGE's order for ASC, above it for DESC.
        let mut before = side(!rev, at - start)?;
        let after = side(rev, stop - at)?;
        before.reverse();
        before.push(near.clone());
        before.extend(after);
        Some(before)
    }

    fn read(&self, cmd: &std::ffi::CStr, args: &[&[u8]]) -> CallReply {
        redis_call(self.ctx, cmd, args, false)
    }

    fn write(&self, cmd: &std::ffi::CStr, args: &[&[u8]]) -> CallReply {
        redis_call(self.ctx, cmd, args, true)
    }
}

/// A window of a sorted set near either end, through the key API; None to ask ZRANGE.
fn walk_window(reader: &KeyHandle, (start, stop): (i64, i64), rev: bool) -> Option<Vec<Scored>> {
    let total = reader.len();
    let stop = stop.min(total - 1);
    if start < 0 || stop < start {
        return None;
    }
    let count = stop - start + 1;
    if start <= WALK_LIMIT {
        return walked(reader.zset_walk(rev, start, count));
    }
    // Near the far end: walk in from there and turn the window round.
    let from_far = total - 1 - stop;
    if from_far > WALK_LIMIT {
        return None;
    }
    let mut elements = walked(reader.zset_walk(!rev, from_far, count))?;
    elements.reverse();
    Some(elements)
}

fn kind_of(kind: Option<KeyType>) -> Kind {
    match kind {
        None | Some(KeyType::Empty) => Kind::Empty,
        Some(KeyType::ZSet) => Kind::ZSet,
        Some(KeyType::Hash) => Kind::Hash,
        Some(_) => Kind::Other,
    }
}

fn scored(member: Vec<u8>, text: Vec<u8>) -> Scored {
    Scored {
        member,
        score: parse_f64(&text).unwrap_or(f64::NAN),
        text,
    }
}

fn text(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A score as the server replies it, when that text is certain: whole numbers below 10^15
/// print as plain digits under Redis 7.0's `%.17g` and Valkey's shortest form alike (other
/// scores, e.g. 0.1, print differently between them, so their text comes from the server).
fn score_text(score: f64) -> Option<Vec<u8>> {
    let whole = score.fract() == 0.0 && score.abs() < 1e15;
    (whole && !(score == 0.0 && score.is_sign_negative())).then(|| text(score as i64))
}

/// ZRANK (ZREVRANK with `rev`) of `member` in the sorted set `key`.
fn rank_in(ctx: Ctx, key: Str, member: Str, rev: bool) -> Option<i64> {
    let cmd = if rev { c"ZREVRANK" } else { c"ZRANK" };
    let reply = redis_call_strs(ctx, cmd, &[key, member]);
    (!reply.is_null()).then(|| reply.integer())
}

/// Elements read through the key API, when every score's text is certain.
fn walked(elements: Vec<(OwnedString, f64)>) -> Option<Vec<Scored>> {
    elements
        .into_iter()
        .map(|(member, score)| {
            Some(Scored {
                member: member.bytes().to_vec(),
                score,
                text: score_text(score)?,
            })
        })
        .collect()
}

impl Store for RedisStore<'_> {
    fn kind(&mut self, key: Key) -> Kind {
        if let Some(w) = &mut self.writer {
            return kind_of(Some(w.key(key).kind()));
        }
        if let Some(kind) = self.kinds[key as usize] {
            return kind;
        }
        let kind = kind_of(self.read_key(key, |k| k.kind()));
        self.kinds[key as usize] = Some(kind);
        kind
    }

    fn card(&mut self, key: Key) -> i64 {
        if let Some(w) = &mut self.writer {
            return w.key(key).len();
        }
        self.read_key(key, |k| k.len()).unwrap_or(0)
    }

    fn score(&mut self, member: &[u8]) -> Option<Scored> {
        let found = match (&self.reader, &mut self.writer) {
            (Some(reader), _) => Some(reader.zset_score(self.member.get(self.ctx, member))),
            (None, Some(w)) => Some(w.board_score(member)),
            (None, None) => None,
        };
        if let Some(found) = found {
            let score = found?;
            if let Some(text) = score_text(score) {
                return Some(Scored {
                    member: member.to_vec(),
                    score,
                    text,
                });
            }
        }
        let reply = self.read(c"ZSCORE", &[self.board, member]);
        if reply.is_null() {
            return None;
        }
        let text = reply.strings().pop()?;
        Some(scored(member.to_vec(), text))
    }

    fn score_value(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.writer {
            Some(w) => w.board_score(member),
            None => self.score(member).map(|s| s.score),
        }
    }

    fn count(&mut self, key: Key, min: &[u8], max: &[u8]) -> i64 {
        self.read(c"ZCOUNT", &[self.must(key), min, max]).integer()
    }

    fn lexcount(&mut self, min: &[u8], max: &[u8]) -> i64 {
        self.read(c"ZLEXCOUNT", &[self.must(Key::Names), min, max])
            .integer()
    }

    fn range(&mut self, key: Key, start: i64, stop: i64, rev: bool) -> Vec<Scored> {
        if let Some(elements) = self.walk(key, start, stop, rev) {
            return elements;
        }
        let (start, stop) = (text(start), text(stop));
        let mut args: Vec<&[u8]> = vec![self.must(key), &start, &stop];
        if rev {
            args.push(b"REV");
        }
        args.push(b"WITHSCORES");
        let mut flat = self.read(c"ZRANGE", &args).strings().into_iter();
        let mut out = Vec::new();
        while let (Some(member), Some(score)) = (flat.next(), flat.next()) {
            out.push(scored(member, score));
        }
        out
    }

    fn range_near(
        &mut self,
        (start, stop): (i64, i64),
        rev: bool,
        near: &Scored,
        at: i64,
    ) -> Vec<Scored> {
        self.walk_near((start, stop), rev, near, at)
            .unwrap_or_else(|| self.range(Key::Board, start, stop, rev))
    }

    fn order_desc(&mut self, start: i64, stop: i64) -> Option<Vec<Scored>> {
        if start > WALK_LIMIT || stop < start {
            return None;
        }
        let order = self.companion(Key::Order)?;
        walked(order.read(|k| k.zset_walk_groups_down(start, stop - start + 1)))
    }

    fn order_desc_near(
        &mut self,
        (start, stop): (i64, i64),
        entry: &[u8],
        score: f64,
        at: i64,
    ) -> Option<Vec<Scored>> {
        let order = self.companion(Key::Order)?;
        let side = |down: bool, take: i64| {
            let walk =
                order.read(|k| k.zset_walk_groups_from(entry, score, down, take, WALK_LIMIT));
            walked(walk?).filter(|w| w.len() as i64 == take)
        };
        // Before the entry in DESC order: back up towards the top.
        let mut before = side(false, at - start)?;
        let after = side(true, stop - at)?;
        before.reverse();
        before.push(Scored {
            member: entry.to_vec(),
            score,
            text: score_text(score)?,
        });
        before.extend(after);
        Some(before)
    }

    fn placed_before_score(&mut self, key: Key, near: &Scored, rev: bool) -> Option<i64> {
        match key {
            Key::Board => {
                let first = self.reader.as_ref()?.zset_first_at(near.score, rev)?;
                rank_in(self.ctx, self.board_str, first.as_str(), rev)
            }
            Key::Order => self.companion(Key::Order)?.read(|order| {
                let first = order.zset_first_at(near.score, rev)?;
                rank_in(self.ctx, order.name(), first.as_str(), rev)
            }),
            _ => None,
        }
    }

    fn rank(&mut self, key: Key, member: &[u8], rev: bool) -> Option<i64> {
        if key == Key::Board {
            let member = self.member.get(self.ctx, member);
            return rank_in(self.ctx, self.board_str, member, rev);
        }
        let (name, member) = (self.must(key), OwnedString::new(self.ctx, member));
        rank_in(
            self.ctx,
            OwnedString::new(self.ctx, name).as_str(),
            member.as_str(),
            rev,
        )
    }

    fn last_at(&mut self, score: &[u8]) -> Option<Vec<u8>> {
        let args: [&[u8]; 8] = [
            self.must(Key::Order),
            score,
            score,
            b"BYSCORE",
            b"REV",
            b"LIMIT",
            b"0",
            b"1",
        ];
        self.read(c"ZRANGE", &args).strings().pop()
    }

    fn group_head(&mut self, score: &[u8], n: i64) -> Vec<Vec<u8>> {
        let first = |k: &KeyHandle, r| {
            let members = k.zset_first(r, n.max(0) as usize);
            members.iter().map(|m| m.bytes().to_vec()).collect()
        };
        match (parse_f64(score).map(ScoreRange::at_f64), &mut self.writer) {
            (Some(r), Some(w)) => return first(w.key(Key::Order), r),
            (Some(r), None) => {
                if let Some(order) = self.companion(Key::Order) {
                    return order.read(|k| first(k, r));
                }
            }
            (None, _) => {}
        }
        let n = text(n);
        let args: [&[u8]; 7] = [
            self.must(Key::Order),
            score,
            score,
            b"BYSCORE",
            b"LIMIT",
            b"0",
            &n,
        ];
        self.read(c"ZRANGE", &args).strings()
    }

    fn group_tail(&mut self, score: &[u8], cap: i64) -> (Option<i64>, i64) {
        match (&mut self.writer, parse_f64(score)) {
            (Some(w), Some(v)) => {
                let order = w.key(Key::Order);
                let (last, len) = order.zset_last_and_count(ScoreRange::at_f64(v), cap);
                (last.and_then(|m| lb::stamp_of(m.bytes())), len)
            }
            _ => lb::group_tail_by_reads(self, score, cap),
        }
    }

    fn group_find(&mut self, score: &[u8], member: &[u8], n: i64) -> Option<(i64, Vec<u8>)> {
        let find = |k: &KeyHandle, r| k.zset_find_first(r, n, |e| lb::is_entry_of(e, member));
        let bytes = |(at, entry): (i64, OwnedString)| (at, entry.bytes().to_vec());
        match (parse_f64(score).map(ScoreRange::at_f64), &mut self.writer) {
            (Some(r), Some(w)) => {
                let (at, entry) = find(w.key(Key::Order), r)?;
                let found = (at, entry.bytes().to_vec());
                w.member.keep(entry); // the write removes this entry next: no string made
                Some(found)
            }
            (Some(r), None) => match self.companion(Key::Order) {
                Some(order) => order.read(|k| find(k, r)).map(bytes),
                None => None,
            },
            (None, _) => lb::entry_in(self.group_head(score, n), member),
        }
    }

    fn stamp(&mut self, member: &[u8]) -> Option<Vec<u8>> {
        if let Some(w) = &mut self.writer {
            let member = w.member.get(self.ctx, member);
            let value = w.keys[Key::Stamps as usize].hash_get(member)?;
            return Some(value.bytes().to_vec());
        }
        let [_, stamps, ..] = &self.companions;
        let member = self.member.get(self.ctx, member);
        let value = stamps.as_ref()?.read(|k| k.hash_get(member))?;
        Some(value.bytes().to_vec())
    }

    fn any_at(&mut self, key: Key, score: &[u8]) -> bool {
        match (&mut self.writer, parse_f64(score)) {
            (Some(w), Some(score)) => w.key(key).zset_any_at(score),
            _ => self.count(key, score, score) > 0,
        }
    }

    fn zadd(&mut self, key: Key, pairs: &[(&[u8], &[u8])]) -> i64 {
        if let Some(w) = &mut self.writer {
            let added = pairs
                .iter()
                .filter(|(score, member)| w.zadd(key, score, member));
            return added.count() as i64;
        }
        let mut args: Vec<&[u8]> = vec![self.must(key)];
        for (score, member) in pairs {
            args.extend([*score, *member]);
        }
        self.write(c"ZADD", &args).integer()
    }

    fn zincrby(&mut self, increment: &[u8], member: &[u8]) -> Scored {
        if let Some(w) = &mut self.writer {
            let score = w.zincrby(increment, member);
            return match score_text(score) {
                Some(text) => Scored {
                    member: member.to_vec(),
                    score,
                    text,
                },
                None => self.score(member).expect("just written"),
            };
        }
        let reply = self.write(c"ZINCRBY", &[self.board, increment, member]);
        scored(member.to_vec(), reply.strings().pop().unwrap_or_default())
    }

    fn zrem(&mut self, key: Key, member: &[u8]) -> bool {
        if let Some(w) = &mut self.writer {
            return w.zrem(key, member);
        }
        self.write(c"ZREM", &[self.must(key), member]).integer() > 0
    }

    fn hset(&mut self, pairs: &[(&[u8], &[u8])]) {
        if let Some(w) = &mut self.writer {
            return pairs.iter().for_each(|(field, value)| w.hset(field, value));
        }
        let mut args: Vec<&[u8]> = vec![self.must(Key::Stamps)];
        for (field, value) in pairs {
            args.extend([*field, *value]);
        }
        self.write(c"HSET", &args);
    }

    fn hdel(&mut self, member: &[u8]) {
        if let Some(w) = &mut self.writer {
            return w.hdel(member);
        }
        self.write(c"HDEL", &[self.must(Key::Stamps), member]);
    }

    fn del(&mut self, key: Key) {
        if let Some(w) = &mut self.writer {
            return w.del(key);
        }
        self.write(c"DEL", &[self.must(key)]);
    }
}

fn entries_value(entries: Vec<lb::Entry>) -> Value {
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                Value::Array(vec![
                    Value::Int(e.rank),
                    Value::Bulk(e.member),
                    Value::Score(e.score),
                ])
            })
            .collect(),
    )
}

/// The options every ranked read takes, from their parsed slots.
fn order_and_ranking(order: i64, ranking: i64) -> (Order, Ranking) {
    (Order::from_slot(order), Ranking::from_slot(ranking))
}

/// Runs `f` on the call's board, opened for reading in `order`; `member`: the argument naming
/// the member the command asks about, if any.
fn with_board<'a>(
    call: &Call<'a>,
    order: Order,
    member: Option<Str<'a>>,
    f: impl FnOnce(&mut Board<RedisStore>) -> Result<Reply, CmdError>,
) -> Result<Reply, CmdError> {
    let mut store = RedisStore::open_read(call)?;
    store.member = Named::new(member);
    let mut board = Board::open(&mut store, order)?.with_dense_max(config::LB_DENSE_MAX.get());
    f(&mut board)
}

/// The member's score and place, None when absent.
fn find(board: &mut Board<RedisStore>, member: &[u8]) -> Result<Option<(Scored, i64)>, CmdError> {
    let Some(scored) = board.score(member) else {
        return Ok(None);
    };
    let position = board.position(&scored)?;
    Ok(Some((scored, position)))
}

/// LB.RANK's reply for `member`: `[rank, score, total_members]`, None when absent.
fn ranked(
    board: &mut Board<RedisStore>,
    member: &[u8],
    ranking: Ranking,
) -> Result<Option<[Value; 3]>, CmdError> {
    let Some(scored) = board.score(member) else {
        return Ok(None);
    };
    let rank = board.rank(&scored, ranking)?;
    Ok(Some([
        Value::Int(rank),
        Value::Score(scored.text),
        Value::Int(board.total),
    ]))
}

// LB.RANK key member [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]
fn rank(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::RANK.parse(args)?;
    let member = p.text("member");
    let (order, ranking) = order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING"));
    with_board(call, order, call.arg(1), |board| {
        Ok(ranked(board, member, ranking)?.map_or(Reply::Null, Reply::Three))
    })
}

// LB.AROUND key member count [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]
fn around(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::AROUND.parse(args)?;
    let (member, count) = (p.text("member"), p.int("count"));
    let (order, ranking) = order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING"));
    with_board(call, order, call.arg(1), |board| {
        let Some((scored, position)) = find(board, member)? else {
            return Ok(Reply::Null);
        };
        let window = Window::around(position, count, board.total);
        let near = Some((&scored, position));
        Ok(Reply::Value(entries_value(
            board.entries_near(window, ranking, near)?,
        )))
    })
}

// LB.TOP key count [OFFSET n] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]
fn top(call: &Call) -> Result<Reply, CmdError> {
    let p = lb::TOP.parse(call.rest())?;
    let (order, ranking) = order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING"));
    with_board(call, order, None, |board| {
        let window = Window::top(p.int("OFFSET"), p.int("count"), board.total);
        Ok(Reply::Value(entries_value(board.entries(window, ranking)?)))
    })
}

// LB.PAGE key page page_size [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]
fn page(call: &Call) -> Result<Reply, CmdError> {
    let p = lb::PAGE.parse(call.rest())?;
    let (page, size) = (p.int("page"), p.int("page_size"));
    let (order, ranking) = order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING"));
    with_board(call, order, None, |board| {
        let (pages, window) = Window::page(page, size, board.total);
        let entries = entries_value(board.entries(window, ranking)?);
        Ok(Reply::Value(Value::Array(vec![Value::Int(pages), entries])))
    })
}

// LB.PERCENTILE key member [ASC|DESC]
fn percentile(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::PERCENTILE.parse(args)?;
    let member = p.text("member");
    let mut store = RedisStore::board_only(call);
    store.member = Named::new(call.arg(1));
    Ok(
        match percentile_of(&mut store, member, Order::from_slot(p.choice("ASC|DESC")))? {
            Some(share) => Reply::Value(Value::Double(share)),
            None => Reply::Null,
        },
    )
}

// LB.ADD key [WITHRANK] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED] score member
// [score member ...]
fn add(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::ADD.parse(args)?;
    let pairs = p.trailing();
    let with = p
        .flag("WITHRANK")
        .then(|| order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING")));
    let mut changes = Vec::with_capacity(pairs.len() / 2);
    for pair in pairs.chunks(2) {
        let score = parse_f64(pair[0]).ok_or(CmdError::BadArg(lb::SCORE_ARG))?;
        changes.push((Change::Set(score, pair[0]), pair[1]));
    }
    let names = write_names(call)?;
    // The last pair's strings (rest's last two: `call.arg` counts the key first).
    let (member, score) = (call.arg(args.len()), call.arg(args.len() - 1));
    let mut store = RedisStore::open_write(call, &names, member, score);
    check_write(&mut store, &changes)?;
    check_rank_with(&mut store, &changes, with)?;
    let written = write(&mut store, now_ms(), &changes);
    drop(store);
    stats::add(Stat::LeaderboardWrites, written.len() as u64);
    if let Some(with) = with {
        let members: Vec<&[u8]> = changes.iter().map(|(_, m)| *m).collect();
        return Ok(Reply::Value(Value::Array(ranks_after_write(
            call, &members, with,
        )?)));
    }
    Ok(Reply::Integer(
        written.iter().filter(|(added, _)| *added).count() as i64,
    ))
}

/// WITHRANK's order and ranking, when asked for.
type RankWith = Option<(Order, Ranking)>;

/// Checks that a write's WITHRANK rank can be answered (a DENSE scan within its limit), before
/// the write.
fn check_rank_with(
    store: &mut RedisStore,
    changes: &[(Change, &[u8])],
    with: RankWith,
) -> Result<(), CmdError> {
    match with {
        Some((order, Ranking::Dense)) => {
            check_dense_rank(store, changes, order, config::LB_DENSE_MAX.get())
        }
        _ => Ok(()),
    }
}

/// The ranks WITHRANK answers after a write, one per member (the DENSE limit was checked
/// before the write, so nothing here refuses).
fn ranks_after_write(
    call: &Call,
    members: &[&[u8]],
    (order, ranking): (Order, Ranking),
) -> Result<Vec<Value>, CmdError> {
    let mut store = RedisStore::open_read(call)?;
    let mut board = Board::open(&mut store, order)?.with_dense_max(i64::MAX);
    members
        .iter()
        .map(
            |m| Ok(ranked(&mut board, m, ranking)?.map_or(Value::Null, |r| Value::Array(r.into()))),
        )
        .collect()
}

// LB.INCR key increment member [WITHRANK] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]
fn incr(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::INCR.parse(args)?;
    let (by, member) = (p.float("increment"), p.text("member"));
    let with = p
        .flag("WITHRANK")
        .then(|| order_and_ranking(p.choice("ASC|DESC"), p.choice("RANKING")));
    let changes = [(Change::Add(by, p.raw("increment")), member)];
    let names = write_names(call)?;
    let mut store = RedisStore::open_write(call, &names, call.arg(2), call.arg(1));
    check_write(&mut store, &changes)?;
    check_rank_with(&mut store, &changes, with)?;
    let (_, score) = write(&mut store, now_ms(), &changes).remove(0);
    drop(store);
    stats::bump(Stat::LeaderboardWrites);
    match with {
        Some(with) => Ok(Reply::Value(
            ranks_after_write(call, &[member], with)?.remove(0),
        )),
        None => Ok(Reply::Value(Value::Score(score))),
    }
}

// LB.REM key member [member ...]
fn rem(call: &Call) -> Result<Reply, CmdError> {
    let args = call.rest();
    let p = lb::REM.parse(args)?;
    let names = write_names(call)?;
    let mut store = RedisStore::open_write(call, &names, call.arg(args.len()), None);
    let removed = remove(&mut store, p.trailing())?;
    stats::add(Stat::LeaderboardWrites, removed as u64);
    Ok(Reply::Integer(removed))
}

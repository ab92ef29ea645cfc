//! Each session command as a write plan over a small [`Store`]: what it checks, in which order,
//! and which writes it makes, in the order the module replicates them and the Lua twin makes
//! them. Every check comes before the first write, so an error writes nothing. The module
//! implements the store over Redis (`src/session.rs`); the tests run it on one in memory.

use super::{
    session_key, Deadlines, Meta, Timeouts, ABSOLUTE_FIELD, IDLE_FIELD, INDEX_FIELD, LOOKAHEAD_MS,
};
use crate::command::CmdError;
use crate::keys::{check_fields, Kind, Pairs, ID_LEN, RESERVED_PREFIX};

/// What the session commands need from Redis. Writes replicate as the commands named.
pub trait Store {
    /// TYPE.
    fn kind(&mut self, key: &[u8]) -> Kind;
    /// HGETALL, flat, as of `now_ms`: None when the key is absent, or expires at `now_ms` or
    /// earlier (whatever its type); WRONGTYPE when it holds something other than a hash.
    fn live_hash(&mut self, key: &[u8], now_ms: i64) -> Result<Option<Pairs>, CmdError>;
    /// Whether the user may read and write `key` (a key the command derives).
    fn may_access(&mut self, key: &[u8]) -> bool;
    /// Whether the user may read and write every key of `keys`.
    fn may_access_all(&mut self, keys: &[Vec<u8>]) -> bool {
        keys.iter().all(|key| self.may_access(key))
    }
    /// A fresh random id.
    fn new_id(&mut self) -> Result<[u8; ID_LEN], CmdError>;
    /// PEXPIRETIME.
    fn expire_time(&mut self, key: &[u8]) -> i64;
    /// The key's expiry when it exists and does not expire by `now_ms` (`i64::MAX` when it
    /// has none), else None: PEXPIRETIME, read as a live session's is.
    fn live_expiry(&mut self, key: &[u8], now_ms: i64) -> Option<i64>;
    /// ZRANGE index 0 -1.
    fn members(&mut self, index: &[u8]) -> Vec<Vec<u8>>;
    /// Without writing: how many members score above `edge` (ZCOUNT index (edge +inf), and
    /// the members scored in (after, edge] (ZRANGE index (after edge BYSCORE).
    fn split_at(&mut self, index: &[u8], after: i64, edge: i64) -> (i64, Vec<Vec<u8>>);
    /// ZSCORE index member.
    fn index_score(&mut self, index: &[u8], member: &[u8]) -> Option<i64>;
    /// HSET key field value [field value ...]: how many fields are new.
    fn hset(&mut self, key: &[u8], pairs: &[&[u8]]) -> i64;
    /// PEXPIREAT.
    fn expire_at(&mut self, key: &[u8], at_ms: i64);
    /// RENAME.
    fn rename(&mut self, from: &[u8], to: &[u8]);
    /// DEL: how many keys went.
    fn del(&mut self, key: &[u8]) -> i64;
    /// UNLINK: a large value is freed in the background.
    fn unlink(&mut self, key: &[u8]);
    /// DEL of every key of `keys` (in one or more commands): how many went.
    fn del_all(&mut self, keys: &[Vec<u8>]) -> i64 {
        keys.iter().map(|key| self.del(key)).sum()
    }
    /// The expiring index (sessions scored by expiry): prune what expired by `now_ms`, make
    /// the change, and let the index expire with its last member.
    fn update_index(&mut self, index: &[u8], now_ms: i64, change: IndexChange<'_>);
}

/// What a command changes in its index, besides pruning it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexChange<'a> {
    None,
    /// A session's new expiry (ZADD).
    Set(i64, &'a [u8]),
    /// A session gone (ZREM).
    Remove(&'a [u8]),
    /// A session moved to a new key with the expiry given (ZREM, ZADD).
    Move(&'a [u8], i64, &'a [u8]),
}

impl<'a> IndexChange<'a> {
    /// The member to remove.
    pub fn removed(self) -> Option<&'a [u8]> {
        match self {
            IndexChange::Remove(key) | IndexChange::Move(key, ..) => Some(key),
            IndexChange::None | IndexChange::Set(..) => None,
        }
    }

    /// The member to add, at its score.
    pub fn added(self) -> Option<(i64, &'a [u8])> {
        match self {
            IndexChange::Set(at, key) | IndexChange::Move(_, at, key) => Some((at, key)),
            IndexChange::None | IndexChange::Remove(_) => None,
        }
    }
}

/// Fails with WRONGTYPE unless `index` is empty or a sorted set.
fn expect_index(s: &mut impl Store, index: &[u8]) -> Result<(), CmdError> {
    match s.kind(index) {
        Kind::Empty | Kind::ZSet => Ok(()),
        _ => Err(CmdError::WrongType),
    }
}

fn check_access(s: &mut impl Store, key: &[u8]) -> Result<(), CmdError> {
    if s.may_access(key) {
        Ok(())
    } else {
        Err(CmdError::NoPerm)
    }
}

/// A new session's key in `index`'s slot, which the user must be allowed to write.
fn new_key(s: &mut impl Store, index: &[u8]) -> Result<Vec<u8>, CmdError> {
    let key = session_key(index, &s.new_id()?)?;
    check_access(s, &key)?;
    Ok(key)
}

fn expect_free(s: &mut impl Store, key: &[u8]) -> Result<(), CmdError> {
    match s.kind(key) {
        Kind::Empty => Ok(()),
        _ => Err(CmdError::Internal), // a 128-bit collision: never
    }
}

/// A live session: its hash's pairs.
struct Loaded {
    pairs: Pairs,
}

impl Loaded {
    fn meta(&self) -> Result<Meta<'_>, CmdError> {
        Meta::parse_iter(self.pairs.pairs())
    }

    /// The caller's fields, reserved ones excluded (in place, not copied).
    fn user_pairs(mut self) -> Pairs {
        self.pairs
            .retain(|field| !field.starts_with(RESERVED_PREFIX.as_bytes()));
        self.pairs
    }
}

/// The session at `key` as of `now_ms`, then `then` run on it with its deadlines and its index
/// (borrowed from the read: no copy); None when absent (or expired by now). WRONGTYPE unless
/// a hash, BadState unless it holds the reserved fields; checks the index's type and the
/// user's access to it before `then` runs.
fn load<S: Store, R>(
    s: &mut S,
    key: &[u8],
    now_ms: i64,
    then: impl FnOnce(&mut S, Deadlines, &[u8]) -> Result<R, CmdError>,
) -> Result<Option<(Loaded, R)>, CmdError> {
    let Some(pairs) = s.live_hash(key, now_ms)? else {
        return Ok(None);
    };
    let loaded = Loaded { pairs };
    let meta = loaded.meta()?;
    check_access(s, meta.index)?;
    expect_index(s, meta.index)?;
    let out = then(s, meta.deadlines, meta.index)?;
    Ok(Some((loaded, out)))
}

/// Slides the session's expiry after a use at `now_ms`; the index moves (re-scored a lead
/// ahead) only when the new expiry passes the member's score, so its score stays at or above
/// the session's expiry.
fn touch(s: &mut impl Store, key: &[u8], index: &[u8], d: Deadlines, now_ms: i64) {
    let at = d.expiry(now_ms);
    s.expire_at(key, at);
    if s.index_score(index, key).is_some_and(|score| score >= at) {
        return;
    }
    s.update_index(index, now_ms, IndexChange::Set(d.index_score(at), key));
}

/// The live sessions of `index` at `now_ms`, soonest to expire first (ties by key, as a
/// sorted set orders them): every member's real expiry is read, since a score may run ahead.
fn live_sorted(s: &mut impl Store, index: &[u8], now_ms: i64) -> Vec<Vec<u8>> {
    let mut live: Vec<(i64, Vec<u8>)> = s
        .members(index)
        .into_iter()
        .filter_map(|m| s.live_expiry(&m, now_ms).map(|at| (at, m)))
        .collect();
    live.sort_unstable();
    live.into_iter().map(|(_, m)| m).collect()
}

/// The live sessions of `index` at `now_ms`, counted without writing: the members scored past
/// the look-ahead window are alive, those within it are checked against their keys.
fn live_len(s: &mut impl Store, index: &[u8], now_ms: i64) -> i64 {
    let (sure, window) = s.split_at(index, now_ms, now_ms.saturating_add(LOOKAHEAD_MS));
    let alive = window
        .iter()
        .filter(|m| s.live_expiry(m, now_ms).is_some())
        .count();
    sure + alive as i64
}

/// The live sessions of `index` that make room for a new one under a cap of `max` (None: no
/// cap): the ones soonest to expire, as many as the index holds past `max - 1`.
fn over_cap(s: &mut impl Store, index: &[u8], max: Option<i64>, now_ms: i64) -> Vec<Vec<u8>> {
    let Some(max) = max else {
        return Vec::new();
    };
    let excess = live_len(s, index, now_ms) - (max - 1);
    if excess <= 0 {
        return Vec::new();
    }
    let mut victims = live_sorted(s, index, now_ms);
    victims.truncate(excess as usize);
    victims
}

/// SESSION.CREATE: the new session's key, and how many sessions the cap `max` destroyed
/// (as SESSION.DESTROY would, before the new session is written).
pub fn create(
    s: &mut impl Store,
    index: &[u8],
    timeouts: Timeouts,
    max: Option<i64>,
    fields: &[&[u8]],
    now_ms: i64,
) -> Result<(Vec<u8>, i64), CmdError> {
    check_fields(fields)?;
    let key = new_key(s, index)?;
    expect_index(s, index)?;
    expect_free(s, &key)?;
    let victims = over_cap(s, index, max, now_ms);
    if !s.may_access_all(&victims) {
        return Err(CmdError::NoPerm);
    }
    let mut destroyed = 0;
    for victim in &victims {
        destroyed += s.del(victim);
        s.update_index(index, now_ms, IndexChange::Remove(victim));
    }
    let d = timeouts.start(now_ms);
    let (idle, absolute_at) = (d.idle_ms.to_string(), d.absolute_at.to_string());
    let mut hset: Vec<&[u8]> = vec![
        IDLE_FIELD.as_bytes(),
        idle.as_bytes(),
        ABSOLUTE_FIELD.as_bytes(),
        absolute_at.as_bytes(),
        INDEX_FIELD.as_bytes(),
        index,
    ];
    hset.extend_from_slice(fields);
    s.hset(&key, &hset);
    let at = d.expiry(now_ms);
    s.expire_at(&key, at);
    s.update_index(index, now_ms, IndexChange::Set(d.index_score(at), &key));
    Ok((key, destroyed))
}

/// SESSION.GET: the caller's fields; None when the session is gone.
pub fn get(s: &mut impl Store, key: &[u8], now_ms: i64) -> Result<Option<Pairs>, CmdError> {
    let loaded = load(s, key, now_ms, |s, d, index| {
        touch(s, key, index, d, now_ms);
        Ok(())
    })?;
    Ok(loaded.map(|(loaded, ())| loaded.user_pairs()))
}

/// SESSION.SET: how many fields are new; None when the session is gone.
pub fn set(
    s: &mut impl Store,
    key: &[u8],
    fields: &[&[u8]],
    now_ms: i64,
) -> Result<Option<i64>, CmdError> {
    check_fields(fields)?;
    let loaded = load(s, key, now_ms, |s, d, index| {
        let added = s.hset(key, fields);
        touch(s, key, index, d, now_ms);
        Ok(added)
    })?;
    Ok(loaded.map(|(_, added)| added))
}

/// SESSION.ROTATE: the session's new key (same fields, same expiry); None when it is gone.
pub fn rotate(s: &mut impl Store, old: &[u8], now_ms: i64) -> Result<Option<Vec<u8>>, CmdError> {
    let loaded = load(s, old, now_ms, |s, _, index| {
        let new = new_key(s, index)?;
        expect_free(s, &new)?;
        let at = s.expire_time(old);
        s.rename(old, &new);
        s.update_index(index, now_ms, IndexChange::Move(old, at, &new));
        Ok(new)
    })?;
    Ok(loaded.map(|(_, new)| new))
}

/// SESSION.DESTROY: whether a live session went.
pub fn destroy(s: &mut impl Store, key: &[u8], now_ms: i64) -> Result<bool, CmdError> {
    let loaded = load(s, key, now_ms, |s, _, index| {
        s.del(key);
        s.update_index(index, now_ms, IndexChange::Remove(key));
        Ok(())
    })?;
    Ok(loaded.is_some())
}

/// SESSION.LIST: the index's live session keys, soonest to expire first.
pub fn list(s: &mut impl Store, index: &[u8], now_ms: i64) -> Result<Vec<Vec<u8>>, CmdError> {
    expect_index(s, index)?;
    s.update_index(index, now_ms, IndexChange::None);
    Ok(live_sorted(s, index, now_ms))
}

/// SESSION.DESTROYALL: how many live sessions went (the index goes too, with the expired
/// members it still lists, unlinked: a large index is freed in the background). Every listed
/// key must be accessible, expired or not, before anything is deleted.
pub fn destroy_all(s: &mut impl Store, index: &[u8], now_ms: i64) -> Result<i64, CmdError> {
    expect_index(s, index)?;
    let listed = s.members(index);
    if !s.may_access_all(&listed) {
        return Err(CmdError::NoPerm);
    }
    let live: Vec<Vec<u8>> = listed
        .into_iter()
        .filter(|m| s.live_expiry(m, now_ms).is_some())
        .collect();
    let destroyed = s.del_all(&live);
    s.unlink(index);
    Ok(destroyed)
}

/// SESSION.COUNT: the index's live sessions.
pub fn count(s: &mut impl Store, index: &[u8], now_ms: i64) -> Result<i64, CmdError> {
    expect_index(s, index)?;
    Ok(live_len(s, index, now_ms))
}

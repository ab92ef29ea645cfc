//! Leaderboards: ranks with ties (ordinal, dense, competition, modified), around-me windows,
//! pages and percentiles over any sorted set, and an exact "who got there first" tie-break.
//!
//! The board is an ordinary sorted set: member → its true score. Reads work on any board,
//! including one written with plain ZADD; among equal scores they then follow Redis's member
//! order (by name, reversed for DESC, as ZREVRANGE does).
//!
//! The tie-break. A sorted set cannot order equal scores by time without packing the time into
//! the score (a double is exact only to 2^53, so that loses either precision or time). LB.ADD
//! and LB.INCR keep the true score and record, next to the board and in its Cluster slot:
//! - the **order** key, a sorted set scored like the board whose members are
//!   `<stamp><member>`, the stamp being 16 zero-padded digits: the time (ms) the member reached
//!   its current score. Equal scores compare by member bytes, so among equal scores the order
//!   key sorts by stamp, i.e. by arrival. A stamp is `max(now, last stamp at that score + 1)`,
//!   so two arrivals at one score in the same millisecond still keep their order.
//! - the **stamps** key, a hash member → its stamp, to find a member's entry in the order key
//!   when its score group is large: a member of a group of at most [`SMALL_GROUP`] order
//!   entries is found by scanning the group (its entries at the member's score, read by score
//!   from the order key) for `<stamp><member>`, so it needs no stamps entry. Invariant: every
//!   order entry of a group of more than `SMALL_GROUP` has one, and every stamps entry is
//!   accurate (dropped or rewritten whenever its member moves). A join that takes a group past
//!   `SMALL_GROUP` writes the entries of all its members once; a group that shrinks keeps
//!   them. A lookup tries the hash first: a miss means a small group (or no stamp at all), so
//!   the scan is bounded, O(log N + min(G, SMALL_GROUP)) for a group of G. Boards written
//!   before this (an entry for every member) already satisfy the invariant and shed entries
//!   as their members move into small groups.
//! - the **scores** key, a sorted set of the board's distinct scores, for dense ranks.
//!
//! A board written with plain ZADD before its first LB.ADD keeps those members as they are
//! (nothing is converted, so the first write costs what any write costs): a member without a
//! stamp (a *legacy* member) ranks before every stamped member of its score, and legacy members
//! rank among themselves by name, as if they had all arrived at time 0 in name order. Ranking a
//! legacy member by name among its score's members needs to know how many stamped members of
//! that score sort before it by name, so such a board also keeps the **names** key: a sorted
//! set, all scores 0, of `<score>:<member>` for its stamped members, whose ZLEXCOUNT answers
//! that in O(log N). A board written by LB.ADD from the start has no legacy members and no
//! names key; a board born legacy keeps it (and no scores key) as long as it has stamped
//! members.
//!
//! Every read then costs O(log N + count) whatever the ties: ranks come from ZCOUNT and ZRANK,
//! windows from ZRANGE by index. In DESC order the earlier achiever still ranks first, while
//! the order key sorts equal scores by ascending stamp only in ascending score order: a DESC
//! window is read reversed, and the (at most two) score groups cut by its edges are re-read in
//! ascending stamp order (`desc_slice`).
//!
//! Everything is written against [`Store`], a narrow interface of sorted-set and hash commands:
//! the module implements it with `RedisModule_Call` (`src/leaderboard.rs`), the unit tests with
//! a model in memory, and the Lua twin (`lua.rs`) runs the same steps with `redis.call`.

pub mod lua;
#[cfg(test)]
mod tests;

use crate::command::{
    arg_option, positive, Arg, ArgKind, CmdError, CommandDef, Flags, Keys, OptValue, OptionDef,
    Positional, Trailing, WRITE,
};

/// Digits of a stamp: zero-padded, so byte order is numeric order.
pub const STAMP_DIGITS: usize = 16;
/// Companion key suffixes (after the board's name, or `{<board>}` when it has no hashtag).
pub const ORDER_SUFFIX: &str = "lb-order";
pub const STAMPS_SUFFIX: &str = "lb-stamps";
pub const SCORES_SUFFIX: &str = "lb-scores";
pub const NAMES_SUFFIX: &str = "lb-names";
/// The largest score group (order entries at one score) whose members keep no stamps-hash
/// entry: they are found by scanning the group (see the module's doc).
pub const SMALL_GROUP: i64 = 32;
/// Members per command when a dense rank is counted by scanning.
pub const BATCH: i64 = 1000;
/// The most members a dense rank scans on a board without a scores key: the default of the
/// module's `patterns.lb-dense-max`, and the twin's fixed value.
pub const DENSE_MAX: i64 = 10_000;
pub const DENSE_TOO_MANY: &str = "RANKING DENSE would scan more members than \
     patterns.lb-dense-max allows (the board has no :lb-scores: it held ZADD members)";

pub const OUT_OF_STEP: &str =
    "the board's tie-break keys are out of step with it (written with ZADD or ZREM?)";
pub const BAD_BOARD: &str = "board name cannot carry its tie-break keys in its slot";
pub const NAN_SCORE: &str = "resulting score is not a number (NaN)";
/// The scores of LB.ADD, read as ZADD reads them.
pub const SCORE_ARG: Arg = Arg {
    name: "score",
    kind: ArgKind::Float,
};

// ---------------------------------------------------------------------------------------------
// Definitions

const READ: Flags = Flags::READONLY;

const ORDER: OptionDef = OptionDef {
    token: "ASC|DESC",
    value: OptValue::Word(&["ASC", "DESC"]),
    default: Order::Desc as i64,
};
const RANKING: OptionDef = OptionDef {
    token: "RANKING",
    value: OptValue::Choice(&["ORDINAL", "DENSE", "COMPETITION", "MODIFIED"]),
    default: Ranking::Ordinal as i64,
};
const MEMBER: Positional = Positional {
    arg: Arg {
        name: "member",
        kind: ArgKind::Text,
    },
    default: None,
};
const READ_KEYS: &str = "key: the board (any sorted set); its tie-break keys `<key>:lb-order` \
     and `<key>:lb-stamps` (`{<key>}:...` without a hashtag) when LB.ADD or LB.INCR wrote it, \
     `:lb-names` when it held ZADD members before, and `:lb-scores` for DENSE";
const WRITE_KEYS: &str = "key: the board; writes its tie-break keys in its slot: `:lb-order` \
     (sorted set, `<stamp><member>` scored like the board), `:lb-stamps` (hash member → \
     stamp, for the members of scores shared by more than 32 members), and `:lb-scores` \
     (sorted set of distinct scores), or, on a board that held ZADD members before, \
     `:lb-names` (sorted set of `<score>:<member>`, all scored 0)";
/// The extra cost of a window on a board with legacy members (see the module's doc).
macro_rules! window_cost {
    ($plain:literal, $count:literal) => {
        concat!(
            $plain,
            "; on a board with ZADD members not since written by LB.*, O(",
            $count,
            " log N) (O(",
            $count,
            " log^2 N) in a score shared by both kinds); ",
            "DENSE on a board without `:lb-scores` O(n) for the n members above the window, ",
            "refused past `patterns.lb-dense-max`"
        )
    };
}
const ENTRIES: &str = "Array of entries `[rank, member, score]`";

pub static AROUND: CommandDef = CommandDef {
    name: "LB.AROUND",
    syntax: "key member count [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]",
    summary:
        "The count entries around member, member as close to the middle as the board's ends allow.",
    complexity: window_cost!("O(log N + count)", "count"),
    reply: "Array of entries `[rank, member, score]`, nil when member is absent",
    keys: READ_KEYS,
    flags: READ,
    positionals: &[MEMBER, positive("count")],
    options: &[ORDER, RANKING],
    trailing: None,
    key_positions: Keys::First,
};

pub static RANK: CommandDef = CommandDef {
    name: "LB.RANK",
    syntax: "key member [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]",
    summary: "The member's rank and score, and the board's size.",
    complexity: "O(log N); DENSE on a board without `:lb-scores` O(n) for the n members above, \
        refused past `patterns.lb-dense-max`",
    reply: "Array `[rank, score, total_members]`, nil when member is absent",
    keys: READ_KEYS,
    flags: READ,
    positionals: &[MEMBER],
    options: &[ORDER, RANKING],
    trailing: None,
    key_positions: Keys::First,
};

pub static TOP: CommandDef = CommandDef {
    name: "LB.TOP",
    syntax: "key count [OFFSET n] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]",
    summary: "The count best entries, after skipping n.",
    complexity: window_cost!("O(log N + count)", "count"),
    reply: ENTRIES,
    keys: READ_KEYS,
    flags: READ,
    positionals: &[positive("count")],
    options: &[
        arg_option("OFFSET", "n", ArgKind::NonNegative, 0),
        ORDER,
        RANKING,
    ],
    trailing: None,
    key_positions: Keys::First,
};

pub static PAGE: CommandDef = CommandDef {
    name: "LB.PAGE",
    syntax: "key page page_size [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]",
    summary: "One page of entries (pages are 1-based) and the number of pages.",
    complexity: window_cost!("O(log N + page_size)", "page_size"),
    reply: "Array `[total_pages, [entry, ...]]`; no entries past the last page",
    keys: READ_KEYS,
    flags: READ,
    positionals: &[positive("page"), positive("page_size")],
    options: &[ORDER, RANKING],
    trailing: None,
    key_positions: Keys::First,
};

pub static PERCENTILE: CommandDef = CommandDef {
    name: "LB.PERCENTILE",
    syntax: "key member [ASC|DESC]",
    summary: "The share of members with a strictly worse score than member's, in percent.",
    complexity: "O(log N)",
    reply: "Double in [0, 100], nil when member is absent",
    keys: "key: the board (any sorted set)",
    flags: READ.and(Flags::FAST),
    positionals: &[MEMBER],
    options: &[ORDER],
    trailing: None,
    key_positions: Keys::First,
};

/// WITHRANK: a write answers the member's rank as LB.RANK would right after it.
const WITHRANK: OptionDef = OptionDef {
    token: "WITHRANK",
    value: OptValue::Flag,
    default: 0,
};

pub static ADD: CommandDef = CommandDef {
    name: "LB.ADD",
    syntax: "key [WITHRANK] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED] score member [score member ...]",
    summary: "Sets scores like ZADD and records when each member reached its score: among equal scores, the earlier achiever ranks first. WITHRANK also answers each member's rank (ASC|DESC and RANKING choose which).",
    complexity: "O(M log N) for M members, whatever the board held before (members written with ZADD are not converted; measured: 1,000,000 of them, the first LB.ADD takes as long as any)",
    reply: "Integer: the number of members added; WITHRANK: an array of LB.RANK's `[rank, score, total_members]`, one per pair, after the whole write",
    keys: WRITE_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[WITHRANK, ORDER, RANKING],
    trailing: Some(Trailing {
        names: &["score", "member"],
        min: 1,
    }),
    key_positions: Keys::First,
};

pub static INCR: CommandDef = CommandDef {
    name: "LB.INCR",
    syntax: "key increment member [WITHRANK] [ASC|DESC] [RANKING ORDINAL|DENSE|COMPETITION|MODIFIED]",
    summary: "Adds to a member's score like ZINCRBY and records when it reached the new score; WITHRANK also answers its rank (ASC|DESC and RANKING choose which).",
    complexity: "O(log N), the first write too; WITHRANK: as LB.RANK",
    reply: "The new score: a double (RESP2: a bulk string); WITHRANK: LB.RANK's `[rank, score, total_members]`",
    keys: WRITE_KEYS,
    flags: WRITE,
    positionals: &[
        Positional {
            arg: Arg {
                name: "increment",
                kind: ArgKind::Float,
            },
            default: None,
        },
        MEMBER,
    ],
    options: &[WITHRANK, ORDER, RANKING],
    trailing: None,
    key_positions: Keys::First,
};

pub static REM: CommandDef = CommandDef {
    name: "LB.REM",
    syntax: "key member [member ...]",
    summary: "Removes members from the board and from its tie-break keys.",
    complexity: "O(M log N) for M members",
    reply: "Integer: the number of members removed",
    keys: WRITE_KEYS,
    flags: WRITE,
    positionals: &[],
    options: &[],
    trailing: Some(Trailing {
        names: &["member"],
        min: 1,
    }),
    key_positions: Keys::First,
};

/// The family's commands, in README order.
pub static COMMANDS: [&CommandDef; 8] =
    [&ADD, &INCR, &REM, &RANK, &AROUND, &TOP, &PAGE, &PERCENTILE];

// ---------------------------------------------------------------------------------------------
// Options

/// Which end ranks first: DESC (the default) puts the highest score at rank 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Asc = 0,
    Desc = 1,
}

impl Order {
    pub fn from_slot(slot: i64) -> Self {
        if slot == 0 {
            Order::Asc
        } else {
            Order::Desc
        }
    }
}

/// How equal scores share ranks: ORDINAL "1234" (unique, in the board's order), DENSE "1223",
/// COMPETITION "1224", MODIFIED "1334".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranking {
    Ordinal = 0,
    Dense = 1,
    Competition = 2,
    Modified = 3,
}

impl Ranking {
    pub fn from_slot(slot: i64) -> Self {
        match slot {
            1 => Ranking::Dense,
            2 => Ranking::Competition,
            3 => Ranking::Modified,
            _ => Ranking::Ordinal,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys

/// The Cluster hashtag of a key (the bytes between the first `{` and the next `}`, if any).
pub use crate::keys::hashtag;

/// The names of a board's four tie-break keys, in its slot (`derived_key`): `<board>:<suffix>`
/// when the board's name has a hashtag, else `{<board>}:<suffix>`. The module's reads and
/// writes name them through this alone (the twin with `derived_key` and the same suffixes),
/// in one buffer: they differ in their suffix alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Companions {
    bytes: Vec<u8>,
    /// The length of the prefix every name starts with.
    prefix: usize,
    /// Where the order, stamps, scores and names keys' names end in `bytes` (the last three
    /// empty until made).
    ends: [usize; 4],
}

impl Companions {
    /// The tie-break keys' suffixes, in `Key`'s order (after the board).
    const SUFFIXES: [&'static str; 4] = [ORDER_SUFFIX, STAMPS_SUFFIX, SCORES_SUFFIX, NAMES_SUFFIX];

    /// The four names; None for a name with braces but no hashtag (or empty), which no key
    /// of its slot can be derived from.
    pub fn of(board: &[u8]) -> Option<Self> {
        let mut names = Self::order_first(board)?;
        names.make_others();
        Some(names)
    }

    /// The order key's name alone, with room for the others ([`Companions::make_others`]): a
    /// read names them only once the order key exists.
    pub fn order_first(board: &[u8]) -> Option<Self> {
        let suffixes: usize = Self::SUFFIXES.iter().map(|s| s.len()).sum();
        // Each name's prefix is the board's name and at most `{`, `}` and `:`.
        let mut bytes = Vec::with_capacity(4 * (board.len() + 3) + suffixes);
        crate::keys::push_derived_prefix(&mut bytes, board)?;
        let prefix = bytes.len();
        bytes.extend_from_slice(ORDER_SUFFIX.as_bytes());
        let ends = [bytes.len(); 4];
        Some(Self {
            bytes,
            prefix,
            ends,
        })
    }

    /// Makes the stamps, scores and names keys' names, unless made.
    pub fn make_others(&mut self) {
        if self.ends[3] > self.ends[0] {
            return;
        }
        for (end, suffix) in self.ends[1..].iter_mut().zip(&Self::SUFFIXES[1..]) {
            self.bytes.extend_from_within(..self.prefix);
            self.bytes.extend_from_slice(suffix.as_bytes());
            *end = self.bytes.len();
        }
    }

    /// The order key's name.
    pub fn order(&self) -> &[u8] {
        &self.bytes[..self.ends[0]]
    }

    /// The name of the tie-break key `key`; None for the board (the command's key) and for a
    /// name not made yet.
    pub fn name(&self, key: Key) -> Option<&[u8]> {
        let name = self.all()[(key as usize).checked_sub(1)?];
        (!name.is_empty()).then_some(name)
    }

    /// The order, stamps, scores and names keys' names (empty while not made).
    pub fn all(&self) -> [&[u8]; 4] {
        let mut start = 0;
        self.ends.map(|end| {
            let name = &self.bytes[start..end];
            start = end;
            name
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Stamps

/// Appends a stamp's text to `out`: 16 zero-padded digits.
fn push_stamp(out: &mut Vec<u8>, stamp: i64) {
    if !(0..10_i64.pow(STAMP_DIGITS as u32)).contains(&stamp) {
        return out.extend(format!("{stamp:0width$}", width = STAMP_DIGITS).bytes());
    }
    // Without the formatting machinery: a write makes one stamp.
    let start = out.len();
    out.resize(start + STAMP_DIGITS, b'0');
    crate::text::write_digits(stamp as u64, &mut out[start..]);
}

/// The stamp that starts an order-key member (or a stamps-hash value).
pub fn stamp_of(text: &[u8]) -> Option<i64> {
    // 16 digits always fit an i64: folded in place, no string parsed.
    let digits = text.get(..STAMP_DIGITS)?;
    digits.iter().try_fold(0, |n: i64, d| {
        d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
    })
}

/// The stamp of an arrival at a score at `now_ms`, after the last one there: the time, or
/// one past the last stamp when the clock has not moved on (or went back).
pub fn next_stamp(now_ms: i64, last_at_score: Option<i64>) -> i64 {
    match last_at_score {
        Some(last) => now_ms.max(last + 1),
        None => now_ms,
    }
}

/// The order key's member: stamp then member.
pub fn order_member(stamp: &[u8], member: &[u8]) -> Vec<u8> {
    [stamp, member].concat()
}

/// The order key's member of `member` stamped `stamp`, made in one buffer; its stamp's text
/// is the bytes before `member`.
pub fn order_entry(stamp: i64, member: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(STAMP_DIGITS + member.len());
    push_stamp(&mut entry, stamp);
    entry.extend_from_slice(member);
    entry
}

/// The member of a scores-key entry: the score as the server writes it, `0` for -0 (the two
/// are one score).
pub fn distinct_member(score: &Scored) -> &[u8] {
    if score.score == 0.0 {
        b"0"
    } else {
        &score.text
    }
}

// ---------------------------------------------------------------------------------------------
// Windows: positions are 0-based places in the chosen order, `[start, end)`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    fn clamped(start: i64, end: i64, total: i64) -> Self {
        let start = start.clamp(0, total);
        Self {
            start,
            end: end.clamp(start, total),
        }
    }

    /// `count` places around `position`: count/2 above it when the board allows, shifted to
    /// stay full at either end.
    pub fn around(position: i64, count: i64, total: i64) -> Self {
        let count = count.min(total);
        let start = (position - count / 2).clamp(0, total - count);
        Self::clamped(start, start + count, total)
    }

    /// `count` places after the first `offset`.
    pub fn top(offset: i64, count: i64, total: i64) -> Self {
        Self::clamped(offset, offset.saturating_add(count), total)
    }

    /// Page `page` (1-based) of `size` places, and the number of pages.
    pub fn page(page: i64, size: i64, total: i64) -> (i64, Self) {
        let pages = total / size + i64::from(total % size != 0);
        if page > pages {
            return (pages, Self::clamped(total, total, total));
        }
        let start = (page - 1) * size;
        (pages, Self::clamped(start, start + size, total))
    }
}

/// Ranks of a window's entries, given their scores in order and `edge`, the one count the
/// ranking needs beyond the window: COMPETITION, the members strictly better than the first
/// entry; DENSE, the distinct scores strictly better than the first entry's; MODIFIED, the
/// members better than or equal to the last entry; ORDINAL, none.
pub fn ranks(ranking: Ranking, start: i64, scores: &[f64], edge: i64) -> Vec<i64> {
    let n = scores.len();
    let new_group = |k: usize| k == 0 || scores[k] != scores[k - 1];
    let mut out = Vec::with_capacity(n);
    let mut rank = 0;
    match ranking {
        Ranking::Ordinal => out.extend((0..n as i64).map(|k| start + k + 1)),
        Ranking::Competition => {
            for k in 0..n {
                if new_group(k) {
                    rank = if k == 0 {
                        edge + 1
                    } else {
                        start + k as i64 + 1
                    };
                }
                out.push(rank);
            }
        }
        Ranking::Dense => {
            for k in 0..n {
                if new_group(k) {
                    rank = if k == 0 { edge + 1 } else { rank + 1 };
                }
                out.push(rank);
            }
        }
        Ranking::Modified => {
            out.resize(n, 0);
            for k in (0..n).rev() {
                if k == n - 1 {
                    rank = edge;
                } else if new_group(k + 1) {
                    rank = start + k as i64 + 1;
                }
                out[k] = rank;
            }
        }
    }
    out
}

/// A DESC window over the order key, whose equal scores sort by ascending stamp only in
/// ascending order. For a score group of the window, with `greater` members scored above it and
/// `less` below, DESC places `lo..=hi` of that group are the order key's ascending indexes
/// returned here: the group starts at DESC place `greater` and at ascending index `less`.
pub fn desc_slice(lo: i64, hi: i64, greater: i64, less: i64) -> (i64, i64) {
    (less + lo - greater, less + hi - greater)
}

/// The share of members strictly below `below` of `total`, in percent.
pub fn percentile(below: i64, total: i64) -> f64 {
    100.0 * below as f64 / total as f64
}

// ---------------------------------------------------------------------------------------------
// The store

/// The keys a command reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Board,
    Order,
    Stamps,
    Scores,
    Names,
}

pub use crate::keys::Kind;

/// A member and its score, as the server reports it (`text` is its own formatting).
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    pub member: Vec<u8>,
    pub score: f64,
    pub text: Vec<u8>,
}

/// The sorted-set and hash commands the family runs. Writes reach replicas and the AOF as
/// these very commands: every argument is explicit (stamps included), so they replay exactly.
pub trait Store {
    /// TYPE.
    fn kind(&mut self, key: Key) -> Kind;
    /// ZCARD, or HLEN for the stamps.
    fn card(&mut self, key: Key) -> i64;
    /// ZSCORE on the board.
    fn score(&mut self, member: &[u8]) -> Option<Scored>;
    /// ZSCORE's value alone, for checks that need no text.
    fn score_value(&mut self, member: &[u8]) -> Option<f64> {
        self.score(member).map(|s| s.score)
    }
    /// ZCOUNT key min max, bounds in Redis's syntax (`(1.5`, `-inf`).
    fn count(&mut self, key: Key, min: &[u8], max: &[u8]) -> i64;
    /// ZLEXCOUNT on the names key, bounds in Redis's syntax (`[a`, `(b`).
    fn lexcount(&mut self, min: &[u8], max: &[u8]) -> i64;
    /// ZRANGE key start stop [REV] WITHSCORES.
    fn range(&mut self, key: Key, start: i64, stop: i64, rev: bool) -> Vec<Scored>;
    /// The same range of the board, known to hold `near` at place `at`: a store may read it
    /// outwards from `near` rather than by place.
    fn range_near(
        &mut self,
        (start, stop): (i64, i64),
        rev: bool,
        _near: &Scored,
        _at: i64,
    ) -> Vec<Scored> {
        self.range(Key::Board, start, stop, rev)
    }
    /// Places `start..=stop` of the order key in DESC order (highest score first, each
    /// score's entries in ascending order), when the store can read them directly; None to
    /// have them assembled from a reversed ZRANGE, ZCOUNTs and ZRANGEs of the edge groups.
    fn order_desc(&mut self, _start: i64, _stop: i64) -> Option<Vec<Scored>> {
        None
    }
    /// The same places, known to hold the order-key entry `entry` (of score `score`) at
    /// place `at`: a store may read them outwards from it.
    fn order_desc_near(
        &mut self,
        _window: (i64, i64),
        _entry: &[u8],
        _score: f64,
        _at: i64,
    ) -> Option<Vec<Scored>> {
        None
    }
    /// The members of `key` (the board or the order key) placed before every member of
    /// `near`'s score in ZRANGE's order (ZREVRANGE's with `rev`), i.e. scored strictly lower
    /// (higher), when the store finds them as the place of that score's first member (one
    /// ZRANK); None to count by score (ZCOUNT).
    fn placed_before_score(&mut self, _key: Key, _near: &Scored, _rev: bool) -> Option<i64> {
        None
    }
    /// ZRANK, or ZREVRANK with `rev`.
    fn rank(&mut self, key: Key, member: &[u8], rev: bool) -> Option<i64>;
    /// The last order-key member at a score: ZRANGE order s s BYSCORE REV LIMIT 0 1.
    fn last_at(&mut self, score: &[u8]) -> Option<Vec<u8>>;
    /// The first `n` order-key members at a score: ZRANGE order s s BYSCORE LIMIT 0 n.
    fn group_head(&mut self, score: &[u8], n: i64) -> Vec<Vec<u8>>;
    /// `member`'s entry among the first `n` order-key members at a score, and its offset
    /// there: a store may stop reading at it.
    fn group_find(&mut self, score: &[u8], member: &[u8], n: i64) -> Option<(i64, Vec<u8>)> {
        entry_in(self.group_head(score, n), member)
    }
    /// The stamp of [`Store::last_at`] of one score, and its order-key members counting at
    /// most `cap`: [`group_tail_by_reads`], or one walk of the group where a store can.
    fn group_tail(&mut self, score: &[u8], cap: i64) -> (Option<i64>, i64) {
        group_tail_by_reads(self, score, cap)
    }
    /// HGET on the stamps.
    fn stamp(&mut self, member: &[u8]) -> Option<Vec<u8>>;
    /// Whether some member of `key` has exactly the score `score` (ZCOUNT key s s > 0).
    fn any_at(&mut self, key: Key, score: &[u8]) -> bool {
        self.count(key, score, score) > 0
    }
    /// ZADD key score member [score member ...]: how many were added.
    fn zadd(&mut self, key: Key, pairs: &[(&[u8], &[u8])]) -> i64;
    /// ZINCRBY on the board: the new score.
    fn zincrby(&mut self, increment: &[u8], member: &[u8]) -> Scored;
    /// ZREM key member: whether it was there.
    fn zrem(&mut self, key: Key, member: &[u8]) -> bool;
    /// HSET on the stamps.
    fn hset(&mut self, pairs: &[(&[u8], &[u8])]);
    /// HDEL on the stamps.
    fn hdel(&mut self, member: &[u8]);
    /// DEL.
    fn del(&mut self, key: Key);
}

fn exclusive(text: &[u8]) -> Vec<u8> {
    [b"(", text].concat()
}

const PLUS_INF: &[u8] = b"+inf";
const MINUS_INF: &[u8] = b"-inf";

/// Fails with WRONGTYPE unless the board and its tie-break keys have the family's types.
fn check_types<S: Store>(s: &mut S) -> Result<(), CmdError> {
    let expected = [
        (Key::Board, Kind::ZSet),
        (Key::Order, Kind::ZSet),
        (Key::Stamps, Kind::Hash),
        (Key::Scores, Kind::ZSet),
        (Key::Names, Kind::ZSet),
    ];
    for (key, want) in expected {
        let kind = s.kind(key);
        if kind != Kind::Empty && kind != want {
            return Err(CmdError::WrongType);
        }
    }
    Ok(())
}

/// Fails with WRONGTYPE unless the board and its order key are (absent or) sorted sets, and,
/// when the order key exists, the other tie-break keys have their types. A read on a board
/// without an order key (a plain board) never reads the others, so it does not look at them.
fn check_read_types<S: Store>(s: &mut S) -> Result<(), CmdError> {
    for key in [Key::Board, Key::Order] {
        if !matches!(s.kind(key), Kind::Empty | Kind::ZSet) {
            return Err(CmdError::WrongType);
        }
    }
    if s.kind(Key::Order) == Kind::Empty {
        return Ok(());
    }
    check_types(s)
}

/// What a board records of its tie-break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// No tie-break keys: Redis's order among equal scores.
    Plain,
    /// Every member stamped (written by LB.ADD/LB.INCR, or adopted by an earlier version).
    Native,
    /// Born from a ZADD board: `legacy` members have no stamp, and the names key lists the
    /// stamped ones.
    Legacy { legacy: i64 },
}

/// The board's layout, checked to be in step with it: no more stamps than order entries, as
/// many names as order entries on a legacy board, and as many order entries as members unless
/// some are legacy.
fn layout<S: Store>(s: &mut S, total: i64) -> Result<Layout, CmdError> {
    if total == 0 || s.kind(Key::Order) == Kind::Empty {
        return Ok(Layout::Plain);
    }
    let stamped = s.card(Key::Order);
    if s.card(Key::Stamps) > stamped || stamped > total {
        return Err(CmdError::BadState(OUT_OF_STEP));
    }
    if s.kind(Key::Names) == Kind::Empty {
        if stamped != total {
            return Err(CmdError::BadState(OUT_OF_STEP));
        }
        return Ok(Layout::Native);
    }
    if s.card(Key::Names) != stamped {
        return Err(CmdError::BadState(OUT_OF_STEP));
    }
    Ok(Layout::Legacy {
        legacy: total - stamped,
    })
}

/// [`Store::group_tail`] by two reads: the last order-key member at `score` (its stamp) and
/// min(ZCOUNT order s s, `cap`).
pub fn group_tail_by_reads<S: Store + ?Sized>(
    s: &mut S,
    score: &[u8],
    cap: i64,
) -> (Option<i64>, i64) {
    let last = s.last_at(score).and_then(|m| stamp_of(&m));
    (last, s.count(Key::Order, score, score).min(cap))
}

/// A stamped member's entry in the names key: `<score>:<member>`.
pub fn name_entry(score: &Scored, member: &[u8]) -> Vec<u8> {
    [distinct_member(score), b":", member].concat()
}

/// ZLEXCOUNT bounds of the names of score `score` sorting before `member`.
fn names_before(score: &Scored, member: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let prefix = name_entry(score, b"");
    (
        [b"[", &prefix[..]].concat(),
        [b"(", &prefix[..], member].concat(),
    )
}

/// A stamped member's entry in the order key, as found by [`find_entry`].
struct Found {
    /// `<stamp><member>`.
    entry: Vec<u8>,
    /// Its offset in its score group's ascending order when the group was scanned; None when
    /// the stamps hash gave it (the member has an entry there).
    offset: Option<i64>,
}

impl Found {
    /// Whether the stamps hash gave it: the member has an entry there.
    fn hashed(&self) -> bool {
        self.offset.is_none()
    }

    /// Whether the scan passed another entry of its score first: that entry's member has the
    /// same score (the keys in step), so the score outlives this member's move.
    fn shares_score(&self) -> bool {
        self.offset.is_some_and(|at| at > 0)
    }
}

/// Finds the order entry of `scored` (a board member and its score): through the stamps hash,
/// else by scanning its score group, at most `SMALL_GROUP` entries (a larger group has every
/// member in the hash). None when the member has no stamp: a legacy member, or keys out of step.
fn find_entry<S: Store>(s: &mut S, scored: &Scored) -> Option<Found> {
    if let Some(stamp) = s.stamp(&scored.member) {
        let entry = order_member(&stamp, &scored.member);
        return Some(Found {
            entry,
            offset: None,
        });
    }
    let (at, entry) = s.group_find(&scored.text, &scored.member, SMALL_GROUP)?;
    Some(Found {
        offset: Some(at),
        entry,
    })
}

/// `member`'s entry among order-key members, and its index there.
pub fn entry_in(group: Vec<Vec<u8>>, member: &[u8]) -> Option<(i64, Vec<u8>)> {
    let at = group.iter().position(|e| is_entry_of(e, member))?;
    Some((at as i64, group.into_iter().nth(at)?))
}

/// Whether an order-key member is `<stamp><member>`.
pub fn is_entry_of(entry: &[u8], member: &[u8]) -> bool {
    entry.len() == STAMP_DIGITS + member.len()
        && entry.ends_with(member)
        && stamp_of(entry).is_some()
}

// ---------------------------------------------------------------------------------------------
// Reads

/// One entry of a reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub rank: i64,
    pub member: Vec<u8>,
    pub score: Vec<u8>,
}

/// A board opened for reading in one order.
pub struct Board<'a, S: Store> {
    store: &'a mut S,
    order: Order,
    pub total: i64,
    layout: Layout,
    dense_max: i64,
}

impl<'a, S: Store> Board<'a, S> {
    pub fn open(store: &'a mut S, order: Order) -> Result<Self, CmdError> {
        check_read_types(store)?;
        let total = store.card(Key::Board);
        let layout = layout(store, total)?;
        Ok(Self {
            store,
            order,
            total,
            layout,
            dense_max: DENSE_MAX,
        })
    }

    /// The most members a dense rank may scan (see `DENSE_MAX`).
    pub fn with_dense_max(self, dense_max: i64) -> Self {
        Self { dense_max, ..self }
    }

    /// Whether some members have no stamp while others have one: places are then found
    /// score group by score group (`group_offset`, `group_slice`).
    fn mixed(&self) -> bool {
        matches!(self.layout, Layout::Legacy { legacy } if legacy > 0)
    }

    pub fn score(&mut self, member: &[u8]) -> Option<Scored> {
        self.store.score(member)
    }

    /// Bounds of the scores strictly better than `text` in this order.
    fn better(&self, text: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match self.order {
            Order::Desc => (exclusive(text), PLUS_INF.to_vec()),
            Order::Asc => (MINUS_INF.to_vec(), exclusive(text)),
        }
    }

    /// Members scored strictly better than `text` (`or_equal`: better or equal).
    fn count_better(&mut self, key: Key, text: &[u8], or_equal: bool) -> i64 {
        let (min, max) = match (self.order, or_equal) {
            (_, false) => self.better(text),
            (Order::Desc, true) => (text.to_vec(), PLUS_INF.to_vec()),
            (Order::Asc, true) => (MINUS_INF.to_vec(), text.to_vec()),
        };
        self.store.count(key, &min, &max)
    }

    /// Members of the board scored strictly better than `near` (`or_equal`: better or equal)
    /// in this order: where its score starts in the board's own order (or, `or_equal`, all
    /// but those after where it ends), when the store finds that place; else by score.
    fn count_better_than(&mut self, near: &Scored, or_equal: bool) -> i64 {
        let rev = self.order == Order::Desc;
        let placed = match or_equal {
            false => self.store.placed_before_score(Key::Board, near, rev),
            true => self
                .store
                .placed_before_score(Key::Board, near, !rev)
                .map(|worse| self.total - worse),
        };
        placed.unwrap_or_else(|| self.count_better(Key::Board, &near.text, or_equal))
    }

    /// Order-key entries placed before every entry of `near`'s score in ascending order
    /// (`rev`: descending): where that score starts (one ZRANK), else by score (ZCOUNT).
    fn order_before(&mut self, near: &Scored, rev: bool) -> i64 {
        let placed = self.store.placed_before_score(Key::Order, near, rev);
        placed.unwrap_or_else(|| {
            let (min, max) = match rev {
                true => (exclusive(&near.text), PLUS_INF.to_vec()),
                false => (MINUS_INF.to_vec(), exclusive(&near.text)),
            };
            self.store.count(Key::Order, &min, &max)
        })
    }

    /// The member's 0-based place in this order.
    pub fn position(&mut self, scored: &Scored) -> Result<i64, CmdError> {
        let rev = self.order == Order::Desc;
        if self.layout == Layout::Plain {
            return self
                .store
                .rank(Key::Board, &scored.member, rev)
                .ok_or(CmdError::BadState(OUT_OF_STEP));
        }
        if self.mixed() {
            let better = self.count_better(Key::Board, &scored.text, false);
            return Ok(better + self.group_offset(scored)?);
        }
        let found = find_entry(self.store, scored).ok_or(CmdError::BadState(OUT_OF_STEP))?;
        if let Some(offset) = found.offset {
            // Equal scores sort by ascending stamp in both orders.
            return Ok(self.order_before(scored, rev) + offset);
        }
        let asc = self
            .store
            .rank(Key::Order, &found.entry, false)
            .ok_or(CmdError::BadState(OUT_OF_STEP))?;
        if !rev {
            return Ok(asc);
        }
        let (greater, less) = (
            self.order_before(scored, true),
            self.order_before(scored, false),
        );
        Ok(greater + asc - less)
    }

    /// The members at places `window`, in this order; `near`: a member of it and its place.
    fn members(&mut self, w: Window, near: Option<(&Scored, i64)>) -> Vec<Scored> {
        if w.end <= w.start {
            return Vec::new();
        }
        let rev = self.order == Order::Desc;
        if self.layout == Layout::Plain {
            return match near {
                Some((near, at)) => self.store.range_near((w.start, w.end - 1), rev, near, at),
                None => self.store.range(Key::Board, w.start, w.end - 1, rev),
            };
        }
        if self.mixed() {
            return self.mixed_members(w, rev);
        }
        let (start, stop) = (w.start, w.end - 1);
        let mut out = match rev {
            false => self.store.range(Key::Order, start, stop, false),
            true => match self.order_desc(start, stop, near) {
                Some(out) => out,
                None => {
                    let raw = self.store.range(Key::Order, start, stop, true);
                    self.desc_fix(start, raw)
                }
            },
        };
        for e in &mut out {
            e.member.drain(..STAMP_DIGITS.min(e.member.len()));
        }
        out
    }

    /// Places `start..=stop` of the order key in DESC order straight from the store (read
    /// outwards from `near` when given and inside), None when it cannot.
    fn order_desc(
        &mut self,
        start: i64,
        stop: i64,
        near: Option<(&Scored, i64)>,
    ) -> Option<Vec<Scored>> {
        match near {
            Some((near, at)) if (start..=stop).contains(&at) => {
                let entry = find_entry(self.store, near)?.entry;
                self.store
                    .order_desc_near((start, stop), &entry, near.score, at)
            }
            _ => self.store.order_desc(start, stop),
        }
    }

    /// Reorders a reversed order-key window into DESC order: whole score groups are reversed,
    /// the first and last (maybe cut by the window) are re-read in ascending stamp order.
    fn desc_fix(&mut self, start: i64, raw: Vec<Scored>) -> Vec<Scored> {
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for k in 0..raw.len() {
            if k == 0 || raw[k].score != raw[k - 1].score {
                groups.push((k, k + 1));
            } else if let Some(g) = groups.last_mut() {
                g.1 = k + 1;
            }
        }
        let last = groups.len() - 1;
        let mut out = Vec::with_capacity(raw.len());
        for (i, &(from, to)) in groups.iter().enumerate() {
            if i == 0 || i == last {
                let text = &raw[from].text;
                let greater = self.store.count(Key::Order, &exclusive(text), PLUS_INF);
                let less = self.store.count(Key::Order, MINUS_INF, &exclusive(text));
                let (lo, hi) = (start + from as i64, start + to as i64 - 1);
                let (a, b) = desc_slice(lo, hi, greater, less);
                out.extend(self.store.range(Key::Order, a, b, false));
            } else {
                out.extend(raw[from..to].iter().rev().cloned());
            }
        }
        out
    }

    /// A member's offset in its score group, whose members rank legacy ones first (by name),
    /// then stamped ones (by stamp), in both orders.
    fn group_offset(&mut self, scored: &Scored) -> Result<i64, CmdError> {
        let t = &scored.text;
        let missing = CmdError::BadState(OUT_OF_STEP);
        if let Some(found) = find_entry(self.store, scored) {
            let offset = match found.offset {
                Some(offset) => offset,
                None => {
                    let at = self.store.rank(Key::Order, &found.entry, false);
                    at.ok_or(missing)? - self.store.count(Key::Order, MINUS_INF, &exclusive(t))
                }
            };
            let legacy = self.store.count(Key::Board, t, t) - self.store.count(Key::Order, t, t);
            return Ok(legacy + offset);
        }
        let at = self
            .store
            .rank(Key::Board, &scored.member, false)
            .ok_or(missing)?;
        let below = self.store.count(Key::Board, MINUS_INF, &exclusive(t));
        let (min, max) = names_before(scored, &scored.member);
        Ok(at - below - self.store.lexcount(&min, &max))
    }

    /// The members at places `window` of a board with legacy members: the board's own
    /// window tells which score groups it covers, each group's part is read in group order.
    fn mixed_members(&mut self, w: Window, rev: bool) -> Vec<Scored> {
        let raw = self.store.range(Key::Board, w.start, w.end - 1, rev);
        let mut out = Vec::with_capacity(raw.len());
        let mut from = 0;
        while let Some(first) = raw.get(from) {
            let len = raw[from..]
                .iter()
                .take_while(|e| e.score == first.score)
                .count();
            let offset = w.start + from as i64 - self.count_better(Key::Board, &first.text, false);
            out.extend(self.group_slice(first, offset, offset + len as i64));
            from += len;
        }
        out
    }

    /// Offsets `[from, to)` of the score group of `group` (any of its members), in group
    /// order: legacy members from the board by name, stamped ones from the order key.
    fn group_slice(&mut self, group: &Scored, from: i64, to: i64) -> Vec<Scored> {
        let t = &group.text;
        let members = self.store.count(Key::Board, t, t);
        let stamped = self.store.count(Key::Order, t, t);
        let legacy = members - stamped;
        let below = self.store.count(Key::Board, MINUS_INF, &exclusive(t));
        let mut out = Vec::new();
        let legacy_to = to.min(legacy);
        if stamped == 0 && from < legacy_to {
            out = self
                .store
                .range(Key::Board, below + from, below + legacy_to - 1, false);
        } else {
            for k in from..legacy_to {
                out.extend(self.nth_legacy(group, below, (members, stamped), k));
            }
        }
        let (stamped_from, stamped_to) = (from.max(legacy) - legacy, to - legacy);
        if stamped_from < stamped_to {
            let base = self.store.count(Key::Order, MINUS_INF, &exclusive(t));
            let range = (base + stamped_from, base + stamped_to - 1);
            for mut e in self.store.range(Key::Order, range.0, range.1, false) {
                e.member.drain(..STAMP_DIGITS.min(e.member.len()));
                out.push(e);
            }
        }
        out
    }

    /// The `k`-th legacy member (by name) of a score group of `members` members starting at
    /// ascending place `below`: the member before the first group place `j` with k + 1 legacy
    /// members before it. At most one stamped member per place separates them, so `j` lies
    /// within `stamped` places of k + 1: a binary search of ZLEXCOUNTs, O(log^2 N).
    fn nth_legacy(
        &mut self,
        group: &Scored,
        below: i64,
        (members, stamped): (i64, i64),
        k: i64,
    ) -> Option<Scored> {
        let (mut lo, mut hi) = (k + 1, (k + 1 + stamped).min(members));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let at = self
                .store
                .range(Key::Board, below + mid, below + mid, false);
            let name = &at.first()?.member;
            let (min, max) = names_before(group, name);
            if mid - self.store.lexcount(&min, &max) > k {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.store
            .range(Key::Board, below + lo - 1, below + lo - 1, false)
            .pop()
    }

    /// The distinct scores strictly better than `text`: from the scores key when recorded,
    /// else by scanning the members above (the cost of DENSE on a ZADD board), refused past
    /// `dense_max` of them.
    fn distinct_better(&mut self, text: &[u8]) -> Result<i64, CmdError> {
        if self.layout != Layout::Plain && self.store.kind(Key::Scores) != Kind::Empty {
            return Ok(self.count_better(Key::Scores, text, false));
        }
        let above = self.count_better(Key::Board, text, false);
        if above > self.dense_max {
            return Err(CmdError::BadState(DENSE_TOO_MANY));
        }
        let rev = self.order == Order::Desc;
        let (mut distinct, mut previous) = (0, None);
        let mut at = 0;
        while at < above {
            let stop = (at + BATCH).min(above) - 1;
            for e in self.store.range(Key::Board, at, stop, rev) {
                if previous != Some(e.score) {
                    distinct += 1;
                    previous = Some(e.score);
                }
            }
            at = stop + 1;
        }
        Ok(distinct)
    }

    /// What a window's ranks start from: members better than its first entry (distinct
    /// scores for DENSE), or, for MODIFIED, members at least as good as its last.
    fn edge(&mut self, ranking: Ranking, first: &Scored, last: &Scored) -> Result<i64, CmdError> {
        Ok(match ranking {
            Ranking::Ordinal => 0,
            Ranking::Competition => self.count_better_than(first, false),
            Ranking::Modified => self.count_better_than(last, true),
            Ranking::Dense => self.distinct_better(&first.text)?,
        })
    }

    /// The rank of `scored`, a member of the board. Its place is found (and checked against
    /// the board) where the rank depends on it: ORDINAL, and any rank on a board with a
    /// tie-break, whose place finding checks its keys are in step; on a plain board the other
    /// rankings depend on the member's score alone.
    pub fn rank(&mut self, scored: &Scored, ranking: Ranking) -> Result<i64, CmdError> {
        if ranking != Ranking::Ordinal && self.layout == Layout::Plain {
            // A lone entry's rank other than ORDINAL ignores its place.
            return self.rank_of(scored, 0, ranking);
        }
        let position = self.position(scored)?;
        if position >= self.total {
            return Err(CmdError::BadState(OUT_OF_STEP));
        }
        self.rank_of(scored, position, ranking)
    }

    /// The rank of a member found at `position`: the entry a one-member window there holds,
    /// without reading that window back.
    fn rank_of(
        &mut self,
        scored: &Scored,
        position: i64,
        ranking: Ranking,
    ) -> Result<i64, CmdError> {
        let edge = self.edge(ranking, scored, scored)?;
        Ok(ranks(ranking, position, &[scored.score], edge)[0])
    }

    pub fn entries(&mut self, w: Window, ranking: Ranking) -> Result<Vec<Entry>, CmdError> {
        self.entries_near(w, ranking, None)
    }

    /// The entries at places `window`, ranked, given one of them (`near`, at its place).
    pub fn entries_near(
        &mut self,
        w: Window,
        ranking: Ranking,
        near: Option<(&Scored, i64)>,
    ) -> Result<Vec<Entry>, CmdError> {
        let members = self.members(w, near);
        let (Some(first), Some(last)) = (members.first(), members.last()) else {
            return Ok(Vec::new());
        };
        let edge = self.edge(ranking, first, last)?;
        let scores: Vec<f64> = members.iter().map(|e| e.score).collect();
        Ok(ranks(ranking, w.start, &scores, edge)
            .into_iter()
            .zip(members)
            .map(|(rank, e)| Entry {
                rank,
                member: e.member,
                score: e.text,
            })
            .collect())
    }
}

/// LB.PERCENTILE: the share of the board's members with a strictly worse score than
/// `member`'s, in percent; None when it is absent. Reads the board only.
pub fn percentile_of<S: Store>(
    s: &mut S,
    member: &[u8],
    order: Order,
) -> Result<Option<f64>, CmdError> {
    if !matches!(s.kind(Key::Board), Kind::Empty | Kind::ZSet) {
        return Err(CmdError::WrongType);
    }
    let Some(scored) = s.score(member) else {
        return Ok(None);
    };
    let worse = match order {
        Order::Desc => s.count(Key::Board, MINUS_INF, &exclusive(&scored.text)),
        Order::Asc => s.count(Key::Board, &exclusive(&scored.text), PLUS_INF),
    };
    Ok(Some(percentile(worse, s.card(Key::Board))))
}

// ---------------------------------------------------------------------------------------------
// Writes

/// What a write does to a member's score.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// LB.ADD: set it (the value and the argument as given).
    Set(f64, &'a [u8]),
    /// LB.INCR: add to it (0 when absent).
    Add(f64, &'a [u8]),
}

/// Checks a write before anything is written: types, the tie-break in step, and for an
/// increment a resulting NaN (`inf` + `-inf`).
pub fn check_write<S: Store>(s: &mut S, changes: &[(Change, &[u8])]) -> Result<(), CmdError> {
    check_types(s)?;
    let total = s.card(Key::Board);
    layout(s, total)?;
    for (change, member) in changes {
        if let Change::Add(by, _) = change {
            let old = s.score_value(member).unwrap_or(0.0);
            if (old + by).is_nan() {
                return Err(CmdError::BadState(NAN_SCORE));
            }
        }
    }
    Ok(())
}

/// Before a write whose reply carries a DENSE rank (WITHRANK): on a board that will have no
/// scores key, the rank scans the members above the member's new score, so the write is
/// refused, before anything is written, when those (before the write, plus the members it
/// writes) could exceed `dense_max`, as a read's scan would be.
pub fn check_dense_rank<S: Store>(
    s: &mut S,
    changes: &[(Change, &[u8])],
    order: Order,
    dense_max: i64,
) -> Result<(), CmdError> {
    let total = s.card(Key::Board);
    let scores_kept = match layout(s, total)? {
        Layout::Native => s.kind(Key::Scores) != Kind::Empty,
        Layout::Plain => total == 0,
        Layout::Legacy { .. } => false,
    };
    if scores_kept {
        return Ok(());
    }
    for (change, member) in changes {
        let new = match change {
            Change::Set(v, _) => *v,
            Change::Add(by, _) => s.score_value(member).unwrap_or(0.0) + by,
        };
        let text = exclusive(format!("{new}").as_bytes());
        let above = match order {
            Order::Desc => s.count(Key::Board, &text, PLUS_INF),
            Order::Asc => s.count(Key::Board, MINUS_INF, &text),
        };
        if above + changes.len() as i64 > dense_max {
            return Err(CmdError::BadState(DENSE_TOO_MANY));
        }
    }
    Ok(())
}

/// Makes the tie-break keys ready for a write: drops any left over by a board that is gone
/// (e.g. it expired) or by one that has no order key. Returns whether stamped members are
/// listed in the names key: the board has legacy members (written with ZADD), or had some
/// when its first stamp was recorded. Nothing is converted: O(1) whatever the board's size.
fn prepare<S: Store>(s: &mut S) -> bool {
    let total = s.card(Key::Board);
    if total == 0 || s.kind(Key::Order) == Kind::Empty {
        for key in [Key::Order, Key::Stamps, Key::Scores, Key::Names] {
            if s.kind(key) != Kind::Empty {
                s.del(key);
            }
        }
        return total > 0;
    }
    s.kind(Key::Names) != Kind::Empty
}

/// Applies checked changes in order at `now_ms`: each member whose score changes gets a new
/// stamp. Returns, per change, whether the member was new and its score afterwards.
pub fn write<S: Store>(
    s: &mut S,
    now_ms: i64,
    changes: &[(Change, &[u8])],
) -> Vec<(bool, Vec<u8>)> {
    let names = prepare(s);
    changes
        .iter()
        .map(|(change, member)| write_one(s, now_ms, *change, member, names))
        .collect()
}

/// One change; `names`: the board lists its stamped members in the names key (and keeps no
/// scores key).
fn write_one<S: Store>(
    s: &mut S,
    now_ms: i64,
    change: Change,
    member: &[u8],
    names: bool,
) -> (bool, Vec<u8>) {
    let old = s.score(member);
    let new_score = match (change, &old) {
        (Change::Set(v, _), _) => v,
        (Change::Add(by, _), Some(o)) => o.score + by,
        (Change::Add(by, _), None) => by,
    };
    let found = match &old {
        Some(o) if o.score == new_score => return (false, o.text.clone()),
        Some(o) => find_entry(s, o),
        None => None,
    };
    if let (Some(o), Some(found)) = (&old, &found) {
        s.zrem(Key::Order, &found.entry);
        if names {
            s.zrem(Key::Names, &name_entry(o, member));
        }
    }
    let new = match change {
        Change::Set(_, raw) => {
            s.zadd(Key::Board, &[(raw, member)]);
            s.score(member).expect("just added")
        }
        Change::Add(_, raw) => s.zincrby(raw, member),
    };
    let (last, joined) = s.group_tail(&new.text, SMALL_GROUP + 1);
    let entry = order_entry(next_stamp(now_ms, last), member);
    s.zadd(Key::Order, &[(&new.text, &entry)]);
    if joined == SMALL_GROUP {
        hash_group(s, &new.text);
    } else if joined > SMALL_GROUP {
        s.hset(&[(member, &entry[..entry.len() - member.len()])]);
    } else if found.as_ref().is_some_and(Found::hashed) {
        s.hdel(member);
    }
    if names {
        s.zadd(Key::Names, &[(b"0", &name_entry(&new, member))]);
    } else {
        // A score other members have is in the scores key already.
        if joined == 0 {
            s.zadd(Key::Scores, &[(&new.text, distinct_member(&new))]);
        }
        if let Some(o) = &old {
            forget_score_if_gone(s, o, found.as_ref());
        }
    }
    (old.is_none(), new.text)
}

/// Lists every member of the score group at `score` in the stamps hash: the group has just
/// grown past `SMALL_GROUP` (to `SMALL_GROUP + 1` entries).
fn hash_group<S: Store>(s: &mut S, score: &[u8]) {
    let group = s.group_head(score, SMALL_GROUP + 1);
    let pairs: Vec<(&[u8], &[u8])> = group
        .iter()
        .filter_map(|e| Some((e.get(STAMP_DIGITS..)?, e.get(..STAMP_DIGITS)?)))
        .collect();
    s.hset(&pairs);
}

/// Drops a score from the scores key once no member has it; nothing read when the scan that
/// `found` the member's entry passed another member of that score, which keeps it.
fn forget_score_if_gone<S: Store>(s: &mut S, old: &Scored, found: Option<&Found>) {
    let shared = found.is_some_and(Found::shares_score);
    if !shared && !s.any_at(Key::Board, &old.text) {
        s.zrem(Key::Scores, distinct_member(old));
    }
}

/// LB.REM: removes members from the board and its tie-break keys; how many were there.
pub fn remove<S: Store>(s: &mut S, members: &[&[u8]]) -> Result<i64, CmdError> {
    check_types(s)?;
    let total = s.card(Key::Board);
    let layout = layout(s, total)?;
    let names = matches!(layout, Layout::Legacy { .. });
    let mut removed = 0;
    for member in members {
        let Some(old) = s.score(member) else {
            continue;
        };
        s.zrem(Key::Board, member);
        removed += 1;
        if layout == Layout::Plain {
            continue;
        }
        let found = find_entry(s, &old);
        if let Some(found) = &found {
            s.zrem(Key::Order, &found.entry);
            if found.hashed() {
                s.hdel(member);
            }
            if names {
                s.zrem(Key::Names, &name_entry(&old, member));
            }
        }
        if !names {
            forget_score_if_gone(s, &old, found.as_ref());
        }
    }
    if removed > 0 && s.card(Key::Board) == 0 {
        prepare(s);
    }
    Ok(removed)
}

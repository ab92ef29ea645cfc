//! Counting what happens to a lock in the server, outside the module's commands: its lease
//! ending (the key expires: `lock_expiries`) and its eviction (`lock_forced_unlocks`). The
//! server tells the module through keyspace events of the expiry and eviction classes, after the
//! key is gone, so a key is taken for a lock when its fencing counter exists (every lock granted
//! has one). Counted on the primary only, and not while loading.
//!
//! `DEL`/`UNLINK` of a held lock is not counted: it is a generic event, and hearing those costs
//! every `DEL`, `EXPIRE` or `SET ... EX` of the server a call into the module (about 700
//! instructions each under callgrind, 8% of a `SET ... EX`; README, Operations).
#![deny(unsafe_code)]

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

use patterns_core::lock::fence_key;

use crate::ffi::{self, key_type, Ctx, KeyType, KeyspaceWatch, Notify};
use crate::stats::{self, Stat};

struct LockEvents;

/// Whether the module watches them.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Watches the events, from the first lock granted on: each key that expires or is evicted then
/// costs the server a call into the module and a lookup of a counter (and every keyspace event
/// a look at the subscription: about 190 instructions on a `SET ... EX`), so a server that
/// never locks never pays it.
pub fn watch(ctx: Ctx) {
    if WATCHING.swap(true, Ordering::Relaxed) {
        return;
    }
    ffi::watch_keyspace::<LockEvents>(ctx, Notify::EXPIRED.and(Notify::EVICTED));
}

impl KeyspaceWatch for LockEvents {
    fn event(ctx: Ctx, event: &CStr, key: &[u8]) {
        let stat = match event.to_bytes() {
            b"expired" => Stat::LockExpiries,
            b"evicted" => Stat::LockForcedUnlocks,
            _ => return,
        };
        if !ctx.is_primary() || ctx.is_loading() {
            return;
        }
        let Ok(fence) = fence_key(key) else { return };
        if key_type(ctx, &fence) == KeyType::String {
            stats::bump(stat);
        }
    }
}

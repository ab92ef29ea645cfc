//! Counting what happens to a lock in the server, outside the module's commands: its lease
//! ending (the key expires: `lock_expiries`) and a forced unlock (the held key deleted or
//! evicted: `lock_forced_unlocks`). The server tells the module through keyspace events, after
//! the key is gone, so a key is taken for a lock when its fencing counter exists (every lock
//! granted has one). Counted on the primary only (a replica sees its primary's `DEL`s), and not
//! while loading (an AOF replays old `DEL`s).
#![deny(unsafe_code)]

use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, Ordering};

use patterns_core::lock::fence_key;

use crate::ffi::{self, key_type, Ctx, KeyType, KeyspaceWatch, Notify};
use crate::stats::{self, Stat};

struct LockEvents;

/// Whether the module watches them.
static WATCHING: AtomicBool = AtomicBool::new(false);
/// Set while `LOCK.RELEASE` deletes a lock: its own `del` is no forced unlock.
static RELEASING: AtomicBool = AtomicBool::new(false);

/// Watches the events, from the first lock granted on: each generic, expiry or eviction event
/// then costs the server a call into the module (and a `del`, `expired` or `evicted` one a
/// lookup of the counter), so a server that never locks never pays it.
pub fn watch(ctx: Ctx) {
    if WATCHING.swap(true, Ordering::Relaxed) {
        return;
    }
    let classes = Notify::GENERIC.and(Notify::EXPIRED).and(Notify::EVICTED);
    ffi::watch_keyspace::<LockEvents>(ctx, classes);
}

/// Runs `delete`, the release of a lock, as no forced unlock.
pub fn releasing(delete: impl FnOnce()) {
    RELEASING.store(true, Ordering::Relaxed);
    delete();
    RELEASING.store(false, Ordering::Relaxed);
}

impl KeyspaceWatch for LockEvents {
    fn event(ctx: Ctx, event: &CStr, key: &[u8]) {
        let stat = match event.to_bytes() {
            b"expired" => Stat::LockExpiries,
            b"del" | b"evicted" => Stat::LockForcedUnlocks,
            _ => return,
        };
        if RELEASING.load(Ordering::Relaxed) || !ctx.is_primary() || ctx.is_loading() {
            return;
        }
        let Ok(fence) = fence_key(key) else { return };
        if key_type(ctx, &fence) == KeyType::String {
            stats::bump(stat);
        }
    }
}

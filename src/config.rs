//! The module's configs (`CONFIG GET patterns.*`): compiled-in defaults, settable
//! in `redis.conf`, by `MODULE LOADEX ... CONFIG`, by `CONFIG SET`, or as `MODULE LOAD`
//! arguments (`name value` pairs; anything else refuses the load).
#![deny(unsafe_code)]

use patterns_core::cache::{CHANNEL, DEFAULT_LEASE_MS, MAX_LEASE_MS, WAIT_RETRY_MS};
use patterns_core::leaderboard::DENSE_MAX;

use crate::ffi::{self, Config, Ctx, Numeric, Text};

/// `CACHE.GET`'s lease when it has no `LEASE` (ms).
pub static CACHE_LEASE_MS: Numeric =
    Numeric::new("cache-lease-ms", DEFAULT_LEASE_MS, 1, MAX_LEASE_MS);
/// The most a `WAIT` reply tells the client to wait before it asks again (ms).
pub static CACHE_WAIT_HINT_MS: Numeric =
    Numeric::new("cache-wait-hint-ms", WAIT_RETRY_MS, 1, MAX_LEASE_MS);
/// Where `CACHE.INVALIDATE` publishes each tag it invalidates.
pub static CACHE_CHANNEL: Text = Text::new("cache-channel", CHANNEL);
/// The most members `RANKING DENSE` scans on a board without `:lb-scores`.
pub static LB_DENSE_MAX: Numeric = Numeric::new("lb-dense-max", DENSE_MAX, 0, i64::MAX);

static CONFIGS: [Config; 4] = [
    Config::Numeric(&CACHE_LEASE_MS),
    Config::Numeric(&CACHE_WAIT_HINT_MS),
    Config::Text(&CACHE_CHANNEL),
    Config::Numeric(&LB_DENSE_MAX),
];

/// Applies the load arguments, then registers the configs and loads their configured values.
pub fn load(ctx: Ctx, args: &[&[u8]]) -> Result<(), String> {
    ffi::apply_module_args(args, &CONFIGS)?;
    ffi::register_configs(ctx, &CONFIGS)
}

//! Module configs (`patterns.*`): registered with `RedisModule_RegisterNumericConfig` /
//! `RegisterStringConfig` and loaded with `RedisModule_LoadConfigs` (all in Redis 7.0), so
//! `redis.conf`, `MODULE LOADEX ... CONFIG`, `CONFIG SET/GET` and `CONFIG REWRITE` see them.
//! Each value lives in a static the bindings read ([`Numeric::get`], [`Text::get`]); the
//! server's callbacks run under the panic guard.

use std::ffi::{c_char, c_int, c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;

use redis_module::raw::{self, RedisModuleString};

use super::command::guard;
use super::ctx::Ctx;
use super::reply::OK;
use super::string::Str;

const ERR: c_int = raw::Status::Err as c_int;

/// A numeric config: its name (after `patterns.`), bounds and value (from its compiled-in
/// default on).
pub struct Numeric {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
    value: AtomicI64,
}

impl Numeric {
    pub const fn new(name: &'static str, default: i64, min: i64, max: i64) -> Self {
        Self {
            name,
            min,
            max,
            value: AtomicI64::new(default),
        }
    }

    /// The value now.
    pub fn get(&self) -> i64 {
        self.value.load(Relaxed)
    }
}

/// A string config: its name (after `patterns.`) and compiled-in default.
pub struct Text {
    pub name: &'static str,
    pub default: &'static str,
    value: Mutex<Option<Vec<u8>>>,
    /// The server string `CONFIG GET` returns (the server does not free it).
    shown: Mutex<Shown>,
}

/// A string created by the module (no context), freed when replaced.
struct Shown(*mut RedisModuleString);

// SAFETY: the server's strings are only touched on its main thread; the mutex orders access.
unsafe impl Send for Shown {}

impl Text {
    pub const fn new(name: &'static str, default: &'static str) -> Self {
        Self {
            name,
            default,
            value: Mutex::new(None),
            shown: Mutex::new(Shown(ptr::null_mut())),
        }
    }

    /// The value now.
    pub fn get(&self) -> Vec<u8> {
        let value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        value
            .clone()
            .unwrap_or_else(|| self.default.as_bytes().to_vec())
    }

    fn set(&self, bytes: &[u8]) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes.to_vec());
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: a string without a context is the module's own; the old one (if any) was
        // made here and the server holds no reference to it past its CONFIG GET.
        unsafe {
            if !shown.0.is_null() {
                raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), shown.0);
            }
            shown.0 = raw::RedisModule_CreateString.unwrap()(
                ptr::null_mut(),
                bytes.as_ptr().cast(),
                bytes.len(),
            );
        }
    }
}

/// One config the module registers.
pub enum Config {
    Numeric(&'static Numeric),
    Text(&'static Text),
}

impl Config {
    pub fn name(&self) -> &'static str {
        match self {
            Config::Numeric(n) => n.name,
            Config::Text(t) => t.name,
        }
    }

    /// Applies a module argument (`MODULE LOAD path name value`) as the starting value.
    pub fn set_from_arg(&self, value: &[u8]) -> Result<(), String> {
        match self {
            Config::Numeric(n) => {
                let parsed = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<i64>().ok())
                    .filter(|v| (n.min..=n.max).contains(v));
                let v = parsed.ok_or_else(|| {
                    format!(
                        "module argument {} must be an integer from {} to {}, got {:?}",
                        n.name,
                        n.min,
                        n.max,
                        String::from_utf8_lossy(value)
                    )
                })?;
                n.value.store(v, Relaxed);
            }
            Config::Text(t) => t.set(value),
        }
        Ok(())
    }
}

/// Registers every config (as `patterns.<name>`, its starting value the default) and loads
/// the values `redis.conf` or `MODULE LOADEX ... CONFIG` give.
pub fn register_configs(ctx: Ctx, configs: &'static [Config]) -> Result<(), String> {
    for config in configs {
        let name = CString::new(config.name()).map_err(|e| e.to_string())?;
        let status = match config {
            // SAFETY: the load context is live; the server copies the name and keeps
            // `privdata`, a static, for the callbacks.
            Config::Numeric(n) => unsafe {
                raw::RedisModule_RegisterNumericConfig.unwrap()(
                    ctx.as_ptr(),
                    name.as_ptr(),
                    n.get(),
                    raw::REDISMODULE_CONFIG_DEFAULT,
                    n.min,
                    n.max,
                    Some(get_numeric),
                    Some(set_numeric),
                    None,
                    ptr::from_ref(*n).cast_mut().cast(),
                )
            },
            Config::Text(t) => {
                let start = CString::new(t.get()).map_err(|e| e.to_string())?;
                // SAFETY: as above; the default is copied.
                unsafe {
                    raw::RedisModule_RegisterStringConfig.unwrap()(
                        ctx.as_ptr(),
                        name.as_ptr(),
                        start.as_ptr(),
                        raw::REDISMODULE_CONFIG_DEFAULT,
                        Some(get_text),
                        Some(set_text),
                        None,
                        ptr::from_ref(*t).cast_mut().cast(),
                    )
                }
            }
        };
        if status != OK {
            return Err(format!(
                "could not register the config patterns.{}",
                config.name()
            ));
        }
    }
    // SAFETY: the load context is live, and every config is registered.
    if unsafe { raw::RedisModule_LoadConfigs.unwrap()(ctx.as_ptr()) } != OK {
        return Err("could not load the module's configs (see the lines above)".into());
    }
    Ok(())
}

extern "C" fn get_numeric(_name: *const c_char, privdata: *mut c_void) -> i64 {
    // SAFETY: `privdata` is the static `Numeric` given at registration.
    let config = unsafe { &*(privdata as *const Numeric) };
    config.get()
}

extern "C" fn set_numeric(
    _name: *const c_char,
    value: i64,
    privdata: *mut c_void,
    _err: *mut *mut RedisModuleString,
) -> c_int {
    // SAFETY: as in `get_numeric`; the server has checked the bounds.
    let config = unsafe { &*(privdata as *const Numeric) };
    config.value.store(value, Relaxed);
    OK
}

extern "C" fn get_text(_name: *const c_char, privdata: *mut c_void) -> *mut RedisModuleString {
    guard(ptr::null_mut(), || {
        // SAFETY: `privdata` is the static `Text` given at registration.
        let config = unsafe { &*(privdata as *const Text) };
        if config
            .shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .is_null()
        {
            config.set(&config.get());
        }
        config.shown.lock().unwrap_or_else(|e| e.into_inner()).0
    })
}

extern "C" fn set_text(
    _name: *const c_char,
    value: *mut RedisModuleString,
    privdata: *mut c_void,
    _err: *mut *mut RedisModuleString,
) -> c_int {
    guard(ERR, || {
        // SAFETY: `privdata` is the static `Text` given at registration; `value` is a live
        // string for the call, copied before it returns.
        let (config, value) = unsafe { (&*(privdata as *const Text), Str::from_raw(value)) };
        config.set(value.bytes());
        OK
    })
}

/// The module's load arguments as `name value` pairs naming configs; anything else (an
/// unknown name, a missing or malformed value) refuses the load with the reason.
pub fn apply_module_args(args: &[&[u8]], configs: &'static [Config]) -> Result<(), String> {
    let mut pairs = args.chunks(2);
    for pair in &mut pairs {
        let name = String::from_utf8_lossy(pair[0]);
        let known = configs.iter().find(|c| {
            name.eq_ignore_ascii_case(c.name())
                || name.eq_ignore_ascii_case(&format!("patterns.{}", c.name()))
        });
        let Some(config) = known else {
            let names: Vec<&str> = configs.iter().map(Config::name).collect();
            return Err(format!(
                "unknown module argument {name:?}: arguments are config pairs `name value`, name one of {}",
                names.join(", ")
            ));
        };
        let [_, value] = pair else {
            return Err(format!("module argument {name:?} has no value"));
        };
        config.set_from_arg(value)?;
    }
    Ok(())
}

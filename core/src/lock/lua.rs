//! The lock family's Lua twin: the non-blocking forms of the same commands, with the same
//! replies, key layout and write sequence as the module (`src/lock.rs`), so equal histories
//! leave byte-identical keys.
//!
//! Differences, documented in README: a script cannot block its client, so `WAIT` is refused
//! ([`NO_WAIT_IN_TWIN`]); with no queue, `LOCK.INFO` always reports 0 waiters; the fencing
//! counter's key is checked with `redis.acl_check_cmd`.

use super::{
    ACQUIRE, BAD_NAME, EXTEND, FENCEDHSET, FENCE_SUFFIX, HOLDS_EXHAUSTED, INFO, MAX_TTL_MS,
    NOT_FENCE, NOT_FENCED, NOT_LOCK, NO_WAIT, RELEASE, RESOURCE_FENCE_FIELD, SEM_ACQUIRE,
    SEM_COUNT, SEM_RELEASE, TOKENS_EXHAUSTED, TTL_TOO_LONG,
};
use crate::command::CmdError;
use crate::lua::{lua_error, lua_str, twin, Family};
use crate::session::RESERVED;

/// The twin's error for `WAIT`.
pub const NO_WAIT_IN_TWIN: &str =
    "ERR WAIT needs the redis-patterns module: the Lua twin cannot block (omit WAIT to try once)";

const SOURCE: &str = r#"
-- The lease held on key: nil when free; an error unless a lock's hash.
local function lock_load(key)
  local t = key_type(key)
  if t == 'none' then return nil end
  if t ~= 'hash' then return nil, err(WRONGTYPE) end
  local v = redis.call('HMGET', key, 'owner', 'token', 'holds')
  local token, holds = state_int(v[2] or ''), state_int(v[3] or '')
  if v[1] == false or token == nil or token < 1 or holds == nil or holds < 1 then
    return nil, err(NOT_LOCK)
  end
  return {owner = v[1], token = token, holds = holds}
end

local function lock_write(key, lease, at)
  redis.call('HSET', key, 'owner', lease.owner, 'token', int(lease.token), 'holds', int(lease.holds))
  redis.call('PEXPIREAT', key, int(at))
end

local function lock_check_ttl(ttl, wait)
  if wait ~= NO_WAIT then return err(NO_WAIT_IN_TWIN) end
  if ttl > MAX_TTL then return err(TTL_TOO_LONG) end
end

local function lock_acquire_run(key, owner, ttl, wait)
  local e = lock_check_ttl(ttl, wait)
  if e then return e end
  local fence = derived_key(key, FENCE_SUFFIX)
  if fence == nil then return err(BAD_NAME) end
  if not key_allowed(fence) then return err(NOPERM) end
  local lease, e2 = lock_load(key)
  if e2 then return e2 end
  local last, e3 = get_string(fence)
  if e3 then return e3 end
  last = state_int(last or '0')
  if last == nil then return err(NOT_FENCE) end
  local now = now_ms()
  if lease then
    if lease.owner ~= owner then return false end
    if lease.holds + 1 >= EXACT_MAX then return err(HOLDS_EXHAUSTED) end
    lease.holds = lease.holds + 1
  else
    if last + 1 >= EXACT_MAX then return err(TOKENS_EXHAUSTED) end
    lease = {owner = owner, token = last + 1, holds = 1}
    redis.call('SET', fence, int(lease.token))
  end
  lock_write(key, lease, now + ttl)
  return lease.token
end

local function lock_release_run(key, owner)
  local lease, e = lock_load(key)
  if e then return e end
  if lease == nil or lease.owner ~= owner then return 0 end
  if lease.holds > 1 then
    redis.call('HSET', key, 'holds', int(lease.holds - 1))
  else
    redis.call('DEL', key)
  end
  return 1
end

local function lock_extend_run(key, owner, ttl)
  if ttl > MAX_TTL then return err(TTL_TOO_LONG) end
  local lease, e = lock_load(key)
  if e then return e end
  if lease == nil or lease.owner ~= owner then return 0 end
  redis.call('PEXPIREAT', key, int(now_ms() + ttl))
  return 1
end

local function lock_info_run(key)
  local lease, e = lock_load(key)
  if e then return e end
  if lease == nil then return false end
  local at = redis.call('PEXPIRETIME', key)
  local ttl = -1
  if at >= 0 then ttl = math.max(at - now_ms(), 0) end
  return {'owner', lease.owner, 'token', lease.token, 'ttl', ttl, 'holds', lease.holds,
    'waiters', 0}
end

local function lock_fencedhset_run(key, token, pairs)
  if reserved_fields(pairs) then return err(RESERVED) end
  local t = key_type(key)
  if t ~= 'none' and t ~= 'hash' then return err(WRONGTYPE) end
  local newest = redis.call('HGET', key, RESOURCE_FENCE)
  if newest then
    newest = state_int(newest)
    if newest == nil or newest < 1 then return err(NOT_FENCED) end
    if token < newest then return 0 end
  end
  redis.call('HSET', key, RESOURCE_FENCE, int(token), unpack(pairs))
  return 1
end

-- A semaphore's permits, expired ones pruned: nil, or an error unless a sorted set.
local function sem_live(key, now)
  local t = key_type(key)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  index_prune(key, now)
  index_fix(key)
end

local function sem_acquire_run(key, owner, limit, ttl, wait)
  local e = lock_check_ttl(ttl, wait)
  if e then return e end
  local now = now_ms()
  e = sem_live(key, now)
  if e then return e end
  local held = redis.call('ZSCORE', key, owner)
  if not held and redis.call('ZCARD', key) >= limit then return 0 end
  redis.call('ZADD', key, int(now + ttl), owner)
  index_fix(key)
  return 1
end

local function sem_release_run(key, owner)
  local e = sem_live(key, now_ms())
  if e then return e end
  if redis.call('ZREM', key, owner) == 0 then return 0 end
  index_fix(key)
  return 1
end

local function sem_count_run(key)
  local t = key_type(key)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  return redis.call('ZCOUNT', key, '(' .. int(now_ms()), '+inf')
end
"#;

pub fn family() -> Family {
    Family {
        constants: vec![
            ("MAX_TTL", MAX_TTL_MS.to_string()),
            ("NO_WAIT", NO_WAIT.to_string()),
            ("FENCE_SUFFIX", lua_str(FENCE_SUFFIX)),
            ("RESOURCE_FENCE", lua_str(RESOURCE_FENCE_FIELD)),
            ("RESERVED", lua_error(&CmdError::BadState(RESERVED))),
            (
                "TTL_TOO_LONG",
                lua_error(&CmdError::OutOfRange(TTL_TOO_LONG)),
            ),
            ("BAD_NAME", lua_error(&CmdError::BadState(BAD_NAME))),
            ("NOT_LOCK", lua_error(&CmdError::BadState(NOT_LOCK))),
            ("NOT_FENCE", lua_error(&CmdError::BadState(NOT_FENCE))),
            ("NOT_FENCED", lua_error(&CmdError::BadState(NOT_FENCED))),
            (
                "TOKENS_EXHAUSTED",
                lua_error(&CmdError::OutOfRange(TOKENS_EXHAUSTED)),
            ),
            (
                "HOLDS_EXHAUSTED",
                lua_error(&CmdError::OutOfRange(HOLDS_EXHAUSTED)),
            ),
            ("NO_WAIT_IN_TWIN", lua_str(NO_WAIT_IN_TWIN)),
        ],
        source: SOURCE,
        commands: vec![
            twin(&ACQUIRE, "lock_acquire_run(key, p[1], p[2], o[1])"),
            twin(&RELEASE, "lock_release_run(key, p[1])"),
            twin(&EXTEND, "lock_extend_run(key, p[1], p[2])"),
            twin(&INFO, "lock_info_run(key)"),
            twin(&FENCEDHSET, "lock_fencedhset_run(key, p[1], r)"),
            twin(&SEM_ACQUIRE, "sem_acquire_run(key, p[1], p[2], p[3], o[1])"),
            twin(&SEM_RELEASE, "sem_release_run(key, p[1])"),
            twin(&SEM_COUNT, "sem_count_run(key)"),
        ],
    }
}

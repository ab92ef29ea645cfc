//! The rate-limiting family's Lua twin: the same algorithms as `ratelimit`, on the same keys,
//! written for Lua 5.1's doubles. Arguments and error texts come from the definitions.
//!
//! Exactness: every value the bodies compute stays at or below 2^53 when capacity·period_ms
//! (token bucket) or limit·window_ms (weighted sliding window) is at most 2^52, so the twin refuses
//! limiters beyond that with `TWIN_RANGE`; the module itself computes in i128 and has no
//! such bound.

use super::{
    EXACT_COST_TOO_HIGH, FIXEDWINDOW, MAX_EXACT_COST, MAX_SPAN_MS, NOT_LIMITER_STATE, PRUNE_BATCH,
    SLIDINGWINDOW, SPAN_TOO_LONG, THROTTLE, TOKENBUCKET,
};
use crate::command::CmdError;
use crate::lua::{lua_error, lua_str, twin, Family};

/// The twin's own error for limiters whose products it cannot compute exactly.
pub const TWIN_RANGE: &str =
    "ERR the limiter's arguments exceed the Lua twin's exact integer range (2^52)";

const SOURCE: &str = r#"
local function rl_reply(allowed, limit, remaining, retry, reset)
  return {allowed and 1 or 0, limit, remaining, retry, reset}
end

-- `<tat_ms>` or `<tat_ms>+<num>/<den>` with 0 < num < den; nil when malformed.
local function parse_tat(v)
  local ms, num, den = string.match(v, '^([^+]*)%+([^/]*)/(.*)$')
  if ms == nil then
    local tat = state_int(v)
    if tat == nil then return nil end
    return tat, 0, 1
  end
  ms, num, den = state_int(ms), state_int(num), state_int(den)
  if ms == nil or num == nil or den == nil or num == 0 or num >= den then return nil end
  return ms, num, den
end

-- GCRA in units of 1/rate ms: τ = capacity·period, one token = period. See ratelimit/mod.rs.
local function token_bucket(key, capacity, rate, period, cost)
  local tau = capacity * period
  if tau > MAX_SPAN * rate then return nil, err(SPAN_TOO_LONG) end
  if tau > TWIN_MAX then return nil, err(TWIN_RANGE) end
  local v, e = get_string(key)
  if e then return nil, e end
  local now = now_ms()
  local debt = 0
  if v then
    local tat, num, den = parse_tat(v)
    if tat == nil then return nil, err(NOT_LIMITER_STATE) end
    if num ~= 0 and den ~= rate then tat, num = tat + 1, 0 end
    debt = (tat - now) * rate + num
    if debt < 0 then debt = 0 elseif debt > tau then debt = tau end
  end
  local fits = cost <= capacity
  local needed = fits and cost * period or 0
  local allowed = fits and debt + needed <= tau
  local new_debt = allowed and debt + needed or debt
  local retry = -1
  if fits and not allowed then retry = ceil_div(debt + needed - tau, rate) end
  local reset = ceil_div(new_debt, rate)
  if allowed and cost > 0 then
    local whole, num = divmod(new_debt, rate)
    local value = int(now + whole)
    if num > 0 then value = value .. '+' .. int(num) .. '/' .. int(rate) end
    redis.call('SET', key, value, 'PXAT', int(now + reset))
  end
  local remaining = divmod(tau - new_debt, period)
  return {allowed, capacity, remaining, retry, reset}
end

local function rl_tokenbucket_run(key, capacity, rate, period, cost)
  local r, e = token_bucket(key, capacity, rate, period, cost)
  if e then return e end
  return rl_reply(r[1], r[2], r[3], r[4], r[5])
end

local function cl_throttle_run(key, max_burst, count, period_s, quantity)
  local r, e = token_bucket(key, max_burst + 1, count, period_s * 1000, quantity)
  if e then return e end
  local function secs(ms)
    if ms < 0 then return -1 end
    return ceil_div(ms, 1000)
  end
  return {r[1] and 0 or 1, r[2], r[3], secs(r[4]), secs(r[5])}
end

local function window_start(now, window)
  return now - math.fmod(now, window)
end

local function rl_fixedwindow_run(key, limit, window, cost)
  if window > MAX_SPAN then return err(SPAN_TOO_LONG) end
  local v, e = get_string(key)
  if e then return e end
  local now = now_ms()
  local stop = window_start(now, window) + window
  local count = 0
  if v then
    count = state_int(v)
    if count == nil then return err(NOT_LIMITER_STATE) end
    local ttl = redis.call('PTTL', key)
    if ttl < 0 or now + ttl > stop then count = 0 end
  end
  local allowed = cost <= limit - count
  local new_count = allowed and count + cost or count
  if allowed and cost > 0 then
    redis.call('SET', key, int(new_count), 'PXAT', int(stop))
  end
  local retry = -1
  if not allowed and cost <= limit then retry = stop - now end
  local reset = 0
  if new_count > 0 then reset = stop - now end
  return rl_reply(allowed, limit, math.max(limit - new_count, 0), retry, reset)
end

local function rl_slidingwindow_exact(key, limit, window, cost)
  local now = now_ms()
  local cutoff = now - window
  local count = redis.pcall('ZCOUNT', key, '(' .. int(cutoff), '+inf')
  if type(count) == 'table' then return count end
  if cost > MAX_EXACT_COST then return err(EXACT_COST_TOO_HIGH) end
  local allowed = cost <= limit - count
  local new_count = allowed and count + cost or count
  local retry = -1
  if not allowed and cost <= limit then
    local r = redis.call('ZRANGE', key, '(' .. int(cutoff), '+inf', 'BYSCORE', 'LIMIT',
      int(count + cost - limit - 1), 1, 'WITHSCORES')
    retry = math.floor(tonumber(r[2])) + window - now
  end
  local reset = 0
  if allowed and cost > 0 then
    local seq = redis.call('ZCOUNT', key, int(now), int(now))
    -- Stale entries are pruned in batches (see ratelimit/mod.rs).
    local stale = redis.call('ZCARD', key) - count
    local batch = math.min(math.max(math.floor(limit / 4), 1), PRUNE_BATCH)
    if stale >= batch then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', int(cutoff))
    end
    local at, args = int(now), {}
    for i = 0, cost - 1 do
      args[#args + 1] = at
      args[#args + 1] = at .. ':' .. int(seq + i)
      if #args >= 1000 or i == cost - 1 then
        redis.call('ZADD', key, unpack(args))
        args = {}
      end
    end
    redis.call('PEXPIREAT', key, int(now + window))
    reset = window
  elseif new_count > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = math.max(math.floor(tonumber(newest[2])) + window - now, 0)
  end
  return rl_reply(allowed, limit, math.max(limit - new_count, 0), retry, reset)
end

local function rl_slidingwindow_run(key, limit, window, cost, exact)
  if window > MAX_SPAN then return err(SPAN_TOO_LONG) end
  if exact == 1 then return rl_slidingwindow_exact(key, limit, window, cost) end
  if limit * window > TWIN_MAX then return err(TWIN_RANGE) end
  local v, e = get_string(key)
  if e then return e end
  local now = now_ms()
  local start = window_start(now, window)
  local elapsed = now - start
  local prev, curr = 0, 0
  if v then
    local s, p, c = string.match(v, '^([^:]*):([^:]*):([^:]*)$')
    s, p, c = state_int(s), state_int(p), state_int(c)
    if s == nil or p == nil or c == nil then return err(NOT_LIMITER_STATE) end
    if s == start then
      prev, curr = p, c
    elseif s == start - window then
      prev = c
    end
  end
  local weighted_prev = prev * (window - elapsed)
  local capacity = limit * window
  local allowed = cost <= limit and weighted_prev + (curr + cost) * window <= capacity
  local new_curr = allowed and curr + cost or curr
  local retry = -1
  if not allowed and cost <= limit then
    local room = limit - curr - cost
    if room >= 0 then
      retry = window - divmod(room * window, prev) - elapsed
    else
      retry = window - elapsed + window - divmod((limit - cost) * window, curr)
    end
  end
  local until_end = window - elapsed
  local reset = 0
  if new_curr > 0 then reset = until_end + window elseif prev > 0 then reset = until_end end
  if allowed and cost > 0 then
    redis.call('SET', key, int(start) .. ':' .. int(prev) .. ':' .. int(new_curr),
      'PXAT', int(start + 2 * window))
  end
  local left = capacity - weighted_prev - new_curr * window
  local remaining = 0
  if left > 0 then remaining = divmod(left, window) end
  return rl_reply(allowed, limit, remaining, retry, reset)
end
"#;

pub fn family() -> Family {
    Family {
        constants: vec![
            ("MAX_SPAN", MAX_SPAN_MS.to_string()),
            ("PRUNE_BATCH", PRUNE_BATCH.to_string()),
            ("MAX_EXACT_COST", MAX_EXACT_COST.to_string()),
            (
                "EXACT_COST_TOO_HIGH",
                lua_error(&CmdError::OutOfRange(EXACT_COST_TOO_HIGH)),
            ),
            ("TWIN_MAX", MAX_SPAN_MS.to_string()),
            (
                "SPAN_TOO_LONG",
                lua_error(&CmdError::OutOfRange(SPAN_TOO_LONG)),
            ),
            (
                "NOT_LIMITER_STATE",
                lua_error(&CmdError::BadState(NOT_LIMITER_STATE)),
            ),
            ("TWIN_RANGE", lua_str(TWIN_RANGE)),
        ],
        source: SOURCE,
        commands: vec![
            twin(
                &TOKENBUCKET,
                "rl_tokenbucket_run(key, p[1], p[2], p[3], o[1])",
            ),
            twin(&FIXEDWINDOW, "rl_fixedwindow_run(key, p[1], p[2], o[1])"),
            twin(
                &SLIDINGWINDOW,
                "rl_slidingwindow_run(key, p[1], p[2], o[1], o[2])",
            ),
            twin(&THROTTLE, "cl_throttle_run(key, p[1], p[2], p[3], p[4])"),
        ],
    }
}

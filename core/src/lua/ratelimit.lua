-- Rate limiting's Lua twin (see ratelimit/mod.rs for the algorithms and ratelimit/lua.rs for
-- the twin's range): each command runs as <command>_run, its parameters bound by name from the
-- definition; names in capitals are constants generated from the Rust ones.

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
  if tau > MAX_MS * rate then return nil, err(SPAN_TOO_LONG) end
  if tau > MAX_MS then return nil, err(TWIN_RANGE) end
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

local function rl_tokenbucket_run(key, capacity, rate, period_ms, cost)
  local r, e = token_bucket(key, capacity, rate, period_ms, cost)
  if e then return e end
  return rl_reply(r[1], r[2], r[3], r[4], r[5])
end

local function cl_throttle_run(key, max_burst, count_per_period, period_s, quantity)
  local r, e = token_bucket(key, max_burst + 1, count_per_period, period_s * 1000, quantity)
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

local function rl_fixedwindow_run(key, limit, window_ms, cost)
  if window_ms > MAX_MS then return err(SPAN_TOO_LONG) end
  local v, e = get_string(key)
  if e then return e end
  local now = now_ms()
  local stop = window_start(now, window_ms) + window_ms
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

local function rl_slidingwindow_run(key, limit, window_ms, cost, exact)
  if window_ms > MAX_MS then return err(SPAN_TOO_LONG) end
  if exact == 1 then return rl_slidingwindow_exact(key, limit, window_ms, cost) end
  if limit * window_ms > MAX_MS then return err(TWIN_RANGE) end
  local v, e = get_string(key)
  if e then return e end
  local now = now_ms()
  local start = window_start(now, window_ms)
  local elapsed = now - start
  local prev, curr = 0, 0
  if v then
    local s, p, c = string.match(v, '^([^:]*):([^:]*):([^:]*)$')
    s, p, c = state_int(s), state_int(p), state_int(c)
    if s == nil or p == nil or c == nil then return err(NOT_LIMITER_STATE) end
    if s == start then
      prev, curr = p, c
    elseif s == start - window_ms then
      prev = c
    end
  end
  local weighted_prev = prev * (window_ms - elapsed)
  local capacity = limit * window_ms
  local allowed = cost <= limit and weighted_prev + (curr + cost) * window_ms <= capacity
  local new_curr = allowed and curr + cost or curr
  local retry = -1
  if not allowed and cost <= limit then
    local room = limit - curr - cost
    if room >= 0 then
      retry = window_ms - divmod(room * window_ms, prev) - elapsed
    else
      retry = window_ms - elapsed + window_ms - divmod((limit - cost) * window_ms, curr)
    end
  end
  local until_end = window_ms - elapsed
  local reset = 0
  if new_curr > 0 then reset = until_end + window_ms elseif prev > 0 then reset = until_end end
  if allowed and cost > 0 then
    redis.call('SET', key, int(start) .. ':' .. int(prev) .. ':' .. int(new_curr),
      'PXAT', int(start + 2 * window_ms))
  end
  local left = capacity - weighted_prev - new_curr * window_ms
  local remaining = 0
  if left > 0 then remaining = divmod(left, window_ms) end
  return rl_reply(allowed, limit, remaining, retry, reset)
end

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

-- Each limiter is split in two so RL.ALL can decide every limit before it writes any: a
-- check of its arguments (what the module refuses while parsing), and a decision at `now`
-- returning its reply {allowed, limit, remaining, retry, reset} with, in `write`, a function
-- that writes its new state (nil when nothing changes); or nil and an error. A refund returns
-- {remaining, write = ...} the same way.

local function token_bucket_check(capacity, rate, period)
  local tau = capacity * period
  if tau > MAX_MS * rate then return err(SPAN_TOO_LONG) end
  if tau > MAX_MS then return err(TWIN_RANGE) end
end

-- The bucket's debt (TAT - now) in units of 1/rate ms, within [0, τ]; nil for a bad state.
-- A one-byte value is TAT_AT_EXPIRY: the TAT is the key's expiry (0 without one).
local function tat_debt(key, v, now, rate, tau)
  if not v then return 0 end
  local tat, num, den = 0, 0, 1
  if #v == 1 then
    tat = math.max(redis.call('PEXPIRETIME', key), 0)
  else
    tat, num, den = parse_tat(v)
    if tat == nil then return nil end
  end
  if num ~= 0 and den ~= rate then tat, num = tat + 1, 0 end
  local debt = (tat - now) * rate + num
  if debt < 0 then debt = 0 elseif debt > tau then debt = tau end
  return debt
end

-- The write for a debt above 0 (exact: at most τ <= 2^52): a whole-ms TAT is the key's expiry,
-- `SET key TAT_AT_EXPIRY PXAT <tat>`, or only `PEXPIREAT key <tat>` when the key holds the
-- marker already (`marked`); a fraction stays in the value, `SET key <tat>+<num>/<rate> PXAT`.
local function tat_write(key, now, debt, rate, marked)
  local whole, num = divmod(debt, rate)
  local at = int(now + ceil_div(debt, rate))
  if num == 0 and marked then
    return function() redis.call('PEXPIREAT', key, at) end
  end
  local value = TAT_AT_EXPIRY
  if num > 0 then value = int(now + whole) .. '+' .. int(num) .. '/' .. int(rate) end
  return function() redis.call('SET', key, value, 'PXAT', at) end
end

local function delete(key)
  return function() redis.call('DEL', key) end
end

-- A refund's write (refund_write in ratelimit/mod.rs): none when nothing moved, the key gone
-- when the state is empty again, else `set`.
local function refund_write(moved, empty, key, set)
  if not moved then return nil end
  if empty then return delete(key) end
  return set
end

-- The bucket's debt at now, and whether its key holds the marker; or nil and an error.
local function bucket_debt(key, capacity, rate, period, now)
  local v, e = get_string(key)
  if e then return nil, e end
  local debt = tat_debt(key, v, now, rate, capacity * period)
  if debt == nil then return nil, err(NOT_LIMITER_STATE) end
  return debt, nil, v ~= nil and #v == 1
end

-- GCRA in units of 1/rate ms: τ = capacity·period, one token = period. See ratelimit/mod.rs.
local function token_bucket(key, capacity, rate, period, cost, now)
  local debt, e, marked = bucket_debt(key, capacity, rate, period, now)
  if e then return nil, e end
  local tau = capacity * period
  local fits = cost <= capacity
  local needed = fits and cost * period or 0
  local allowed = fits and debt + needed <= tau
  local new_debt = allowed and debt + needed or debt
  local retry = -1
  if fits and not allowed then retry = ceil_div(debt + needed - tau, rate) end
  local reset = ceil_div(new_debt, rate)
  local r = {allowed, capacity, divmod(tau - new_debt, period), retry, reset}
  if allowed and cost > 0 then r.write = tat_write(key, now, new_debt, rate, marked) end
  return r
end

-- Moves the TAT back by cost emission intervals, but not before now.
local function token_bucket_refund(key, capacity, rate, period, cost, now)
  local debt, e, marked = bucket_debt(key, capacity, rate, period, now)
  if e then return nil, e end
  local new_debt = debt - math.min(cost * period, debt)
  local set = tat_write(key, now, new_debt, rate, marked)
  local r = {divmod(capacity * period - new_debt, period)}
  r.write = refund_write(new_debt ~= debt, new_debt == 0, key, set)
  return r
end

local function run_one(r, e)
  if e then return nil, e end
  if r.write then r.write() end
  return r
end

local function rl_tokenbucket_run(key, capacity, rate, period_ms, cost)
  local e = token_bucket_check(capacity, rate, period_ms)
  if e then return e end
  local r, e2 = run_one(token_bucket(key, capacity, rate, period_ms, cost, now_ms()))
  if e2 then return e2 end
  return rl_reply(r[1], r[2], r[3], r[4], r[5])
end

local function cl_throttle_run(key, max_burst, count_per_period, period_s, quantity)
  local capacity, period = max_burst + 1, period_s * 1000
  local e = token_bucket_check(capacity, count_per_period, period)
  if e then return e end
  local r, e2 = run_one(token_bucket(key, capacity, count_per_period, period, quantity, now_ms()))
  if e2 then return e2 end
  local function secs(ms)
    if ms < 0 then return -1 end
    return ceil_div(ms, 1000)
  end
  return {r[1] and 0 or 1, r[2], r[3], secs(r[4]), secs(r[5])}
end

local function window_start(now, window)
  return now - math.fmod(now, window)
end

-- The count of the window ending at stop: a key expiring later, or now (the previous
-- window's, kept through the ms it expires in), counts as empty; nil for a bad state.
local function fixed_count(key, v, now, stop)
  if not v then return 0 end
  local count = state_int(v)
  if count == nil then return nil end
  local ttl = redis.call('PTTL', key)
  if ttl <= 0 or now + ttl > stop then return 0 end
  return count
end

-- The current window's count and end at now; or nil and an error.
local function fixed_state(key, window_ms, now)
  local v, e = get_string(key)
  if e then return nil, e end
  local stop = window_start(now, window_ms) + window_ms
  local count = fixed_count(key, v, now, stop)
  if count == nil then return nil, err(NOT_LIMITER_STATE) end
  return count, stop
end

-- `SET key <count> PXAT <end of window>`.
local function fixed_write(key, count, stop)
  return function() redis.call('SET', key, int(count), 'PXAT', int(stop)) end
end

local function window_check(window_ms)
  if window_ms > MAX_MS then return err(SPAN_TOO_LONG) end
end

local function fixed_window(key, limit, window_ms, cost, now)
  local count, stop = fixed_state(key, window_ms, now)
  if count == nil then return nil, stop end
  local allowed = cost <= limit - count
  local new_count = allowed and count + cost or count
  local retry = -1
  if not allowed and cost <= limit then retry = stop - now end
  local reset = 0
  if new_count > 0 then reset = stop - now end
  local r = {allowed, limit, math.max(limit - new_count, 0), retry, reset}
  if allowed and cost > 0 then r.write = fixed_write(key, new_count, stop) end
  return r
end

-- Takes cost off the current window's count, not below 0.
local function fixed_window_refund(key, limit, window_ms, cost, now)
  local count, stop = fixed_state(key, window_ms, now)
  if count == nil then return nil, stop end
  local new_count = count - math.min(cost, count)
  local r = {math.max(limit - new_count, 0)}
  r.write = refund_write(new_count ~= count, new_count == 0, key, fixed_write(key, new_count, stop))
  return r
end

local function rl_fixedwindow_run(key, limit, window_ms, cost)
  local e = window_check(window_ms)
  if e then return e end
  local r, e2 = run_one(fixed_window(key, limit, window_ms, cost, now_ms()))
  if e2 then return e2 end
  return rl_reply(r[1], r[2], r[3], r[4], r[5])
end

-- The log's admissions in the window ending at now, checking cost; or nil and an error.
local function exact_count(key, window, cost, now)
  local count = redis.pcall('ZCOUNT', key, '(' .. int(now - window), '+inf')
  if type(count) == 'table' then return nil, count end
  if cost > MAX_EXACT_COST then return nil, err(EXACT_COST_TOO_HIGH) end
  return count
end

local function sliding_exact(key, limit, window, cost, now)
  local cutoff = now - window
  local count, e = exact_count(key, window, cost, now)
  if e then return nil, e end
  local allowed = cost <= limit - count
  local new_count = allowed and count + cost or count
  local retry = -1
  if not allowed and cost <= limit then
    local r = redis.call('ZRANGE', key, '(' .. int(cutoff), '+inf', 'BYSCORE', 'LIMIT',
      int(count + cost - limit - 1), 1, 'WITHSCORES')
    retry = math.floor(tonumber(r[2])) + window - now
  end
  local reset, write = 0, nil
  if allowed and cost > 0 then
    local seq = redis.call('ZCOUNT', key, int(now), int(now))
    -- Stale entries are pruned in batches (see ratelimit/mod.rs).
    local stale = redis.call('ZCARD', key) - count
    local batch = math.min(math.max(math.floor(limit / 4), 1), PRUNE_BATCH)
    write = function()
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
    end
    reset = window
  elseif new_count > 0 then
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    reset = math.max(math.floor(tonumber(newest[2])) + window - now, 0)
  end
  return {allowed, limit, math.max(limit - new_count, 0), retry, reset, write = write}
end

-- The sequence number of a log member `<ms>:<seq>`.
local function member_seq(m)
  return tonumber(string.match(m, ':(%d+)$')) or -1
end

-- Removes the cost most recent admissions in the window: every entry after the cost-th
-- newest one's ms, and at that ms those with the highest sequence numbers.
local function sliding_exact_refund(key, limit, window, cost, now)
  local cutoff = now - window
  local count, e = exact_count(key, window, cost, now)
  if e then return nil, e end
  local taken = math.min(cost, count)
  local r = {math.max(limit - (count - taken), 0)}
  if taken == 0 then return r end
  local nth = redis.call('ZRANGE', key, '(' .. int(cutoff), '+inf', 'BYSCORE', 'LIMIT',
    int(count - taken), 1, 'WITHSCORES')
  local above = math.floor(tonumber(nth[2]))
  local members = redis.call('ZRANGE', key, '(' .. int(above), '+inf', 'BYSCORE')
  local at = redis.call('ZRANGE', key, int(above), int(above), 'BYSCORE')
  table.sort(at, function(x, y) return member_seq(x) > member_seq(y) end)
  for i = 1, taken - #members do members[#members + 1] = at[i] end
  r.write = function()
    for i = 1, #members, 1000 do
      redis.call('ZREM', key, unpack(members, i, math.min(i + 999, #members)))
    end
  end
  return r
end

local function sliding_check(limit, window_ms, exact)
  local e = window_check(window_ms)
  if e then return e end
  if exact ~= 1 and limit * window_ms > MAX_MS then return err(TWIN_RANGE) end
end

-- (previous, current) counts as seen from the window starting at start; nil for a bad state.
local function sliding_counts(v, start, window_ms)
  if not v then return 0, 0 end
  local s, p, c = string.match(v, '^([^:]*):([^:]*):([^:]*)$')
  s, p, c = state_int(s), state_int(p), state_int(c)
  if s == nil or p == nil or c == nil then return nil end
  if s == start then return p, c end
  if s == start - window_ms then return c, 0 end
  return 0, 0
end

-- The current window's start and the (previous, current) counts at now; or nil and an error.
local function sliding_state(key, window_ms, now)
  local v, e = get_string(key)
  if e then return nil, e end
  local start = window_start(now, window_ms)
  local prev, curr = sliding_counts(v, start, window_ms)
  if prev == nil then return nil, err(NOT_LIMITER_STATE) end
  return start, prev, curr
end

-- `SET key <start>:<prev>:<curr> PXAT <end of the next window>`.
local function sliding_write(key, window_ms, start, prev, curr)
  local value = int(start) .. ':' .. int(prev) .. ':' .. int(curr)
  return function() redis.call('SET', key, value, 'PXAT', int(start + 2 * window_ms)) end
end

local function sliding_window(key, limit, window_ms, cost, now)
  local start, prev, curr = sliding_state(key, window_ms, now)
  if start == nil then return nil, prev end
  local elapsed = now - start
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
  local left = capacity - weighted_prev - new_curr * window_ms
  local remaining = 0
  if left > 0 then remaining = divmod(left, window_ms) end
  local r = {allowed, limit, remaining, retry, reset}
  if allowed and cost > 0 then r.write = sliding_write(key, window_ms, start, prev, new_curr) end
  return r
end

-- Takes cost off the current window's count, not below 0.
local function sliding_window_refund(key, limit, window_ms, cost, now)
  local start, prev, curr = sliding_state(key, window_ms, now)
  if start == nil then return nil, prev end
  local new_curr = curr - math.min(cost, curr)
  local left = limit * window_ms - prev * (window_ms - (now - start)) - new_curr * window_ms
  local r = {0}
  if left > 0 then r[1] = divmod(left, window_ms) end
  local set = sliding_write(key, window_ms, start, prev, new_curr)
  r.write = refund_write(new_curr ~= curr, new_curr == 0 and prev == 0, key, set)
  return r
end

local function rl_slidingwindow_run(key, limit, window_ms, cost, exact)
  local e = sliding_check(limit, window_ms, exact)
  if e then return e end
  local decide = exact == 1 and sliding_exact or sliding_window
  local r, e2 = run_one(decide(key, limit, window_ms, cost, now_ms()))
  if e2 then return e2 end
  return rl_reply(r[1], r[2], r[3], r[4], r[5])
end

-- RL.ALL's and RL.REFUND's limits by token: the check, decision and refund of each kind, on a
-- limit as parse_blocks binds it (its arguments by name).
local LIMIT_KINDS = {
  ['TOKENBUCKET'] = {
    check = function(l) return token_bucket_check(l.capacity, l.rate, l.period_ms) end,
    decide = function(l, now)
      return token_bucket(l.key, l.capacity, l.rate, l.period_ms, l.cost, now)
    end,
    refund = function(l, now)
      return token_bucket_refund(l.key, l.capacity, l.rate, l.period_ms, l.cost, now)
    end,
  },
  ['FIXEDWINDOW'] = {
    check = function(l) return window_check(l.window_ms) end,
    decide = function(l, now) return fixed_window(l.key, l.limit, l.window_ms, l.cost, now) end,
    refund = function(l, now)
      return fixed_window_refund(l.key, l.limit, l.window_ms, l.cost, now)
    end,
  },
  ['SLIDINGWINDOW'] = {
    check = function(l) return sliding_check(l.limit, l.window_ms, l.exact) end,
    decide = function(l, now)
      local decide = l.exact == 1 and sliding_exact or sliding_window
      return decide(l.key, l.limit, l.window_ms, l.cost, now)
    end,
    refund = function(l, now)
      local refund = l.exact == 1 and sliding_exact_refund or sliding_window_refund
      return refund(l.key, l.limit, l.window_ms, l.cost, now)
    end,
  },
}

-- Every limit's check, then with one clock reading each limit's `step` (decide or refund):
-- the first error, or `reply` of the results.
local function each_limit(limits, step, reply)
  for _, l in ipairs(limits) do
    local e = LIMIT_KINDS[l.token].check(l)
    if e then return e end
  end
  local now, results = now_ms(), {}
  for n, l in ipairs(limits) do
    local r, e = LIMIT_KINDS[l.token][step](l, now)
    if e then return e end
    results[n] = r
  end
  return reply(results)
end

local function rl_all_run(limits)
  return each_limit(limits, 'decide', function(results)
    local denied = 0
    for n, r in ipairs(results) do
      if not r[1] and denied == 0 then denied = n end
    end
    local reply = {denied == 0 and 1 or 0, denied}
    for n, r in ipairs(results) do
      if denied == 0 and r.write then r.write() end
      reply[n + 2] = rl_reply(r[1], r[2], r[3], r[4], r[5])
    end
    return reply
  end)
end

local function rl_refund_run(limits)
  return each_limit(limits, 'refund', function(results)
    local reply = {}
    for n, r in ipairs(results) do
      if r.write then r.write() end
      reply[n] = r[1]
    end
    return reply
  end)
end

-- Tagged caching's Lua twin (see cache/mod.rs for the decisions and src/cache.rs for the same
-- writes in the module): each command runs as <command>_run, its parameters bound by name from
-- the definition; names in capitals are constants generated from the Rust ones.

local CACHE_FIELDS = {[VALUE_FIELD] = 1, [FRESH_FIELD] = 2, [STALE_FIELD] = 3,
  [DELTA_FIELD] = 4, [LEASE_FIELD] = 5, [LEASE_UNTIL_FIELD] = 6, [LEASED_AT_FIELD] = 7}

local function cache_type(key)
  return redis.call('TYPE', key)['ok']
end

-- An old-layout entry's hash (Entry::parse): nil and an error unless an entry.
local function cache_parse_hash(key)
  local flat = redis.call('HGETALL', key)
  local f = {}
  for i = 1, #flat, 2 do
    local n = CACHE_FIELDS[flat[i]]
    if n == nil then return nil, err(NOT_CACHE) end
    f[n] = flat[i + 1]
  end
  local e = {}
  local fresh, stale, delta = state_int(f[2]), state_int(f[3]), state_int(f[4])
  if f[1] and fresh and stale and delta then
    e.value, e.fresh, e.stale, e.delta = f[1], fresh, stale, delta
  elseif f[1] or f[2] or f[3] or f[4] then
    return nil, err(NOT_CACHE)
  end
  local lease_until, leased_at = state_int(f[6]), state_int(f[7])
  if f[5] and lease_until and leased_at then
    e.lease, e.lease_until, e.leased_at = f[5], lease_until, leased_at
  elseif f[5] or f[6] or f[7] then
    return nil, err(NOT_CACHE)
  end
  if e.value == nil and e.lease == nil then return nil, err(NOT_CACHE) end
  return e
end

-- The compact layout (Entry::decode and Entry::encode): the format byte and the value's times,
-- then the lease, then the value; integers big-endian, times in 7 bytes.
local CACHE_HEADER = '>Bi7i7i7'
local CACHE_LEASE = '>i7i7I4'

local function cache_time(n)
  return n >= 0 and n < LUA_EXACT_MAX
end

-- The entry an entry's string holds, nil unless one.
local function cache_decode(s)
  if #s < HEADER_LEN then return nil end
  local format, fresh, stale, delta, pos = struct.unpack(CACHE_HEADER, s)
  local flags = format - FORMAT
  if flags < 1 or flags > HAS_VALUE + HAS_LEASE then return nil end
  if not (cache_time(fresh) and cache_time(stale) and cache_time(delta)) then return nil end
  local e = {}
  if flags >= HAS_LEASE then
    if #s < pos + 17 then return nil end
    local lease_until, leased_at, len, at = struct.unpack(CACHE_LEASE, s, pos)
    if not (cache_time(lease_until) and cache_time(leased_at)) or #s < at + len - 1 then
      return nil
    end
    e.lease, e.lease_until, e.leased_at = string.sub(s, at, at + len - 1), lease_until, leased_at
    pos = at + len
  end
  if flags ~= HAS_LEASE then
    e.value, e.fresh, e.stale, e.delta = string.sub(s, pos), fresh, stale, delta
  elseif pos <= #s or fresh ~= 0 or stale ~= 0 or delta ~= 0 then
    return nil
  end
  return e
end

local function cache_encode(e)
  local flags, fresh, stale, delta = 0, 0, 0, 0
  if e.value then flags, fresh, stale, delta = HAS_VALUE, e.fresh, e.stale, e.delta end
  local lease = ''
  if e.lease then
    flags = flags + HAS_LEASE
    lease = struct.pack(CACHE_LEASE, e.lease_until, e.leased_at, #e.lease) .. e.lease
  end
  return struct.pack(CACHE_HEADER, FORMAT + flags, fresh, stale, delta) .. lease .. (e.value or '')
end

-- Replaces whatever key holds (an old-layout hash too) with the entry, expiring at `at`.
local function cache_put(key, e, at)
  redis.call('SET', key, cache_encode(e), 'PXAT', int(at))
end

-- The entry at key: nil when absent; an error unless a string holding one (WRONGTYPE) or an
-- old-layout hash holding one (NOT_CACHE).
local function cache_load(key)
  local t = cache_type(key)
  if t == 'none' then return nil end
  if t == 'hash' then return cache_parse_hash(key) end
  if t ~= 'string' then return nil, err(WRONGTYPE) end
  local e = cache_decode(redis.call('GET', key))
  if e == nil then return nil, err(WRONGTYPE) end
  return e
end

local function cache_live(e, now)
  return e ~= nil and e.value ~= nil and now < e.stale
end

local function cache_leased(e, now)
  return e ~= nil and e.lease ~= nil and now < e.lease_until
end

-- XFetch, with the float operations of cache::early.
local function cache_early(now, e, beta, draw)
  local rand = draw / DRAW_MAX
  local gap = -e.delta * beta * math.log(rand)
  return gap >= e.fresh - now
end

-- cache::decide: the state word, and for WAIT the retry time.
local function cache_decide(now, e, beta, draw)
  local leased = cache_leased(e, now)
  if cache_live(e, now) then
    if now < e.fresh then
      if not leased and cache_early(now, e, beta, draw) then return 'REFRESH' end
      return 'HIT'
    end
    if leased then return 'STALE' end
    return 'REFRESH'
  end
  if leased then return 'WAIT', math.min(e.lease_until - now, WAIT_RETRY_MS) end
  return 'MISS'
end

local function cache_draw(s)
  if s == DRAW_MAX_TEXT then return DRAW_MAX end
  local d, big = parse_int(s)
  if big or d == nil or d < 1 then return nil end
  return d
end

local function cache_allowed(key)
  return redis.acl_check_cmd('HSET', key, 'f', 'v') and redis.acl_check_cmd('HGET', key, 'f')
end

local function cache_check_tags(key, tags)
  for _, tag in ipairs(tags) do
    if tag == key then return err(TAG_IS_KEY) end
    local t = cache_type(tag)
    if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  end
end

-- Lists key under tag until score; whether it is new there (update_index in the module).
local function cache_index_add(tag, now, score, key)
  index_prune(tag, now)
  local added = redis.call('ZADD', tag, int(score), key)
  index_fix(tag)
  return added == 1
end

-- The server's clock in µs (cache::precise_now_us), ordering leases against invalidations.
local function cache_now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Whether any of tags was invalidated at or after leased_us (its marker, cache::voids and
-- cache::invalidated_at_us).
local function cache_invalidated_since(tags, leased_us)
  for _, tag in ipairs(tags) do
    local score = redis.call('ZSCORE', tag, tag)
    if score then
      local at = math.floor(tonumber(score) * 1000 + 0.5) - MAX_LEASE_MS * 1000
      if at >= leased_us then return true end
    end
  end
  return false
end

-- A refused fill gives up its lease (cache::after_giving_up): the entry keeps its live value
-- and expires with it, or the key goes.
local function cache_give_up(key, e, now)
  if cache_live(e, now) then
    cache_put(key, {value = e.value, fresh = e.fresh, stale = e.stale, delta = e.delta}, e.stale)
  else
    redis.call('DEL', key)
  end
end

-- Validates a SET or FILL: its times, then its tags.
local function cache_store_check(key, now, ttl, delta, grace, tags)
  if ttl + grace > MAX_MS or delta > MAX_MS then return nil, err(TOO_LONG) end
  local e = cache_check_tags(key, tags)
  if e then return nil, e end
  return {fresh = now + ttl, stale = now + ttl + grace, delta = delta}
end

local function cache_write(key, value, t, tags, now)
  cache_put(key, {value = value, fresh = t.fresh, stale = t.stale, delta = t.delta}, t.stale)
  for _, tag in ipairs(tags) do cache_index_add(tag, now, t.stale, key) end
end

local function cache_set_run(key, value, ttl_ms, delta, grace, tags)
  local now = now_ms()
  local t, e = cache_store_check(key, now, ttl_ms, delta, grace, tags)
  if e then return e end
  local _, e2 = cache_load(key)
  if e2 then return e2 end
  cache_write(key, value, t, tags, now)
  return redis.status_reply('OK')
end

local function cache_fill_run(key, lease, value, ttl_ms, delta, grace, tags)
  local now = now_ms()
  local t, e = cache_store_check(key, now, ttl_ms, delta, grace, tags)
  if e then return e end
  local entry, e2 = cache_load(key)
  if e2 then return e2 end
  if not cache_leased(entry, now) or entry.lease ~= lease then return false end
  if cache_invalidated_since(tags, entry.leased_at) then
    cache_give_up(key, entry, now)
    return false
  end
  cache_write(key, value, t, tags, now)
  return redis.status_reply('OK')
end

local function cache_get_run(key, draw, lease, beta, lease_ms)
  draw = cache_draw(draw)
  if draw == nil then return err(BAD_DRAW) end
  if beta < 0 or beta == math.huge then return err(BAD_BETA) end
  local now_us = cache_now_us()
  local now = math.floor(now_us / 1000)
  if lease_ms > MAX_LEASE_MS then return err(LEASE_TOO_LONG) end
  local lease_until = now + lease_ms
  local e, er = cache_load(key)
  if er then return er end
  local state, retry = cache_decide(now, e, beta, draw)
  if state == 'HIT' or state == 'STALE' then return {state, e.value, false} end
  if state == 'WAIT' then return {state, false, retry} end
  local g = {lease = lease, lease_until = lease_until, leased_at = now_us}
  if state ~= 'MISS' and e.value ~= nil then
    g.value, g.fresh, g.stale, g.delta = e.value, e.fresh, e.stale, e.delta
  end
  cache_put(key, g, math.max(g.stale or 0, lease_until))
  if state == 'MISS' then return {state, false, lease} end
  return {state, e.value, lease}
end

local function cache_tag_run(keys)
  local key = keys[1]
  local tags = {unpack(keys, 2)}
  local e = cache_check_tags(key, tags)
  if e then return e end
  local now = now_ms()
  local entry, e2 = cache_load(key)
  if e2 then return e2 end
  if not cache_live(entry, now) then return err(NO_VALUE) end
  local attached = 0
  for _, tag in ipairs(tags) do
    if cache_index_add(tag, now, entry.stale, key) then attached = attached + 1 end
  end
  return attached
end

local function cache_invalidate_run(keys)
  local now_us = cache_now_us()
  local now = math.floor(now_us / 1000)
  local listed = {}
  for n, tag in ipairs(keys) do
    local t = cache_type(tag)
    if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
    -- The tag's own name is the marker of an earlier invalidation, not a key.
    listed[n] = {}
    for _, key in ipairs(redis.call('ZRANGE', tag, '(' .. int(now), '+inf', 'BYSCORE')) do
      if key ~= tag then listed[n][#listed[n] + 1] = key end
    end
  end
  for _, keys in ipairs(listed) do
    for _, key in ipairs(keys) do
      if not cache_allowed(key) then return err(NOPERM) end
    end
  end
  local deleted = 0
  for n, tag in ipairs(keys) do
    for _, key in ipairs(listed[n]) do deleted = deleted + redis.call('DEL', key) end
    redis.call('UNLINK', tag)
    -- The marker (cache::marker_score): ms, then the microseconds as three decimals.
    local ms, us = divmod(now_us, 1000)
    redis.call('ZADD', tag, string.format('%d.%03d', ms + MAX_LEASE_MS, us), tag)
    redis.call('PEXPIREAT', tag, int(ms + MAX_LEASE_MS))
    redis.call('PUBLISH', CHANNEL, tag)
  end
  return deleted
end

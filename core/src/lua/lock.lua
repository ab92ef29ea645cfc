-- Locks' and semaphores' Lua twin (see lock/mod.rs and src/lock.rs; no WAIT): each command
-- runs as <command>_run, its parameters bound by name from the definition; names in capitals
-- are constants generated from the Rust ones.

-- The lease held on key: nil when free; an error unless a lock's hash.
local function lock_load(key)
  local t = key_type(key)
  if t == 'none' then return nil end
  if t ~= 'hash' then return nil, err(WRONGTYPE) end
  local v = redis.call('HMGET', key, OWNER_FIELD, TOKEN_FIELD, HOLDS_FIELD)
  local token, holds = state_int(v[2] or ''), state_int(v[3] or '')
  if v[1] == false or token == nil or token < 1 or holds == nil or holds < 1 then
    return nil, err(NOT_LOCK)
  end
  return {owner = v[1], token = token, holds = holds}
end

local function lock_write(key, lease, at)
  redis.call('HSET', key, OWNER_FIELD, lease.owner, TOKEN_FIELD, int(lease.token), HOLDS_FIELD,
    int(lease.holds))
  redis.call('PEXPIREAT', key, int(at))
end

local function lock_check_ttl(ttl, wait)
  if wait ~= NO_WAIT then return err(NO_WAIT_IN_TWIN) end
  if ttl > MAX_MS then return err(TTL_TOO_LONG) end
end

local function lock_acquire_run(key, owner, ttl_ms, wait)
  local e = lock_check_ttl(ttl_ms, wait)
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
    if lease.holds + 1 >= LUA_EXACT_MAX then return err(HOLDS_EXHAUSTED) end
    lease.holds = lease.holds + 1
  else
    if last + 1 >= LUA_EXACT_MAX then return err(TOKENS_EXHAUSTED) end
    lease = {owner = owner, token = last + 1, holds = 1}
    redis.call('SET', fence, int(lease.token))
  end
  lock_write(key, lease, now + ttl_ms)
  return lease.token
end

local function lock_release_run(key, owner)
  local lease, e = lock_load(key)
  if e then return e end
  if lease == nil or lease.owner ~= owner then return 0 end
  if lease.holds > 1 then
    redis.call('HSET', key, HOLDS_FIELD, int(lease.holds - 1))
  else
    redis.call('DEL', key)
  end
  return 1
end

local function lock_extend_run(key, owner, ttl_ms)
  if ttl_ms > MAX_MS then return err(TTL_TOO_LONG) end
  local lease, e = lock_load(key)
  if e then return e end
  if lease == nil or lease.owner ~= owner then return 0 end
  redis.call('PEXPIREAT', key, int(now_ms() + ttl_ms))
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
  local newest = redis.call('HGET', key, RESOURCE_FENCE_FIELD)
  if newest then
    newest = state_int(newest)
    if newest == nil or newest < 1 then return err(NOT_FENCED) end
    if token < newest then return 0 end
  end
  redis.call('HSET', key, RESOURCE_FENCE_FIELD, int(token), unpack(pairs))
  return 1
end

-- A semaphore's permits, expired ones pruned: nil, or an error unless a sorted set.
local function sem_live(key, now)
  local t = key_type(key)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  index_prune(key, now)
  index_fix(key)
end

local function sem_acquire_run(key, owner, limit, ttl_ms, wait)
  local e = lock_check_ttl(ttl_ms, wait)
  if e then return e end
  local now = now_ms()
  e = sem_live(key, now)
  if e then return e end
  local held = redis.call('ZSCORE', key, owner)
  if not held and redis.call('ZCARD', key) >= limit then return 0 end
  redis.call('ZADD', key, int(now + ttl_ms), owner)
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
  local e = sem_live(key, now_ms())
  if e then return e end
  return redis.call('ZCARD', key)
end

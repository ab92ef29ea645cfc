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

-- The last token granted, from the fencing counter (0 when there is none yet).
local function lock_fence(fence)
  local last, e = get_string(fence)
  if e then return nil, e end
  last = state_int(last or '0')
  if last == nil then return nil, err(NOT_FENCE) end
  return last
end

-- A lock's grant to owner (lock::acquire): the new lease (`new` when it takes a new token),
-- false when another owner holds it, or an error.
local function lock_grant(lease, last, owner)
  if lease then
    if lease.owner ~= owner then return false end
    if lease.holds + 1 >= LUA_EXACT_MAX then return nil, err(HOLDS_EXHAUSTED) end
    return {owner = owner, token = lease.token, holds = lease.holds + 1}
  end
  if last + 1 >= LUA_EXACT_MAX then return nil, err(TOKENS_EXHAUSTED) end
  return {owner = owner, token = last + 1, holds = 1, new = true}
end

-- Writes a grant (a new owner's token to the counter, then the lease): its token.
local function lock_write_grant(key, fence, lease, at)
  if lease.new then redis.call('SET', fence, int(lease.token)) end
  lock_write(key, lease, at)
  return lease.token
end

local function lock_acquire_run(key, owner, ttl_ms, wait)
  local e = lock_check_ttl(ttl_ms, wait)
  if e then return e end
  local fence = derived_key(key, FENCE_SUFFIX)
  if fence == nil then return err(BAD_NAME) end
  if not key_allowed(fence) then return err(NOPERM) end
  local lease, e2 = lock_load(key)
  if e2 then return e2 end
  local last, e3 = lock_fence(fence)
  if e3 then return e3 end
  local now = now_ms()
  local grant, e4 = lock_grant(lease, last, owner)
  if e4 then return e4 end
  if not grant then return false end
  return lock_write_grant(key, fence, grant, now + ttl_ms)
end

-- Drops one of owner's holds of the lease on key: whether it had one.
local function lock_drop_hold(key, lease, owner)
  if lease == nil or lease.owner ~= owner then return false end
  if lease.holds > 1 then
    redis.call('HSET', key, HOLDS_FIELD, int(lease.holds - 1))
  else
    redis.call('DEL', key)
  end
  return true
end

local function lock_release_run(key, owner)
  local lease, e = lock_load(key)
  if e then return e end
  if lock_drop_hold(key, lease, owner) then return 1 end
  return 0
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

-- Read only (registered no-writes): the live permits, the expired ones left for a write to prune.
local function sem_count_run(key)
  local t = key_type(key)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  return redis.call('ZCOUNT', key, '(' .. int(now_ms()), '+inf')
end

-- Read/write locks (lock/rw.rs): read holds in key (a semaphore's sorted set, pruned as it is
-- touched), the write hold in {key}:writer (a lock: its tokens from {key}:writer:fence).

-- The write hold's key and the fencing counter's, the user's access to the first checked.
local function rwlock_keys(key)
  local writer = derived_key(key, WRITER_SUFFIX)
  if writer == nil then return nil, nil, err(BAD_NAME) end
  if not key_allowed(writer) then return nil, nil, err(NOPERM) end
  return writer, derived_key(writer, FENCE_SUFFIX)
end

-- The write hold (nil when none), once the read holds' key's type is checked; or an error.
local function rwlock_load(key, writer)
  local t = key_type(key)
  if t ~= 'none' and t ~= 'zset' then return nil, err(WRONGTYPE) end
  return lock_load(writer)
end

local function rwlock_live_readers(key, now)
  return redis.call('ZCOUNT', key, '(' .. int(now), '+inf')
end

local function rwlock_acquire_run(key, owner, ttl_ms, mode, wait)
  local e = lock_check_ttl(ttl_ms, wait)
  if e then return e end
  mode = string.upper(mode)
  if mode ~= READ_MODE and mode ~= WRITE_MODE then return err(SYNTAX_ERROR) end
  local writer, fence, e2 = rwlock_keys(key)
  if e2 then return e2 end
  if not key_allowed(fence) then return err(NOPERM) end
  local lease, e3 = rwlock_load(key, writer)
  if e3 then return e3 end
  local last, e4 = lock_fence(fence)
  if e4 then return e4 end
  local now = now_ms()
  local grant = false
  if mode == WRITE_MODE and rwlock_live_readers(key, now) == 0 then
    local e5
    grant, e5 = lock_grant(lease, last, owner)
    if e5 then return e5 end
  end
  index_prune(key, now)
  index_fix(key)
  if mode == WRITE_MODE then
    if not grant then return false end
    return lock_write_grant(writer, fence, grant, now + ttl_ms)
  end
  if lease then return false end
  redis.call('ZADD', key, int(now + ttl_ms), owner)
  index_fix(key)
  return 1
end

local function rwlock_release_run(key, owner)
  local writer, _, e = rwlock_keys(key)
  if e then return e end
  local lease, e2 = rwlock_load(key, writer)
  if e2 then return e2 end
  if lock_drop_hold(writer, lease, owner) then return 1 end
  return sem_release_run(key, owner)
end

local function rwlock_extend_run(key, owner, ttl_ms)
  if ttl_ms > MAX_MS then return err(TTL_TOO_LONG) end
  local writer, _, e = rwlock_keys(key)
  if e then return e end
  local lease, e2 = rwlock_load(key, writer)
  if e2 then return e2 end
  local now = now_ms()
  if lease and lease.owner == owner then
    redis.call('PEXPIREAT', writer, int(now + ttl_ms))
    return 1
  end
  index_prune(key, now)
  index_fix(key)
  if not redis.call('ZSCORE', key, owner) then return 0 end
  redis.call('ZADD', key, int(now + ttl_ms), owner)
  index_fix(key)
  return 1
end

-- Read only (registered no-writes); with no queue, 0 waiters.
local function rwlock_info_run(key)
  local writer, _, e = rwlock_keys(key)
  if e then return e end
  local lease, e2 = rwlock_load(key, writer)
  if e2 then return e2 end
  local now = now_ms()
  local readers = rwlock_live_readers(key, now)
  local mode, owner, token, at
  if lease then
    mode, owner, token = 'write', lease.owner, lease.token
    at = redis.call('PEXPIRETIME', writer)
  elseif readers > 0 then
    local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    mode, owner, token, at = 'read', false, false, math.floor(tonumber(top[2]))
  else
    return false
  end
  local ttl = -1
  if at >= 0 then ttl = math.max(at - now, 0) end
  return {'mode', mode, 'owner', owner, 'token', token, 'readers', readers, 'ttl', ttl,
    'waiters', 0}
end

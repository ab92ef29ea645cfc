-- Sessions' Lua twin (see session/mod.rs and src/session.rs for the same steps in the module):
-- each command runs as <command>_run, its parameters bound by name from the definition; names
-- in capitals are constants generated from the Rust ones.

local function sess_is_id(id)
  return #id == 22 and string.find(id, '^[A-Za-z0-9_%-]+$') ~= nil
end

local function sess_expect_index(index)
  local t = key_type(index)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
end

-- The session at key as of now: nil when absent (or expired by now, as the module sees it);
-- an error unless a session whose index may be used.
local function sess_load(key, now)
  local t = key_type(key)
  if t == 'none' then return nil end
  local at = redis.call('PEXPIRETIME', key)
  if at >= 0 and at <= now then return nil end
  if t ~= 'hash' then return nil, err(WRONGTYPE) end
  local flat = redis.call('HGETALL', key)
  local s = {flat = flat}
  for i = 1, #flat, 2 do
    local f = flat[i]
    if f == IDLE_FIELD then s.idle = state_int(flat[i + 1])
    elseif f == ABSOLUTE_FIELD then s.abs = state_int(flat[i + 1])
    elseif f == INDEX_FIELD then s.index = flat[i + 1] end
  end
  if s.idle == nil or s.abs == nil or s.index == nil then return nil, err(NOT_SESSION) end
  if not key_allowed(s.index) then return nil, err(NOPERM) end
  local e = sess_expect_index(s.index)
  if e then return nil, e end
  return s
end

local function sess_touch(key, index, idle, abs, now)
  local at = int(math.min(now + idle, abs))
  redis.call('PEXPIREAT', key, at)
  index_prune(index, now)
  redis.call('ZADD', index, at, key)
  index_fix(index)
end

-- Deletes a session and takes it out of its index (SESSION.DESTROY's writes).
local function sess_remove(index, key, now)
  redis.call('DEL', key)
  index_prune(index, now)
  redis.call('ZREM', index, key)
  index_fix(index)
end

-- The lowest score of an index's members alive at now (scores above now), for a BYSCORE range.
local function sess_alive_from(now)
  return '(' .. int(now)
end

-- The live sessions of index that make room for a new one under a cap of max (0: no cap): the
-- ones soonest to expire, as many as the index holds past max - 1.
local function sess_over_cap(index, max, now)
  if max == 0 then return {} end
  local excess = redis.call('ZCOUNT', index, sess_alive_from(now), '+inf') - (max - 1)
  if excess <= 0 then return {} end
  return redis.call('ZRANGE', index, sess_alive_from(now), '+inf', 'BYSCORE', 'LIMIT', 0, excess)
end

local function session_create_run(index, id, max, idle_ms, absolute_ms, pairs)
  if not sess_is_id(id) then return err(BAD_ID) end
  if idle_ms > MAX_MS or absolute_ms > MAX_MS then return err(TOO_LONG) end
  if absolute_ms < idle_ms then return err(ABSOLUTE_BELOW_IDLE) end
  if reserved_fields(pairs) then return err(RESERVED) end
  local key = derived_key(index, id)
  if key == nil then return err(BAD_INDEX) end
  if not key_allowed(key) then return err(NOPERM) end
  local e = sess_expect_index(index)
  if e then return e end
  if key_type(key) ~= 'none' then return err(ID_TAKEN) end
  local now = now_ms()
  local victims = sess_over_cap(index, max, now)
  for _, v in ipairs(victims) do
    if not key_allowed(v) then return err(NOPERM) end
  end
  for _, v in ipairs(victims) do sess_remove(index, v, now) end
  local abs = now + absolute_ms
  redis.call('HSET', key, IDLE_FIELD, int(idle_ms), ABSOLUTE_FIELD, int(abs), INDEX_FIELD, index,
    unpack(pairs))
  sess_touch(key, index, idle_ms, abs, now)
  return key
end

local function session_get_run(key)
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  sess_touch(key, s.index, s.idle, s.abs, now)
  local out = {}
  for i = 1, #s.flat, 2 do
    if string.sub(s.flat[i], 1, 2) ~= RESERVED_PREFIX then
      out[#out + 1] = s.flat[i]
      out[#out + 1] = s.flat[i + 1]
    end
  end
  return out
end

local function session_set_run(key, pairs)
  if reserved_fields(pairs) then return err(RESERVED) end
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  local added = redis.call('HSET', key, unpack(pairs))
  sess_touch(key, s.index, s.idle, s.abs, now)
  return added
end

local function session_rotate_run(key, id)
  if not sess_is_id(id) then return err(BAD_ID) end
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return false end
  local new = derived_key(s.index, id)
  if new == nil then return err(BAD_INDEX) end
  if not key_allowed(new) then return err(NOPERM) end
  if key_type(new) ~= 'none' then return err(ID_TAKEN) end
  local at = redis.call('PEXPIRETIME', key)
  redis.call('RENAME', key, new)
  index_prune(s.index, now)
  redis.call('ZREM', s.index, key)
  redis.call('ZADD', s.index, int(at), new)
  index_fix(s.index)
  return new
end

local function session_destroy_run(key)
  local now = now_ms()
  local s, e = sess_load(key, now)
  if e then return e end
  if s == nil then return 0 end
  sess_remove(s.index, key, now)
  return 1
end

local function sess_live(index)
  local e = sess_expect_index(index)
  if e then return nil, e end
  index_prune(index, now_ms())
  index_fix(index)
  return redis.call('ZRANGE', index, 0, -1)
end

local function session_destroyall_run(index)
  local e = sess_expect_index(index)
  if e then return e end
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not key_allowed(m) then return err(NOPERM) end
  end
  local destroyed = 0
  for _, m in ipairs(redis.call('ZRANGE', index, sess_alive_from(now_ms()), '+inf', 'BYSCORE')) do
    destroyed = destroyed + redis.call('DEL', m)
  end
  redis.call('UNLINK', index)
  return destroyed
end

local function session_list_run(index)
  local members, e = sess_live(index)
  if e then return e end
  return members
end

local function session_count_run(index)
  local e = sess_expect_index(index)
  if e then return e end
  return redis.call('ZCOUNT', index, sess_alive_from(now_ms()), '+inf')
end

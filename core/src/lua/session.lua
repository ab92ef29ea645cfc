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

-- The index score written with expiry at (session::Deadlines::index_score): a lead of
-- idle / 8, at most LOOKAHEAD_MS, later; never past the absolute deadline.
local function sess_index_score(at, idle, abs)
  local lead = math.min(math.floor(idle / 8), LOOKAHEAD_MS)
  return int(math.min(at + lead, abs))
end

-- Records a session's expiry at in its index: prune, re-score, fix the TTL.
local function sess_index_set(key, index, idle, abs, at, now)
  index_prune(index, now)
  redis.call('ZADD', index, sess_index_score(at, idle, abs), key)
  index_fix(index)
end

-- Slides a session's expiry; its index moves only when the new expiry passes its score.
local function sess_touch(key, index, idle, abs, now)
  local at = math.min(now + idle, abs)
  redis.call('PEXPIREAT', key, int(at))
  local score = redis.call('ZSCORE', index, key)
  if score and tonumber(score) >= at then return end
  sess_index_set(key, index, idle, abs, at, now)
end

-- A key's expiry when it exists and does not expire by now (math.huge without one), else nil.
local function sess_live_expiry(key, now)
  local at = redis.call('PEXPIRETIME', key)
  if at == -2 or (at >= 0 and at <= now) then return nil end
  if at == -1 then return math.huge end
  return at
end

-- Whether a sorts before b byte by byte, as a sorted set orders members of equal score.
local function sess_bytes_less(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- The live sessions of index, soonest to expire first by their keys' real expiries.
local function sess_live_sorted(index, now)
  local live = {}
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    local at = sess_live_expiry(m, now)
    if at then live[#live + 1] = {at, m} end
  end
  table.sort(live, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return sess_bytes_less(x[2], y[2])
  end)
  local out = {}
  for i, e in ipairs(live) do out[i] = e[2] end
  return out
end

-- The live sessions of index, counted without writing (session::ops::live_len): members
-- scored past the look-ahead window are alive, those within it are checked against their keys.
local function sess_live_len(index, now)
  local edge = now + LOOKAHEAD_MS
  local n = redis.call('ZCOUNT', index, '(' .. int(edge), '+inf')
  for _, m in ipairs(redis.call('ZRANGE', index, '(' .. int(now), int(edge), 'BYSCORE')) do
    if sess_live_expiry(m, now) then n = n + 1 end
  end
  return n
end

-- Deletes a session and takes it out of its index (SESSION.DESTROY's writes).
local function sess_remove(index, key, now)
  redis.call('DEL', key)
  index_prune(index, now)
  redis.call('ZREM', index, key)
  index_fix(index)
end

-- The live sessions of index that make room for a new one under a cap of max (0: no cap): the
-- ones soonest to expire, as many as the index holds past max - 1.
local function sess_over_cap(index, max, now)
  if max == 0 then return {} end
  local excess = sess_live_len(index, now) - (max - 1)
  if excess <= 0 then return {} end
  local victims = {}
  for i, m in ipairs(sess_live_sorted(index, now)) do
    if i > excess then break end
    victims[i] = m
  end
  return victims
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
  local at = math.min(now + idle_ms, abs)
  redis.call('PEXPIREAT', key, int(at))
  sess_index_set(key, index, idle_ms, abs, at, now)
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
  local now = now_ms()
  index_prune(index, now)
  index_fix(index)
  return sess_live_sorted(index, now)
end

local function session_destroyall_run(index)
  local e = sess_expect_index(index)
  if e then return e end
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not key_allowed(m) then return err(NOPERM) end
  end
  local now, destroyed = now_ms(), 0
  for _, m in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if sess_live_expiry(m, now) then destroyed = destroyed + redis.call('DEL', m) end
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
  return sess_live_len(index, now_ms())
end

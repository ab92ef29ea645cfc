-- The queue family's twin (core/src/queue/lua.rs): the same stream commands in the same
-- order as the module (src/queue.rs). `block` is read and ignored: a script cannot block.
local U64_MAX = '18446744073709551615'

-- A decimal within u64 (leading zeros allowed), without its leading zeros; or nil.
local function queue_u64(s)
  if s == nil or not string.match(s, '^%d+$') then return nil end
  s = string.gsub(s, '^0+', '')
  if s == '' then s = '0' end
  if #s > 20 or (#s == 20 and s > U64_MAX) then return nil end
  return s
end

-- A stream id `ms-seq` as {ms, seq} (decimal strings), or nil.
local function queue_id(s)
  local ms, seq = string.match(s, '^(%d+)%-(%d+)$')
  ms, seq = queue_u64(ms), queue_u64(seq)
  if ms == nil or seq == nil then return nil end
  return {ms, seq}
end

local function queue_numcmp(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function queue_idless(a, b)
  local c = queue_numcmp(a[1], b[1])
  if c ~= 0 then return c < 0 end
  return queue_numcmp(a[2], b[2]) < 0
end

-- A decimal string plus one.
local function queue_incr(s)
  local digits, i = {}, #s
  for j = 1, #s do digits[j] = string.byte(s, j) - 48 end
  while i >= 1 do
    if digits[i] < 9 then digits[i] = digits[i] + 1; break end
    digits[i] = 0
    i = i - 1
  end
  local out = {}
  if i < 1 then out[1] = '1' end
  for j = 1, #s do out[#out + 1] = tostring(digits[j]) end
  return table.concat(out)
end

-- The id after this one, or nil past the last.
local function queue_next(id)
  if id[2] ~= U64_MAX then return {id[1], queue_incr(id[2])} end
  if id[1] ~= U64_MAX then return {queue_incr(id[1]), '0'} end
  return nil
end

local function queue_check_ms(ms)
  if ms > Q_MAX_MS then return err(Q_TOO_LONG) end
end

-- Whether key exists; a WRONGTYPE error unless it is absent or of type `kind`.
local function queue_expect(key, kind)
  local t = key_type(key)
  if t == 'none' then return false end
  if t ~= kind then return nil, err(WRONGTYPE) end
  return true
end

-- The queue's keys (exists, leases, dead), checked as the module checks them.
local function queue_keys(key, group)
  local exists, e = queue_expect(key, 'stream')
  if e then return nil, e end
  local leases = derived_key(key, Q_LEASES_SUFFIX .. group)
  local dead = derived_key(key, Q_DEAD_SUFFIX)
  if leases == nil or dead == nil then return nil, err(Q_BAD_NAME) end
  local _, e2 = queue_expect(leases, 'zset')
  if e2 then return nil, e2 end
  local _, e3 = queue_expect(dead, 'stream')
  if e3 then return nil, e3 end
  if not key_allowed(leases) or not key_allowed(dead) then return nil, err(NOPERM) end
  return {exists = exists, leases = leases, dead = dead}
end

local function queue_field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end

-- (consumer, deliveries) of a job pending in the group, or nil.
local function queue_pending(key, group, id)
  local r = redis.call('XPENDING', key, group, id, id, 1)
  if r[1] == nil then return nil end
  return r[1][2], r[1][4]
end

local function queue_fresh(fields, group, now)
  local for_group = queue_field(fields, Q_GROUP_FIELD)
  if for_group ~= nil and for_group ~= group then return 'skip' end
  local due = queue_field(fields, Q_DUE_FIELD)
  due = due and parse_int(due)
  if due ~= nil and due > now then return 'park', due end
  return 'deliver'
end

local function queue_park(key, group, id, deliveries)
  if deliveries then
    redis.call('XCLAIM', key, group, Q_PARKED, 0, id, 'RETRYCOUNT', deliveries, 'JUSTID')
  else
    redis.call('XCLAIM', key, group, Q_PARKED, 0, id, 'JUSTID')
  end
end

-- Each group: {name, pending, last id}.
local function queue_groups(key)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local name = queue_field(g, 'name')
    out[#out + 1] = {name, queue_field(g, 'pending'), queue_field(g, 'last-delivered-id')}
  end
  return out
end

-- The group's keys and the queue's groups; false when the queue or the group does not exist;
-- or nil and the error.
local function queue_group_keys(key, group)
  local keys, e = queue_keys(key, group)
  if e then return nil, e end
  if not keys.exists then return false end
  local groups = queue_groups(key)
  for _, g in ipairs(groups) do
    if g[1] == group then return keys, nil, groups end
  end
  return false
end

-- The group's keys and job id's holder (Q_PARKED when a delay holds it); no holder when the
-- queue, the group or the job's pending entry does not exist; or nil, nil and the error.
local function queue_pending_job(key, group, id)
  local keys, e = queue_group_keys(key, group)
  if e then return nil, nil, e end
  if not keys then return false end
  local holder = queue_pending(key, group, id)
  return keys, holder
end

-- What group {name, pending, last} still needs: true and its oldest pending job (XPENDING),
-- else the id after its last read (nil past the last id); false when either cannot be read
-- (then nothing is trimmed).
local function queue_need(key, name, pending, last)
  last = queue_id(last or '')
  if last == nil then return false end
  if pending > 0 then
    local first = redis.call('XPENDING', key, name, '-', '+', 1)[1]
    local oldest = queue_id(first and first[1] or '')
    if oldest == nil then return false end
    return true, oldest
  end
  return true, queue_next(last)
end

-- The needs of `groups` (but the one named `skip`), after those in `needs`: each an id, or
-- false past the last id; nil at the first that cannot be read.
local function queue_needs(key, groups, skip, needs)
  for _, g in ipairs(groups) do
    if g[1] ~= skip then
      local known, need = queue_need(key, g[1], g[2], g[3])
      if not known then return nil end
      needs[#needs + 1] = need or false
    end
  end
  return needs
end

-- Removes the jobs below the lowest of `needs` (queue_needs), a whole stream node at a time
-- (XTRIM MINID ~, without its default limit); nothing when a need is unknown or past the
-- last id, or there is no group.
local function queue_trim_to_bound(key, needs)
  if needs == nil or #needs == 0 then return end
  local bound = nil
  for _, need in ipairs(needs) do
    if not need then return end
    if bound == nil or queue_idless(need, bound) then bound = need end
  end
  redis.call('XTRIM', key, 'MINID', '~', bound[1] .. '-' .. bound[2], 'LIMIT', 0)
end

-- Trims the jobs every group has completed (see queue_trim_to_bound).
local function queue_trim(key)
  queue_trim_to_bound(key, queue_needs(key, queue_groups(key), nil, {}))
end

-- After `acked` of the jobs `ids` were completed in `group` (`groups`: the queue's groups read
-- before): trims, unless every job completed was newer than what the group needs now (so its
-- oldest needed job, and the bound, are unchanged).
local function queue_trim_after_ack(key, group, ids, acked, groups)
  local mine
  for _, g in ipairs(groups) do
    if g[1] == group then mine = g end
  end
  local known, need = queue_need(key, group, mine[2] - acked, mine[3])
  if not known or need == nil then return end
  for _, id in ipairs(ids) do
    if queue_idless(queue_id(id), need) then
      return queue_trim_to_bound(key, queue_needs(key, groups, group, {need}))
    end
  end
end

local function queue_dead_letter(key, group, keys, id, holder, deliveries, now)
  local entry = redis.call('XRANGE', key, id, id)[1]
  if entry then
    local payload = queue_field(entry[2], Q_PAYLOAD_FIELD) or ''
    redis.call('XADD', keys.dead, '*', 'job', id, Q_PAYLOAD_FIELD, payload, 'deliveries',
      int(deliveries), Q_GROUP_FIELD, group, 'consumer', holder, 'time', int(now))
  end
  redis.call('XACK', key, group, id)
  redis.call('ZREM', keys.leases, id)
end

local function queue_try_pop(key, group, consumer, count, lease, max, keys, now)
  if not keys.exists then return {} end
  redis.pcall('XGROUP', 'CREATE', key, group, '0')
  local jobs, completed = {}, false
  local due = redis.call('ZRANGE', keys.leases, '-inf', int(now), 'BYSCORE', 'LIMIT', 0, count)
  for _, id in ipairs(due) do
    local holder, deliveries = queue_pending(key, group, id)
    if holder == nil then
      redis.call('ZREM', keys.leases, id)
    elseif deliveries >= max then
      queue_dead_letter(key, group, keys, id, holder, deliveries, now)
      completed = true
    else
      local claimed = redis.call('XCLAIM', key, group, consumer, 0, id)[1]
      if type(claimed) ~= 'table' or claimed[2] == nil then
        redis.call('ZREM', keys.leases, id)
      else
        redis.call('ZADD', keys.leases, int(now + lease), id)
        jobs[#jobs + 1] = {id, queue_field(claimed[2], Q_PAYLOAD_FIELD) or '', deliveries + 1}
      end
    end
  end
  while #jobs < count do
    local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', count - #jobs,
      'STREAMS', key, '>')
    local entries = (r and r[1] and r[1][2]) or {}
    if #entries == 0 then break end
    for _, e in ipairs(entries) do
      local id, fields = e[1], e[2]
      local fate, at = queue_fresh(fields, group, now)
      if fate == 'deliver' then
        redis.call('ZADD', keys.leases, int(now + lease), id)
        jobs[#jobs + 1] = {id, queue_field(fields, Q_PAYLOAD_FIELD) or '', 1}
      elseif fate == 'park' then
        queue_park(key, group, id, 0)
        redis.call('ZADD', keys.leases, int(at), id)
      else
        redis.call('XACK', key, group, id)
        completed = true
      end
    end
  end
  if completed then queue_trim(key) end
  return jobs
end

local function queue_push_run(key, payload, delay, dedupe)
  local ttl
  if #dedupe > 0 then
    if #dedupe ~= 2 then return err(SYNTAX_ERROR) end
    local big
    ttl, big = parse_int(dedupe[2])
    if big and ttl > 0 then return err(Q_TOO_LONG) end
    if ttl == nil or big or ttl < 1 then return err(Q_BAD_TTL) end
    local e = queue_check_ms(ttl)
    if e then return e end
  end
  local e = queue_check_ms(delay)
  if e then return e end
  local _, e2 = queue_expect(key, 'stream')
  if e2 then return e2 end
  if derived_key(key, Q_DEAD_SUFFIX) == nil then return err(Q_BAD_NAME) end
  local now = now_ms()
  local dkey
  if ttl then
    dkey = derived_key(key, Q_DEDUPE_SUFFIX .. dedupe[1])
    if not key_allowed(dkey) then return err(NOPERM) end
    local first, e3 = get_string(dkey)
    if e3 then return e3 end
    if first then return first end
  end
  local added
  if delay > 0 then
    added = redis.pcall('XADD', key, '*', Q_PAYLOAD_FIELD, payload, Q_DUE_FIELD, int(now + delay))
  else
    added = redis.pcall('XADD', key, '*', Q_PAYLOAD_FIELD, payload)
  end
  if type(added) == 'table' then return err(Q_STREAM_FULL) end
  if dkey then redis.call('SET', dkey, added, 'PXAT', int(now + ttl)) end
  return added
end

local function queue_pop_run(key, group, consumer, count, block, lease, maxdeliveries)
  local max = maxdeliveries
  if consumer == Q_PARKED then return err(Q_RESERVED_CONSUMER) end
  local e = queue_check_ms(lease)
  if e then return e end
  local keys, e2 = queue_keys(key, group)
  if e2 then return e2 end
  local jobs = queue_try_pop(key, group, consumer, count, lease, max, keys, now_ms())
  if #jobs == 0 then return false end
  return jobs
end

local function queue_ack_run(key, group, job_ids)
  local ids = job_ids
  for _, id in ipairs(ids) do
    if queue_id(id) == nil then return err(Q_BAD_JOB_ID) end
  end
  local keys, e, groups = queue_group_keys(key, group)
  if e then return e end
  if not keys then return 0 end
  local acked = redis.call('XACK', key, group, unpack(ids))
  redis.call('ZREM', keys.leases, unpack(ids))
  if acked > 0 then queue_trim_after_ack(key, group, ids, acked, groups) end
  return acked
end

local function queue_nack_run(key, group, job_id, delay)
  local id = job_id
  if queue_id(id) == nil then return err(Q_BAD_JOB_ID) end
  local e = queue_check_ms(delay)
  if e then return e end
  local keys, holder, e2 = queue_pending_job(key, group, id)
  if e2 then return e2 end
  if holder == nil or holder == Q_PARKED then return 0 end
  queue_park(key, group, id, nil)
  redis.call('ZADD', keys.leases, int(now_ms() + delay), id)
  return 1
end

local function queue_extend_run(key, group, consumer, job_id, lease_ms)
  local id, lease = job_id, lease_ms
  if queue_id(id) == nil then return err(Q_BAD_JOB_ID) end
  local e = queue_check_ms(lease)
  if e then return e end
  local keys, holder, e2 = queue_pending_job(key, group, id)
  if e2 then return e2 end
  if holder ~= consumer then return 0 end
  redis.call('ZADD', keys.leases, int(now_ms() + lease), id)
  return 1
end

-- The group's dead letters, oldest first: {dead letter id, payload}.
local function queue_dead_letters(dead, group)
  local out = {}
  for _, e in ipairs(redis.call('XRANGE', dead, '-', '+')) do
    if queue_field(e[2], Q_GROUP_FIELD) == group then
      out[#out + 1] = {e[1], queue_field(e[2], Q_PAYLOAD_FIELD) or ''}
    end
  end
  return out
end

local function queue_redrive_run(key, group, count)
  local keys, e = queue_keys(key, group)
  if e then return e end
  local moved = 0
  for _, d in ipairs(queue_dead_letters(keys.dead, group)) do
    if moved == count then break end
    local added = redis.pcall('XADD', key, '*', Q_PAYLOAD_FIELD, d[2], Q_GROUP_FIELD, group)
    if type(added) == 'table' then break end
    redis.call('XDEL', keys.dead, d[1])
    moved = moved + 1
  end
  return moved
end

local function queue_stats_run(key, group)
  local keys, e = queue_keys(key, group)
  if e then return e end
  local now = now_ms()
  local ready, delayed, pending, consumers = 0, 0, 0, 0
  local info
  if keys.exists then
    for _, g in ipairs(queue_groups(key)) do
      if g[1] == group then info = g end
    end
    local from = '-'
    if info then from = '(' .. (info[3] or '0-0') end
    for _, entry in ipairs(redis.call('XRANGE', key, from, '+')) do
      local fate = queue_fresh(entry[2], group, now)
      if fate == 'deliver' then ready = ready + 1
      elseif fate == 'park' then delayed = delayed + 1 end
    end
  end
  if info then
    for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', key, group)) do
      if c[2] == Q_PARKED then
        delayed = delayed + c[4]
      else
        consumers = consumers + 1
        pending = pending + c[4]
      end
    end
  end
  local dead = #queue_dead_letters(keys.dead, group)
  return {'ready', ready, 'delayed', delayed, 'pending', pending, 'dead', dead,
    'consumers', consumers}
end

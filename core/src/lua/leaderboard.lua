-- Leaderboards' Lua twin (see leaderboard/mod.rs: Board, write and remove, with redis.call
-- as the store): each command runs as <command>_run, its parameters bound by name from the
-- definition; names in capitals are constants generated from the Rust ones.

local function lb_type(key)
  if key == nil then return 'none' end
  return redis.call('TYPE', key)['ok']
end

-- The board and its tie-break keys (nil when the board's name cannot carry them); an error
-- when the user may not read them (or, to `write`, write them). A read looks at the keys past
-- the order key only when it exists: a board without one is read as a plain sorted set.
local function lb_keys(board, write)
  local k = {board = board, order = derived_key(board, ORDER_SUFFIX),
    stamps = derived_key(board, STAMPS_SUFFIX), scores = derived_key(board, SCORES_SUFFIX),
    names = derived_key(board, NAMES_SUFFIX)}
  if not k.order then return k end
  local function may(z)
    return redis.acl_check_cmd('ZSCORE', z, 'm')
      and (not write or redis.acl_check_cmd('ZADD', z, '0', 'm'))
  end
  if not may(k.order) then return nil, err(NOPERM) end
  if not write and lb_type(k.order) == 'none' then return k end
  if not (may(k.scores) and may(k.names) and redis.acl_check_cmd('HGET', k.stamps, 'f')
      and (not write or redis.acl_check_cmd('HSET', k.stamps, 'f', 'v'))) then
    return nil, err(NOPERM)
  end
  return k
end

local function lb_check_types(k)
  local expected = {{k.board, 'zset'}, {k.order, 'zset'}, {k.stamps, 'hash'}, {k.scores, 'zset'},
    {k.names, 'zset'}}
  for _, e in ipairs(expected) do
    local t = lb_type(e[1])
    if t ~= 'none' and t ~= e[2] then return err(WRONGTYPE) end
  end
end

-- A read's check: the keys past the order key only when it exists (see lb_keys).
local function lb_check_read_types(k)
  for _, key in ipairs({k.board, k.order}) do
    local t = lb_type(key)
    if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  end
  if lb_type(k.order) == 'none' then return nil end
  return lb_check_types(k)
end

-- 'plain', 'native' or 'legacy' (and the number of members without a stamp), checked in step.
local function lb_layout(k, total)
  if total == 0 or lb_type(k.order) == 'none' then return 'plain', 0 end
  local stamped = redis.call('ZCARD', k.order)
  if redis.call('HLEN', k.stamps) > stamped or stamped > total then return nil, 0, err(OUT_OF_STEP) end
  if lb_type(k.names) == 'none' then
    if stamped ~= total then return nil, 0, err(OUT_OF_STEP) end
    return 'native', 0
  end
  if redis.call('ZCARD', k.names) ~= stamped then return nil, 0, err(OUT_OF_STEP) end
  return 'legacy', total - stamped
end

local function lb_scored(flat)
  local out = {}
  for i = 1, #flat, 2 do out[#out + 1] = {m = flat[i], v = tonumber(flat[i + 1]), t = flat[i + 1]} end
  return out
end

local function lb_range(key, a, b, rev)
  if rev then return lb_scored(redis.call('ZRANGE', key, a, b, 'REV', 'WITHSCORES')) end
  return lb_scored(redis.call('ZRANGE', key, a, b, 'WITHSCORES'))
end

local function lb_score(board, m)
  local t = redis.call('ZSCORE', board, m)
  if not t then return nil end
  return {m = m, v = tonumber(t), t = t}
end

local function lb_stamp_text(n)
  return string.format('%0' .. STAMP_DIGITS .. 'd', n)
end

local function lb_stamp_of(s)
  local digits = string.sub(s, 1, STAMP_DIGITS)
  if #digits ~= STAMP_DIGITS or not string.find(digits, '^%d+$') then return nil end
  return tonumber(digits)
end

local function lb_distinct(x)
  if x.v == 0 then return '0' end
  return x.t
end

local function lb_name_entry(x, m)
  return lb_distinct(x) .. ':' .. m
end

-- ZLEXCOUNT of the names of x's score sorting before m.
local function lb_names_before(k, x, m)
  local prefix = lb_name_entry(x, '')
  return redis.call('ZLEXCOUNT', k.names, '[' .. prefix, '(' .. prefix .. m)
end

-- x's entry in the order key (x: a board member and its score) from the stamps hash, else by
-- scanning its score group (every member of a group past SMALL_GROUP is in the hash), with its
-- offset in the group when scanned; nil for a member without a stamp.
local function lb_find(k, x)
  local stamp = redis.call('HGET', k.stamps, x.m)
  if stamp then return stamp .. x.m, nil end
  local group = redis.call('ZRANGE', k.order, x.t, x.t, 'BYSCORE', 'LIMIT', 0, SMALL_GROUP)
  for i, e in ipairs(group) do
    if #e == STAMP_DIGITS + #x.m and string.sub(e, STAMP_DIGITS + 1) == x.m and lb_stamp_of(e) then
      return e, i - 1
    end
  end
  return nil
end

-- Reads ---------------------------------------------------------------------------------------

local function lb_open(board, order)
  local k, e = lb_keys(board, false)
  if e then return nil, e end
  e = lb_check_read_types(k)
  if e then return nil, e end
  local total = redis.call('ZCARD', board)
  local layout, legacy, e2 = lb_layout(k, total)
  if e2 then return nil, e2 end
  return {k = k, desc = order == 1, total = total, layout = layout, mixed = legacy > 0,
    dense_max = DENSE_MAX}
end

local function lb_count_better(b, key, t, or_equal)
  local bound = or_equal and t or '(' .. t
  if b.desc then return redis.call('ZCOUNT', key, bound, '+inf') end
  return redis.call('ZCOUNT', key, '-inf', bound)
end

local function lb_group_bounds(b, t)
  return redis.call('ZCOUNT', b.k.order, '(' .. t, '+inf'),
    redis.call('ZCOUNT', b.k.order, '-inf', '(' .. t)
end

local function lb_group_offset(b, x)
  local k, t = b.k, x.t
  local entry, offset = lb_find(k, x)
  if entry then
    if not offset then
      local at = redis.call('ZRANK', k.order, entry)
      if not at then return nil, err(OUT_OF_STEP) end
      offset = at - redis.call('ZCOUNT', k.order, '-inf', '(' .. t)
    end
    local legacy = redis.call('ZCOUNT', k.board, t, t) - redis.call('ZCOUNT', k.order, t, t)
    return legacy + offset
  end
  local at = redis.call('ZRANK', k.board, x.m)
  if not at then return nil, err(OUT_OF_STEP) end
  local below = redis.call('ZCOUNT', k.board, '-inf', '(' .. t)
  return at - below - lb_names_before(k, x, x.m)
end

local function lb_position(b, x)
  if b.mixed then
    local offset, e = lb_group_offset(b, x)
    if e then return nil, e end
    return lb_count_better(b, b.k.board, x.t, false) + offset
  end
  if b.layout == 'plain' then
    local p
    if b.desc then p = redis.call('ZREVRANK', b.k.board, x.m)
    else p = redis.call('ZRANK', b.k.board, x.m) end
    if not p then return nil, err(OUT_OF_STEP) end
    return p
  end
  local entry, offset = lb_find(b.k, x)
  if not entry then return nil, err(OUT_OF_STEP) end
  -- Equal scores sort by ascending stamp in both orders.
  if offset then return lb_count_better(b, b.k.order, x.t, false) + offset end
  local asc = redis.call('ZRANK', b.k.order, entry)
  if not asc then return nil, err(OUT_OF_STEP) end
  if not b.desc then return asc end
  local greater, less = lb_group_bounds(b, x.t)
  return greater + asc - less
end

local function lb_desc_fix(b, start, raw)
  local groups = {}
  for i = 1, #raw do
    if i == 1 or raw[i].v ~= raw[i - 1].v then groups[#groups + 1] = {i, i}
    else groups[#groups][2] = i end
  end
  local out = {}
  for gi, g in ipairs(groups) do
    if gi == 1 or gi == #groups then
      local greater, less = lb_group_bounds(b, raw[g[1]].t)
      local lo, hi = start + g[1] - 1, start + g[2] - 1
      for _, x in ipairs(lb_range(b.k.order, less + lo - greater, less + hi - greater, false)) do
        out[#out + 1] = x
      end
    else
      for i = g[2], g[1], -1 do out[#out + 1] = raw[i] end
    end
  end
  return out
end

local function lb_nth_legacy(b, x, below, members, stamped, n)
  local lo, hi = n + 1, math.min(n + 1 + stamped, members)
  while lo < hi do
    local mid = lo + math.floor((hi - lo) / 2)
    local at = lb_range(b.k.board, below + mid, below + mid, false)[1]
    if not at then return nil end
    if mid - lb_names_before(b.k, x, at.m) > n then hi = mid else lo = mid + 1 end
  end
  return lb_range(b.k.board, below + lo - 1, below + lo - 1, false)[1]
end

local function lb_group_slice(b, x, from, to)
  local k, t = b.k, x.t
  local members = redis.call('ZCOUNT', k.board, t, t)
  local stamped = redis.call('ZCOUNT', k.order, t, t)
  local legacy = members - stamped
  local below = redis.call('ZCOUNT', k.board, '-inf', '(' .. t)
  local out = {}
  local legacy_to = math.min(to, legacy)
  if stamped == 0 and from < legacy_to then
    out = lb_range(k.board, below + from, below + legacy_to - 1, false)
  else
    for n = from, legacy_to - 1 do
      local y = lb_nth_legacy(b, x, below, members, stamped, n)
      if y then out[#out + 1] = y end
    end
  end
  local stamped_from, stamped_to = math.max(from, legacy) - legacy, to - legacy
  if stamped_from < stamped_to then
    local base = redis.call('ZCOUNT', k.order, '-inf', '(' .. t)
    for _, y in ipairs(lb_range(k.order, base + stamped_from, base + stamped_to - 1, false)) do
      y.m = string.sub(y.m, STAMP_DIGITS + 1)
      out[#out + 1] = y
    end
  end
  return out
end

local function lb_mixed_members(b, s, e)
  local raw = lb_range(b.k.board, s, e - 1, b.desc)
  local out, from = {}, 1
  while raw[from] do
    local first, to = raw[from], from
    while raw[to + 1] and raw[to + 1].v == first.v do to = to + 1 end
    local offset = s + from - 1 - lb_count_better(b, b.k.board, first.t, false)
    for _, y in ipairs(lb_group_slice(b, first, offset, offset + to - from + 1)) do
      out[#out + 1] = y
    end
    from = to + 1
  end
  return out
end

local function lb_members(b, s, e)
  if e <= s then return {} end
  if b.layout == 'plain' then return lb_range(b.k.board, s, e - 1, b.desc) end
  if b.mixed then return lb_mixed_members(b, s, e) end
  local raw = lb_range(b.k.order, s, e - 1, b.desc)
  if b.desc then raw = lb_desc_fix(b, s, raw) end
  for _, x in ipairs(raw) do x.m = string.sub(x.m, STAMP_DIGITS + 1) end
  return raw
end

local function lb_distinct_better(b, t)
  if b.layout ~= 'plain' and lb_type(b.k.scores) ~= 'none' then return lb_count_better(b, b.k.scores, t, false) end
  local above = lb_count_better(b, b.k.board, t, false)
  if above > b.dense_max then return nil, err(DENSE_TOO_MANY) end
  local distinct, previous, at = 0, nil, 0
  while at < above do
    local stop = math.min(at + BATCH, above) - 1
    for _, x in ipairs(lb_range(b.k.board, at, stop, b.desc)) do
      if previous ~= x.v then
        distinct = distinct + 1
        previous = x.v
      end
    end
    at = stop + 1
  end
  return distinct
end

local function lb_ranks(ranking, start, xs, edge)
  local n, out, rank = #xs, {}, 0
  local function new_group(k) return k == 1 or xs[k].v ~= xs[k - 1].v end
  if ranking == 0 then
    for k = 1, n do out[k] = start + k end
  elseif ranking == 2 then
    for k = 1, n do
      if new_group(k) then
        if k == 1 then rank = edge + 1 else rank = start + k end
      end
      out[k] = rank
    end
  elseif ranking == 1 then
    for k = 1, n do
      if new_group(k) then
        if k == 1 then rank = edge + 1 else rank = rank + 1 end
      end
      out[k] = rank
    end
  else
    for k = n, 1, -1 do
      if k == n then rank = edge elseif new_group(k + 1) then rank = start + k end
      out[k] = rank
    end
  end
  return out
end

local function lb_entries(b, s, e, ranking)
  local xs = lb_members(b, s, e)
  if #xs == 0 then return {} end
  local edge, refused = 0, nil
  if ranking == 2 then edge = lb_count_better(b, b.k.board, xs[1].t, false)
  elseif ranking == 3 then edge = lb_count_better(b, b.k.board, xs[#xs].t, true)
  elseif ranking == 1 then edge, refused = lb_distinct_better(b, xs[1].t) end
  if refused then return nil, refused end
  local ranks = lb_ranks(ranking, s, xs, edge)
  local out = {}
  for k, x in ipairs(xs) do out[k] = {ranks[k], x.m, x.t} end
  return out
end

local function lb_window_top(offset, count, total)
  local s = math.min(offset, total)
  return s, math.max(s, math.min(offset + count, total))
end

-- LB.RANK's reply for member: {rank, score, total}, false when absent, or an error.
local function lb_ranked(b, member, ranking)
  local x = lb_score(b.k.board, member)
  if not x then return false end
  local p, e = lb_position(b, x)
  if e then return e end
  if p >= b.total then return err(OUT_OF_STEP) end
  local entries, e2 = lb_entries(b, p, p + 1, ranking)
  if e2 then return e2 end
  return {entries[1][1], x.t, b.total}
end

local function lb_rank_run(board, member, asc_desc, ranking)
  local b, e = lb_open(board, asc_desc)
  if e then return e end
  return lb_ranked(b, member, ranking)
end

local function lb_around_run(board, member, count, asc_desc, ranking)
  local b, e = lb_open(board, asc_desc)
  if e then return e end
  local x = lb_score(board, member)
  if not x then return false end
  local p, e2 = lb_position(b, x)
  if e2 then return e2 end
  count = math.min(count, b.total)
  local s = math.max(0, math.min(p - math.floor(count / 2), b.total - count))
  local entries, e3 = lb_entries(b, s, s + count, ranking)
  return e3 or entries
end

local function lb_top_run(board, count, offset, asc_desc, ranking)
  local b, e = lb_open(board, asc_desc)
  if e then return e end
  local s, stop = lb_window_top(offset, count, b.total)
  local entries, e2 = lb_entries(b, s, stop, ranking)
  return e2 or entries
end

local function lb_page_run(board, page, page_size, asc_desc, ranking)
  local b, e = lb_open(board, asc_desc)
  if e then return e end
  local pages = ceil_div(b.total, page_size)
  if page > pages then return {pages, {}} end
  local s = (page - 1) * page_size
  local entries, e2 = lb_entries(b, s, math.min(s + page_size, b.total), ranking)
  return e2 or {pages, entries}
end

local function lb_percentile_run(board, member, asc_desc)
  local t = lb_type(board)
  if t ~= 'none' and t ~= 'zset' then return err(WRONGTYPE) end
  local x = lb_score(board, member)
  if not x then return false end
  local below
  if asc_desc == 1 then below = redis.call('ZCOUNT', board, '-inf', '(' .. x.t)
  else below = redis.call('ZCOUNT', board, '(' .. x.t, '+inf') end
  return {double = 100 * below / redis.call('ZCARD', board)}
end

-- Writes --------------------------------------------------------------------------------------

local function lb_del_if_present(key)
  if lb_type(key) ~= 'none' then redis.call('DEL', key) end
end

-- Drops tie-break keys left over by a board that is gone or has no order key; returns whether
-- stamped members are listed in the names key (a board born from ZADD). Converts nothing.
local function lb_prepare(k)
  local total = redis.call('ZCARD', k.board)
  if total == 0 or lb_type(k.order) == 'none' then
    lb_del_if_present(k.order)
    lb_del_if_present(k.stamps)
    lb_del_if_present(k.scores)
    lb_del_if_present(k.names)
    return total > 0
  end
  return lb_type(k.names) ~= 'none'
end

-- Lists every member of the score group at t in the stamps hash: it has just grown past
-- SMALL_GROUP.
local function lb_hash_group(k, t)
  for _, e in ipairs(redis.call('ZRANGE', k.order, t, t, 'BYSCORE', 'LIMIT', 0, SMALL_GROUP + 1)) do
    if #e >= STAMP_DIGITS then
      redis.call('HSET', k.stamps, string.sub(e, STAMP_DIGITS + 1), string.sub(e, 1, STAMP_DIGITS))
    end
  end
end

local function lb_forget_score_if_gone(k, old)
  if redis.call('ZCOUNT', k.board, old.t, old.t) == 0 then
    redis.call('ZREM', k.scores, lb_distinct(old))
  end
end

-- One change at `now`: `by` adds to the score (LB.INCR), else `value`/`raw` set it (LB.ADD).
local function lb_write_one(k, now, member, value, raw, by, names)
  local old = lb_score(k.board, member)
  local new_value = value
  if by then new_value = (old and old.v or 0) + by end
  local hashed = false
  if old then
    if old.v == new_value then return false, old.t end
    local entry, offset = lb_find(k, old)
    if entry then
      redis.call('ZREM', k.order, entry)
      hashed = offset == nil
      if names then redis.call('ZREM', k.names, lb_name_entry(old, member)) end
    end
  end
  local t
  if by then
    t = redis.call('ZINCRBY', k.board, by, member)
  else
    redis.call('ZADD', k.board, raw, member)
    t = redis.call('ZSCORE', k.board, member)
  end
  local new = {m = member, v = tonumber(t), t = t}
  local last = redis.call('ZRANGE', k.order, t, t, 'BYSCORE', 'REV', 'LIMIT', 0, 1)[1]
  local last_stamp = last and lb_stamp_of(last)
  local n = now
  if last_stamp then n = math.max(now, last_stamp + 1) end
  local stamp = lb_stamp_text(n)
  local joined = math.min(redis.call('ZCOUNT', k.order, t, t), SMALL_GROUP + 1)
  redis.call('ZADD', k.order, t, stamp .. member)
  if joined == SMALL_GROUP then
    lb_hash_group(k, t)
  elseif joined > SMALL_GROUP then
    redis.call('HSET', k.stamps, member, stamp)
  elseif hashed then
    redis.call('HDEL', k.stamps, member)
  end
  if names then
    redis.call('ZADD', k.names, 0, lb_name_entry(new, member))
  else
    redis.call('ZADD', k.scores, t, lb_distinct(new))
    if old then lb_forget_score_if_gone(k, old) end
  end
  return old == nil, t
end

local function lb_write_keys(board)
  local k, e = lb_keys(board, true)
  if e then return nil, e end
  if k.order == nil then return nil, err(BAD_BOARD) end
  e = lb_check_types(k)
  if e then return nil, e end
  local _, _, e2 = lb_layout(k, redis.call('ZCARD', board))
  if e2 then return nil, e2 end
  return k
end

-- WITHRANK RANKING DENSE on a board that will have no scores key: refused before the write
-- when the members above a new score (before it, plus those written) could pass DENSE_MAX.
local function lb_check_dense_rank(k, news, desc)
  local total = redis.call('ZCARD', k.board)
  local layout = lb_layout(k, total)
  local kept = (layout == 'native' and lb_type(k.scores) ~= 'none')
    or (layout == 'plain' and total == 0)
  if kept then return nil end
  for _, v in ipairs(news) do
    local bound = '(' .. string.format('%.17g', v)
    local above
    if desc then above = redis.call('ZCOUNT', k.board, bound, '+inf')
    else above = redis.call('ZCOUNT', k.board, '-inf', bound) end
    if above + #news > DENSE_MAX then return err(DENSE_TOO_MANY) end
  end
end

-- WITHRANK's replies after a write: LB.RANK's for each member (the DENSE limit was checked).
local function lb_ranks_after_write(board, members, asc_desc, ranking)
  local b, e = lb_open(board, asc_desc)
  if e then return nil, e end
  b.dense_max = math.huge
  local out = {}
  for i, m in ipairs(members) do out[i] = lb_ranked(b, m, ranking) end
  return out
end

local function lb_add_run(board, withrank, asc_desc, ranking, pairs)
  local values, news, members = {}, {}, {}
  for i = 1, #pairs, 2 do
    values[i] = parse_float(pairs[i])
    if values[i] == nil then return err(SCORE_ARG) end
    news[#news + 1] = values[i]
    members[#members + 1] = pairs[i + 1]
  end
  local k, e = lb_write_keys(board)
  if e then return e end
  if withrank == 1 and ranking == 1 then
    e = lb_check_dense_rank(k, news, asc_desc == 1)
    if e then return e end
  end
  local now = now_ms()
  local names = lb_prepare(k)
  local added = 0
  for i = 1, #pairs, 2 do
    if lb_write_one(k, now, pairs[i + 1], values[i], pairs[i], nil, names) then added = added + 1 end
  end
  if withrank ~= 1 then return added end
  local ranked, e2 = lb_ranks_after_write(board, members, asc_desc, ranking)
  return e2 or ranked
end

local function lb_incr_run(board, increment, member, withrank, asc_desc, ranking)
  local k, e = lb_write_keys(board)
  if e then return e end
  local old = lb_score(board, member)
  local sum = (old and old.v or 0) + increment
  if sum ~= sum then return err(NAN_SCORE) end
  if withrank == 1 and ranking == 1 then
    e = lb_check_dense_rank(k, {sum}, asc_desc == 1)
    if e then return e end
  end
  local now = now_ms()
  local names = lb_prepare(k)
  local _, t = lb_write_one(k, now, member, nil, nil, increment, names)
  if withrank ~= 1 then return t end
  local ranked, e2 = lb_ranks_after_write(board, {member}, asc_desc, ranking)
  return e2 or ranked[1]
end

local function lb_rem_run(board, members)
  local k, e = lb_keys(board, true)
  if e then return e end
  if k.order == nil then return err(BAD_BOARD) end
  e = lb_check_types(k)
  if e then return e end
  local layout, _, e2 = lb_layout(k, redis.call('ZCARD', board))
  if e2 then return e2 end
  local names = layout == 'legacy'
  local removed = 0
  for _, m in ipairs(members) do
    local old = lb_score(board, m)
    if old then
      redis.call('ZREM', board, m)
      removed = removed + 1
      if layout ~= 'plain' then
        local entry, offset = lb_find(k, old)
        if entry then
          redis.call('ZREM', k.order, entry)
          if not offset then redis.call('HDEL', k.stamps, m) end
          if names then redis.call('ZREM', k.names, lb_name_entry(old, m)) end
        end
        if not names then lb_forget_score_if_gone(k, old) end
      end
    end
  end
  if removed > 0 and k.order and redis.call('ZCARD', board) == 0 then lb_prepare(k) end
  return removed
end

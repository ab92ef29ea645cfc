-- The Lua twin's prelude: helpers every family uses (the clock, Redis's integer and float
-- syntax, exact integer division, keys in another key's slot, the expiring index) and the
-- argument parser that reads the generated definition tables (`DEF_<command>`).
--
-- Names in capitals are constants the generator defines from the Rust ones of the same name
-- (`keys::MAX_MS`, `command::LUA_EXACT_MAX`, `CmdError`'s texts). A generated EVAL script
-- carries only the functions its command reaches.

local function err(msg)
  return redis.error_reply(msg)
end

-- The server's clock in ms, read once per command.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Redis's integer syntax (string2ll). Returns the value; or nil when it is not an integer
-- within i64; or (sign, true) when it is one but lies at or beyond 2^53 (where doubles stop
-- telling neighbours apart).
local function parse_int(s)
  local sign, digits = string.match(s, '^(%-?)(%d+)$')
  if not digits then return nil end
  if digits == '0' then
    if sign == '-' then return nil end
    return 0
  end
  if string.sub(digits, 1, 1) == '0' or #digits > 19 then return nil end
  if #digits == 19 then
    local bound = (sign == '-') and '9223372036854775808' or '9223372036854775807'
    if digits > bound then return nil end
  end
  local n = tonumber(digits)
  if n >= LUA_EXACT_MAX then return (sign == '-') and -1 or 1, true end
  if sign == '-' then n = -n end
  return n
end

-- A non-negative integer kept in a state value (approximate beyond 2^53), or nil.
local function state_int(s)
  if s == nil then return nil end
  local n, big = parse_int(s)
  if big then
    if n < 0 then return nil end
    n = tonumber(s)
  end
  if n == nil or n < 0 then return nil end
  return n
end

-- Exact floor division and remainder of non-negative integers below 2^53 (fmod is exact).
local function divmod(a, b)
  local r = math.fmod(a, b)
  return (a - r) / b, r
end

local function ceil_div(a, b)
  local q, r = divmod(a, b)
  if r > 0 then q = q + 1 end
  return q
end

local function int(n)
  return string.format('%d', n)
end

-- A value stored at key as a string, nil when absent; a WRONGTYPE error as the second result.
local function get_string(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'table' then return nil, v end
  if v == false then return nil end
  return v
end

local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

-- Whether the current user may read and write a key the command derives.
local function key_allowed(key)
  return redis.acl_check_cmd('HSET', key, 'f', 'v') and redis.acl_check_cmd('HGET', key, 'f')
end

-- Redis's hashtag: between the first '{' and the first '}' after it, when not empty.
local function hashtag(k)
  local open = string.find(k, '{', 1, true)
  if not open then return nil end
  local close = string.find(k, '}', open + 1, true)
  if not close or close == open + 1 then return nil end
  return string.sub(k, open + 1, close - 1)
end

-- A key in name's slot (keys::derived_key): nil when there is none.
local function derived_key(name, suffix)
  if hashtag(name) then return name .. ':' .. suffix end
  if name == '' or string.find(name, '[{}]') then return nil end
  return '{' .. name .. '}:' .. suffix
end

-- Whether a field name among field/value pairs starts with the reserved `__`
-- (keys::check_fields).
local function reserved_fields(pairs)
  for i = 1, #pairs, 2 do
    if string.sub(pairs[i], 1, 2) == RESERVED_PREFIX then return true end
  end
  return false
end

-- An index that never leaks (sessions of a user, entries of a tag): a sorted set of keys
-- scored by their expiry. Drops the members that expired before now.
local function index_prune(index, now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now))
end

-- The index expires with its last member: its TTL is its highest score.
local function index_fix(index)
  local top = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if top[2] == nil then return end
  -- A score may have decimals (a cache tag's marker): the expiry is its whole milliseconds.
  local at = math.floor(tonumber(top[2]))
  if redis.call('PEXPIRETIME', index) ~= at then
    redis.call('PEXPIREAT', index, int(at))
  end
end

-- A number as a sorted-set score is written (command::parse_f64's rules), or nil.
local function parse_float(s)
  local unsigned = string.lower(string.match(s, '^[+-]?(.*)$'))
  if unsigned == 'inf' or unsigned == 'infinity' then
    if string.sub(s, 1, 1) == '-' then return -math.huge end
    return math.huge
  end
  local whole, fraction, exponent = string.match(unsigned, '^(%d*)%.?(%d*)(.*)$')
  if whole == nil or (whole == '' and fraction == '') then return nil end
  if exponent ~= '' and not string.match(exponent, '^[eE][+-]?%d+$') then return nil end
  local v = tonumber(s)
  if v == nil or v ~= v or v == math.huge or v == -math.huge then return nil end
  if v == 0 and string.match(whole .. fraction, '[1-9]') then return nil end
  return v
end

local function parse_value(raw, spec)
  if spec.kind == 'text' then return raw end
  if spec.kind == 'float' then
    local v = parse_float(raw)
    if v == nil then return nil, err(spec.error) end
    return v
  end
  local v, big = parse_int(raw)
  if big then
    if v < 0 then return nil, err(spec.error) end
    return nil, err(spec.beyond)
  end
  if v == nil or v < spec.min then return nil, err(spec.error) end
  return v
end

-- One option after its token (argv[i] onwards): its value and the next index; or an error.
local function parse_option(spec, word, argv, i)
  if spec.flag then return 1, i end
  if spec.word then return spec.word[word], i end
  if spec.rest then
    if #argv - i + 1 < spec.rest then return nil, nil, err(SYNTAX_ERROR) end
    local list = {}
    for j = i, #argv do list[#list + 1] = argv[j] end
    return list, #argv + 1
  end
  if argv[i] == nil then return nil, nil, err(SYNTAX_ERROR) end
  if spec.choice then
    local c = spec.choice[string.upper(argv[i])]
    if c == nil then return nil, nil, err(SYNTAX_ERROR) end
    return c, i + 1
  end
  local v, e = parse_value(argv[i], spec)
  if e then return nil, nil, e end
  return v, i + 1
end

-- The options from argv[i] on, into a.opt: to the end, a word that is no token being an error;
-- or with leading (before a trailing group), up to the first such word. Returns the next index,
-- or nil and an error.
local function parse_options(def, a, argv, i, leading)
  while argv[i] ~= nil do
    local word = string.upper(argv[i])
    local n = def.tokens[word]
    if n == nil then
      if leading then return i end
      return nil, err(SYNTAX_ERROR)
    end
    local v, next_i, e = parse_option(def.opts[n], word, argv, i + 1)
    if e then return nil, e end
    a.opt[n] = v
    i = next_i
  end
  return i
end

-- Parses arguments against a generated definition table, as CommandDef::parse does.
local function parse(def, keys, argv)
  -- KEYS: the one key; or with min_keys, keys only (tag [tag ...]); or with key_rest, the key
  -- and then the items of the option numbered key_rest (key [tag ...] for TAGS tag ...).
  -- Redis checks a module command's arity before the command parses anything: the same
  -- check, on the module's argument count (the twin's leading arguments out, a TAGS-like
  -- token back in).
  local argc = 1 + #keys + #argv - (def.lead or 0)
  if def.key_rest and #keys > 1 then argc = argc + 1 end
  if (def.arity > 0 and argc ~= def.arity) or argc < -def.arity then
    return nil, err(def.arity_error)
  end
  if #keys < (def.min_keys or 1) or (#keys > 1 and not def.min_keys and not def.key_rest) then
    return nil, err(def.arity_error)
  end
  local a = {pos = {}, opt = {}, lead = {}, rest = {}}
  local i = 1
  for n = 1, def.lead or 0 do
    if argv[i] == nil then return nil, err(def.arity_error) end
    a.lead[n] = argv[i]
    i = i + 1
  end
  for n, spec in ipairs(def.opts) do
    if spec.rest then a.opt[n] = {} else a.opt[n] = spec.default end
  end
  if def.group then
    local e
    i, e = parse_options(def, a, argv, i, true)
    if e then return nil, e end
  end
  for n, spec in ipairs(def.pos) do
    local raw = argv[i]
    if raw == nil then
      if spec.default == nil then return nil, err(def.arity_error) end
      a.pos[n] = spec.default
    else
      local v, e = parse_value(raw, spec)
      if e then return nil, e end
      a.pos[n] = v
      i = i + 1
    end
  end
  if def.group then
    local left = #argv - i + 1
    if math.fmod(left, def.group) ~= 0 or left < def.group_min * def.group then
      return nil, err(def.arity_error)
    end
    for j = i, #argv do a.rest[#a.rest + 1] = argv[j] end
    return a
  end
  local _, e = parse_options(def, a, argv, i, false)
  if e then return nil, e end
  if def.key_rest and #keys > 1 then
    a.opt[def.key_rest] = {unpack(keys, 2)}
  end
  return a
end

-- A command of blocks (`RL.ALL limit [limit ...]`, command::Keys::Blocks): ARGV holds each
-- block's token and the arguments after its key, KEYS each block's key, in order. Splits them
-- as CommandDef::blocks does, then parses each block with its kind's own definition table;
-- a.blocks lists them as {token, key, and each argument by its name}.
local function parse_blocks(def, keys, argv)
  if 1 + #keys + #argv < -def.arity then return nil, err(def.arity_error) end
  local found, i = {}, 1
  while argv[i] ~= nil do
    local token = string.upper(argv[i])
    local kind = def.blocks[token]
    if kind == nil then return nil, err(SYNTAX_ERROR) end
    local key = keys[#found + 1]
    if key == nil then return nil, err(kind.def.arity_error) end
    local j = math.min(i + 1 + #kind.def.pos, #argv + 1)
    while argv[j] ~= nil do
      local n = kind.def.tokens[string.upper(argv[j])]
      if n == nil then break end
      local spec = kind.def.opts[n]
      if spec.flag or spec.word then j = j + 1 elseif spec.rest then j = #argv + 1 else j = j + 2 end
    end
    j = math.min(j, #argv + 1)
    found[#found + 1] = {kind = kind, token = token, key = key, argv = {unpack(argv, i + 1, j - 1)}}
    i = j
  end
  if #found == 0 or #found ~= #keys then return nil, err(def.arity_error) end
  local seen = {}
  for _, b in ipairs(found) do
    if seen[b.key] then return nil, err(KEY_TWICE) end
    seen[b.key] = true
  end
  local a = {blocks = {}}
  for n, b in ipairs(found) do
    local parsed, e = parse(b.kind.def, {b.key}, b.argv)
    if e then return nil, e end
    local block = {token = b.token, key = b.key}
    for p, name in ipairs(b.kind.names) do block[name] = parsed.pos[p] end
    for o, name in ipairs(b.kind.opts) do block[name] = parsed.opt[o] end
    a.blocks[n] = block
  end
  return a
end

-- A typical hand-written Redis token bucket, the kind found in blog posts and application code:
-- a hash {tokens, ts}, read with HMGET, refilled in floating point, written back with HSET and
-- given a TTL with PEXPIRE. It is the "what people write themselves" reference row of
-- bench/bench.py; it is not the generated Lua twin (dist/scripts/rl_tokenbucket.lua).
--
-- KEYS[1] = bucket; ARGV = capacity, rate (tokens per period), period_ms [, cost]
-- Reply: {allowed (1|0), capacity, remaining, retry_after_ms (-1 if allowed), reset_after_ms}
local key = KEYS[1]
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local cost = tonumber(ARGV[4]) or 1

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', key, 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = capacity
  ts = now
end

local elapsed = math.max(0, now - ts)
tokens = math.min(capacity, tokens + elapsed * rate / period)

local allowed = 0
local retry = -1
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
elseif cost <= capacity then
  retry = math.ceil((cost - tokens) * period / rate)
end

local reset = math.ceil((capacity - tokens) * period / rate)
redis.call('HSET', key, 'tokens', tokens, 'ts', now)
redis.call('PEXPIRE', key, math.max(reset, 1))
return {allowed, capacity, math.floor(tokens), retry, reset}

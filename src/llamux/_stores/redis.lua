--[[ The Lua scripts of llamux's Redis store (src/llamux/_stores/redis.py), one per operation.

Each section below, from a "--- name" line to the next, is one script; the "common" section
is put in front of every other one. Python does all time and calendar arithmetic and passes
the results (bucket starts, the oldest bucket that still counts, time-to-live in ms); a
script only reads, checks and writes keys, atomically.

A bucket hash holds two fields per bucket: "r<start>" (requests) and "t<start>" (tokens).
Numbers are written with string.format('%d') so that large counts never turn into "1e+15".
]]

--- common
-- Give ``key`` at least ``ttl`` ms to live; never shorten it (its newest data may need it).
local function extend(key, ttl)
  local current = redis.call('PTTL', key)
  if current == -1 or current < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end

--- reserve
-- KEYS: the reservation, the cool-down of each scope (ARGV[6] of them), then one bucket hash
--   per (scope, window).
-- ARGV: now, requests, tokens, reservation ttl ms, reservation record, scope count, then per
--   window: charge bucket, oldest counted bucket, ttl ms, requests limit, tokens limit (-1
--   for no such rule; the smallest when a scope has several).
-- Returns {1, requests, tokens, ...} (the counted sums before the charge, per window) when
-- it charged everything, or {0, cool-downs, bucket hashes} (what it read) when it charged
-- nothing, so that Python rebuilds the exact refusal.
local now, requests, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local nscopes = tonumber(ARGV[6])
local admit = true
for i = 1, nscopes do
  local cooling = redis.call('HGET', KEYS[1 + i], 'until')
  if cooling and tonumber(cooling) > now then
    admit = false
  end
end
local sums, stale, flats = {}, {}, {}
for j = 1, #KEYS - 1 - nscopes do
  local base = 6 + 5 * (j - 1)
  local oldest = tonumber(ARGV[base + 2])
  local flat = redis.call('HGETALL', KEYS[1 + nscopes + j])
  local r, t, old = 0, 0, {}
  for k = 1, #flat, 2 do
    local field = flat[k]
    if tonumber(string.sub(field, 2)) < oldest then
      old[#old + 1] = field
    elseif string.sub(field, 1, 1) == 'r' then
      r = r + tonumber(flat[k + 1])
    else
      t = t + tonumber(flat[k + 1])
    end
  end
  local rlimit, tlimit = tonumber(ARGV[base + 4]), tonumber(ARGV[base + 5])
  if (rlimit >= 0 and r + requests > rlimit) or (tlimit >= 0 and t + tokens > tlimit) then
    admit = false
  end
  sums[#sums + 1] = r
  sums[#sums + 1] = t
  stale[j], flats[j] = old, flat
end
if not admit then
  local cooldowns = {}
  for i = 1, nscopes do
    cooldowns[i] = redis.call('HMGET', KEYS[1 + i], 'until', 'kind', 'reason')
  end
  return {0, cooldowns, flats}
end
for j = 1, #flats do
  local key, base = KEYS[1 + nscopes + j], 6 + 5 * (j - 1)
  redis.call('HINCRBY', key, 'r' .. ARGV[base + 1], ARGV[2])
  redis.call('HINCRBY', key, 't' .. ARGV[base + 1], ARGV[3])
  if #stale[j] > 0 then
    redis.call('HDEL', key, unpack(stale[j]))
  end
  extend(key, tonumber(ARGV[base + 3]))
end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[4])
table.insert(sums, 1, 1)
return sums

--- correct
-- Settle (ARGV: 0, actual tokens) or release (ARGV: -1, '') a reservation.
-- KEYS: the reservation. Its record names the bucket hashes it charged, all in its slot.
-- A bucket already pruned or expired is left alone: it no longer counts anyway.
local record = redis.call('GET', KEYS[1])
if not record then
  return 0
end
redis.call('DEL', KEYS[1])
local reservation = cjson.decode(record)
local dr = tonumber(ARGV[1])
local dt = -reservation.t
if ARGV[2] ~= '' then
  dt = tonumber(ARGV[2]) - reservation.t
end
for _, charge in ipairs(reservation.c) do
  local key, rf, tf = charge[1], 'r' .. charge[2], 't' .. charge[2]
  local r = redis.call('HGET', key, rf)
  if r then
    local t = redis.call('HGET', key, tf) or '0'
    redis.call('HSET', key,
      rf, string.format('%d', math.max(0, tonumber(r) + dr)),
      tf, string.format('%d', math.max(0, tonumber(t) + dt)))
  end
end
return 1

--- absorb
-- KEYS: one bucket hash. ARGV: bucket, requests, tokens, ttl ms.
redis.call('HINCRBY', KEYS[1], 'r' .. ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[1], 't' .. ARGV[1], ARGV[3])
extend(KEYS[1], tonumber(ARGV[4]))
return 1

--- cool_down
-- KEYS: the scope's cool-down hash. ARGV: until, reason, kind, now, ttl ms.
-- A cool-down still in force is only ever replaced by a later one.
local untl, now = tonumber(ARGV[1]), tonumber(ARGV[4])
local current = redis.call('HGET', KEYS[1], 'until')
if current and tonumber(current) > now and untl < tonumber(current) then
  return 0
end
if untl <= now then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'until', ARGV[1], 'reason', ARGV[2], 'kind', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1

--- usage
-- KEYS: bucket hashes. Returns each one's fields and values.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out

--- record
-- KEYS: an endpoint's performance hash. ARGV: latency, tokens per second, time to first
-- token ('' where not measured), alpha, ttl ms. Moving averages as _performance.fold does.
local alpha = tonumber(ARGV[4])
local names = {'latency', 'tps', 'ttft'}
for i = 1, 3 do
  if ARGV[i] ~= '' then
    local new = tonumber(ARGV[i])
    local old = redis.call('HGET', KEYS[1], names[i])
    if old then
      new = tonumber(old) + alpha * (new - tonumber(old))
    end
    redis.call('HSET', KEYS[1], names[i], string.format('%.17g', new))
  end
end
redis.call('HINCRBY', KEYS[1], 'samples', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1

--- turn
-- KEYS: a counter. ARGV: ttl ms. Returns its new value.
local value = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return value

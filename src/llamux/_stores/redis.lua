--[[ The Lua scripts of llamux's Redis store (src/llamux/_stores/redis.py), one per operation.

Each section below, from a "--- name" line to the next, is one script; the "common" section
is put in front of every other one. Python does all time and calendar arithmetic and passes
the results (bucket starts, the oldest bucket that still counts, time-to-live in ms); a
script only reads, checks and writes keys, atomically.

A bucket hash holds up to three fields per bucket: "r<start>" (requests), "t<start>"
(tokens) and "u<start>" (micro-dollars, written only for a priced request).
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
-- KEYS: the reservation, the cool-down of each scope, one bucket hash per stored (scope,
--   window), the lease sets (below), and last the tag's count of writes.
-- ARGV: now, requests, tokens, reservation ttl ms, reservation record, micro-dollars, then
--   the counts of scopes, windows and checks; per window: charge bucket, oldest bucket kept,
--   ttl ms; per check (a scope's rules of one window as they reset): window index, oldest
--   counted bucket, requests limit, tokens limit, micro-dollars limit (-1 for no such rule;
--   the smallest of several).
--   Then the leases (KEYS after the bucket hashes: one sorted set per scope with a
--   concurrency limit, member a reservation, score when its lease expires): their count
--   (0: none, and nothing more), the reservation's member, its lease's expiry and the sets'
--   ttl ms, then each limit. Last, the ttl ms of the tag's count of writes (the last KEY).
-- Every bucket from the oldest counted on counts, in-flight ones ahead of now included;
-- every lease that has not expired counts (expired ones are pruned here).
-- Returns {1, writes, requests, tokens, usd, ...} (the tag's count of writes, this one
-- included, then the counted sums before the charge, per check) when it charged everything,
-- or {0, cool-downs, bucket hashes, leases} (what it read) when it charged nothing, so that
-- Python rebuilds the exact refusal. A count of writes that went back tells Python the
-- server lost data (redis_losses.py).
local now, requests, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local usd = tonumber(ARGV[6])
local nscopes, nwindows, nchecks = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local H = 9
local admit = true
for i = 1, nscopes do
  local cooling = redis.call('HGET', KEYS[1 + i], 'until')
  if cooling and tonumber(cooling) > now then
    admit = false
  end
end
local stale, flats = {}, {}
for j = 1, nwindows do
  local keep = tonumber(ARGV[H + 3 * (j - 1) + 2])
  local flat = redis.call('HGETALL', KEYS[1 + nscopes + j])
  local old = {}
  for k = 1, #flat, 2 do
    if tonumber(string.sub(flat[k], 2)) < keep then
      old[#old + 1] = flat[k]
    end
  end
  stale[j], flats[j] = old, flat
end
local sums = {}
for c = 1, nchecks do
  local base = H + 3 * nwindows + 5 * (c - 1)
  local flat, oldest = flats[tonumber(ARGV[base + 1])], tonumber(ARGV[base + 2])
  local r, t, u = 0, 0, 0
  for k = 1, #flat, 2 do
    local field = flat[k]
    if tonumber(string.sub(field, 2)) >= oldest then
      local kind = string.sub(field, 1, 1)
      if kind == 'r' then
        r = r + tonumber(flat[k + 1])
      elseif kind == 't' then
        t = t + tonumber(flat[k + 1])
      else
        u = u + tonumber(flat[k + 1])
      end
    end
  end
  local rlimit, tlimit = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  local ulimit = tonumber(ARGV[base + 5])
  if (rlimit >= 0 and r + requests > rlimit) or (tlimit >= 0 and t + tokens > tlimit)
      or (ulimit >= 0 and u + usd > ulimit) then
    admit = false
  end
  sums[#sums + 1] = r
  sums[#sums + 1] = t
  sums[#sums + 1] = u
end
local lbase = H + 3 * nwindows + 5 * nchecks
local nleases = tonumber(ARGV[lbase + 1])
for l = 1, nleases do
  local key = KEYS[1 + nscopes + nwindows + l]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) + requests > tonumber(ARGV[lbase + 4 + l]) then
    admit = false
  end
end
if not admit then
  local cooldowns, held = {}, {}
  for i = 1, nscopes do
    cooldowns[i] = redis.call('HMGET', KEYS[1 + i], 'until', 'kind', 'reason')
  end
  for l = 1, nleases do
    held[l] = redis.call('ZRANGE', KEYS[1 + nscopes + nwindows + l], 0, -1, 'WITHSCORES')
  end
  return {0, cooldowns, flats, held}
end
for l = 1, nleases do
  local key = KEYS[1 + nscopes + nwindows + l]
  redis.call('ZADD', key, ARGV[lbase + 3], ARGV[lbase + 2])
  extend(key, tonumber(ARGV[lbase + 4]))
end
for j = 1, nwindows do
  local key, base = KEYS[1 + nscopes + j], H + 3 * (j - 1)
  redis.call('HINCRBY', key, 'r' .. ARGV[base + 1], ARGV[2])
  redis.call('HINCRBY', key, 't' .. ARGV[base + 1], ARGV[3])
  if usd > 0 then
    redis.call('HINCRBY', key, 'u' .. ARGV[base + 1], ARGV[6])
  end
  if #stale[j] > 0 then
    redis.call('HDEL', key, unpack(stale[j]))
  end
  extend(key, tonumber(ARGV[base + 3]))
end
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[4])
local writes = redis.call('INCR', KEYS[#KEYS])
redis.call('PEXPIRE', KEYS[#KEYS], ARGV[#ARGV])
table.insert(sums, 1, writes)
table.insert(sums, 1, 1)
return sums

--- move
-- Settle (ARGV[1] 'settle', ARGV[2] the real tokens, ARGV[3] the real micro-dollars, ''
-- to keep the estimate) or release ('release') a reservation; returns its endpoint (0:
-- unknown, or past its settle deadline: the record's "d", compared with ARGV[4], the
-- moment of the outcome; then dropped, its estimate left counted). The record's "t" and "u"
-- are the estimated tokens and micro-dollars.
-- KEYS: the reservation, then the keys its record names, in its order: the bucket hashes it
-- charged ("c": [hash, bucket, unit] each, all in its slot) and its lease sets ("l"). A
-- script touches only its KEYS (a Redis Cluster requires it): if they are not the record's,
-- nothing is done and -1 tells Python to read the record and call again.
-- ARGV[5..]: per window unit, its name, the bucket of the moment the outcome was known and
-- that hash's ttl ms: a settled charge moves there (an in-flight one is held ahead).
-- A bucket already pruned or expired is left alone: it no longer counts anyway. Its
-- concurrency leases (the record's "l": sorted sets, member "i") are given back.
local record = redis.call('GET', KEYS[1])
if not record then
  return 0
end
local res = cjson.decode(record)
local leases, charged = res.l or {}, #res.c
if #KEYS ~= 1 + charged + #leases then
  return -1
end
for i, charge in ipairs(res.c) do
  if KEYS[1 + i] ~= charge[1] then
    return -1
  end
end
for i, key in ipairs(leases) do
  if KEYS[1 + charged + i] ~= key then
    return -1
  end
end
redis.call('DEL', KEYS[1])
if res.d and tonumber(ARGV[4]) > res.d then
  return 0
end
for i = 1, #leases do
  redis.call('ZREM', KEYS[1 + charged + i], res.i)
end
local priced = res.u or 0
local paid = priced
if ARGV[3] ~= '' then
  paid = tonumber(ARGV[3])
end
local function take(key, bucket)
  local rf, tf, uf = 'r' .. bucket, 't' .. bucket, 'u' .. bucket
  local r = redis.call('HGET', key, rf)
  if r then
    local t = redis.call('HGET', key, tf) or '0'
    redis.call('HSET', key,
      rf, string.format('%d', math.max(0, tonumber(r) - 1)),
      tf, string.format('%d', math.max(0, tonumber(t) - res.t)))
    if priced > 0 then
      local u = redis.call('HGET', key, uf) or '0'
      redis.call('HSET', key, uf, string.format('%d', math.max(0, tonumber(u) - priced)))
    end
  end
end
local targets = {}
for i = 5, #ARGV, 3 do
  targets[ARGV[i]] = {ARGV[i + 1], tonumber(ARGV[i + 2])}
end
for i, charge in ipairs(res.c) do
  local key = KEYS[1 + i]
  take(key, charge[2])
  if ARGV[1] == 'settle' then
    local target = targets[charge[3]]
    redis.call('HINCRBY', key, 'r' .. target[1], 1)
    redis.call('HINCRBY', key, 't' .. target[1], ARGV[2])
    if paid > 0 then
      redis.call('HINCRBY', key, 'u' .. target[1], string.format('%d', paid))
    end
    extend(key, target[2])
  end
end
return res.e or 1

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

/**
 * Lua helpers of the Redis broker's scripts (`./redis-scripts.ts`, `./redis-lane-scripts.ts`): each
 * script is self-contained, these are prepended to it, after the prologue naming its declared keys
 * (`K`, `BASE`: `./redis-script-keys.ts`).
 */
/** Most wake-up markers kept per group (bounds the number of idle fetches one publish burst wakes). */
export const WAKE_CAP = 256;
/** Most expired leases / due delayed messages moved per script call (keeps every call short). */
export const MAINTENANCE_BATCH = 1000;

/** Lua helpers shared by the scripts (each script is self-contained: the helpers are prepended). */
export const HELPERS = `
local WAKE_CAP = ${WAKE_CAP}
local BATCH = ${MAINTENANCE_BATCH}

-- Server time in epoch milliseconds.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- redis.call(cmd, key, ...args) in slices of at most 1000 arguments (Lua's unpack limit); step is
-- even so that field/value and score/member pairs stay together.
local function call_chunked(cmd, key, args)
  for i = 1, #args, 1000 do
    redis.call(cmd, key, unpack(args, i, math.min(i + 999, #args)))
  end
end

-- Message id of a delivery token "<id>:<serial>" (nil for a malformed token).
local function token_id(token)
  return string.match(token, '^([^:]+):')
end

-- Keeps at least want markers in the wake list. With drop_stale (fetch only: the caller found
-- nothing and computes its own sleep) the list is deleted when want is 0.
local function wake_at_least(wake, want, drop_stale)
  local have = redis.call('LLEN', wake)
  if want > have then
    local markers = {}
    for i = 1, want - have do markers[i] = '1' end
    redis.call('RPUSH', wake, unpack(markers))
  elseif drop_stale and want == 0 and have > 0 then
    redis.call('DEL', wake)
  end
end

-- Keeps at least min(#ready, WAKE_CAP) markers in the wake list (see wake_at_least).
local function top_up_wake(ready, wake, drop_stale)
  wake_at_least(wake, math.min(redis.call('LLEN', ready), WAKE_CAP), drop_stale)
end

-- Puts expired leases back at the head of ready (marked redelivered) and moves due delayed
-- messages to the tail of ready, at most BATCH of each.
local function maintain(ready, delayed, lease, now)
  local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, BATCH)
  local n = #expired
  if n > 0 then
    redis.call('ZREMRANGEBYRANK', lease, 0, n - 1)
    local back = {}
    for i = n, 1, -1 do
      local id = token_id(expired[i])
      if id then back[#back + 1] = '~' .. id end
    end
    if #back > 0 then redis.call('LPUSH', ready, unpack(back)) end
  end
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, BATCH)
  if #due > 0 then
    redis.call('ZREMRANGEBYRANK', delayed, 0, #due - 1)
    redis.call('RPUSH', ready, unpack(due))
  end
end

-- Milliseconds until the next delayed message is due or the next lease runs out; -1 if neither.
local function next_event(delayed, lease, now)
  local best = -1
  local d = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
  if d[2] then best = math.max(0, tonumber(d[2]) - now) end
  local l = redis.call('ZRANGE', lease, 0, 0, 'WITHSCORES')
  if l[2] then
    local x = math.max(0, tonumber(l[2]) - now)
    if best < 0 or x < best then best = x end
  end
  return best
end

-- Leases popped entries ('id' or '~id': delivered before) under fresh tokens (flag appended unless
-- flags is nil) until now + lease_ms and appends token, body, redelivered to out. Keys: seq, body, lease.
local function lease_entries(entries, flags, now, lease_ms, out)
  local n = #entries
  local last = redis.call('INCRBY', K.seq, n)
  local deadline = now + lease_ms
  local leases, ids, redelivered = {}, {}, {}
  for i = 1, n do
    local entry = entries[i]
    if string.byte(entry, 1) == 126 then -- '~': delivered before
      ids[i] = string.sub(entry, 2)
      redelivered[i] = 1
    else
      ids[i] = entry
      redelivered[i] = 0
    end
  end
  for c = 1, n, 1000 do
    local stop = math.min(c + 999, n)
    local bodies = redis.call('HMGET', K.body, unpack(ids, c, stop))
    for i = c, stop do
      local body = bodies[i - c + 1]
      if body then
        local token = ids[i] .. ':' .. string.format('%d', last - n + i)
        if flags and flags[i] ~= '' then token = token .. ':' .. flags[i] end
        leases[#leases + 1] = deadline
        leases[#leases + 1] = token
        out[#out + 1] = token
        out[#out + 1] = body
        out[#out + 1] = redelivered[i]
      end
    end
  end
  if #leases > 0 then call_chunked('ZADD', K.lease, leases) end
end
`;

/**
 * Lua helpers of flow control (priorities, keys, limits), appended to {@link HELPERS} by the scripts
 * that need them. They use the script's declared keys `K` (`./redis-script-keys.ts`); only the
 * per-lane lists and per-key parking sets are named from `BASE`, the group's key prefix
 * `<prefix>:{<group>}:` (same hash tag: same slot; see `./redis-keys.ts`).
 *
 * A lane is a LIST of ready entries of one (priority, key); its member name is the level digit
 * followed by the key (empty for keyless). Lane `5` (default priority, no key) is the plain `ready`
 * list. The ZSET `lanes` holds the lanes that may be served, scored `(9 - level) * 2^44 + turn`: its
 * first member is the highest level's longest-waiting lane, and a lane that gives an entry gets a new
 * turn (round-robin). A lane whose key may not run now is parked: in `tpark` (by the time it may) or
 * in the SET `cpark:<key>` (until a delivery of the key settles).
 */
export const FLOW_HELPERS = `
local LEVEL_SPAN = 17592186044416

-- Flow flag of a delivery token "<id>:<serial>[:f|:k]": 'k' keyed (counted in its key's running
-- deliveries), 'f' with a priority, nil plain.
local function token_flag(token)
  local c = string.sub(token, -1)
  if c == 'k' or c == 'f' then return c end
  return nil
end

local function lane_key(m)
  if m == '5' then return K.ready end
  return BASE .. 'lane:' .. m
end

local function lane_score(m)
  return (9 - tonumber(string.sub(m, 1, 1))) * LEVEL_SPAN + redis.call('INCR', K.turn)
end

local function lane_join(m)
  redis.call('ZADD', K.lanes, 'NX', lane_score(m), m)
end

-- Puts a ready entry ('id' or '~id') of lane m (nil: plain) at the back (or front) of its lane.
local function push_ready(entry, m, front)
  local lk = K.ready
  if m then lk = lane_key(m) end
  local n
  if front then n = redis.call('LPUSH', lk, entry) else n = redis.call('RPUSH', lk, entry) end
  if m and m ~= '5' and n == 1 then
    lane_join(m)
    redis.call('SADD', K.laneset, m)
  end
end

-- A counted delivery of message id left flight: its key's running count drops and the key's lanes
-- parked on concurrency may be served again.
local function release_key(id)
  local m = redis.call('HGET', K.meta, id)
  if not m then return end
  local key = string.sub(m, 2)
  if key == '' then return end
  if redis.call('HINCRBY', K.running, key, -1) <= 0 then redis.call('HDEL', K.running, key) end
  local cp = BASE .. 'cpark:' .. key
  local parked = redis.call('SMEMBERS', cp)
  if #parked > 0 then
    redis.call('DEL', cp)
    for i = 1, #parked do lane_join(parked[i]) end
    if redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
  end
end

-- A flagged delivery left flight: releases its key; returns its lane (nil: none). drop: forget it.
local function settle_flow(token, id, drop)
  local flag = token_flag(token)
  if not flag then return nil end
  if flag == 'k' then release_key(id) end
  local m = redis.call('HGET', K.meta, id)
  if drop then redis.call('HDEL', K.meta, id) end
  if m then return m end
  return nil
end

-- Token bucket in field f of the HASH kstate ("tokens:at"): the tokens now (starts full).
local function bucket_tokens(f, limit, period, burst, now)
  local v = redis.call('HGET', K.kstate, f)
  if not v then return burst end
  local sep = string.find(v, ':', 1, true)
  local tokens, at = tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
  if now > at then tokens = math.min(burst, tokens + (now - at) * limit / period) end
  return tokens
end

local function bucket_store(f, tokens, now)
  redis.call('HSET', K.kstate, f, string.format('%.6f', tokens) .. ':' .. string.format('%d', now))
end

local function bucket_next_ms(tokens, limit, period)
  if tokens >= 1 then return 0 end
  return math.ceil((1 - tokens) * period / limit)
end

-- 0 when key may run an entry now; else ms until it may (-1: until one of its deliveries settles).
local function key_block(key, now, fl)
  local st = K.kstate
  local off = redis.call('HGET', st, 'o' .. key)
  if off then
    off = tonumber(off)
    if off > now then return off - now end
    redis.call('HDEL', st, 'o' .. key)
  end
  if fl.kc > 0 and tonumber(redis.call('HGET', K.running, key) or '0') >= fl.kc then return -1 end
  if fl.kl > 0 then
    local t = bucket_tokens('b' .. key, fl.kl, fl.kp, fl.kb, now)
    if t < 1 then return math.max(1, bucket_next_ms(t, fl.kl, fl.kp)) end
  end
  return 0
end

-- maintain() for a group with flow data: expired leases back to the head of their lanes (keys
-- released), due delayed messages to the back of theirs, due parked lanes served again, stale
-- per-key fields of kstate (full key buckets, ended back-offs) dropped.
local function maintain_flow(now)
  local lease, meta = K.lease, K.meta
  local expired = redis.call('ZRANGEBYSCORE', lease, '-inf', now, 'LIMIT', 0, BATCH)
  local n = #expired
  if n > 0 then
    redis.call('ZREMRANGEBYRANK', lease, 0, n - 1)
    for i = n, 1, -1 do
      local token = expired[i]
      local id = token_id(token)
      if id then
        local m = nil
        local flag = token_flag(token)
        if flag then
          if flag == 'k' then release_key(id) end
          m = redis.call('HGET', meta, id) or nil
        end
        push_ready('~' .. id, m, true)
      end
    end
  end
  local delayed = K.delayed
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, BATCH)
  if #due > 0 then
    redis.call('ZREMRANGEBYRANK', delayed, 0, #due - 1)
    local ms = redis.call('HMGET', meta, unpack(due))
    for i = 1, #due do push_ready(due[i], ms[i] or nil, false) end
  end
  local idle = redis.call('ZRANGEBYSCORE', K.kidle, '-inf', now, 'LIMIT', 0, BATCH)
  if #idle > 0 then
    redis.call('ZREMRANGEBYRANK', K.kidle, 0, #idle - 1)
    redis.call('HDEL', K.kstate, unpack(idle))
  end
  local tpark = K.tpark
  local back = redis.call('ZRANGEBYSCORE', tpark, '-inf', now, 'LIMIT', 0, BATCH)
  if #back > 0 then
    redis.call('ZREMRANGEBYRANK', tpark, 0, #back - 1)
    for i = 1, #back do lane_join(back[i]) end
  end
end

-- top_up_wake() for a group with flow data: anything servable counts.
local function top_up_wake_flow(drop_stale)
  wake_at_least(K.wake, math.min(redis.call('LLEN', K.ready) + redis.call('ZCARD', K.lanes), WAKE_CAP), drop_stale)
end

-- Takes up to allowed entries: levels strictly, lanes round-robin, keys within their limits.
-- Appends to entries (as stored) and flags ('' plain, 'f', 'k').
local function take_flow(allowed, now, fl, entries, flags)
  local lanes = K.lanes
  if redis.call('LLEN', K.ready) > 0 then redis.call('ZADD', lanes, 'NX', lane_score('5'), '5') end
  local guard = allowed + 1000
  while #entries < allowed and guard > 0 do
    guard = guard - 1
    local m = redis.call('ZRANGE', lanes, 0, 0)[1]
    if not m then break end
    local key = string.sub(m, 2)
    local blocked = 0
    if key ~= '' then blocked = key_block(key, now, fl) end
    if blocked ~= 0 then
      redis.call('ZREM', lanes, m)
      if blocked > 0 then redis.call('ZADD', K.tpark, now + blocked, m)
      else redis.call('SADD', BASE .. 'cpark:' .. key, m) end
    else
      local lk = lane_key(m)
      local entry = redis.call('LPOP', lk)
      if entry then
        local flag = ''
        if m ~= '5' then flag = 'f' end
        if key ~= '' then
          flag = 'k'
          redis.call('HINCRBY', K.running, key, 1)
          if fl.kl > 0 then
            local left = bucket_tokens('b' .. key, fl.kl, fl.kp, fl.kb, now) - 1
            bucket_store('b' .. key, left, now)
            -- Once full again the field says nothing an absent one would not: maintain_flow drops it then.
            redis.call('ZADD', K.kidle, now + math.ceil((fl.kb - left) * fl.kp / fl.kl), 'b' .. key)
          end
        end
        entries[#entries + 1] = entry
        flags[#flags + 1] = flag
      end
      if entry and redis.call('LLEN', lk) > 0 then
        redis.call('ZADD', lanes, 'XX', lane_score(m), m)
      else
        redis.call('ZREM', lanes, m)
        if m ~= '5' then redis.call('SREM', K.laneset, m) end
      end
    end
  end
end

`;

/**
 * Lua helpers of flow control (priorities, keys, limits), appended to `HELPERS` (`./redis-lua.ts`)
 * by the scripts that need them (`./redis-lane-scripts.ts`). They touch only the script's declared
 * keys `K` (`./redis-script-keys.ts`; see `./redis-keys.ts`).
 *
 * A lane holds the ready entries of one (priority, key); its name is the level digit followed by the
 * key (empty for keyless). Lane `5` (default priority, no key) is the plain `ready` list; every other
 * lane lives in the one sorted set `lanelist`, all scores 0, so members sort by their bytes:
 * `<lane>\0<order><entry>`. Keys are printable ASCII (never `\0` or `\1`), so the entries of lane L
 * are exactly the lex range `[L\0` … `(L\1`: its head is `ZRANGEBYLEX … LIMIT 0 1`, its length
 * `ZLEXCOUNT`, each O(log n). `<order>` is 14 characters: `1` and a counter in 13 hex digits for an
 * entry put at the back (FIFO), `0` and (2^52 − 1 − counter) for one put back at the front (released,
 * lease expired), which sorts before every back entry, the latest first. The counter is `seq` (it
 * only grows; a publish uses the message's new id).
 *
 * The ZSET `lanes` holds the lanes that may be served, scored `(9 - level) * 2^44 + turn`: its first
 * member is the highest level's longest-waiting lane, and a lane that gives an entry gets a new turn
 * (round-robin). A lane whose key may not run now is parked: in `tpark` (by the time it may) or in
 * `cpark` as `<key>\0<lane>` (until a delivery of the key settles: the key's range is released).
 * A non-empty lane is in exactly one of `lanes`, `tpark`, `cpark`; an empty one in none.
 */
export const FLOW_HELPERS = `
local LEVEL_SPAN = 17592186044416
local ORDER_MAX = 4503599627370495

-- Flow flag of a delivery token "<id>:<serial>[:f|:k]": 'k' keyed (counted in its key's running
-- deliveries), 'f' with a priority, nil plain.
local function token_flag(token)
  local c = string.sub(token, -1)
  if c == 'k' or c == 'f' then return c end
  return nil
end

-- Lex bounds of the members of lane m in lanelist (or of key m in cpark).
local function lo_of(m) return '[' .. m .. '\\0' end
local function hi_of(m) return '(' .. m .. '\\1' end

-- The entry ('id' or '~id') of lanelist member x of lane m.
local function entry_of(x, m) return string.sub(x, #m + 16) end

local function lane_score(m)
  return (9 - tonumber(string.sub(m, 1, 1))) * LEVEL_SPAN + redis.call('INCR', K.turn)
end

local function lane_join(m)
  redis.call('ZADD', K.lanes, 'NX', lane_score(m), m)
end

-- The lanelist member of entry in lane m with order counter c (front: before every back entry).
local function lane_member(m, entry, front, c)
  if front then return m .. '\\0' .. '0' .. string.format('%013x', ORDER_MAX - c) .. entry end
  return m .. '\\0' .. '1' .. string.format('%013x', c) .. entry
end

-- Puts a ready entry ('id' or '~id') of lane m (nil: plain) at the back (or front) of its lane; c is
-- its order counter (nil: a fresh one from seq). A lane that was empty becomes servable.
local function push_ready(entry, m, front, c)
  if not m or m == '5' then
    if front then redis.call('LPUSH', K.ready, entry) else redis.call('RPUSH', K.ready, entry) end
    return
  end
  if not c then c = redis.call('INCR', K.seq) end
  redis.call('ZADD', K.lanelist, 0, lane_member(m, entry, front, c))
  if redis.call('ZLEXCOUNT', K.lanelist, lo_of(m), hi_of(m)) == 1 then lane_join(m) end
end

-- A counted delivery of message id left flight: its key's running count drops and the key's lanes
-- parked on concurrency may be served again.
local function release_key(id)
  local m = redis.call('HGET', K.meta, id)
  if not m then return end
  local key = string.sub(m, 2)
  if key == '' then return end
  if redis.call('HINCRBY', K.running, key, -1) <= 0 then redis.call('HDEL', K.running, key) end
  local lo, hi = lo_of(key), hi_of(key)
  local parked = redis.call('ZRANGEBYLEX', K.cpark, lo, hi)
  if #parked > 0 then
    redis.call('ZREMRANGEBYLEX', K.cpark, lo, hi)
    for i = 1, #parked do lane_join(string.sub(parked[i], #key + 2)) end
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
    -- Pushed to the front from the last to the first: the first gets the highest counter (frontmost).
    local last = redis.call('INCRBY', K.seq, n)
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
        push_ready('~' .. id, m, true, last - i + 1)
      end
    end
  end
  local delayed = K.delayed
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, BATCH)
  if #due > 0 then
    redis.call('ZREMRANGEBYRANK', delayed, 0, #due - 1)
    local ms = redis.call('HMGET', meta, unpack(due))
    local last = redis.call('INCRBY', K.seq, #due)
    for i = 1, #due do push_ready(due[i], ms[i] or nil, false, last - #due + i) end
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

-- Takes the head entry of lane m; returns it (nil: the lane is empty) and whether more remain.
local function pop_lane(m)
  if m == '5' then
    local entry = redis.call('LPOP', K.ready)
    return entry, entry and redis.call('LLEN', K.ready) > 0
  end
  local head = redis.call('ZRANGEBYLEX', K.lanelist, lo_of(m), hi_of(m), 'LIMIT', 0, 2)
  if not head[1] then return nil, false end
  redis.call('ZREM', K.lanelist, head[1])
  return entry_of(head[1], m), head[2] ~= nil
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
      else redis.call('ZADD', K.cpark, 0, key .. '\\0' .. m) end
    else
      local entry, more = pop_lane(m)
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
      if more then
        redis.call('ZADD', lanes, 'XX', lane_score(m), m)
      else
        redis.call('ZREM', lanes, m)
      end
    end
  end
end

`;

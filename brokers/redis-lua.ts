/**
 * Lua helpers of the Redis broker's scripts (`./redis-scripts.ts`, `./redis-lane-scripts.ts`): each
 * script is self-contained, these are prepended to it, after the prologue naming its declared keys
 * (`K`: `./redis-script-keys.ts`). The flow-control helpers are in `./redis-flow-lua.ts`.
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

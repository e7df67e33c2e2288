/**
 * Lua scripts of the Redis broker (`brokers/redis.ts`): one named script per atomic operation. The
 * keys they touch are described in `./redis-keys.ts`; every key of one group shares the hash tag
 * `{group}`, so each script touches a single hash slot.
 *
 * Time inside scripts is the Redis server clock (`TIME`), so lease deadlines do not depend on the
 * clocks of worker machines; `availableAt` is compared with that clock too.
 *
 * Wake-up protocol: every script that leaves messages in `ready` tops the wake list up to
 * `min(#ready, WAKE_CAP)` markers, and a fetch that leaves `ready` empty deletes it, so stale markers
 * cost at most one extra round trip. Publishing a delayed message adds one marker when there is none,
 * so that a blocked fetch recomputes how long it may sleep.
 */
import type { Redis } from 'ioredis';

/** Most wake-up markers kept per group (bounds the number of idle fetches one publish burst wakes). */
export const WAKE_CAP = 256;
/** Most expired leases / due delayed messages moved per script call (keeps every call short). */
export const MAINTENANCE_BATCH = 1000;

/** Lua helpers shared by the scripts (each script is self-contained: the helpers are prepended). */
const HELPERS = `
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

-- Keeps at least min(#ready, WAKE_CAP) markers in the wake list. With drop_stale (fetch only: the
-- caller found nothing and computes its own sleep) the list is deleted when nothing is ready.
local function top_up_wake(ready, wake, drop_stale)
  local want = math.min(redis.call('LLEN', ready), WAKE_CAP)
  local have = redis.call('LLEN', wake)
  if want > have then
    local markers = {}
    for i = 1, want - have do markers[i] = '1' end
    redis.call('RPUSH', wake, unpack(markers))
  elseif drop_stale and want == 0 and have > 0 then
    redis.call('DEL', wake)
  end
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
`;

/**
 * publish — atomically stores any number of bodies under fresh ids; ready ones go to the tail of `ready` (and wake markers
 * are topped up), future ones into `delayed`.
 * KEYS: ready, delayed, body, wake, seq. ARGV: n, then n pairs (availableAt ms or 0, body).
 * Returns the number of messages stored.
 */
const PUBLISH = `${HELPERS}
local now = now_ms()
local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', KEYS[5], n)
local fields, ready, delayed = {}, {}, {}
for i = 1, n do
  local id = string.format('%d', last - n + i)
  local at = tonumber(ARGV[2 * i])
  fields[#fields + 1] = id
  fields[#fields + 1] = ARGV[2 * i + 1]
  if at > now then
    delayed[#delayed + 1] = at
    delayed[#delayed + 1] = id
  else
    ready[#ready + 1] = id
  end
end
call_chunked('HSET', KEYS[3], fields)
if #ready > 0 then
  call_chunked('RPUSH', KEYS[1], ready)
  top_up_wake(KEYS[1], KEYS[4])
end
if #delayed > 0 then
  call_chunked('ZADD', KEYS[2], delayed)
  if redis.call('LLEN', KEYS[4]) == 0 then redis.call('RPUSH', KEYS[4], '1') end
end
return n
`;

/**
 * fetch — runs maintenance (expired leases back, due delayed promoted), pops up to `max` ready ids
 * and leases each under a fresh token until now + leaseMs.
 * KEYS: ready, delayed, lease, body, wake, seq. ARGV: max, leaseMs.
 * Returns `{waitHintMs, token1, body1, redelivered1, token2, ...}`; when the ready list was drained
 * (fewer than `max` taken), `waitHintMs` is the time until the next delayed message or lease
 * deadline (-1: none), so that the caller's next fetch may block at once; else -2.
 */
const FETCH = `${HELPERS}
local now = now_ms()
maintain(KEYS[1], KEYS[2], KEYS[3], now)
local out = {0}
local entries = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if entries then
  local n = #entries
  local last = redis.call('INCRBY', KEYS[6], n)
  local deadline = now + tonumber(ARGV[2])
  local leases = {}
  local ids, flags = {}, {}
  for i = 1, n do
    local entry = entries[i]
    if string.byte(entry, 1) == 126 then -- '~': delivered before
      ids[i] = string.sub(entry, 2)
      flags[i] = 1
    else
      ids[i] = entry
      flags[i] = 0
    end
  end
  for c = 1, n, 1000 do
    local stop = math.min(c + 999, n)
    local bodies = redis.call('HMGET', KEYS[4], unpack(ids, c, stop))
    for i = c, stop do
      local body = bodies[i - c + 1]
      if body then
        local token = ids[i] .. ':' .. string.format('%d', last - n + i)
        leases[#leases + 1] = deadline
        leases[#leases + 1] = token
        out[#out + 1] = token
        out[#out + 1] = body
        out[#out + 1] = flags[i]
      end
    end
  end
  if #leases > 0 then call_chunked('ZADD', KEYS[3], leases) end
end
top_up_wake(KEYS[1], KEYS[5], true)
if entries == false or entries == nil or #entries < tonumber(ARGV[1]) then
  -- Ready is drained: tell how long the caller may sleep (even when it took some).
  out[1] = next_event(KEYS[2], KEYS[3], now)
else
  out[1] = -2
end
return out
`;

/**
 * ack — removes a delivery for good if its token still holds the lease.
 * KEYS: lease, body. ARGV: token. Returns 1 if removed, 0 if the token no longer held it.
 */
const ACK = `${HELPERS}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if id then redis.call('HDEL', KEYS[2], id) end
return 1
`;

/**
 * ackMany — ack for several deliveries of one group (the broker coalesces the acks of one tick).
 * KEYS: lease, body. ARGV: tokens. Returns how many were removed.
 */
const ACK_MANY = `${HELPERS}
local ids = {}
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    local id = token_id(ARGV[i])
    if id then ids[#ids + 1] = id end
  end
end
if #ids > 0 then call_chunked('HDEL', KEYS[2], ids) end
return #ids
`;

/**
 * retry — replaces a held delivery by a new body under the same id, ready at `availableAt`
 * (tail of ready when due, else delayed). A fresh (not redelivered) message.
 * KEYS: lease, body, ready, delayed, wake. ARGV: token, body, availableAt. Returns 1 or 0 (not held).
 */
const RETRY = `${HELPERS}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
local now = now_ms()
local at = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], id, ARGV[2])
if at > now then
  redis.call('ZADD', KEYS[4], at, id)
  if redis.call('LLEN', KEYS[5]) == 0 then redis.call('RPUSH', KEYS[5], '1') end
else
  redis.call('RPUSH', KEYS[3], id)
  top_up_wake(KEYS[3], KEYS[5])
end
return 1
`;

/**
 * release — hands a held delivery back unchanged to the head of ready, marked redelivered.
 * KEYS: lease, ready, wake. ARGV: token. Returns 1 or 0 (not held).
 */
const RELEASE = `${HELPERS}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
redis.call('LPUSH', KEYS[2], '~' .. id)
top_up_wake(KEYS[2], KEYS[3])
return 1
`;

/**
 * extend — renews the leases of the given tokens to now + leaseMs.
 * KEYS: lease. ARGV: leaseMs, token1, token2, ... Returns the tokens that are no longer held.
 */
const EXTEND = `${HELPERS}
local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`;

/**
 * deadLetter — moves a held delivery into the dead-letter store (id = message id, time = now).
 * KEYS: lease, body, dead, dead:body, dead:reason. ARGV: token, reason JSON. Returns 1 or 0 (not held).
 */
const DEAD_LETTER = `${HELPERS}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
local body = redis.call('HGET', KEYS[2], id) or ''
redis.call('HDEL', KEYS[2], id)
redis.call('ZADD', KEYS[3], now_ms(), id)
redis.call('HSET', KEYS[4], id, body)
redis.call('HSET', KEYS[5], id, ARGV[2])
return 1
`;

/**
 * listDead — one page of dead letters, oldest first.
 * KEYS: dead, dead:body, dead:reason. ARGV: offset, limit.
 * Returns `{id1, at1, body1, reason1, id2, ...}`.
 */
const LIST_DEAD = `
local offset = tonumber(ARGV[1])
local stop = offset + tonumber(ARGV[2]) - 1
local page = redis.call('ZRANGE', KEYS[1], offset, stop, 'WITHSCORES')
local out = {}
for i = 1, #page, 2 do
  local id = page[i]
  out[#out + 1] = id
  out[#out + 1] = page[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '{}'
end
return out
`;

/**
 * redriveDead — moves dead letters (the given ids, or all when ARGV is empty) back to the tail of
 * ready, marked redelivered, and tops up wake markers.
 * KEYS: dead, dead:body, dead:reason, body, ready, wake. ARGV: ids... Returns how many were moved.
 */
const REDRIVE_DEAD = `${HELPERS}
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', KEYS[1], 0, -1) end
local moved = 0
for i = 1, #ids do
  local id = ids[i]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    local body = redis.call('HGET', KEYS[2], id) or ''
    redis.call('HDEL', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
    redis.call('HSET', KEYS[4], id, body)
    redis.call('RPUSH', KEYS[5], '~' .. id)
    moved = moved + 1
  end
end
if moved > 0 then top_up_wake(KEYS[5], KEYS[6]) end
return moved
`;

/**
 * deleteDead — deletes dead letters (the given ids, or all when ARGV is empty).
 * KEYS: dead, dead:body, dead:reason. ARGV: ids... Returns how many were deleted.
 */
const DELETE_DEAD = `
if #ARGV == 0 then
  local n = redis.call('ZCARD', KEYS[1])
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return n
end
local deleted = 0
for i = 1, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    deleted = deleted + 1
  end
end
return deleted
`;

/**
 * counts — runs maintenance (so expired leases count as ready, due delayed as ready), tops up wake
 * markers and returns `{ready, delayed, inFlight, dead}`.
 * KEYS: ready, delayed, lease, dead, wake.
 */
const COUNTS = `${HELPERS}
maintain(KEYS[1], KEYS[2], KEYS[3], now_ms())
top_up_wake(KEYS[1], KEYS[5])
return {redis.call('LLEN', KEYS[1]), redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4])}
`;

/** Script definitions by command name, as passed to ioredis `defineCommand`. */
export const SCRIPTS = {
  tasukiPublish: { numberOfKeys: 5, lua: PUBLISH },
  tasukiFetch: { numberOfKeys: 6, lua: FETCH },
  tasukiAck: { numberOfKeys: 2, lua: ACK },
  tasukiAckMany: { numberOfKeys: 2, lua: ACK_MANY },
  tasukiRetry: { numberOfKeys: 5, lua: RETRY },
  tasukiRelease: { numberOfKeys: 3, lua: RELEASE },
  tasukiExtend: { numberOfKeys: 1, lua: EXTEND },
  tasukiDeadLetter: { numberOfKeys: 5, lua: DEAD_LETTER },
  tasukiListDead: { numberOfKeys: 3, lua: LIST_DEAD, readOnly: true },
  tasukiRedriveDead: { numberOfKeys: 6, lua: REDRIVE_DEAD },
  tasukiDeleteDead: { numberOfKeys: 3, lua: DELETE_DEAD },
  tasukiCounts: { numberOfKeys: 5, lua: COUNTS },
} as const;

/** A script command: keys first (as many as its `numberOfKeys`), then arguments. */
export type ScriptCommand = (...keysAndArgs: Array<string | number>) => Promise<unknown>;

/** The script commands added to a connection by {@link registerScripts}. */
export type TasukiScripts = { readonly [K in keyof typeof SCRIPTS]: ScriptCommand };

/** An ioredis connection with the tasuki scripts defined. */
export type ScriptedRedis = Redis & TasukiScripts;

/**
 * Defines every script on `redis` (ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT, so the
 * scripts survive `SCRIPT FLUSH` and server restarts) and returns it typed.
 */
export function registerScripts(redis: Redis): ScriptedRedis {
  for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
  return redis as ScriptedRedis;
}

/**
 * The Redis broker's scripts that know about flow control (priorities, keys, limits; see
 * `FLOW_HELPERS` in `./redis-flow-lua.ts`). Each declares its keys as listed in `./redis-script-keys.ts`. A
 * group that never used a priority, a key or a limit has no `meta` hash: fetch then runs the plain
 * path (the code of before, plus one EXISTS), and settling a plain delivery (token without a flow
 * flag) runs the code of before plus one check of its token's last character. The flow helpers are
 * Lua local functions defined inside the flow branches, so a plain call does not even create them.
 */
import { FLOW_HELPERS } from './redis-flow-lua.js';
import { HELPERS } from './redis-lua.js';

const ALL = `${HELPERS}${FLOW_HELPERS}`;

/**
 * fetch — runs maintenance, takes up to `max` entries (plain list, or by priority and key with flow
 * data) within the group and key limits, and leases each under a fresh token until now + leaseMs.
 * KEYS: see `SCRIPT_KEYS`. ARGV: max, leaseMs, then the limits (0: none):
 * group limit, period, burst, key concurrency, key limit, period, burst.
 * Returns `{waitHintMs, throttleMs, token1, body1, redelivered1, ...}`. `waitHintMs`: when fewer than
 * could be taken were found, the time until the next delayed message, lease deadline or parked lane
 * (-1: none) — the caller may block at once; else -2. `throttleMs` ≥ 0: the group's bucket is empty,
 * its next token is due in that many ms (the caller sleeps; wake markers do not help); else -1.
 */
export const FETCH = `${HELPERS}
local now = now_ms()
-- Flow data: messages with a lane (meta), or per-key fields still to drop (kidle).
local flow_on = redis.call('EXISTS', K.meta, K.kidle) > 0
if not flow_on and tonumber(ARGV[3] or '0') == 0 then
  -- A group without flow data or limits: the plain path.
  maintain(K.ready, K.delayed, K.lease, now)
  local out = {0, -1}
  local entries = redis.call('LPOP', K.ready, tonumber(ARGV[1]))
  if entries then lease_entries(entries, nil, now, tonumber(ARGV[2]), out) end
  top_up_wake(K.ready, K.wake, true)
  if entries == false or entries == nil or #entries < tonumber(ARGV[1]) then
    -- Ready is drained: tell how long the caller may sleep (even when it took some).
    out[1] = next_event(K.delayed, K.lease, now)
  else
    out[1] = -2
  end
  return out
end
${FLOW_HELPERS}
if flow_on then maintain_flow(now) else maintain(K.ready, K.delayed, K.lease, now) end
local max = tonumber(ARGV[1])
local allowed = max
local gl = tonumber(ARGV[3] or '0')
local gtokens = 0
if gl > 0 then
  gtokens = bucket_tokens('g', gl, tonumber(ARGV[4]), tonumber(ARGV[5]), now)
  allowed = math.min(max, math.floor(gtokens))
end
local out = {0, -1}
local entries, flags = {}, nil
if allowed > 0 then
  if flow_on then
    flags = {}
    local fl = { kc = tonumber(ARGV[6] or '0'), kl = tonumber(ARGV[7] or '0'), kp = tonumber(ARGV[8] or '1'), kb = tonumber(ARGV[9] or '1') }
    take_flow(allowed, now, fl, entries, flags)
  else
    entries = redis.call('LPOP', K.ready, allowed) or {}
  end
  if #entries > 0 then lease_entries(entries, flags, now, tonumber(ARGV[2]), out) end
end
if gl > 0 then
  gtokens = gtokens - #entries
  bucket_store('g', gtokens, now)
  if gtokens < 1 then
    local nx = bucket_next_ms(gtokens, gl, tonumber(ARGV[4]))
    -- The group is throttled until its next token (read by waitReason).
    redis.call('HSET', K.kstate, 'gn', string.format('%d', now + nx))
    if #entries < max then out[2] = nx end
  end
end
if flow_on then top_up_wake_flow(true) else top_up_wake(K.ready, K.wake, true) end
if #entries < allowed then
  local best = next_event(K.delayed, K.lease, now)
  if flow_on then
    local p = redis.call('ZRANGE', K.tpark, 0, 0, 'WITHSCORES')
    if p[2] then
      local x = math.max(0, tonumber(p[2]) - now)
      if best < 0 or x < best then best = x end
    end
  end
  out[1] = best
else
  out[1] = -2
end
return out
`;

/**
 * ack — removes a delivery for good if its token still holds the lease (a keyed one frees its key's slot).
 * KEYS: see `SCRIPT_KEYS`. ARGV: token. Returns 1 if removed, 0 if the token no longer held it.
 */
export const ACK = `${HELPERS}
if redis.call('ZREM', K.lease, ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if id then
  local c = string.sub(ARGV[1], -1)
  if c == 'k' or c == 'f' then
${FLOW_HELPERS}
    settle_flow(ARGV[1], id, true)
  end
  redis.call('HDEL', K.body, id)
end
return 1
`;

/**
 * ackMany — ack for several deliveries of one group (the broker coalesces the acks of one tick).
 * KEYS: see `SCRIPT_KEYS`. ARGV: tokens. Returns how many were removed.
 */
export const ACK_MANY = `${HELPERS}
local ids, flagged = {}, {}
for i = 1, #ARGV do
  if redis.call('ZREM', K.lease, ARGV[i]) == 1 then
    local id = token_id(ARGV[i])
    if id then
      local c = string.sub(ARGV[i], -1)
      if c == 'k' or c == 'f' then flagged[#flagged + 1] = i end
      ids[#ids + 1] = id
    end
  end
end
if #flagged > 0 then
${FLOW_HELPERS}
  for j = 1, #flagged do
    local token = ARGV[flagged[j]]
    settle_flow(token, token_id(token), true)
  end
end
if #ids > 0 then call_chunked('HDEL', K.body, ids) end
return #ids
`;

/**
 * retry — replaces a held delivery by a new body under the same id (same priority and key), ready
 * at `availableAt` (tail of its lane when due, else delayed). A fresh (not redelivered) message.
 * KEYS: see `SCRIPT_KEYS`. ARGV: token, body, availableAt. Returns 1 or 0 (not held).
 */
export const RETRY = `${HELPERS}
if redis.call('ZREM', K.lease, ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
local now = now_ms()
local at = tonumber(ARGV[3])
redis.call('HSET', K.body, id, ARGV[2])
local c = string.sub(ARGV[1], -1)
if c == 'k' or c == 'f' then
${FLOW_HELPERS}
  local m = settle_flow(ARGV[1], id, false)
  if at > now then
    redis.call('ZADD', K.delayed, at, id)
    if redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
  else
    push_ready(id, m, false)
    top_up_wake_flow()
  end
  return 1
end
if at > now then
  redis.call('ZADD', K.delayed, at, id)
  if redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
else
  redis.call('RPUSH', K.ready, id)
  top_up_wake(K.ready, K.wake)
end
return 1
`;

/**
 * release — hands a held delivery back unchanged to the head of its lane, marked redelivered.
 * KEYS: see `SCRIPT_KEYS`. ARGV: token. Returns 1 or 0 (not held).
 */
export const RELEASE = `${HELPERS}
if redis.call('ZREM', K.lease, ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
local c = string.sub(ARGV[1], -1)
if c == 'k' or c == 'f' then
${FLOW_HELPERS}
  local m = settle_flow(ARGV[1], id, false)
  push_ready('~' .. id, m, true)
  top_up_wake_flow()
  return 1
end
redis.call('LPUSH', K.ready, '~' .. id)
top_up_wake(K.ready, K.wake)
return 1
`;

/**
 * deadLetter — moves a held delivery into the dead-letter store (id = message id, time = now); its
 * priority and key stay in `meta` for a redrive.
 * KEYS: see `SCRIPT_KEYS`. ARGV: token, reason JSON. Returns 1 or 0 (not held).
 */
export const DEAD_LETTER = `${HELPERS}
if redis.call('ZREM', K.lease, ARGV[1]) == 0 then return 0 end
local id = token_id(ARGV[1])
if not id then return 0 end
local c = string.sub(ARGV[1], -1)
if c == 'k' or c == 'f' then
${FLOW_HELPERS}
  settle_flow(ARGV[1], id, false)
end
local body = redis.call('HGET', K.body, id) or ''
redis.call('HDEL', K.body, id)
redis.call('ZADD', K.dead, now_ms(), id)
redis.call('HSET', K.deadBody, id, body)
redis.call('HSET', K.deadReason, id, ARGV[2])
return 1
`;

/**
 * redriveDead — moves dead letters (the given ids, or all when ARGV is empty) back to the tail of
 * their lanes, marked redelivered, and tops up wake markers.
 * KEYS: see `SCRIPT_KEYS`. ARGV: ids... Returns how many were moved.
 */
export const REDRIVE_DEAD = `${ALL}
local flow_on = redis.call('EXISTS', K.meta) == 1
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', K.dead, 0, -1) end
local moved = 0
for i = 1, #ids do
  local id = ids[i]
  if redis.call('ZREM', K.dead, id) == 1 then
    local body = redis.call('HGET', K.deadBody, id) or ''
    redis.call('HDEL', K.deadBody, id)
    redis.call('HDEL', K.deadReason, id)
    redis.call('HSET', K.body, id, body)
    local m = nil
    if flow_on then m = redis.call('HGET', K.meta, id) or nil end
    push_ready('~' .. id, m, false)
    moved = moved + 1
  end
end
if moved > 0 then
  if flow_on then top_up_wake_flow() else top_up_wake(K.ready, K.wake) end
end
return moved
`;

/**
 * deleteDead — deletes dead letters (the given ids, or all when ARGV is empty) and their priority and key.
 * KEYS: see `SCRIPT_KEYS`. ARGV: ids... Returns how many were deleted.
 */
export const DELETE_DEAD = `${ALL}
local meta = K.meta
local flow_on = redis.call('EXISTS', meta) == 1
if #ARGV == 0 then
  local n = redis.call('ZCARD', K.dead)
  if flow_on and n > 0 then call_chunked('HDEL', meta, redis.call('ZRANGE', K.dead, 0, -1)) end
  redis.call('DEL', K.dead, K.deadBody, K.deadReason)
  return n
end
local deleted = 0
for i = 1, #ARGV do
  if redis.call('ZREM', K.dead, ARGV[i]) == 1 then
    redis.call('HDEL', K.deadBody, ARGV[i])
    redis.call('HDEL', K.deadReason, ARGV[i])
    if flow_on then redis.call('HDEL', meta, ARGV[i]) end
    deleted = deleted + 1
  end
end
return deleted
`;

/**
 * counts — runs maintenance (so expired leases count as ready, due delayed as ready), tops up wake
 * markers and returns `{ready, delayed, inFlight, dead}` (ready: every lane, parked ones included).
 * KEYS: see `SCRIPT_KEYS`.
 */
export const COUNTS = `${ALL}
local ready = 0
if redis.call('EXISTS', K.meta) == 1 then
  maintain_flow(now_ms())
  top_up_wake_flow()
  ready = redis.call('ZCARD', K.lanelist)
else
  maintain(K.ready, K.delayed, K.lease, now_ms())
  top_up_wake(K.ready, K.wake)
end
ready = ready + redis.call('LLEN', K.ready)
return {ready, redis.call('ZCARD', K.delayed), redis.call('ZCARD', K.lease), redis.call('ZCARD', K.dead)}
`;

/**
 * publishFlow — stores messages with a lane (priority and/or key) under fresh ids: `meta` keeps the
 * lane, ready ones go to the back of it, future ones into `delayed`. Items without a lane go to `ready`.
 * KEYS: see `SCRIPT_KEYS`. ARGV: n, then n triples (availableAt ms or 0, lane or '', body). Returns n.
 */
export const PUBLISH_FLOW = `${ALL}
local now = now_ms()
local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', K.seq, n)
local any_ready, any_delayed = false, false
for i = 1, n do
  local id = string.format('%d', last - n + i)
  local at = tonumber(ARGV[3 * i - 1])
  local m = ARGV[3 * i]
  redis.call('HSET', K.body, id, ARGV[3 * i + 1])
  if m == '' then m = nil else redis.call('HSET', K.meta, id, m) end
  if at > now then
    redis.call('ZADD', K.delayed, at, id)
    any_delayed = true
  else
    -- The new id is a fresh value of seq: it orders the entry in its lane.
    push_ready(id, m, false, last - n + i)
    any_ready = true
  end
end
if any_ready then top_up_wake_flow() end
if any_delayed and redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
return n
`;

/**
 * backoffKey — no entry of a key is served before now + ms (a later back-off already set is kept).
 * KEYS: see `SCRIPT_KEYS`. ARGV: key, ms. Returns the epoch ms until which the key is backed off.
 */
export const BACKOFF_KEY = `${ALL}
local f = 'o' .. ARGV[1]
local untilMs = now_ms() + tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', K.kstate, f) or '0')
if cur > untilMs then return cur end
redis.call('HSET', K.kstate, f, string.format('%d', untilMs))
redis.call('ZADD', K.kidle, untilMs, f)
return untilMs
`;

/**
 * waitReason — why ready tasks of a key (or keyless ones) are held back, read-only (see
 * `./redis-wait-reason.ts`). KEYS: see `SCRIPT_KEYS`. ARGV: key ('' for keyless). Returns `{}` or
 * `{reason, until}` (until -1: none).
 */
export const WAIT_REASON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = ARGV[1]
if key ~= '' then
  local off = tonumber(redis.call('HGET', K.kstate, 'o' .. key) or '0')
  if off > now then return {'key-paused', off} end
  if redis.call('ZLEXCOUNT', K.cpark, '[' .. key .. '\\0', '(' .. key .. '\\1') > 0 then return {'key-concurrency', -1} end
  local best = -1
  for lv = 0, 9 do
    local s = tonumber(redis.call('ZSCORE', K.tpark, lv .. key) or '0')
    if s > now and (best < 0 or s < best) then best = s end
  end
  if best > 0 then return {'key-rate-limit', best} end
end
local gn = tonumber(redis.call('HGET', K.kstate, 'gn') or '0')
if gn > now then return {'rate-limit', gn} end
return {}
`;

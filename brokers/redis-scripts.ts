/**
 * Lua scripts of the Redis broker (`brokers/redis.ts`): one named script per atomic operation. The
 * keys they touch are described in `./redis-keys.ts` and declared in `KEYS` as listed in
 * `./redis-script-keys.ts`; every key of one group (shard) shares one hash tag, so each script
 * touches a single hash slot.
 *
 * Time inside scripts is the Redis server clock (`TIME`), so lease deadlines do not depend on the
 * clocks of worker machines; `availableAt` is compared with that clock too.
 *
 * Wake-up protocol: every script that leaves messages in `ready` tops the wake list up to
 * `min(#ready, WAKE_CAP)` markers, and a fetch that leaves `ready` empty deletes it, so stale markers
 * cost at most one extra round trip. Publishing a delayed message adds one marker when there is none,
 * so that a blocked fetch recomputes how long it may sleep.
 */
import { ACK, ACK_MANY, BACKOFF_KEY, COUNTS, DEAD_LETTER, DELETE_DEAD, FETCH, PUBLISH_FLOW, REDRIVE_DEAD, RELEASE, RETRY, WAIT_REASON } from './redis-lane-scripts.js';
import { MIGRATE_FIXED_KEYS, MIGRATE_LANES, UNPARK_IDLE } from './redis-legacy-lanes.js';
import { HELPERS } from './redis-lua.js';
import { SCRIPT_KEYS, keyPrologue, type ScriptName } from './redis-script-keys.js';
import { SHARDS } from './redis-shards-check.js';
import type { RedisClient } from './redis-cluster.js';

export { MAINTENANCE_BATCH, WAKE_CAP } from './redis-lua.js';

/**
 * publish — atomically stores any number of bodies under fresh ids; ready ones go to the tail of `ready` (and wake markers
 * are topped up), future ones into `delayed`.
 * KEYS: see `SCRIPT_KEYS`. ARGV: n, then n pairs (availableAt ms or 0, body).
 * Returns the number of messages stored.
 */
const PUBLISH = `${HELPERS}
-- The clock is read only when a message has an availableAt (0: ready now, the common case).
local now
local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', K.seq, n)
local fields, ready, delayed = {}, {}, {}
for i = 1, n do
  local id = string.format('%d', last - n + i)
  local at = tonumber(ARGV[2 * i])
  fields[#fields + 1] = id
  fields[#fields + 1] = ARGV[2 * i + 1]
  if at > 0 and now == nil then now = now_ms() end
  if at > 0 and at > now then
    delayed[#delayed + 1] = at
    delayed[#delayed + 1] = id
  else
    ready[#ready + 1] = id
  end
end
call_chunked('HSET', K.body, fields)
if #ready > 0 then
  -- RPUSH answers the list's new length: top_up_wake without its LLEN of ready.
  local len = 0
  for i = 1, #ready, 1000 do
    len = redis.call('RPUSH', K.ready, unpack(ready, i, math.min(i + 999, #ready)))
  end
  wake_at_least(K.wake, math.min(len, WAKE_CAP))
end
if #delayed > 0 then
  call_chunked('ZADD', K.delayed, delayed)
  if redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
end
return n
`;

/**
 * extend — renews the leases of the given tokens to now + leaseMs.
 * KEYS: see `SCRIPT_KEYS`. ARGV: leaseMs, token1, token2, ... Returns the tokens that are no longer held.
 */
const EXTEND = `${HELPERS}
local deadline = now_ms() + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', K.lease, ARGV[i]) then
    redis.call('ZADD', K.lease, 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
`;

/**
 * listDead — one page of dead letters, oldest first.
 * KEYS: see `SCRIPT_KEYS`. ARGV: offset, limit.
 * Returns `{id1, at1, body1, reason1, id2, ...}`.
 */
const LIST_DEAD = `
local offset = tonumber(ARGV[1])
local stop = offset + tonumber(ARGV[2]) - 1
local page = redis.call('ZRANGE', K.dead, offset, stop, 'WITHSCORES')
local out = {}
for i = 1, #page, 2 do
  local id = page[i]
  out[#out + 1] = id
  out[#out + 1] = page[i + 1]
  out[#out + 1] = redis.call('HGET', K.deadBody, id) or ''
  out[#out + 1] = redis.call('HGET', K.deadReason, id) or '{}'
end
return out
`;

/** The Lua body of every script, by command name. */
const BODIES: { readonly [N in ScriptName]: string } = {
  tasukiPublish: PUBLISH,
  tasukiFetch: FETCH,
  tasukiAck: ACK,
  tasukiAckMany: ACK_MANY,
  tasukiRetry: RETRY,
  tasukiRelease: RELEASE,
  tasukiExtend: EXTEND,
  tasukiDeadLetter: DEAD_LETTER,
  tasukiListDead: LIST_DEAD,
  tasukiRedriveDead: REDRIVE_DEAD,
  tasukiDeleteDead: DELETE_DEAD,
  tasukiCounts: COUNTS,
  tasukiPublishFlow: PUBLISH_FLOW,
  tasukiBackoffKey: BACKOFF_KEY,
  tasukiWaitReason: WAIT_REASON,
  tasukiShards: SHARDS,
  tasukiUnparkIdle: UNPARK_IDLE,
};

/** The name of the one script whose number of keys varies (the first argument gives it). */
export type DynamicScriptName = 'tasukiMigrateLanes';

/** A script definition as passed to ioredis `defineCommand` (no `numberOfKeys`: the first argument gives it). */
export interface ScriptDefinition {
  numberOfKeys?: number;
  lua: string;
  readOnly?: boolean;
}

/**
 * Script definitions by command name, as passed to ioredis `defineCommand`: the prologue naming the
 * declared keys (`./redis-script-keys.ts`), then the body. Every script the broker runs is here.
 */
export const SCRIPTS: { readonly [N in ScriptName | DynamicScriptName]: ScriptDefinition } = {
  ...(Object.fromEntries(
    (Object.keys(BODIES) as ScriptName[]).map((name) => [
      name,
      { numberOfKeys: SCRIPT_KEYS[name].length, lua: keyPrologue(SCRIPT_KEYS[name]) + BODIES[name], ...(name === 'tasukiListDead' || name === 'tasukiWaitReason' ? { readOnly: true } : {}) },
    ]),
  ) as { readonly [N in ScriptName]: ScriptDefinition }),
  tasukiMigrateLanes: { lua: keyPrologue(MIGRATE_FIXED_KEYS) + MIGRATE_LANES },
};

/** A script command: keys first (as many as its `numberOfKeys`), then arguments. */
export type ScriptCommand = (...keysAndArgs: Array<string | number>) => Promise<unknown>;

/** The script commands added to a connection by {@link registerScripts}. */
export type TasukiScripts = { readonly [K in ScriptName | DynamicScriptName]: ScriptCommand };

/** An ioredis connection with the tasuki scripts defined. */
export type ScriptedRedis = RedisClient & TasukiScripts;

/**
 * Defines every script on `redis` (ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT, so the
 * scripts survive `SCRIPT FLUSH` and server restarts) and returns it typed.
 */
export function registerScripts(redis: RedisClient): ScriptedRedis {
  for (const [name, def] of Object.entries(SCRIPTS)) redis.defineCommand(name, def);
  return redis as ScriptedRedis;
}

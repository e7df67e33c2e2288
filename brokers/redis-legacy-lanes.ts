/**
 * Upgrade of the flow-control layout before `lanelist` (`./redis-keys.ts`): each lane was a LIST
 * `<base>lane:<lane>`, every non-empty one listed in the SET `laneset`, the lanes of a key parked on
 * concurrency a SET `<base>cpark:<key>`, the servable and time-parked lanes the ZSETs `lanes` and
 * `tpark`. The lists and parking sets were named inside the scripts, which a Redis Cluster proxy or
 * Dragonfly refuses; the new layout keeps the same lanes in fixed keys, and names its servable and
 * time-parked sets differently, so that old-version workers still running during a rolling deploy
 * serve only the old layout's lanes and never drop a new one.
 *
 * A broker reads `SMEMBERS laneset` (a plain command) on its first fetch, count or purge of a group
 * shard and again every {@link LEGACY_CHECK_MS} on fetch, since a process of the old version may
 * still write. When it lists lanes, {@link MIGRATE_LANES} runs with the old keys of those lanes (and
 * of their keys' parking sets) declared in `KEYS`: it moves each lane's entries, in order, to the
 * front of the lane in `lanelist` (they are older than what the new layout holds), moves the lane's
 * place (servable, parked until a time or on concurrency) with it, empties the old keys and makes
 * sure every moved lane is servable or parked. Atomic per call; at most {@link MIGRATE_BATCH} lanes
 * per call. For {@link LEGACY_GRACE_MS} after old lanes were last seen, each check also runs
 * {@link UNPARK_IDLE}: an old-version worker settling a delivery of a key releases only the old
 * layout's parked lanes of that key, so lanes the new layout parked for it would wait for a
 * new-version settle that may never come.
 */
import { FLOW_HELPERS } from './redis-flow-lua.js';
import type { GroupKeys, KeyName } from './redis-keys.js';
import { HELPERS } from './redis-lua.js';

/** How often (ms) a broker looks again for data of the old layout in a group shard it fetches from. */
export const LEGACY_CHECK_MS = 10_000;
/** How long (ms) after old lanes were last seen in a group shard its checks also run {@link UNPARK_IDLE}. */
export const LEGACY_GRACE_MS = 600_000;
/** Most old lanes one migration call moves. */
export const MIGRATE_BATCH = 200;

/** The fixed keys the migration script declares first (then the old keys: see {@link legacyKeys}). */
export const MIGRATE_FIXED_KEYS: readonly KeyName[] = ['lanelist', 'cpark', 'lanes', 'tpark', 'laneset', 'oldLanes', 'oldTpark', 'seq', 'turn', 'wake'];

/**
 * migrateLanes — KEYS: {@link MIGRATE_FIXED_KEYS}, then `lane:<m>` of each lane m of ARGV, then
 * `cpark:<key>` of each key of ARGV. ARGV: n, lanes m1..mn, k, keys key1..keyk. Returns how many
 * entries were moved.
 */
export const MIGRATE_LANES = `${HELPERS}${FLOW_HELPERS}
local FIXED = ${MIGRATE_FIXED_KEYS.length}
local n = tonumber(ARGV[1])
local k = tonumber(ARGV[n + 2])
-- Parked lanes first, so that the check below sees them parked.
for j = 1, k do
  local key, old = ARGV[n + 2 + j], KEYS[FIXED + n + j]
  local parked = redis.call('SMEMBERS', old)
  for i = 1, #parked do redis.call('ZADD', K.cpark, 0, key .. '\\0' .. parked[i]) end
  redis.call('DEL', old)
end
local moved = 0
for i = 1, n do
  local m, old = ARGV[1 + i], KEYS[FIXED + i]
  local items = redis.call('LRANGE', old, 0, -1)
  if #items > 0 then
    -- To the front in order: the first item gets the highest counter (frontmost).
    local last = redis.call('INCRBY', K.seq, #items)
    local args = {}
    for j = 1, #items do
      args[#args + 1] = 0
      args[#args + 1] = lane_member(m, items[j], true, last - j + 1)
    end
    call_chunked('ZADD', K.lanelist, args)
    redis.call('DEL', old)
    moved = moved + #items
  end
  redis.call('SREM', K.laneset, m)
  -- Its place in the old layout, with the same score (servable since, parked until).
  local s = redis.call('ZSCORE', K.oldLanes, m)
  if s then
    redis.call('ZREM', K.oldLanes, m)
    redis.call('ZADD', K.lanes, 'NX', s, m)
  end
  local t = redis.call('ZSCORE', K.oldTpark, m)
  if t then
    redis.call('ZREM', K.oldTpark, m)
    redis.call('ZADD', K.tpark, 'NX', t, m)
  end
  -- A non-empty lane is servable or parked (old entries may have come to a lane the new layout
  -- holds nowhere).
  if redis.call('ZLEXCOUNT', K.lanelist, lo_of(m), hi_of(m)) > 0
    and not redis.call('ZSCORE', K.lanes, m) and not redis.call('ZSCORE', K.tpark, m)
    and redis.call('ZLEXCOUNT', K.cpark, '[' .. string.sub(m, 2) .. '\\0' .. m, '[' .. string.sub(m, 2) .. '\\0' .. m) == 0 then
    lane_join(m)
  end
end
if moved > 0 and redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
return moved
`;

/**
 * unparkIdle — lanes parked on concurrency whose key has no delivery in flight (only an old-version
 * settle can leave them so) are served again; at most BATCH looked at. KEYS: see `SCRIPT_KEYS`.
 * Returns how many were released.
 */
export const UNPARK_IDLE = `${HELPERS}${FLOW_HELPERS}
local parked = redis.call('ZRANGE', K.cpark, 0, BATCH - 1)
local n = 0
for i = 1, #parked do
  local x = parked[i]
  local sep = string.find(x, '\\0', 1, true)
  if sep and tonumber(redis.call('HGET', K.running, string.sub(x, 1, sep - 1)) or '0') < 1 then
    redis.call('ZREM', K.cpark, x)
    lane_join(string.sub(x, sep + 1))
    n = n + 1
  end
end
if n > 0 and redis.call('LLEN', K.wake) == 0 then redis.call('RPUSH', K.wake, '1') end
return n
`;

/** The old keys of `lanes` (each lane's list, then the parking set of each distinct key) and those keys. */
export function legacyKeys(k: GroupKeys, lanes: readonly string[]): { laneKeys: string[]; keys: string[]; parkKeys: string[] } {
  const keys = [...new Set(lanes.map((m) => m.slice(1)).filter((key) => key !== ''))];
  return { laneKeys: lanes.map((m) => `${k.base}lane:${m}`), keys, parkKeys: keys.map((key) => `${k.base}cpark:${key}`) };
}

/** What the migration needs of its broker. */
export interface LegacyLanesContext {
  /** `SMEMBERS` of a key. */
  members(key: string): Promise<string[]>;
  /** Runs {@link MIGRATE_LANES} with `keys` declared and `args`. */
  migrate(keys: string[], args: Array<string | number>): Promise<unknown>;
  /** The fixed keys `names` of the group shard `k`. */
  fixed(k: GroupKeys, names: readonly KeyName[]): string[];
  /** Runs {@link UNPARK_IDLE} on the group shard `k`. */
  unparkIdle(k: GroupKeys): Promise<unknown>;
}

/** Most group shards whose last check time a {@link LegacyLanes} keeps. */
const MAX_TRACKED = 1000;

/** Runs the upgrade of a group shard when it is due (first use, then every {@link LEGACY_CHECK_MS}). */
export class LegacyLanes {
  /** When each group shard (by its base) was last checked. */
  private readonly checked = new Map<string, number>();
  /** When old lanes were last seen in each group shard (by its base). */
  private readonly seen = new Map<string, number>();

  /** @param ctx commands of the broker */
  constructor(private readonly ctx: LegacyLanesContext) {}

  /** A promise of the check when one is due for `k` (force: always), else undefined (nothing to wait for). */
  due(k: GroupKeys, force = false): Promise<void> | undefined {
    const now = Date.now();
    const last = this.checked.get(k.base);
    if (!force && last !== undefined && now - last < LEGACY_CHECK_MS) return undefined;
    if (this.checked.size >= MAX_TRACKED && last === undefined) {
      this.checked.clear();
      this.seen.clear();
    }
    this.checked.set(k.base, now);
    return this.run(k).catch((err: unknown) => {
      // Not checked after all: the next operation tries again.
      this.checked.delete(k.base);
      throw err;
    });
  }

  /** Moves every old lane of `k` into the new layout, {@link MIGRATE_BATCH} lanes per script call. */
  private async run(k: GroupKeys): Promise<void> {
    const lanes = (await this.ctx.members(k.laneset)).filter((m) => m !== '5' && m !== '');
    const now = Date.now();
    if (lanes.length > 0) this.seen.set(k.base, now);
    const seen = this.seen.get(k.base);
    if (seen !== undefined && now - seen > LEGACY_GRACE_MS) this.seen.delete(k.base);
    const fixed = this.ctx.fixed(k, MIGRATE_FIXED_KEYS);
    for (let i = 0; i < lanes.length; i += MIGRATE_BATCH) {
      const part = lanes.slice(i, i + MIGRATE_BATCH);
      const { laneKeys, keys, parkKeys } = legacyKeys(k, part);
      await this.ctx.migrate([...fixed, ...laneKeys, ...parkKeys], [part.length, ...part, keys.length, ...keys]);
    }
    if (this.seen.has(k.base)) await this.ctx.unparkIdle(k);
  }
}

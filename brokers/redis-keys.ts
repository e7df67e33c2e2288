/**
 * Key layout of the Redis broker. Every key of one group shares the Redis Cluster hash tag
 * `{group}`, so every script (`./redis-scripts.ts`) touches a single hash slot; a group with
 * `shards: n` has n such key sets, under `{group}` (shard 0, the layout of an unsharded group) and
 * `{group|1}` … `{group|n-1}`. Every key is a fixed key of its group shard, and each script declares
 * every key it touches in `KEYS` (`./redis-script-keys.ts`; Dragonfly and strict proxies refuse
 * undeclared keys): the lanes of flow control share one sorted set, the per-key parking another.
 *
 * | key                               | type   | content                                                    |
 * |-----------------------------------|--------|------------------------------------------------------------|
 * | `<prefix>:{<group>}:ready`        | LIST   | ids ready now, FIFO; `~<id>` marks a message delivered before |
 * | `<prefix>:{<group>}:delayed`      | ZSET   | id → `availableAt` (epoch ms)                              |
 * | `<prefix>:{<group>}:lease`        | ZSET   | delivery token `<id>:<serial>` → lease deadline (epoch ms) |
 * | `<prefix>:{<group>}:body`         | HASH   | id → body, for ready, delayed and in-flight messages       |
 * | `<prefix>:{<group>}:wake`         | LIST   | wake-up markers that idle fetches block on (BLPOP)         |
 * | `<prefix>:{<group>}:seq`          | STRING | counter for message ids, delivery token serials and lane order |
 * | `<prefix>:{<group>}:dead`         | ZSET   | dead letter id (= message id) → time dead-lettered (ms)    |
 * | `<prefix>:{<group>}:dead:body`    | HASH   | dead letter id → body                                      |
 * | `<prefix>:{<group>}:dead:reason`  | HASH   | dead letter id → JSON `{"code","message"}`                 |
 * | `<prefix>:{<group>}:shards`       | STRING | shard count of the group, set by its first broker (shard 0 only) |
 *
 * Flow control (only once the group used a priority, a key or a limit; see `./redis-flow-lua.ts`):
 *
 * | key                               | type   | content                                                    |
 * |-----------------------------------|--------|------------------------------------------------------------|
 * | `<prefix>:{<group>}:meta`         | HASH   | id → lane (level digit + key) of messages with a priority or key |
 * | `<prefix>:{<group>}:lanelist`     | ZSET   | ready entries of every lane but `5` (that is `ready`), all scored 0: `<lane>\0<order><entry>` |
 * | `<prefix>:{<group>}:serving`      | ZSET   | servable lanes → (9 − level)·2^44 + turn                   |
 * | `<prefix>:{<group>}:timepark`     | ZSET   | lanes parked until a time (key back-off, key rate)         |
 * | `<prefix>:{<group>}:cpark`        | ZSET   | lanes parked at their key's concurrency bound, all scored 0: `<key>\0<lane>` |
 * | `<prefix>:{<group>}:running`      | HASH   | key → deliveries in flight                                 |
 * | `<prefix>:{<group>}:kstate`       | HASH   | `g` group bucket, `b<key>` key bucket (`tokens:at`), `o<key>` back-off until, `gn` next group token while empty |
 * | `<prefix>:{<group>}:kidle`        | ZSET   | `kstate` field → when it is stale (key bucket full, back-off over); dropped by fetch |
 * | `<prefix>:{<group>}:turn`         | STRING | round-robin turn counter                                   |
 *
 * Before this layout (tasuki 0.1.0) each lane was a LIST `lane:<lane>`, listed in the SET `laneset`,
 * and each key's concurrency-parked lanes a SET `cpark:<key>`: keys named inside the scripts; the
 * servable and time-parked lanes were the ZSETs `lanes` and `tpark`. The new layout uses other names
 * for those two, so that processes of both versions can run side by side during a rolling deploy,
 * each serving its own lanes. A broker moves old data into the new keys on its first use of a group
 * and every few seconds on fetch (`./redis-legacy-lanes.ts`: the only script whose `KEYS` are not
 * all fixed: it also declares the old keys it empties).
 */

/** The fixed keys of one group: name → suffix after the group's base `<prefix>:{<group>}:`. */
export const KEY_SUFFIXES = {
  ready: 'ready',
  delayed: 'delayed',
  lease: 'lease',
  body: 'body',
  wake: 'wake',
  seq: 'seq',
  dead: 'dead',
  deadBody: 'dead:body',
  deadReason: 'dead:reason',
  shards: 'shards',
  meta: 'meta',
  lanelist: 'lanelist',
  lanes: 'serving',
  tpark: 'timepark',
  cpark: 'cpark',
  running: 'running',
  kstate: 'kstate',
  kidle: 'kidle',
  turn: 'turn',
  /** The layout before `lanelist` (read and emptied by the upgrade only): the SET of non-empty lanes, */
  laneset: 'laneset',
  /** … its servable lanes, */
  oldLanes: 'lanes',
  /** … and its lanes parked until a time. */
  oldTpark: 'tpark',
} as const;

/** The name of a fixed key of a group (see {@link KEY_SUFFIXES}). */
export type KeyName = keyof typeof KEY_SUFFIXES;

/** Names of all fixed keys of one group (one shard of it), and their common base. */
export type GroupKeys = { readonly [K in KeyName]: string } & {
  /** Prefix of every key of the group: `<prefix>:{<group>}:` (the old layout's lanes are named from it). */
  readonly base: string;
  /** The shard these keys belong to (0 for an unsharded group). */
  readonly shard: number;
};

/**
 * The hash tag of shard `shard` of `group`: `group` itself for shard 0 (today's layout), else
 * `group|shard` (`|` is not allowed in group names, so no shard tag is another group's).
 */
export function shardTag(group: string, shard: number): string {
  return shard === 0 ? group : `${group}|${shard}`;
}

/** Builds the key names of `group` (shard `shard`, default 0) under `prefix` (all in the hash slot of its tag). */
export function groupKeys(prefix: string, group: string, shard = 0): GroupKeys {
  const base = `${prefix}:{${shardTag(group, shard)}}:`;
  const out: Record<string, string | number> = { base, shard };
  for (const [name, suffix] of Object.entries(KEY_SUFFIXES)) out[name] = base + suffix;
  return out as unknown as GroupKeys;
}

/** Every fixed key of a group (shard), for `purge` (which first moves the old layout's lanes into them). */
export function allKeys(keys: GroupKeys): string[] {
  return (Object.keys(KEY_SUFFIXES) as KeyName[]).map((name) => keys[name]);
}

/** Most groups whose key names a {@link KeyCache} keeps. */
const MAX_CACHED_GROUPS = 1000;

/** Key names by group (and shard), built once per group instead of once per operation. */
export class KeyCache {
  private readonly cache = new Map<string, GroupKeys>();

  /** @param prefix key prefix of the broker */
  constructor(private readonly prefix: string) {}

  /** The id of a group's shard in tick batches and caches: `group` for shard 0, else `group|shard`. */
  static idOf(group: string, shard: number): string {
    return shard === 0 ? group : `${group}|${shard}`;
  }

  /** The key names of the group shard with id `id` (see {@link KeyCache.idOf}). */
  forId(id: string): GroupKeys {
    const bar = id.indexOf('|');
    return bar < 0 ? this.get(id) : this.get(id.slice(0, bar), Number(id.slice(bar + 1)));
  }

  /** The key names of `group` (shard `shard`, default 0). */
  get(group: string, shard = 0): GroupKeys {
    const id = shard === 0 ? group : `${group}|${shard}`;
    let k = this.cache.get(id);
    if (k === undefined) {
      k = groupKeys(this.prefix, group, shard);
      // Bounded: a worker touches a handful of groups; a client sending to very many is not cached past 1000.
      if (this.cache.size < MAX_CACHED_GROUPS) this.cache.set(id, k);
    }
    return k;
  }
}

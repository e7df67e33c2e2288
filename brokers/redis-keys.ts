/**
 * Key layout of the Redis broker. Every key of one group shares the Redis Cluster hash tag
 * `{group}`, so every script (`./redis-scripts.ts`) touches a single hash slot:
 *
 * | key                               | type   | content                                                    |
 * |-----------------------------------|--------|------------------------------------------------------------|
 * | `<prefix>:{<group>}:ready`        | LIST   | ids ready now, FIFO; `~<id>` marks a message delivered before |
 * | `<prefix>:{<group>}:delayed`      | ZSET   | id → `availableAt` (epoch ms)                              |
 * | `<prefix>:{<group>}:lease`        | ZSET   | delivery token `<id>:<serial>` → lease deadline (epoch ms) |
 * | `<prefix>:{<group>}:body`         | HASH   | id → body, for ready, delayed and in-flight messages       |
 * | `<prefix>:{<group>}:wake`         | LIST   | wake-up markers that idle fetches block on (BLPOP)         |
 * | `<prefix>:{<group>}:seq`          | STRING | counter for message ids and delivery token serials         |
 * | `<prefix>:{<group>}:dead`         | ZSET   | dead letter id (= message id) → time dead-lettered (ms)    |
 * | `<prefix>:{<group>}:dead:body`    | HASH   | dead letter id → body                                      |
 * | `<prefix>:{<group>}:dead:reason`  | HASH   | dead letter id → JSON `{"code","message"}`                 |
 *
 * Flow control (only once the group used a priority, a key or a limit; see `./redis-lua.ts`):
 *
 * | key                               | type   | content                                                    |
 * |-----------------------------------|--------|------------------------------------------------------------|
 * | `<prefix>:{<group>}:meta`         | HASH   | id → lane (level digit + key) of messages with a priority or key |
 * | `<prefix>:{<group>}:lane:<lane>`  | LIST   | ready ids of one lane (`ready` is lane `5`)                |
 * | `<prefix>:{<group>}:lanes`        | ZSET   | servable lanes → (9 − level)·2^44 + turn                   |
 * | `<prefix>:{<group>}:laneset`      | SET    | every non-empty lane (counts, purge)                       |
 * | `<prefix>:{<group>}:tpark`        | ZSET   | lanes parked until a time (key back-off, key rate)         |
 * | `<prefix>:{<group>}:cpark:<key>`  | SET    | lanes of a key parked at its concurrency bound             |
 * | `<prefix>:{<group>}:running`      | HASH   | key → deliveries in flight                                 |
 * | `<prefix>:{<group>}:kstate`       | HASH   | `g` group bucket, `b<key>` key bucket (`tokens:at`), `o<key>` back-off until, `gn` next group token while empty |
 * | `<prefix>:{<group>}:kidle`        | ZSET   | `kstate` field → when it is stale (key bucket full, back-off over); dropped by fetch |
 * | `<prefix>:{<group>}:turn`         | STRING | round-robin turn counter                                   |
 */

/** Names of all keys of one group. */
export interface GroupKeys {
  /** LIST of ready ids. */
  readonly ready: string;
  /** ZSET of delayed ids by due time. */
  readonly delayed: string;
  /** ZSET of in-flight tokens by lease deadline. */
  readonly lease: string;
  /** HASH id → body. */
  readonly body: string;
  /** LIST of wake-up markers. */
  readonly wake: string;
  /** Counter for ids and token serials. */
  readonly seq: string;
  /** ZSET dead letter id → time. */
  readonly dead: string;
  /** HASH dead letter id → body. */
  readonly deadBody: string;
  /** HASH dead letter id → reason JSON. */
  readonly deadReason: string;
  /** Prefix of every key of the group (flow-control scripts derive their keys from it). */
  readonly base: string;
}

/** Builds the key names of `group` under `prefix` (all in the hash slot of `{group}`). */
export function groupKeys(prefix: string, group: string): GroupKeys {
  const base = `${prefix}:{${group}}:`;
  return {
    ready: base + 'ready',
    delayed: base + 'delayed',
    lease: base + 'lease',
    body: base + 'body',
    wake: base + 'wake',
    seq: base + 'seq',
    dead: base + 'dead',
    deadBody: base + 'dead:body',
    deadReason: base + 'dead:reason',
    base,
  };
}

/** Every key of a group, for `purge`. */
export function allKeys(keys: GroupKeys): string[] {
  const b = keys.base;
  return [keys.ready, keys.delayed, keys.lease, keys.body, keys.wake, keys.seq, keys.dead, keys.deadBody, keys.deadReason,
    b + 'meta', b + 'lanes', b + 'laneset', b + 'tpark', b + 'running', b + 'kstate', b + 'kidle', b + 'turn'];
}

/** Most groups whose key names a {@link KeyCache} keeps. */
const MAX_CACHED_GROUPS = 1000;

/** Key names by group, built once per group instead of once per operation. */
export class KeyCache {
  private readonly cache = new Map<string, GroupKeys>();

  /** @param prefix key prefix of the broker */
  constructor(private readonly prefix: string) {}

  /** The key names of `group`. */
  get(group: string): GroupKeys {
    let k = this.cache.get(group);
    if (k === undefined) {
      k = groupKeys(this.prefix, group);
      // Bounded: a worker touches a handful of groups; a client sending to very many is not cached past 1000.
      if (this.cache.size < MAX_CACHED_GROUPS) this.cache.set(group, k);
    }
    return k;
  }
}

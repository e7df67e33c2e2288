/**
 * The task index and the record store of the Redis result backend.
 *
 * Index keys, for the prefix `P` and a group `G` (`|` cannot appear in a group name, so no group's
 * keys meet another's):
 * - `P:ix|G|STATUS` — sorted set of the group's task ids in that status, scored by the state's
 *   `updatedAt` (a list of every status merges the seven);
 * - `P:ix-groups` — set of the groups with indexed tasks.
 * The write script (`./redis-scripts.ts`) keeps them inside each state write, with no extra round
 * trip: out of the previous status's set, into the new one's, trimmed to its cap in steps (a set
 * holds at most `cap + ⌊cap / 100⌋` entries; an add past that trims it to its `cap` newest). An entry
 * whose state has expired or was deleted is removed when a query meets it (reads check the state
 * keys; counts first sweep the oldest entries).
 *
 * Record keys: `P:rec|KIND|KEY` (string with the record's expiry) and the set `P:rec|KIND` of its
 * keys, for listing (a claim's key is not listed).
 *
 * The write script declares these keys (after the writes' own keys). On a Redis Cluster the keys of
 * a group share the hash tag `{G}` and are kept by a second call (`./redis-cluster-index.ts`).
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import type { IndexPage, IndexQuery, RecordStore, StoredRecord, TaskIndex } from '../src/backend.js';
import { compareNewestFirst, decodeCursor, encodeCursor, matches } from '../src/ops/index-query.js';
import { parseTaskState, TASK_STATUSES, type TaskState, type TaskStatus } from '../src/state.js';
import { taskTag } from './redis-keys.js';
import type { IndexKeeping } from './redis-writes.js';

/** Default most entries kept per group and status. */
export const DEFAULT_INDEX_CAP = 10_000;

/**
 * The index keys of a backend prefix. On a Redis Cluster a group's sets share the hash tag `{G}`
 * (`P:ix|{G}|STATUS`) and are moved by a second call after the writes (`./redis-cluster-index.ts`).
 */
export function indexKeeping(prefix: string, cap: number, cluster = false): IndexKeeping {
  // Every write asks for its group's base: each is made once (the same string each time, its hash kept).
  const bases = new Map<string, string>();
  const base = (group: string): string => {
    let b = bases.get(group);
    if (b === undefined) {
      if (bases.size >= MAX_CACHED_BASES) bases.clear();
      bases.set(group, (b = cluster ? `${prefix}:ix|{${group}}` : `${prefix}:ix|${group}`));
    }
    return b;
  };
  if (cluster) return { cap, base, groupsKey: `${prefix}:ix-groups`, cluster: true };
  return { cap, base, groupsKey: `${prefix}:ix-groups` };
}

/** Most groups whose index key base {@link indexKeeping} keeps made. */
const MAX_CACHED_BASES = 1024;

/** Entries checked per sweep step. */
const SWEEP_BATCH = 200;

/** {@link TaskIndex} on the backend's sorted sets. */
export class RedisTaskIndex implements TaskIndex {
  /**
   * @param client the backend's connection
   * @param prefix key prefix
   * @param keys index key layout
   * @param wrap turns a driver failure into the backend's typed error
   */
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly keys: IndexKeeping,
    private readonly wrap: (err: unknown, what: string) => Error,
  ) {}

  private stateKey(id: string): string {
    return `${taskTag(this.prefix, id)}:state`;
  }

  /** Current states of `ids` (null: gone), removing gone ones from `set`. */
  private async states(set: string, ids: string[]): Promise<Array<TaskState | null>> {
    if (ids.length === 0) return [];
    const keys = ids.map((id) => this.stateKey(id));
    // On a cluster the states live in many slots: one GET each (auto-pipelined per node).
    const texts = this.client.isCluster ? await Promise.all(keys.map((k) => this.client.get(k))) : await this.client.mget(keys);
    const gone = ids.filter((_, i) => texts[i] === null);
    if (gone.length > 0) await this.client.zrem(set, ...gone);
    return texts.map((t, i) => (t === null ? null : parseTaskState(t, this.stateKey(ids[i] as string), ids[i])));
  }

  /** @inheritdoc */
  async list(q: IndexQuery): Promise<IndexPage> {
    try {
      const statuses = q.status === undefined ? TASK_STATUSES : [q.status];
      const found = (await Promise.all(statuses.map((s) => this.listSet(s, q)))).flat();
      found.sort(compareNewestFirst);
      const items = found.slice(0, q.limit);
      const last = items[items.length - 1];
      return { items, cursor: found.length > q.limit && last !== undefined ? encodeCursor(last) : null };
    } catch (err) {
      throw this.wrap(err, 'index list');
    }
  }

  /** Up to `limit + 1` matches of `q` in the set of `status`, newest first (an entry whose state has moved on is skipped). */
  private async listSet(status: TaskStatus, q: IndexQuery): Promise<TaskState[]> {
    const set = `${this.keys.base(q.group)}|${status}`;
    const after = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
    let max = q.until === undefined ? '+inf' : `(${q.until}`;
    if (after !== undefined && (q.until === undefined || after.at < q.until)) max = String(after.at);
    const min = q.since === undefined ? '-inf' : String(q.since);
    const found: TaskState[] = [];
    const batch = Math.min(1000, Math.max(50, 2 * q.limit + 1));
    for (let offset = 0; found.length <= q.limit; offset += batch) {
      const raw = await this.client.zrevrangebyscore(set, max, min, 'LIMIT', offset, batch);
      const states = await this.states(set, raw);
      for (const s of states) if (s !== null && s.status === status && matches(s, q, after)) found.push(s);
      if (raw.length < batch) break;
      // Gone entries were removed: the next page starts that many earlier.
      offset -= states.filter((s) => s === null).length;
    }
    return found.slice(0, q.limit + 1);
  }

  /** @inheritdoc */
  async groups(): Promise<string[]> {
    try {
      return (await this.client.smembers(this.keys.groupsKey)).sort();
    } catch (err) {
      throw this.wrap(err, 'index groups');
    }
  }

  /** Removes the oldest entries of `set` whose states are gone (expired in order, as they mostly are). */
  private async sweep(set: string): Promise<void> {
    for (;;) {
      const ids = await this.client.zrange(set, 0, SWEEP_BATCH - 1);
      if (ids.length === 0) return;
      const states = await this.states(set, ids);
      const gone = states.filter((s) => s === null).length;
      if (gone === 0 || ids.length < SWEEP_BATCH) return;
    }
  }

  /** @inheritdoc */
  async statusCounts(group: string): Promise<Partial<Record<TaskStatus, number>>> {
    try {
      const base = this.keys.base(group);
      const out: Partial<Record<TaskStatus, number>> = {};
      await Promise.all(
        TASK_STATUSES.map(async (s) => {
          await this.sweep(`${base}|${s}`);
          out[s] = await this.client.zcard(`${base}|${s}`);
        }),
      );
      return out;
    } catch (err) {
      throw this.wrap(err, 'index counts');
    }
  }
}

/** How often puts with an expiry prune their kind's set of expired members (ms). */
export const RECORD_PRUNE_MS = 60_000;

/** {@link RecordStore} on string keys with expiries plus a set per kind (pruned by `list` and by puts with an expiry). */
export class RedisRecordStore implements RecordStore {
  /**
   * @param client the backend's connection @param prefix key prefix @param wrap typed errors
   * @param tagged on a Redis Cluster: the keys of one kind share the hash tag `{KIND}`
   *   (`P:rec|{KIND}|KEY`, `P:rec|{KIND}`), so a put or remove stays in one slot
   */
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly wrap: (err: unknown, what: string) => Error,
    private readonly tagged = false,
    private readonly pruneEveryMs = RECORD_PRUNE_MS,
  ) {}

  /** When each kind's set was last pruned of expired members by a put (epoch ms). */
  private readonly pruned = new Map<string, number>();

  private kindKey(kind: string): string {
    return this.tagged ? `${this.prefix}:rec|{${kind}}` : `${this.prefix}:rec|${kind}`;
  }

  private key(kind: string, key: string): string {
    return `${this.kindKey(kind)}|${key}`;
  }

  /** @inheritdoc */
  async put(kind: string, key: string, value: string, ttlMs: number | null): Promise<void> {
    try {
      const m = this.client.multi();
      if (ttlMs === null) m.set(this.key(kind, key), value);
      else m.set(this.key(kind, key), value, 'PX', Math.max(1, Math.ceil(ttlMs)));
      m.sadd(this.kindKey(kind), key);
      await m.exec();
    } catch (err) {
      throw this.wrap(err, 'record put');
    }
    if (ttlMs !== null) this.pruneNow(kind);
  }

  /**
   * Puts with an expiry (heartbeats) prune their kind's set at most once per `pruneEveryMs` in this
   * process, so members whose record expired do not pile up when nobody lists the kind.
   */
  private pruneNow(kind: string): void {
    const now = Date.now();
    const last = this.pruned.get(kind);
    if (last === undefined) {
      this.pruned.set(kind, now);
      return;
    }
    if (now - last < this.pruneEveryMs) return;
    this.pruned.set(kind, now);
    this.list(kind).catch(() => undefined);
  }

  /** @inheritdoc */
  async get(kind: string, key: string): Promise<string | null> {
    try {
      return await this.client.get(this.key(kind, key));
    } catch (err) {
      throw this.wrap(err, 'record get');
    }
  }

  /** @inheritdoc */
  async list(kind: string): Promise<StoredRecord[]> {
    try {
      const keys = await this.client.smembers(this.kindKey(kind));
      if (keys.length === 0) return [];
      const values = await this.client.mget(keys.map((k) => this.key(kind, k)));
      const gone = keys.filter((_, i) => values[i] === null);
      if (gone.length > 0) await this.client.srem(this.kindKey(kind), ...gone);
      const out: StoredRecord[] = [];
      keys.forEach((key, i) => {
        const value = values[i];
        if (value !== null && value !== undefined) out.push({ key, value });
      });
      return out;
    } catch (err) {
      throw this.wrap(err, 'record list');
    }
  }

  /** @inheritdoc */
  async remove(kind: string, key: string): Promise<void> {
    try {
      await this.client.multi().del(this.key(kind, key)).srem(this.kindKey(kind), key).exec();
    } catch (err) {
      throw this.wrap(err, 'record remove');
    }
  }

  /** @inheritdoc */
  async claim(kind: string, key: string, value: string, ttlMs: number): Promise<boolean> {
    try {
      return (await this.client.set(this.key(kind, key), value, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')) === 'OK';
    } catch (err) {
      throw this.wrap(err, 'record claim');
    }
  }
}

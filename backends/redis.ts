/**
 * The Redis result backend of tasuki (`tasuki/backends/redis`), built on ioredis 5.
 *
 * Each task has a state key and a result key under one hash tag (`./redis-keys.ts`). A write is
 * atomic on the server: the Lua script (`./redis-scripts.ts`) checks the guard against the stored
 * state and sets state and result with their own expiries; the writes of one event-loop tick travel
 * together (`./redis-writes.ts`), and so do the reads (`./redis-reads.ts`). A write that stores a
 * final state is announced on the task's pub/sub channel (`./redis-watch.ts`). This file holds the
 * operations of the `Backend` interface; the options are in `./redis-options.ts`, the connection in
 * `./redis-connection.ts`.
 */
import type { Backend, FinalNotice, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError, ValueTooLargeError, safeCause } from '../src/errors.js';
import { parseTaskState, TASK_STATUSES, type TaskState } from '../src/state.js';
import { finalChannel, redisKeys, taskTag } from './redis-keys.js';
import { ReadBatcher } from './redis-reads.js';
import { WRITE_COMMAND, WRITE_SCRIPT } from './redis-scripts.js';
import { BackendConnection } from './redis-connection.js';
import type { RedisBackendOptions } from './redis-options.js';
import { FinalWatches } from './redis-watch.js';
import { RedisScheduleStore } from './redis-schedules.js';
import { RedisJournal } from './redis-journal.js';
import { RedisRateLimits } from './redis-rate-limits.js';
import { failureText } from '../brokers/redis-connection.js';
import type { RedisClient } from '../brokers/redis-cluster.js';
import { checkWaitReplicas } from '../brokers/redis-replicas.js';
import { CLUSTER_INDEX_COMMAND, CLUSTER_INDEX_SCRIPT } from './redis-cluster-index.js';
import { emitDurabilityWarning, watchDurability } from '../brokers/redis-durability.js';
import { REDIS_MAX_STRING, WriteBatcher, prepareWrite, type PendingWrite, type IndexKeeping } from './redis-writes.js';
import { DEFAULT_INDEX_CAP, indexKeeping, RedisRecordStore, RedisTaskIndex } from './redis-index.js';

export { encodeIdForKey, finalChannel, redisKeys } from './redis-keys.js';
export { normalizeExpiry } from './redis-writes.js';
export { redisReconnectDelay } from './redis-connection.js';
export type { RedisBackendLogger, RedisBackendOptions } from './redis-options.js';

/** Result backend on Redis: one server, or a Redis Cluster (`cluster` option). */
export class RedisBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'redis';
  /** Key prefix in use. */
  readonly prefix: string;
  /** Flow journals (`P:{ID}:journal`, see `./redis-journal.ts`). */
  readonly journal: RedisJournal;
  /** The client and its bounded connect (`./redis-connection.ts`). */
  private readonly conn: BackendConnection;
  private readonly client: RedisClient;
  private readonly onError: ((err: Error) => void) | undefined;
  private closed = false;
  private lastError: Error | undefined;
  /** Bound of one operation (ms), see {@link RedisBackendOptions.operationTimeoutMs}. */
  private readonly opTimeout: number;
  /** Reads issued in the current tick, sent together at its end. */
  private readonly reads: ReadBatcher;
  /** Writes issued in the current tick, sent together at its end. */
  private readonly writes: WriteBatcher;
  /** Listeners of final writes ({@link watchFinal}). */
  private readonly watches: FinalWatches;
  /** How writes keep the task index; undefined when it is off. */
  private readonly keeping: IndexKeeping | undefined;
  /** Whether writes with a basis are sent as deltas ({@link RedisBackendOptions.deltaWrites}). */
  private readonly deltas: boolean;
  /** Whether stored records name their task id ({@link RedisBackendOptions.recordIds}). */
  private readonly recordIds: boolean;
  /** @inheritdoc */
  readonly index: RedisTaskIndex | undefined;
  /** @inheritdoc */
  readonly records: RedisRecordStore;
  /** @inheritdoc */
  readonly scheduleStore: RedisScheduleStore;
  /** Shared token buckets (a group `rateLimit` on a broker that cannot enforce it; `./redis-rate-limits.ts`). */
  readonly rateLimits: RedisRateLimits;

  /** @param options see {@link RedisBackendOptions} */
  constructor(options: RedisBackendOptions = {}) {
    this.prefix = options.prefix ?? 'tasuki';
    if (this.prefix.length === 0 || /[{}]/.test(this.prefix)) {
      throw new InvalidOptionError(`redis backend prefix must be non-empty and contain no "{" or "}", got ${JSON.stringify(this.prefix)}`);
    }
    this.onError = options.onError;
    this.conn = new BackendConnection(options);
    this.client = this.conn.client;
    this.opTimeout = this.conn.opTimeout;
    const onCluster = this.conn.onCluster;
    // ioredis emits 'error' on every failed (re)connection attempt; without a listener Node would
    // treat it as unhandled. Operations report failures through their own rejections.
    this.client.on('error', this.onConnectionError);
    this.client.defineCommand(WRITE_COMMAND, { lua: WRITE_SCRIPT });
    const logger = options.logger;
    // Eviction only: an evicted state or result is an outcome gone without an error. (Tasks
    // surviving a restart is the broker's concern; it checks persistence too.)
    watchDurability(this.client, { module: 'redis backend', persistence: false }, logger ? (msg, fields) => logger.warn(msg, fields) : emitDurabilityWarning);
    this.reads = new ReadBatcher(this.client);
    this.journal = new RedisJournal(this.client, this.prefix, (err, op, bytes) => this.wrap(err, op, bytes));

    this.watches = new FinalWatches(this.client, this.onConnectionError, (err) => this.wrap(err, 'watchFinal'));
    const cap = options.index === false ? 0 : options.index?.cap ?? DEFAULT_INDEX_CAP;
    if (options.index !== false && (!Number.isInteger(cap) || cap < 1)) throw new InvalidOptionError(`index.cap must be a whole number ≥ 1, got ${String(cap)}`);
    this.keeping = options.index === false ? undefined : indexKeeping(this.prefix, cap, onCluster);
    this.deltas = options.deltaWrites === true;
    this.recordIds = options.recordIds === true;
    this.writes = new WriteBatcher(this.client, (err, bytes) => this.wrap(err, 'write', bytes), this.keeping?.groupsKey, checkWaitReplicas(options.waitReplicas), cap);
    if (onCluster) this.client.defineCommand(CLUSTER_INDEX_COMMAND, { numberOfKeys: TASK_STATUSES.length, lua: CLUSTER_INDEX_SCRIPT });
    const wrap = (err: unknown, op: string): Error => this.wrap(err, op);
    this.index = this.keeping === undefined ? undefined : new RedisTaskIndex(this.client, this.prefix, this.keeping, wrap);
    this.records = new RedisRecordStore(this.client, this.prefix, wrap, onCluster);
    this.scheduleStore = new RedisScheduleStore(this.client, this.prefix, () => this.connect(), (err, op) => this.wrap(err, op));
    this.rateLimits = new RedisRateLimits(this.client, this.prefix, wrap);
  }

  private readonly onConnectionError = (err: Error): void => {
    this.lastError = err;
    // The driver's error may hold the arguments of the command that failed (AUTH: the password).
    if (this.onError) this.onError(safeCause(err) as Error);
  };

  /** Connects; rejects with `ConnectionError` when Redis is not ready within `operationTimeoutMs`. Idempotent. */
  async connect(): Promise<void> {
    this.check();
    try {
      await this.conn.ready();
    } catch (err) {
      throw this.wrap(err, 'connect');
    }
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watches.close();
    await this.conn.close(this.onConnectionError);
  }

  /** @inheritdoc */
  write(w: StateWrite): Promise<WriteOutcome> {
    let p: PendingWrite;
    try {
      this.check();
      p = prepareWrite(this.prefix, w, this.keeping, this.deltas, this.recordIds);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.writes.add(p);
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const key = `${taskTag(this.prefix, id)}:state`;
    let text: string | null;
    try {
      text = await this.reads.get(key);
    } catch (err) {
      throw this.wrap(err, 'read');
    }
    return text === null ? null : parseTaskState(text, key, id);
  }

  /**
   * Reads many states. The GETs are issued together and travel in one pipeline (see `./redis-reads.ts`),
   * one GET per key (each key reports its own error, as a lone read would).
   */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    if (ids.length === 0) return [];
    const keys = ids.map((id) => `${taskTag(this.prefix, id)}:state`);
    let texts: Array<string | null>;
    try {
      texts = await Promise.all(keys.map((k) => this.reads.get(k)));
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    return texts.map((t, i) => (t === null ? null : parseTaskState(t, keys[i] as string, ids[i])));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    try {
      return await this.reads.get(`${taskTag(this.prefix, id)}:result`);
    } catch (err) {
      throw this.wrap(err, 'readResult');
    }
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    const keys = redisKeys(this.prefix, id);
    try {
      await this.client.del(keys.state, keys.result);
    } catch (err) {
      throw this.wrap(err, 'delete');
    }
  }

  /**
   * Calls `listener` when a write of this backend's scripts stores a final state for `id` (they
   * publish on {@link finalChannel}). One subscriber connection per backend instance, created on
   * first use and closed by {@link close}; one SUBSCRIBE per watched id, shared by its listeners and
   * ended (UNSUBSCRIBE) when the last of them stops. Resolves once Redis has acknowledged the
   * SUBSCRIBE; rejects with a `TasukiError` when it cannot subscribe. After a reconnection ioredis
   * subscribes again by itself; a write made while the connection was down is not announced (callers
   * keep polling).
   */
  async watchFinal(id: string, listener: (notice?: FinalNotice) => void): Promise<() => void> {
    this.check();
    return this.watches.watch(finalChannel(this.prefix, id), id, listener);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('redis backend');
  }

  private wrap(err: unknown, op: string, bytes?: number): TasukiError {
    if (err instanceof TasukiError) return err;
    if (this.closed) return new ClosedError('redis backend');
    const message = failureText(err, this.opTimeout);
    if (bytes !== undefined && /proto-max-bulk-len|exceeds maximum allowed size|string exceeds/i.test(message)) {
      return new ValueTooLargeError(bytes, REDIS_MAX_STRING);
    }
    const last = this.lastError && this.lastError !== err ? ` (last connection error: ${failureText(this.lastError, this.opTimeout)})` : '';
    return new ConnectionError(`redis backend: ${op} failed: ${message}${last}`, err);
  }
}

/**
 * The Redis result backend of tasuki (`tasuki/backends/redis`), built on ioredis 5.
 *
 * Each task has a state key and a result key under one hash tag (`./redis-keys.ts`). A write is
 * atomic on the server: the Lua script (`./redis-scripts.ts`) checks the guard against the stored
 * state and sets state and result with their own expiries; the writes of one event-loop tick travel
 * together (`./redis-writes.ts`), and so do the reads (`./redis-reads.ts`). A write that stores a
 * final state is announced on the task's pub/sub channel (`./redis-watch.ts`). This file holds the
 * options, the connection and the operations of the `Backend` interface.
 */
import { Redis, type Cluster, type RedisOptions } from 'ioredis';
import type { Backend, FinalNotice, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError, ValueTooLargeError, safeCause } from '../src/errors.js';
import { parseTaskState, TASK_STATUSES, type TaskState } from '../src/state.js';
import { finalChannel, redisKeys, taskTag } from './redis-keys.js';
import { ReadBatcher } from './redis-reads.js';
import { WRITE_COMMAND, WRITE_SCRIPT } from './redis-scripts.js';
import { FinalWatches } from './redis-watch.js';
import { RedisScheduleStore } from './redis-schedules.js';
import { RedisJournal } from './redis-journal.js';
import { RedisRateLimits } from './redis-rate-limits.js';
import { failureText, resolveOperationTimeout } from '../brokers/redis-connection.js';
import type { RedisBroker, SharedConnection } from '../brokers/redis.js';
import { createCluster, isCluster, type RedisClient, type RedisClusterConnection } from '../brokers/redis-cluster.js';
import { checkWaitReplicas, type WaitReplicas } from '../brokers/redis-replicas.js';
import { CLUSTER_INDEX_COMMAND, CLUSTER_INDEX_SCRIPT } from './redis-cluster-index.js';
import { emitDurabilityWarning, watchDurability } from '../brokers/redis-durability.js';
import { REDIS_MAX_STRING, WriteBatcher, prepareWrite, type PendingWrite, type IndexKeeping } from './redis-writes.js';
import { DEFAULT_INDEX_CAP, indexKeeping, RedisRecordStore, RedisTaskIndex } from './redis-index.js';

export { encodeIdForKey, finalChannel, redisKeys } from './redis-keys.js';
export { normalizeExpiry } from './redis-writes.js';

/** Options of {@link RedisBackend}. */
export interface RedisBackendOptions {
  /**
   * Redis URL (`redis://user:pass@host:6379/0`, `rediss://…`) or ioredis options.
   * Default `redis://127.0.0.1:6379`. Options given here override tasuki's defaults (lazy connect,
   * auto-pipelining, capped exponential reconnect backoff). An ioredis `Cluster` runs the backend on
   * that Redis Cluster (the backend makes its own duplicate; the given client stays yours to close).
   */
  connection?: string | RedisOptions | Cluster;
  /**
   * Runs the backend on a Redis Cluster: startup nodes and ioredis Cluster options (instead of
   * `connection`). The keys of one task share its hash tag; the writes of one tick travel in one
   * script call per hash slot; the task index (`P:ix|{G}|STATUS`) is moved by a second call per
   * group right after them; records are tagged per kind (`P:rec|{KIND}|KEY`).
   */
  cluster?: RedisClusterConnection;
  /** Prefix of every key (default `tasuki`); must not contain `{` or `}`. */
  prefix?: string;
  /**
   * Called with connection errors as they happen (the client reconnects by itself); default: ignored.
   * Each is a copy of the driver's error without credentials (see `safeCause` in `src/errors.ts`).
   */
  onError?: (err: Error) => void;
  /**
   * How long one operation (read, write, delete, subscribe, and `connect`) waits for Redis — for its
   * answer, and for a reconnect while Redis is unreachable — before it rejects with
   * `ConnectionError` (`ERR_CONNECTION`); reconnecting goes on with backoff. Such a write's outcome
   * is unknown (it may still take effect). Default: the `commandTimeout` of `connection` when it has
   * one, else 15000. Integer ms.
   */
  operationTimeoutMs?: number;
  /**
   * Receives the durability warning (a `maxmemory-policy` other than `noeviction`, checked at the
   * first connection). Default: a Node process warning (`TASUKI_REDIS_DURABILITY`).
   */
  logger?: RedisBackendLogger;
  /**
   * The task index (`client.ops.list`, counts by status, the watchdog), kept inside the write script
   * (no extra round trip; see `./redis-index.ts`). Default on with a cap of 10 000 entries per group
   * and status, trimmed in steps: a set holds at most `cap + ⌊cap / 100⌋` entries (10 100), and an add
   * that takes it past that trims it back to its `cap` newest; `false` turns it off (then a lone
   * `absent` write is the native `SET NX GET` again).
   */
  index?: false | { cap?: number };
  /**
   * Makes every state write wait until this many replicas have it (`WAIT`, in one pipeline with the
   * write): an outcome that was stored survives the failover of its master. Fewer replicas within
   * `timeoutMs` reject the write with `ConnectionError` (outcome unknown). Default: no wait.
   */
  waitReplicas?: WaitReplicas;
  /**
   * Sends the backend's commands on this Redis broker's command connection instead of a connection
   * of its own (one Redis node, not a Cluster; give no `connection`, `cluster` or
   * `operationTimeoutMs`: the broker's apply). The commands of one tick on that connection leave in
   * one socket write, so a send's publish and its `sent` write, or a worker's ack and its next state
   * write, cost one write and one reply read instead of two of each. The connection is shut once
   * the broker and the backend have both closed, in either order. `watchFinal` keeps its own
   * subscriber connection. Default: a connection of the backend's own.
   */
  shareConnection?: Pick<RedisBroker, 'lendConnection'>;
  /**
   * Delta writes (`./redis-delta.ts`): a write whose caller names the state it expects stored (the
   * worker's claim and final writes do) sends only its edits from it, which the write script checks
   * (length and SHA-1 prefix of the stored text) and applies; any other stored text makes the write
   * go again whole, so outcomes are the same. Measured: about 200 fewer bytes to Redis per task, for
   * about 7 µs more Redis CPU per task (the hash and the string building). Default off.
   */
  deltaWrites?: boolean;
}

/** Receives warnings of the Redis backend. */
export interface RedisBackendLogger {
  /** Logs one warning with optional structured fields. */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** Reconnect delay in ms for the n-th attempt: 100, 200, 400 … capped at 3 s, with up to 20 % jitter. */
export function redisReconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 10), 3000);
  return Math.round(base * (1 - 0.2 * random()));
}

/** Result backend on Redis: one server, or a Redis Cluster (`cluster` option). */
export class RedisBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'redis';
  /** Key prefix in use. */
  readonly prefix: string;
  /** Flow journals (`P:{ID}:journal`, see `./redis-journal.ts`). */
  readonly journal: RedisJournal;
  private readonly client: RedisClient;
  /** The broker's connection this backend uses (`shareConnection`), if any. */
  private readonly shared: SharedConnection | undefined;
  private readonly onError: ((err: Error) => void) | undefined;
  private closed = false;
  private connecting: Promise<void> | undefined;
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
    const defaults: RedisOptions = {
      lazyConnect: true,
      enableAutoPipelining: true,
      // The backend coalesces its reads and writes itself (per tick): auto-pipelining them would only
      // add a setImmediate hop and make them wait for the pipeline in flight.
      autoPipeliningIgnoredCommands: [WRITE_COMMAND, 'set', 'get'],
      retryStrategy: (times: number) => redisReconnectDelay(times),
    };
    if (options.cluster !== undefined && options.connection !== undefined) throw new InvalidOptionError('give either connection or cluster, not both');
    const connection = options.cluster ?? options.connection ?? 'redis://127.0.0.1:6379';
    if (options.shareConnection !== undefined && (options.cluster ?? options.connection ?? options.operationTimeoutMs) !== undefined) {
      throw new InvalidOptionError('shareConnection takes the broker\'s connection and operation timeout: give no connection, cluster or operationTimeoutMs');
    }
    this.shared = options.shareConnection?.lendConnection();
    this.opTimeout = this.shared?.operationTimeoutMs ?? resolveOperationTimeout(options.operationTimeoutMs, connection);
    // Every command (also one waiting in the offline queue for a reconnect) rejects after the bound;
    // the subscriber connection, a duplicate, inherits it.
    const bound: RedisOptions = { commandTimeout: this.opTimeout };
    const onCluster = this.shared === undefined && typeof connection === 'object' && (isCluster(connection) || 'nodes' in connection);
    if (this.shared !== undefined) {
      this.client = this.shared.client;
    } else if (typeof connection === 'object' && (isCluster(connection) || 'nodes' in connection)) {
      if (!isCluster(connection) && (!Array.isArray(connection.nodes) || connection.nodes.length === 0)) {
        throw new InvalidOptionError('cluster.nodes must be a non-empty array of startup nodes');
      }
      this.client = createCluster(connection, bound, {
        enableAutoPipelining: true,
        autoPipeliningIgnoredCommands: [WRITE_COMMAND, 'set'],
        clusterRetryStrategy: (times: number) => redisReconnectDelay(times),
      });
    } else {
      this.client =
        typeof connection === 'string' ? new Redis(connection, { ...defaults, ...bound }) : new Redis({ ...defaults, ...connection, ...bound });
    }
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
    if (this.client.status === 'ready') return;
    if (this.shared !== undefined) {
      try {
        return await this.shared.connect();
      } catch (err) {
        throw this.wrap(err, 'connect');
      }
    }
    if (this.client.status === 'wait') {
      this.connecting ??= this.client.connect().finally(() => {
        this.connecting = undefined;
      });
    }
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not ready within ${this.opTimeout} ms (operationTimeoutMs)`)), this.opTimeout);
      timer.unref();
    });
    try {
      const ready = (async () => {
        if (this.connecting) await this.connecting;
        // Not ready yet (connecting or reconnecting after a failure): a PING waits in the offline
        // queue until the connection is up, or fails after the operation timeout.
        if ((this.client.status as string) !== 'ready') await this.client.ping();
      })();
      ready.catch(() => undefined);
      await Promise.race([ready, bound]);
    } catch (err) {
      throw this.wrap(err, 'connect');
    } finally {
      clearTimeout(timer);
    }
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.watches.close();
    if (this.shared !== undefined) {
      this.client.off('error', this.onConnectionError);
      await this.shared.release();
      return;
    }
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  /** @inheritdoc */
  write(w: StateWrite): Promise<WriteOutcome> {
    let p: PendingWrite;
    try {
      this.check();
      p = prepareWrite(this.prefix, w, this.keeping, this.deltas);
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
    return text === null ? null : parseTaskState(text, key);
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
    return texts.map((t, i) => (t === null ? null : parseTaskState(t, keys[i] as string)));
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
    return this.watches.watch(finalChannel(this.prefix, id), listener);
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

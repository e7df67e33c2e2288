/**
 * Options of the Redis result backend (`tasuki/backends/redis`): what a caller gives
 * `RedisBackend`. Their checks run when the backend is made (`./redis-connection.ts` for the
 * connection's, `./redis.ts` for the prefix and the index cap).
 */
import type { Cluster, RedisOptions } from 'ioredis';
import type { RedisBroker } from '../brokers/redis.js';
import type { RedisClusterConnection } from '../brokers/redis-cluster.js';
import type { WaitReplicas } from '../brokers/redis-replicas.js';

/** Options of `RedisBackend` (`./redis.ts`). */
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
  /**
   * Writes the task id into every stored state record, as builds before this option did. By default
   * a record leaves it out (its key `P:{ID}:state` names the task; readers put it back): 44 bytes
   * less per write and 64 B less Redis memory per waiting task with a UUID id. Builds before this
   * option cannot read a record without its id, so set `recordIds: true` while processes of such a
   * build still use the same Redis (a rolling upgrade), and drop it once none is left. Records of
   * either form read the same. Default false.
   */
  recordIds?: boolean;
}

/** Receives warnings of the Redis backend. */
export interface RedisBackendLogger {
  /** Logs one warning with optional structured fields. */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

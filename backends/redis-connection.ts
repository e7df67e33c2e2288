/**
 * The connection of the Redis result backend: the ioredis client it is made with (one node, a
 * Redis Cluster, or the command connection lent by a Redis broker, `shareConnection`), the
 * operation bound, the bounded wait until the connection is ready, and how it is shut. The
 * operations on it are in `./redis.ts`.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { InvalidOptionError } from '../src/errors.js';
import { resolveOperationTimeout } from '../brokers/redis-connection.js';
import type { SharedConnection } from '../brokers/redis.js';
import { createCluster, isCluster, type RedisClient } from '../brokers/redis-cluster.js';
import type { RedisBackendOptions } from './redis-options.js';
import { WRITE_COMMAND } from './redis-scripts.js';

/** Reconnect delay in ms for the n-th attempt: 100, 200, 400 … capped at 3 s, with up to 20 % jitter. */
export function redisReconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 10), 3000);
  return Math.round(base * (1 - 0.2 * random()));
}

/** The backend's client, made from its options, and the bounded wait for it to be ready. */
export class BackendConnection {
  /** The client every command of the backend goes on. */
  readonly client: RedisClient;
  /** The broker's connection this backend uses (`shareConnection`), if any. */
  readonly shared: SharedConnection | undefined;
  /** Bound of one operation (ms), see {@link RedisBackendOptions.operationTimeoutMs}. */
  readonly opTimeout: number;
  /** The client is a Redis Cluster client of the backend's own. */
  readonly onCluster: boolean;
  private connecting: Promise<void> | undefined;

  /** @param options the backend's options (their connection fields are checked here) */
  constructor(options: RedisBackendOptions) {
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
    this.onCluster = this.shared === undefined && typeof connection === 'object' && (isCluster(connection) || 'nodes' in connection);
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
  }

  /**
   * Resolves once the client is ready: at once when it is, else after connecting (or the lent
   * connection's broker connecting). Rejects with the driver's error, or an error naming the bound
   * when the client is not ready within {@link opTimeout}; the caller wraps either.
   */
  async ready(): Promise<void> {
    if (this.client.status === 'ready') return;
    if (this.shared !== undefined) return this.shared.connect();
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
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Shuts the client: a lent connection is given back (`onError` unhooked first; the broker's
   * connection is shut by its last user), one of the backend's own is quit, or disconnected when it
   * is not ready or the quit fails.
   */
  async close(onError: (err: Error) => void): Promise<void> {
    if (this.shared !== undefined) {
      this.client.off('error', onError);
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
}

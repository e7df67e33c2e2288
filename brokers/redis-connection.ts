/**
 * Connections of the Redis broker: how an ioredis client is made (reconnect backoff, client name,
 * warnings to the logger), the operation timeout and the text of a failure (also used by the Redis
 * backend), how the command connection is opened, and how a client is shut down.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ClosedError, ConnectionError, InvalidOptionError, redactCredentials } from '../src/errors.js';
import { createCluster, isCluster, type ClusterSource, type RedisClient } from './redis-cluster.js';

/** Receives warnings of the Redis broker (connection errors, reconnects). Nothing is logged by default. */
export interface RedisBrokerLogger {
  /** Logs one warning with optional structured fields. */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** What a connection is for: the shared command connection, or one of the blocking pool. */
export type ConnectionRole = 'cmd' | 'block';

/** Default reconnect backoff: 50 ms, doubling, at most 2 s. */
const defaultRetryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times - 1, 6), 2000);

const noop = (): void => undefined;

/** Default {@link resolveOperationTimeout}: 15 s, as the RabbitMQ broker's. */
export const DEFAULT_OPERATION_TIMEOUT_MS = 15_000;
/** Longest timer Node keeps (2³¹−1 ms); a longer one would fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * The operation timeout in ms: `operationTimeoutMs` when given, else the `commandTimeout` of the
 * ioredis options, else {@link DEFAULT_OPERATION_TIMEOUT_MS}. Throws `InvalidOptionError` for
 * anything but an integer from 1 to 2³¹−1.
 */
export function resolveOperationTimeout(value: unknown, connection: string | RedisOptions | ClusterSource | undefined): number {
  const nodeOptions = typeof connection !== 'object' ? undefined : isCluster(connection) ? connection.options.redisOptions : 'nodes' in connection ? connection.options?.redisOptions : connection;
  const given = value ?? nodeOptions?.commandTimeout;
  if (given === undefined) return DEFAULT_OPERATION_TIMEOUT_MS;
  if (typeof given !== 'number' || !Number.isInteger(given) || given < 1 || given > MAX_TIMER_MS) {
    throw new InvalidOptionError(`operationTimeoutMs must be an integer from 1 to ${MAX_TIMER_MS}, got ${String(given)}`);
  }
  return given;
}

/** The message of a driver failure (URL passwords masked); a command timeout says which bound passed. */
export function failureText(err: unknown, timeoutMs: number): string {
  const msg = redactCredentials(err instanceof Error ? err.message : String(err));
  return msg === 'Command timed out' ? `no answer within ${timeoutMs} ms (operationTimeoutMs); its outcome is unknown` : msg;
}

/** Makes the broker's ioredis clients, all to the same server (or cluster) with the same options. */
export class RedisConnector {
  /** The ioredis options given by the user (a copy; empty for a URL or a cluster). */
  readonly baseOptions: RedisOptions;
  private readonly url: string | undefined;
  /** The cluster to connect to, when the broker runs on a Redis Cluster. */
  readonly cluster: ClusterSource | undefined;

  /**
   * @param connection URL, ioredis options, or a cluster (startup nodes and options, or a Cluster to duplicate)
   * @param name client name prefix (`<name>:<role>`)
   * @param logger receives connection warnings
   * @param isClosed whether the broker is closed (no warnings are logged then)
   */
  constructor(
    connection: string | RedisOptions | ClusterSource,
    private readonly name: string,
    private readonly logger: RedisBrokerLogger | undefined,
    private readonly isClosed: () => boolean,
  ) {
    this.url = typeof connection === 'string' ? connection : undefined;
    this.cluster = typeof connection === 'object' && (isCluster(connection) || 'nodes' in connection) ? connection : undefined;
    this.baseOptions = typeof connection === 'string' || this.cluster !== undefined ? {} : { ...(connection as RedisOptions) };
  }

  /** Creates a lazily connecting ioredis client (a Cluster client on a cluster) with error handlers attached. */
  create(role: ConnectionRole, extra: RedisOptions): RedisClient {
    const connectionName = `${this.name}:${role}`;
    let redis: RedisClient;
    if (this.cluster !== undefined) {
      const { enableAutoPipelining, ...nodeOptions } = extra;
      redis = createCluster(this.cluster, { ...nodeOptions, connectionName }, {
        clusterRetryStrategy: defaultRetryStrategy,
        ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
      });
    } else {
      const options: RedisOptions = {
        retryStrategy: defaultRetryStrategy,
        ...this.baseOptions,
        ...extra,
        lazyConnect: true,
        connectionName,
      };
      redis = this.url === undefined ? new Redis(options) : new Redis(this.url, options);
    }
    // Every concurrent wait adds (and removes) its own 'ready'/'close' listeners.
    redis.setMaxListeners(0);
    redis.on('error', (err: Error) => {
      if (!this.isClosed()) this.logger?.warn('redis broker connection error', { connection: role, error: redactCredentials(err.message) });
    });
    redis.on('reconnecting', (ms: number) => {
      if (!this.isClosed()) this.logger?.warn('redis broker reconnecting', { connection: role, inMs: ms });
    });
    return redis;
  }
}

/**
 * Opens `c` (or waits for the connection in progress): resolves once it is ready, rejects with
 * `ConnectionError` on its first error or after `timeoutMs`, or `ClosedError` when it ends because
 * the broker closed. The client goes on reconnecting (with backoff) after a rejection.
 */
export function openConnection(c: RedisClient, isClosed: () => boolean, timeoutMs: number): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      c.off('ready', onReady);
      c.off('error', onError);
      c.off('end', onEnd);
    };
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new ConnectionError(`cannot connect to redis: ${failureText(err, timeoutMs)}`, err));
    };
    const onEnd = (): void => {
      cleanup();
      reject(isClosed() ? new ClosedError('redis broker') : new ConnectionError('redis connection ended'));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new ConnectionError(`cannot connect to redis: not ready within ${timeoutMs} ms (operationTimeoutMs)`));
    }, timeoutMs);
    timer.unref();
    c.once('ready', onReady);
    c.once('error', onError);
    c.once('end', onEnd);
    if (c.status === 'wait') c.connect().catch(noop);
  });
}

/**
 * Disconnects a client for good unless it already ended. (Calling ioredis `disconnect` again on a
 * closed stream would start its 2 s destroy timer and hold the process open.)
 */
export function shutdown(redis: RedisClient): void {
  if (redis.status === 'end' || redis.status === 'close') return;
  redis.disconnect();
}

/** Resolves after `ms` (unref'd timer). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * Connections of the Redis broker: how an ioredis client is made (reconnect backoff, client name,
 * warnings to the logger), how the command connection is opened, and how a client is shut down.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ClosedError, ConnectionError } from '../src/errors.js';

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

/** Makes the broker's ioredis clients, all to the same server with the same options. */
export class RedisConnector {
  /** The ioredis options given by the user (a copy; empty for a URL). */
  readonly baseOptions: RedisOptions;
  private readonly url: string | undefined;

  /**
   * @param connection URL or ioredis options
   * @param name client name prefix (`<name>:<role>`)
   * @param logger receives connection warnings
   * @param isClosed whether the broker is closed (no warnings are logged then)
   */
  constructor(
    connection: string | RedisOptions,
    private readonly name: string,
    private readonly logger: RedisBrokerLogger | undefined,
    private readonly isClosed: () => boolean,
  ) {
    this.url = typeof connection === 'string' ? connection : undefined;
    this.baseOptions = typeof connection === 'string' ? {} : { ...connection };
  }

  /** Creates a lazily connecting ioredis client with error handlers attached. */
  create(role: ConnectionRole, extra: RedisOptions): Redis {
    const options: RedisOptions = {
      retryStrategy: defaultRetryStrategy,
      ...this.baseOptions,
      ...extra,
      lazyConnect: true,
      connectionName: `${this.name}:${role}`,
    };
    const redis = this.url === undefined ? new Redis(options) : new Redis(this.url, options);
    // Every concurrent wait adds (and removes) its own 'ready'/'close' listeners.
    redis.setMaxListeners(0);
    redis.on('error', (err: Error) => {
      if (!this.isClosed()) this.logger?.warn('redis broker connection error', { connection: role, error: err.message });
    });
    redis.on('reconnecting', (ms: number) => {
      if (!this.isClosed()) this.logger?.warn('redis broker reconnecting', { connection: role, inMs: ms });
    });
    return redis;
  }
}

/**
 * Opens `c` (or waits for the connection in progress): resolves once it is ready, rejects with
 * `ConnectionError` on its first error, or `ClosedError` when it ends because the broker closed.
 */
export function openConnection(c: Redis, isClosed: () => boolean): Promise<void> {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const cleanup = (): void => {
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
      reject(new ConnectionError(`cannot connect to redis: ${err.message}`, err));
    };
    const onEnd = (): void => {
      cleanup();
      reject(isClosed() ? new ClosedError('redis broker') : new ConnectionError('redis connection ended'));
    };
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
export function shutdown(redis: Redis): void {
  if (redis.status === 'end' || redis.status === 'close') return;
  redis.disconnect();
}

/** Resolves after `ms` (unref'd timer). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/**
 * The Redis broker's command connection lent to a Redis backend (`RedisBackend` option
 * `shareConnection`): the backend sends its commands on it, so the publish and the `sent` write of
 * a send (and a worker's ack and its next state write) leave in one socket write (`./redis-cork.ts`)
 * and come back in one reply read. The connection is shut once the broker and every backend it was
 * lent to have closed, whichever closes last. One Redis node only (not a Cluster).
 */
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import type { RedisClient } from './redis-cluster.js';
import { delay, shutdown } from './redis-connection.js';

const noop = (): void => undefined;

/** A lent connection, as a backend holds it. */
export interface SharedConnection {
  /** The broker's command connection. */
  readonly client: RedisClient;
  /** The broker's operation bound (ms): the connection's `commandTimeout`. */
  readonly operationTimeoutMs: number;
  /** Opens the connection (or waits for it); rejects with `ConnectionError` when Redis is not ready in time. */
  connect(): Promise<void>;
  /** Gives the connection back (idempotent); the last user to give it back shuts it. */
  release(): Promise<void>;
}

/** The users of one broker's command connection (the broker itself and its borrowers). */
export class ConnectionShare {
  private users = 1;
  private ended: Promise<void> | undefined;

  /**
   * @param client the command connection
   * @param operationTimeoutMs its operation bound
   * @param open opens it (the broker's `connect`, without the broker's closed check)
   */
  constructor(
    private readonly client: RedisClient,
    private readonly operationTimeoutMs: number,
    private readonly open: () => Promise<void>,
  ) {}

  /** Lends the connection to one more user; throws `ClosedError` once it is shut. */
  lend(): SharedConnection {
    if (this.ended !== undefined) throw new ClosedError('redis broker');
    if (this.client.isCluster) throw new InvalidOptionError('shareConnection needs a broker on one Redis node (not a Cluster)');
    this.users++;
    let released: Promise<void> | undefined;
    return {
      client: this.client,
      operationTimeoutMs: this.operationTimeoutMs,
      connect: () => this.open(),
      release: () => (released ??= this.drop()),
    };
  }

  /** One user is done; the last one shuts the connection (QUIT first, so replies in flight still arrive). */
  drop(): Promise<void> {
    if (--this.users > 0) return Promise.resolve();
    this.ended ??= (async () => {
      if (this.client.status === 'ready') await Promise.race([this.client.quit().catch(noop), delay(2000)]);
      shutdown(this.client);
    })();
    return this.ended;
  }
}

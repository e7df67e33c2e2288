/**
 * One LISTEN connection per broker or backend instance: it holds a single connection from the pool,
 * listens on one channel and hands every payload to the owner. A lost connection is dropped and
 * re-opened with backoff (timers unref'd); after each (re)connect the owner is told, since
 * notifications sent while it was down are lost and waiters must look again.
 */
import type pg from 'pg';
import { ClosedError } from '../src/errors.js';
import { mapError } from './connection.js';

/** What the owner of a {@link Listener} is told. */
export interface ListenerEvents {
  /** A notification on the channel. */
  notify(payload: string): void;
  /** LISTEN is active again after a (re)connect: anything may have been missed. */
  resumed(): void;
}

/** A LISTEN connection with reconnection. */
export class Listener {
  private client: pg.PoolClient | undefined;
  private starting: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;
  private closed = false;

  /**
   * @param pool where the connection comes from (held for the listener's life)
   * @param channel channel name (quoted as an identifier for LISTEN)
   * @param events callbacks of the owner
   */
  constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly events: ListenerEvents,
  ) {}

  /** True while LISTEN is active. */
  get active(): boolean {
    return this.client !== undefined;
  }

  /** Starts listening (if not yet) and resolves once LISTEN is active; rejects with a ConnectionError if that attempt fails (it is retried in the background). */
  ready(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('postgres listener'));
    if (this.client !== undefined) return Promise.resolve();
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  /** Ends the listening connection and any reconnection. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.starting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      client.removeAllListeners('notification');
      // Destroy rather than return to the pool: a LISTENing connection must not be reused.
      client.release(true);
    }
  }

  private async start(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      this.scheduleRetry();
      throw mapError(err, 'listen');
    }
    const onError = (): void => this.lost(client);
    client.on('error', onError);
    client.on('end', onError);
    client.on('notification', (n: pg.Notification) => {
      if (n.channel === this.channel && n.payload !== undefined) this.events.notify(n.payload);
    });
    try {
      await client.query(`LISTEN "${this.channel.replace(/"/g, '""')}"`);
    } catch (err) {
      this.lost(client);
      throw mapError(err, 'listen');
    }
    if (this.closed) {
      client.release(true);
      throw new ClosedError('postgres listener');
    }
    this.client = client;
    this.backoffMs = 100;
    this.events.resumed();
  }

  /** The connection failed: drop it and reconnect in the background. */
  private lost(client: pg.PoolClient): void {
    if (this.client === client) this.client = undefined;
    client.removeAllListeners('notification');
    try {
      client.release(true);
    } catch {
      // already released
    }
    if (!this.closed) this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== undefined) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closed && this.client === undefined && this.starting === undefined) this.ready().catch(() => undefined);
    }, delay);
    this.retryTimer.unref();
  }
}

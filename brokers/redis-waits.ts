/**
 * The Redis broker's waits (for a connection to come up, for a pause to pass): each is abortable,
 * bounded by a timer that never holds the process open, and ended at once by {@link Waits.close}.
 */
import type { RedisClient } from './redis-cluster.js';

const noop = (): void => undefined;

/** Every pending wait of one broker, ended together when the broker closes. */
export class Waits {
  /** Set once by {@link close}; waits started afterwards end at once. */
  closed = false;
  private readonly enders = new Set<() => void>();

  /** Ends every current wait and every later one. */
  close(): void {
    this.closed = true;
    for (const end of [...this.enders]) end();
  }

  /** Registers `end` to be called on close; returns the function that unregisters it. */
  onClose(end: () => void): () => void {
    this.enders.add(end);
    return () => this.enders.delete(end);
  }

  /**
   * Resolves true once `conn` is ready, false after `ms`, on abort or on close. Never spins: it waits
   * for the connection's 'ready' event (ioredis reconnects with backoff meanwhile).
   */
  ready(conn: RedisClient, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (conn.status === 'ready') return Promise.resolve(true);
    if (conn.status === 'wait') conn.connect().catch(noop);
    if (ms <= 0 || this.closed || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        conn.off('ready', onReady);
        conn.off('end', onStop);
        signal?.removeEventListener('abort', onStop);
        this.enders.delete(onStop);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const onStop = (): void => done(false);
      const timer = setTimeout(onStop, ms);
      timer.unref();
      conn.once('ready', onReady);
      conn.once('end', onStop);
      signal?.addEventListener('abort', onStop, { once: true });
      this.enders.add(onStop);
    });
  }

  /** Sleeps `ms` (abortable, ended by close). */
  pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (ms <= 0 || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.enders.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      signal?.addEventListener('abort', done, { once: true });
      this.enders.add(done);
    });
  }
}

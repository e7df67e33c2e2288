/**
 * Replies on the Redis broker's blocking connection, which never resends a command after a
 * reconnect: a command cut by a disconnect never settles, and one that hangs must be bounded.
 */
import type { RedisClient } from './redis-cluster.js';

/**
 * `p` made safe on a connection that never resends: undefined when the connection closes first (a
 * command cut by a disconnect never settles) or after `ms` (the connection is then dropped: a
 * hung TCP connection).
 */
export function guarded<T>(conn: RedisClient, p: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const hung = setTimeout(() => conn.disconnect(true), ms);
    hung.unref();
    const settle = (): void => {
      clearTimeout(hung);
      conn.off('close', onClose);
    };
    const onClose = (): void => {
      settle();
      resolve(undefined);
    };
    conn.once('close', onClose);
    p.then(
      (v) => {
        settle();
        resolve(v);
      },
      (err: unknown) => {
        settle();
        reject(err);
      },
    );
  });
}

/** `p`, or undefined after `ms` (then `onTimeout` runs: the connection is dropped). */
export function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T | undefined> {
  return new Promise<T | undefined>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      resolve(undefined);
    }, ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

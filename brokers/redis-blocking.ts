/**
 * Idle fetches of the Redis broker on a Redis Cluster (a single node uses the wake hub,
 * `./redis-wake-hub.ts`): a pool of blocking connections, one per fetch waiting at the same moment,
 * at most `max` of them. A wait blocks with BLPOP on its wake list (one key: a multi-key BLPOP must
 * stay in one slot, and groups hash to different slots). Each blocking connection is a Cluster
 * client (BLPOP is routed to the master of the wake list's slot); `CLIENT UNBLOCK` cannot be
 * addressed to that node, so a wait ends by the server's own BLPOP timeout, and a wait cut short
 * (abort) keeps its connection busy until then.
 *
 * Bound: at most `max` blocking Cluster clients per broker (option `clusterBlockingConnections`,
 * default 8), each holding a connection to the nodes it reached. A wait that finds all of them busy
 * sleeps client-side for at most {@link OVERFLOW_PAUSE_MS} and its fetch script runs again (a timed
 * re-fetch, no busy loop): such groups see a publish within that pause, not at once.
 *
 * Off a cluster the pool also works (one connection per concurrent wait, each ended precisely by
 * `CLIENT UNBLOCK` through the command connection), as the broker ran before the wake hub.
 */
import type { RedisClient } from './redis-cluster.js';
import { failureText, shutdown, type RedisBrokerLogger, type RedisConnector } from './redis-connection.js';
import type { Waits } from './redis-waits.js';
import type { WakeWaiter } from './redis-wake-hub.js';

/** A connection of the blocking pool. */
interface BlockingConn {
  readonly redis: RedisClient;
  /** `CLIENT ID` of the current connection (unknown until asked after each (re)connect). */
  clientId: number | undefined;
}

/** Waits shorter than this sleep client-side instead of blocking on Redis. */
const MIN_BLOCK_MS = 20;
/** Extra time given to Redis' own BLPOP timeout; the client timer normally ends the wait first. */
const SERVER_TIMEOUT_SLACK_MS = 100;
/** A blocking connection whose BLPOP has not answered this long after its timeout is dropped. */
const HUNG_CONNECTION_MS = 10_000;
/** Pause after an unexpected blocking error with a healthy connection (no busy loop). */
const ERROR_PAUSE_MS = 250;
/** Longest sleep of a wait that finds every blocking connection busy (its fetch script runs next). */
export const OVERFLOW_PAUSE_MS = 250;
/** Default most blocking connections of a pool (`clusterBlockingConnections`). */
export const DEFAULT_CLUSTER_BLOCKING_CONNECTIONS = 8;

/** The blocking connections of one broker and the waits made on them. */
export class BlockingPool implements WakeWaiter {
  /** Every blocking connection, and those currently free. */
  private readonly all = new Set<BlockingConn>();
  private readonly idle: BlockingConn[] = [];

  /**
   * @param connector makes the blocking connections
   * @param cmd the command connection (sends `CLIENT UNBLOCK`)
   * @param waits the broker's waits (ended on close)
   * @param logger receives warnings of failed waits
   * @param opTimeout bound (ms) of the non-blocking commands sent on blocking connections (`CLIENT ID`)
   * @param max most blocking connections (waits beyond sleep up to {@link OVERFLOW_PAUSE_MS})
   */
  constructor(
    private readonly connector: RedisConnector,
    private readonly cmd: RedisClient,
    private readonly waits: Waits,
    private readonly logger: RedisBrokerLogger | undefined,
    private readonly opTimeout: number,
    private readonly max: number = Number.POSITIVE_INFINITY,
  ) {}

  /** Number of blocking connections open. */
  get connections(): number {
    return this.all.size;
  }

  /** Disconnects every blocking connection (after `waits.close()`). */
  close(): void {
    for (const conn of this.all) shutdown(conn.redis);
    this.all.clear();
    this.idle.length = 0;
  }

  /**
   * Waits up to `ms` for a wake-up marker of the group (publish, retry, release, redrive), on a
   * blocking connection from the pool. Returns early on abort or close. Errors are swallowed: the
   * caller runs the fetch script again, which reports connection problems. `true`: a quiet timeout
   * (the BLPOP ran its whole time with no marker), see {@link WakeWaiter.waitForWork}.
   */
  async waitForWork(wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    // Aborted before the wait began (e.g. while the fetch script ran): an 'abort' listener would never fire.
    if (this.waits.closed || signal?.aborted) return false;
    if (ms < MIN_BLOCK_MS) return this.waits.pause(ms, signal).then(() => false);
    if (this.idle.length === 0 && this.all.size >= this.max) return this.waits.pause(Math.min(ms, OVERFLOW_PAUSE_MS), signal).then(() => false);
    const conn = this.acquire();
    let blocked = false;
    try {
      if (conn.redis.status !== 'ready') {
        await this.waits.ready(conn.redis, ms, signal);
        return false;
      }
      if (conn.clientId === undefined && !conn.redis.isCluster) {
        conn.clientId = await this.clientId(conn, this.opTimeout);
        if (conn.clientId === undefined || this.waits.closed || signal?.aborted) return false;
      }
      blocked = true;
      return await this.blockOn(conn, wakeKey, ms, signal);
    } catch (err) {
      if (this.waits.closed || signal?.aborted) return false;
      this.logger?.warn('redis broker blocking wait failed', { error: failureText(err, this.opTimeout) });
      if (conn.redis.status === 'ready') await this.waits.pause(Math.min(ms, ERROR_PAUSE_MS), signal);
      else await this.waits.ready(conn.redis, ms, signal);
      return false;
    } finally {
      if (!blocked) this.release(conn);
    }
  }

  /**
   * Issues BLPOP on `conn` and resolves when it returns, when `ms` passed, on abort, on close or when
   * the connection drops. On timeout/abort the BLPOP is ended with `CLIENT UNBLOCK` (the connection
   * goes back to the pool once Redis answered it). True on a quiet timeout, off a cluster only (the
   * client timer ended the BLPOP): on a cluster an aborted wait's BLPOP stays on the server until its
   * timeout and may take a marker meant for a later wait on the same key, so a timeout there proves
   * nothing and the fetch script runs again as before.
   */
  private blockOn(conn: BlockingConn, wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    const r = conn.redis;
    let returned = false;
    const hung = setTimeout(() => {
      // No answer long after the timeout: the TCP connection is dead without having closed.
      if (!returned) r.disconnect(true);
    }, ms + HUNG_CONNECTION_MS);
    hung.unref();
    const giveBack = (): void => {
      if (returned) return;
      returned = true;
      clearTimeout(hung);
      r.off('close', giveBack);
      this.release(conn);
    };
    // With autoResendUnfulfilledCommands off, a BLPOP cut by a disconnect never settles: 'close' frees the connection.
    r.once('close', giveBack);
    // On a cluster the server's timeout ends the wait (no CLIENT UNBLOCK), so it gets no slack.
    const call = r.blpop(wakeKey, (r.isCluster ? ms : ms + SERVER_TIMEOUT_SLACK_MS) / 1000);
    call.then(giveBack, giveBack);
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (unblock: boolean, quiet = false): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        r.off('close', onClose);
        unregister();
        if (unblock && !returned) this.unblock(conn);
        resolve(quiet);
      };
      const onAbort = (): void => finish(true);
      const onClose = (): void => finish(false);
      const unregister = this.waits.onClose(onAbort);
      // Off a cluster the client timer ends a quiet wait (CLIENT UNBLOCK ends every BLPOP cut short).
      const timer = setTimeout(() => finish(true, !r.isCluster && r.status === 'ready'), r.isCluster ? ms + SERVER_TIMEOUT_SLACK_MS : ms);
      timer.unref();
      call.then(
        () => finish(false),
        () => finish(false),
      );
      r.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Asks `CLIENT ID` of `conn`; undefined when no answer came within `ms` (the connection is then
   * dropped and reconnects: a server that does not answer would not answer a BLPOP either).
   */
  private clientId(conn: BlockingConn, ms: number): Promise<number | undefined> {
    return new Promise<number | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.redis.disconnect(true);
        resolve(undefined);
      }, ms);
      timer.unref();
      conn.redis.client('ID').then(
        (id) => {
          clearTimeout(timer);
          resolve(Number(id));
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** Ends the BLPOP of `conn` now: `CLIENT UNBLOCK` through the command connection, else reconnect it. */
  private unblock(conn: BlockingConn): void {
    if (this.waits.closed) return; // close() disconnects every blocking connection
    if (conn.redis.isCluster) return; // its BLPOP ends by the server's timeout; the connection comes back then
    const id = conn.clientId;
    if (id !== undefined && this.cmd.status === 'ready') {
      this.cmd.client('UNBLOCK', id).catch(() => conn.redis.disconnect(true));
    } else {
      conn.redis.disconnect(true);
    }
  }

  /** Takes a free blocking connection or opens a new one. */
  private acquire(): BlockingConn {
    const free = this.idle.pop();
    if (free) return free;
    const redis = this.connector.create('block', {
      enableAutoPipelining: false,
      // A blocking command must not be replayed after a reconnect (it would eat a wake marker later).
      autoResendUnfulfilledCommands: false,
      // The broker bounds its own waits; never fail a queued command because of the retry count.
      maxRetriesPerRequest: null,
      // No command timeout here (one given in the connection options included): it would cut BLPOP.
      commandTimeout: undefined,
    });
    const conn: BlockingConn = { redis, clientId: undefined };
    redis.on('close', () => {
      conn.clientId = undefined;
    });
    this.all.add(conn);
    return conn;
  }

  /** Returns a blocking connection to the pool (or closes it when the broker is closed). */
  private release(conn: BlockingConn): void {
    if (this.waits.closed || !this.all.has(conn)) {
      shutdown(conn.redis);
      return;
    }
    if (conn.redis.status === 'end') {
      this.all.delete(conn);
      return;
    }
    if (!this.idle.includes(conn)) this.idle.push(conn);
  }
}

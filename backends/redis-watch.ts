/**
 * Push of final writes in the Redis result backend: the write script publishes a final state on the
 * task's channel (`./redis-keys.ts` `finalChannel`), and {@link FinalWatches} listens there. One
 * subscriber connection per backend instance, created on first use; one SUBSCRIBE per watched id,
 * shared by its listeners, and UNSUBSCRIBEs deferred a little to batch them.
 */
import { createCluster, isCluster, type RedisClient } from '../brokers/redis-cluster.js';
import type { FinalNotice } from '../src/backend.js';
import { ClosedError, type TasukiError } from '../src/errors.js';
import { parseTaskState } from '../src/state.js';

/** How long (ms) an UNSUBSCRIBE of a channel no longer watched is deferred, to batch them. */
const UNSUBSCRIBE_DELAY_MS = 100;

/** The listeners of one watched task (one SUBSCRIBE shared by all of them). */
interface Watch {
  listeners: Set<(notice?: FinalNotice) => void>;
  /** The task whose channel this is (a notice's state leaves its id out). */
  id: string;
  /** Settles when Redis has acknowledged the SUBSCRIBE. */
  ready: Promise<void>;
}

/**
 * Parses a notice published by the write script (state JSON, then a newline and the result when the
 * write stored one); undefined when the message is not a readable notice (the listener is then
 * called without one and its caller reads the state).
 */
function parseNotice(message: string, channel: string, id: string): FinalNotice | undefined {
  if (typeof message !== 'string' || message.charCodeAt(0) !== 123) return undefined;
  const nl = message.indexOf('\n');
  try {
    const state = parseTaskState(nl < 0 ? message : message.slice(0, nl), channel, id);
    return { state, result: nl < 0 ? null : message.slice(nl + 1) };
  } catch {
    return undefined;
  }
}

/** The watched channels of one backend and its subscriber connection. */
export class FinalWatches {
  /** Subscriber connection, created on first use. */
  private subscriber: RedisClient | undefined;
  /** Watched channels and their listeners. */
  private readonly watches = new Map<string, Watch>();
  /** Channels no longer watched whose UNSUBSCRIBE is deferred (see {@link unsubscribeLater}). */
  private readonly unsubscribing = new Set<string>();
  private unsubscribeTimer: NodeJS.Timeout | undefined;
  private closed = false;

  /**
   * @param client the backend's connection (the subscriber is its duplicate)
   * @param onConnectionError receives the subscriber's connection errors
   * @param fail the typed error a failed SUBSCRIBE rejects with
   */
  constructor(
    private readonly client: RedisClient,
    private readonly onConnectionError: (err: Error) => void,
    private readonly fail: (err: unknown) => TasukiError,
  ) {}

  /** Forgets every watch and disconnects the subscriber connection. */
  close(): void {
    this.closed = true;
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.watches.clear();
    this.unsubscribing.clear();
    clearTimeout(this.unsubscribeTimer);
    this.unsubscribeTimer = undefined;
    sub?.disconnect();
  }

  /**
   * Calls `listener` with each notice published on `channel`, task `id`'s final channel. Resolves with the function that stops
   * it once Redis has acknowledged the SUBSCRIBE; rejects with a `TasukiError` when it cannot
   * subscribe. After a reconnection ioredis subscribes again by itself.
   */
  async watch(channel: string, id: string, listener: (notice?: FinalNotice) => void): Promise<() => void> {
    let watch = this.watches.get(channel);
    if (watch === undefined) {
      const sub = this.subscriberConnection();
      // Still subscribed (its UNSUBSCRIBE is deferred and not sent yet): no new SUBSCRIBE needed.
      const lingering = this.unsubscribing.delete(channel);
      const created: Watch = {
        listeners: new Set(),
        id,
        ready: lingering ? Promise.resolve() : sub.subscribe(channel).then(() => undefined),
      };
      // A failed SUBSCRIBE leaves nothing behind: the next watcher of the id tries again.
      created.ready.catch(() => {
        if (this.watches.get(channel) === created) this.watches.delete(channel);
      });
      this.watches.set(channel, created);
      watch = created;
    }
    const entry = (notice?: FinalNotice): void => listener(notice);
    watch.listeners.add(entry);
    const w = watch;
    let active = true;
    const stop = (): void => {
      if (!active) return;
      active = false;
      w.listeners.delete(entry);
      if (w.listeners.size > 0 || this.watches.get(channel) !== w) return;
      this.watches.delete(channel);
      if (!this.closed) this.unsubscribeLater(channel);
    };
    try {
      await w.ready;
    } catch (err) {
      stop();
      throw this.fail(err);
    }
    if (this.closed) {
      stop();
      throw new ClosedError('redis backend');
    }
    return stop;
  }

  /**
   * Ends the subscription of `channel` a little later, together with the others ended meanwhile (one
   * UNSUBSCRIBE for many getResult calls instead of one each). A channel watched again before that
   * is left subscribed. Messages of a lingering channel find no listener and are dropped.
   */
  private unsubscribeLater(channel: string): void {
    this.unsubscribing.add(channel);
    if (this.unsubscribeTimer !== undefined) return;
    this.unsubscribeTimer = setTimeout(() => {
      this.unsubscribeTimer = undefined;
      const channels = [...this.unsubscribing];
      this.unsubscribing.clear();
      // Commands of one connection run in order: a later SUBSCRIBE of one of them follows this.
      if (channels.length > 0 && !this.closed) this.subscriber?.unsubscribe(...channels).catch(() => undefined);
    }, UNSUBSCRIBE_DELAY_MS);
    this.unsubscribeTimer.unref();
  }

  /** The subscriber connection (same server and options as the main one), created on first use. */
  private subscriberConnection(): RedisClient {
    if (this.subscriber !== undefined) return this.subscriber;
    const c = this.client;
    let sub: RedisClient;
    if (isCluster(c)) {
      // PUBLISH reaches every node of a cluster: one subscriber connection (to any node) hears them all.
      const name = c.options.redisOptions?.connectionName;
      sub = createCluster(c, name ? { connectionName: `${name}-sub` } : {}, { enableAutoPipelining: false });
    } else {
      const name = c.options.connectionName;
      sub = c.duplicate({
        lazyConnect: true,
        enableAutoPipelining: false,
        ...(name ? { connectionName: `${name}-sub` } : {}),
      });
    }
    sub.on('error', this.onConnectionError);
    sub.on('message', (channel: string, message: string) => {
      const watch = this.watches.get(channel);
      if (watch === undefined) return;
      for (const listener of watch.listeners) {
        try {
          // Each listener gets its own copy of the notice (normally there is one listener).
          listener(parseNotice(message, channel, watch.id));
        } catch {
          // a listener's failure is its own; the others still get the hint
        }
      }
    });
    this.subscriber = sub;
    return sub;
  }
}

/**
 * Consuming the work queues: `fetch` is push based. A consumer per group with a per-consumer
 * prefetch (fixed, or grown to the deliveries held plus the largest `max` asked); pushed messages
 * are buffered and handed out, and a waiting `fetch` is woken by the delivery itself (no polling).
 * A consumer with no `fetch` waiting for `consumerIdleMs` is cancelled and its buffered messages are
 * handed back to the queue, so that an idle or busy process never sits on messages others could run.
 */
import { randomUUID } from 'node:crypto';
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Delivery, FetchOptions } from '../../src/broker.js';
import { ConnectionError, TasukiError } from '../../src/errors.js';
import { HEADER_AVAILABLE_AT, groupQueueNames } from '../rabbitmq-topology.js';
import type { Conn, RabbitConnection } from './connection.js';
import type { Declarations } from './declarations.js';
import type { Leases } from './leases.js';
import { acksOf, trackAcks } from './acks.js';
import type { Publisher } from './publisher.js';
import { ackSafe, errText, headerString, nackSafe, noop, priorityOf } from './util.js';

/** A message pushed to this instance and not yet handed out. */
interface Buffered {
  readonly msg: ConsumeMessage;
  readonly channel: Channel;
}

/** A `fetch` waiting for messages. */
interface Waiter {
  readonly max: number;
  readonly leaseMs: number;
  finish(result: Delivery[] | Error): void;
}

/** Consumer state of one group in this instance. */
class GroupState {
  channel: Channel | null = null;
  channelOpening: Promise<Channel> | null = null;
  consumerTag: string | null = null;
  prefetch = 0;
  buffer: Buffered[] = [];
  readonly waiters: Waiter[] = [];
  idleTimer: NodeJS.Timeout | null = null;
  retryTimer: NodeJS.Timeout | null = null;
  chain: Promise<void> = Promise.resolve();
  flushScheduled = false;
  constructor(readonly name: string) {}
}

/** Settings of {@link Consumers}. */
export interface ConsumerSettings {
  readonly prefix: string;
  readonly instanceId: string;
  readonly fixedPrefetch: number | undefined;
  readonly idleMs: number;
}

/** The work-queue consumers of one broker instance; see the module comment. */
export class Consumers {
  private readonly groups = new Map<string, GroupState>();
  private consumerSeq = 0;

  constructor(
    private readonly settings: ConsumerSettings,
    private readonly connection: RabbitConnection,
    private readonly declarations: Declarations,
    private readonly publisher: Publisher,
    private readonly leases: Leases,
  ) {}

  /** Messages of `group` pushed to this instance and not yet handed out. */
  buffered(group: string): number {
    return this.groups.get(group)?.buffer.length ?? 0;
  }

  /** Takes up to `max` ready messages, leasing each for `leaseMs`; waits up to `waitMs` for the first. */
  fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    const g = this.groupState(group);
    if (g.idleTimer) {
      clearTimeout(g.idleTimer);
      g.idleTimer = null;
    }
    if (g.buffer.length > 0 && g.waiters.length === 0) {
      const got = this.take(g, max, options.leaseMs);
      this.scheduleIdle(g);
      return Promise.resolve(got);
    }
    const signal = options.signal;
    if (signal?.aborted) {
      this.scheduleIdle(g);
      return Promise.resolve([]);
    }
    return new Promise<Delivery[]>((resolve, reject) => {
      let done = false;
      const waiter: Waiter = {
        max,
        leaseMs: options.leaseMs,
        finish: (result) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          const i = g.waiters.indexOf(waiter);
          if (i >= 0) g.waiters.splice(i, 1);
          if (g.waiters.length === 0) this.scheduleIdle(g);
          if (result instanceof Error) reject(result);
          else resolve(result);
        },
      };
      const onAbort = (): void => waiter.finish([]);
      // Nothing came: [] — or, when the connection is down, a ConnectionError so that the caller
      // knows and backs off (the broker keeps reconnecting in the background).
      const c = this.connection;
      const timer = setTimeout(
        () =>
          waiter.finish(
            c.current || c.closed || c.downSince === null ? [] : new ConnectionError(`not connected to RabbitMQ: ${errText(c.lastError)}`, c.lastError),
          ),
        options.waitMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      g.waiters.push(waiter);
      this.kickConsumer(g);
    });
  }

  /** A new connection is up: restart the consumers callers are waiting on. */
  onConnected(): void {
    for (const g of this.groups.values()) if (g.waiters.length > 0) this.kickConsumer(g);
  }

  /** The connection was lost: its channels, consumers and buffered messages are gone. */
  onLost(): void {
    for (const g of this.groups.values()) {
      g.channel = null;
      g.channelOpening = null;
      g.consumerTag = null;
      g.prefetch = 0;
      g.buffer = [];
    }
  }

  /** Stops everything local: timers, waiters (resolved with []), buffers. Returns the consumer channels to close. */
  close(): Array<Promise<Channel> | null> {
    const channels: Array<Promise<Channel> | null> = [];
    for (const g of this.groups.values()) {
      if (g.idleTimer) clearTimeout(g.idleTimer);
      if (g.retryTimer) clearTimeout(g.retryTimer);
      for (const w of g.waiters.slice()) w.finish([]);
      g.buffer = [];
      if (g.channel) acksOf(g.channel)?.flush();
      channels.push(g.channel ? Promise.resolve(g.channel) : g.channelOpening);
    }
    return channels;
  }

  /** Cancels the group's consumer and hands its buffer back unless someone is fetching from it. */
  async stopIfIdle(group: string): Promise<void> {
    const g = this.groups.get(group);
    if (g && g.waiters.length === 0) await this.serial(g, () => this.idleCancel(g)).catch(noop);
  }

  /** Cancels the group's consumer and hands its buffer back (purge). */
  async stop(group: string): Promise<void> {
    const g = this.groups.get(group);
    if (g) await this.serial(g, () => this.idleCancel(g)).catch(noop);
  }

  private groupState(group: string): GroupState {
    let g = this.groups.get(group);
    if (!g) {
      g = new GroupState(group);
      this.groups.set(group, g);
    }
    return g;
  }

  /** Runs `fn` after the group's previous consumer operations (consume, cancel) finished. */
  private serial(g: GroupState, fn: () => Promise<void>): Promise<void> {
    const p = g.chain.then(fn);
    g.chain = p.catch(noop);
    return p;
  }

  /** Makes sure the group has a consumer with enough prefetch for its waiters. */
  private kickConsumer(g: GroupState): void {
    this.serial(g, () => this.ensureConsumer(g)).catch((err: unknown) => this.onConsumerError(g, err));
  }

  private onConsumerError(g: GroupState, err: unknown): void {
    if (this.connection.closed) return;
    if (err instanceof TasukiError && err.code !== 'ERR_CONNECTION' && err.code !== 'ERR_CLOSED') {
      for (const w of g.waiters.slice()) w.finish(err);
      return;
    }
    const conn = this.connection.current;
    if (!(err instanceof TasukiError) && conn && !this.connection.isTransient(err, conn)) {
      // RabbitMQ refused something outright (e.g. 403 ACCESS_REFUSED): tell the callers.
      const failure = new ConnectionError(`consuming group "${g.name}" failed: ${errText(err)}`, err);
      for (const w of g.waiters.slice()) w.finish(failure);
      return;
    }
    this.connection.lastError = err;
    // Channel-level failure on a live connection: try again shortly. Connection loss: the
    // reconnection restarts consumers of groups with waiters.
    if (this.connection.current && g.waiters.length > 0 && !g.retryTimer) {
      g.retryTimer = setTimeout(() => {
        g.retryTimer = null;
        if (g.waiters.length > 0) this.kickConsumer(g);
      }, 200);
      g.retryTimer.unref();
    }
  }

  private async ensureConsumer(g: GroupState): Promise<void> {
    if (this.connection.closed || g.waiters.length === 0) return;
    const conn = await this.connection.get();
    if (g.waiters.length === 0) return;
    await this.declarations.ensureGroup(conn, g.name);
    const ch = await this.consumeChannel(conn, g);
    const largest = Math.max(...g.waiters.map((w) => w.max));
    const want = this.settings.fixedPrefetch ?? Math.min(65_535, Math.max(g.prefetch, this.leases.count(g.name) + largest));
    if (g.consumerTag && g.channel === ch && g.prefetch >= want) return;
    if (g.consumerTag) {
      // Grow the prefetch: per-consumer prefetch applies to new consumers only. Messages already
      // pushed to the old consumer stay buffered and valid on this channel.
      const old = g.consumerTag;
      g.consumerTag = null;
      g.prefetch = 0;
      await ch.cancel(old);
    }
    await ch.prefetch(want, false);
    const tag = `tasuki.${this.settings.instanceId}.${++this.consumerSeq}`;
    g.consumerTag = tag;
    try {
      await ch.consume(groupQueueNames(this.settings.prefix, g.name).work, (msg) => this.onDelivery(g, ch, tag, msg), {
        noAck: false,
        consumerTag: tag,
      });
    } catch (err) {
      if (g.consumerTag === tag) g.consumerTag = null;
      throw err;
    }
    if (g.consumerTag === tag) g.prefetch = want;
  }

  private consumeChannel(conn: Conn, g: GroupState): Promise<Channel> {
    if (g.channel) return Promise.resolve(g.channel);
    if (g.channelOpening) return g.channelOpening;
    const p = this.connection.privateChannel(conn).then((ch) => {
      trackAcks(ch);
      ch.on('close', () => this.onConsumeChannelClosed(conn, g, ch));
      if (g.channelOpening === p) {
        g.channel = ch;
        g.channelOpening = null;
      }
      return ch;
    });
    g.channelOpening = p;
    p.catch(() => {
      if (g.channelOpening === p) g.channelOpening = null;
    });
    return p;
  }

  private onConsumeChannelClosed(conn: Conn, g: GroupState, ch: Channel): void {
    if (g.channel === ch) {
      g.channel = null;
      g.consumerTag = null;
      g.prefetch = 0;
    }
    // RabbitMQ requeued everything this channel held.
    g.buffer = g.buffer.filter((b) => b.channel !== ch);
    this.leases.dropWhere((h) => h.channel === ch);
    if (!this.connection.closed && !conn.lost && g.waiters.length > 0) this.onConsumerError(g, new Error('consumer channel closed'));
  }

  private onDelivery(g: GroupState, ch: Channel, tag: string, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // Server-side cancel (queue deleted, e.g. purged elsewhere): declare and consume again if needed.
      if (g.consumerTag === tag) {
        g.consumerTag = null;
        g.prefetch = 0;
        this.connection.current?.groups.delete(g.name);
        if (g.waiters.length > 0) this.onConsumerError(g, new Error('consumer cancelled by RabbitMQ'));
      }
      return;
    }
    acksOf(ch)?.track(msg);
    if (this.connection.closed) return;
    const at = Number(headerString(msg, HEADER_AVAILABLE_AT));
    if (Number.isFinite(at) && at > Date.now()) {
      void this.delayAgain(g, ch, msg, at);
      return;
    }
    g.buffer.push({ msg, channel: ch });
    this.scheduleFlush(g);
  }

  /** A message that arrived before its time (delay beyond the ladder, clock skew): delay it again, then ack. */
  private async delayAgain(g: GroupState, ch: Channel, msg: ConsumeMessage, at: number): Promise<void> {
    try {
      const messageId = typeof msg.properties.messageId === 'string' ? msg.properties.messageId : randomUUID();
      await this.publisher.publish(g.name, [{ body: msg.content.toString('utf8'), target: 'work', availableAt: at, messageId, priority: priorityOf(msg) }]);
      ackSafe(ch, msg);
    } catch {
      // Leave it to RabbitMQ: hand it back after a pause (not in a tight loop).
      setTimeout(() => nackSafe(ch, msg), 1000).unref();
    }
  }

  private scheduleFlush(g: GroupState): void {
    if (g.flushScheduled || g.waiters.length === 0) return;
    g.flushScheduled = true;
    // Deliveries that arrived in the same socket read are handed out together.
    setImmediate(() => {
      g.flushScheduled = false;
      while (g.waiters.length > 0 && g.buffer.length > 0) {
        const w = g.waiters[0] as Waiter;
        w.finish(this.take(g, w.max, w.leaseMs));
      }
    });
  }

  private scheduleIdle(g: GroupState): void {
    if (this.connection.closed || g.idleTimer || g.waiters.length > 0) return;
    if (!g.consumerTag && g.buffer.length === 0) return;
    g.idleTimer = setTimeout(() => {
      g.idleTimer = null;
      if (g.waiters.length === 0) void this.serial(g, () => this.idleCancel(g)).catch(noop);
    }, this.settings.idleMs);
    g.idleTimer.unref();
  }

  /** Cancels the consumer of a group nobody fetches from and hands its buffered messages back. */
  private async idleCancel(g: GroupState): Promise<void> {
    if (g.waiters.length > 0) return;
    const ch = g.channel;
    const tag = g.consumerTag;
    if (ch && tag) {
      g.consumerTag = null;
      g.prefetch = 0;
      try {
        await ch.cancel(tag);
      } catch {
        // Channel gone: RabbitMQ requeued its messages already.
      }
    }
    if (g.waiters.length === 0) {
      for (const b of g.buffer.splice(0)) nackSafe(b.channel, b.msg);
    } else {
      this.scheduleFlush(g);
    }
  }

  private take(g: GroupState, max: number, leaseMs: number): Delivery[] {
    return g.buffer.splice(0, max).map(({ msg, channel }) => this.leases.lease(g.name, channel, msg, leaseMs));
  }
}

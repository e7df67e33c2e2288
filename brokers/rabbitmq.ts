/**
 * The RabbitMQ broker of tasuki (amqplib). Import it from `tasuki/brokers/rabbitmq`; nothing else in
 * tasuki loads amqplib.
 *
 * - One AMQP connection per broker instance (TCP no-delay on, heartbeats), a confirm channel for
 *   publishing, one channel per consumed group, a channel for declarations and one for counts.
 *   After the connection drops (RabbitMQ restart, `rabbitmqctl close_connection`, network) the broker
 *   reconnects with exponential backoff and jitter, re-declares topology and restarts the consumers
 *   that callers are waiting on; deliveries held on the lost connection are returned by RabbitMQ.
 * - Durable queues, persistent messages, publisher confirms: `publish` resolves once RabbitMQ
 *   confirmed the message (and it was routed: publishes are `mandatory`).
 * - `fetch` is push based: a consumer per group with a per-consumer prefetch (the `prefetch` option,
 *   or grown to the deliveries held plus the largest `max` asked). Pushed messages are buffered and
 *   handed out; a waiting `fetch` is woken by the delivery itself (no polling). A consumer with no
 *   `fetch` waiting for `consumerIdleMs` is cancelled and its buffered messages are handed back to the
 *   queue, so that an idle or busy process never sits on messages others could run.
 * - Leases are local timers: when a lease runs out the delivery is nacked with requeue and RabbitMQ
 *   delivers it again (redelivered flag set). Tokens are unique per delivery; operations on tokens no
 *   longer held are no-ops and never send a stale delivery tag (which would close the channel).
 * - Delays use the plugin-free delay ladder of `rabbitmq-topology.ts` (TTL queues in powers of two).
 * - Dead letters live in a per-group queue; listing reads them with `basic.get` on a private channel
 *   and hands them back by closing that channel (RabbitMQ requeues them in their original order).
 * - Declarations and counts are spread over a few channels so RabbitMQ handles them in parallel.
 *
 * Limits worth knowing: RabbitMQ's `consumer_timeout` (30 min by default) closes a channel whose
 * delivery stays unacked longer — for handlers that run longer, raise it in `rabbitmq.conf`
 * (`extend` then reports the lease lost, and the message is redelivered). A message prefetched into
 * an idle consumer's buffer and handed back is marked redelivered by RabbitMQ although no handler saw it.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { connect as amqpConnect } from 'amqplib';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, GetMessage, Message, Options } from 'amqplib';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import {
  DELAY_LEVELS,
  HEADER_AVAILABLE_AT,
  HEADER_DEAD_AT,
  HEADER_DEAD_CODE,
  HEADER_DEAD_MESSAGE,
  NOT_FOUND,
  PREFIX_PATTERN,
  amqpReplyCode,
  delayExchangeName,
  delayExchangeNames,
  delayQueueArguments,
  delayRoute,
  groupQueueNames,
  levelBindingKey,
  passDownBindingKey,
  plainQueueArguments,
  toTopologyMismatch,
  type RabbitMQQueueType,
} from './rabbitmq-topology.js';

export type { RabbitMQQueueType } from './rabbitmq-topology.js';

/** Options of {@link RabbitMQBroker}. */
export interface RabbitMQBrokerOptions {
  /** `amqp://` or `amqps://` URL (default `amqp://guest:guest@127.0.0.1:5672`). Ignored when `connection` is given. */
  url?: string;
  /** Connection fields as amqplib takes them (hostname, port, username, password, vhost, heartbeat...), instead of `url`. */
  connection?: Options.Connect;
  /** Virtual host; overrides the one of `url` / `connection`. */
  vhost?: string;
  /** TLS options for `amqps` (ca, cert, key, servername...), passed to `tls.connect`. */
  tls?: TlsConnectionOptions;
  /** Connection name shown by `rabbitmqctl list_connections client_properties` and the management UI. */
  connectionName?: string;
  /** Heartbeat interval in seconds unless the URL/connection sets one (default 10; 0 turns heartbeats off). */
  heartbeatSeconds?: number;
  /** Socket connect timeout in ms (default 10 000). */
  connectTimeoutMs?: number;
  /** Prefix of every queue and exchange name (default `tasuki`; 1 to 64 of `A-Z a-z 0-9 _ . : -`). */
  prefix?: string;
  /** Type of the declared queues: `classic` (default) or `quorum` (RabbitMQ clusters). */
  queueType?: RabbitMQQueueType;
  /**
   * Fixed per-consumer prefetch (1 to 65 535). Without it the prefetch grows to the deliveries this
   * instance holds in the group plus the largest `max` asked by `fetch` (the core's concurrency).
   */
  prefetch?: number;
  /** A consumer with no `fetch` waiting for this long (ms) is cancelled and hands back its buffered messages (default 250). */
  consumerIdleMs?: number;
  /** First reconnection delay in ms (default 100); doubles up to `reconnectMaxDelayMs`, with jitter. */
  reconnectInitialDelayMs?: number;
  /** Longest reconnection delay in ms (default 5000). */
  reconnectMaxDelayMs?: number;
  /** How long publish, counts, dead-letter and purge operations wait for a (re)connection before rejecting with `ConnectionError` (ms, default 15 000). */
  operationTimeoutMs?: number;
}

/** Broker name used in errors. */
const NAME = 'RabbitMQ broker';

/** Channels over which declarations and counts are spread. */
const TOPOLOGY_CHANNELS = 8;

/** A connection and the per-connection state that dies with it. */
interface Conn {
  readonly model: ChannelModel;
  lost: boolean;
  /** Lazily opened channels by role: `pub` (a ConfirmChannel), `admin:i` (declarations), `check:i` (counts). */
  readonly channels: Map<string, Promise<Channel>>;
  exchanges: Promise<void> | null;
  readonly groups: Map<string, Promise<void>>;
}

/** A message pushed to this instance and not yet handed out. */
interface Buffered {
  readonly msg: ConsumeMessage;
  readonly channel: Channel;
}

/** A delivery handed out by `fetch` and not yet settled. */
interface Held {
  readonly group: string;
  readonly channel: Channel;
  readonly msg: ConsumeMessage;
  timer: NodeJS.Timeout;
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
  holds = 0;
  constructor(readonly name: string) {}
}

/** A message to publish. */
interface Outgoing {
  readonly body: string;
  readonly target: 'work' | 'dead';
  readonly availableAt?: number | undefined;
  readonly headers?: Record<string, string>;
  readonly messageId: string;
}

/** Raised inside an attempt when RabbitMQ returned a mandatory message as unroutable. */
class UnroutableError extends Error {}

/** A connection waiter of {@link RabbitMQBroker.getConnection}. */
interface ConnWaiter {
  resolve(conn: Conn): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

const noop = (): void => undefined;

function errText(err: unknown): string {
  return err instanceof Error ? err.message : err === undefined ? 'no error recorded' : String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

function headerString(msg: Message, name: string): string | undefined {
  const headers = msg.properties.headers as Record<string, unknown> | undefined;
  const v = headers?.[name];
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'number') return String(v);
  return undefined;
}

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * A {@link Broker} on RabbitMQ. Several instances (processes, machines) with the same `prefix` and
 * vhost share the queues of their groups.
 *
 * ```ts
 * const broker = new RabbitMQBroker({ url: 'amqp://guest:guest@127.0.0.1:5672', prefix: 'myapp' });
 * ```
 */
export class RabbitMQBroker implements Broker {
  /** Short name for logs. */
  readonly kind = 'rabbitmq';
  /** Prefix of every queue and exchange name. */
  readonly prefix: string;
  /** Type of the declared queues. */
  readonly queueType: RabbitMQQueueType;

  private readonly target: string | Options.Connect;
  private readonly socketOptions: Record<string, unknown>;
  private readonly fixedPrefetch: number | undefined;
  private readonly idleMs: number;
  private readonly backoffInitial: number;
  private readonly backoffMax: number;
  private readonly opTimeout: number;
  private readonly instanceId = randomUUID().slice(0, 12);

  private closed = false;
  private closing: Promise<void> | null = null;
  private conn: Conn | null = null;
  private supervising = false;
  private backoffTimer: NodeJS.Timeout | null = null;
  private backoffWake: (() => void) | null = null;
  private lastError: unknown;
  /** When the last connection was lost or the last attempt failed; null while connected or still on the first attempt. */
  private downSince: number | null = null;
  private readonly connWaiters = new Set<ConnWaiter>();
  private readonly groups = new Map<string, GroupState>();
  private readonly held = new Map<string, Held>();
  private readonly inflightPublishes = new Set<string>();
  private readonly returnedIds = new Set<string>();
  private deliverySeq = 0;
  private consumerSeq = 0;

  /** @param options connection, naming and tuning options; see {@link RabbitMQBrokerOptions}. */
  constructor(options: RabbitMQBrokerOptions = {}) {
    this.prefix = options.prefix ?? 'tasuki';
    if (!PREFIX_PATTERN.test(this.prefix)) {
      throw new InvalidOptionError(`prefix ${JSON.stringify(this.prefix)} must be 1 to 64 characters of A-Z a-z 0-9 _ . : -`);
    }
    this.queueType = options.queueType ?? 'classic';
    if (this.queueType !== 'classic' && this.queueType !== 'quorum') {
      throw new InvalidOptionError(`queueType must be "classic" or "quorum", got ${JSON.stringify(this.queueType)}`);
    }
    this.fixedPrefetch = options.prefetch === undefined ? undefined : positiveInt('prefetch', options.prefetch, 1, 1, 65_535);
    this.idleMs = positiveInt('consumerIdleMs', options.consumerIdleMs, 250, 1);
    this.backoffInitial = positiveInt('reconnectInitialDelayMs', options.reconnectInitialDelayMs, 100, 1);
    this.backoffMax = positiveInt('reconnectMaxDelayMs', options.reconnectMaxDelayMs, 5000, 1);
    this.opTimeout = positiveInt('operationTimeoutMs', options.operationTimeoutMs, 15_000, 1);
    const heartbeat = positiveInt('heartbeatSeconds', options.heartbeatSeconds, 10, 0, 65_535);

    if (options.connection) {
      this.target = {
        ...options.connection,
        heartbeat: options.connection.heartbeat ?? heartbeat,
        ...(options.vhost !== undefined ? { vhost: options.vhost } : {}),
      };
    } else {
      let url: URL;
      try {
        url = new URL(options.url ?? 'amqp://guest:guest@127.0.0.1:5672');
      } catch (err) {
        throw new InvalidOptionError(`url is not a valid URL: ${errText(err)}`);
      }
      if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:') {
        throw new InvalidOptionError(`url must use amqp:// or amqps://, got ${url.protocol}//`);
      }
      if (options.vhost !== undefined) url.pathname = `/${encodeURIComponent(options.vhost)}`;
      if (!url.searchParams.has('heartbeat')) url.searchParams.set('heartbeat', String(heartbeat));
      this.target = url.toString();
    }
    this.socketOptions = {
      ...(options.tls ?? {}),
      noDelay: true,
      timeout: positiveInt('connectTimeoutMs', options.connectTimeoutMs, 10_000, 1),
      clientProperties: { connection_name: options.connectionName ?? `tasuki-${this.instanceId}` },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Connection supervision

  /** Opens the connection (waits up to `operationTimeoutMs`). Idempotent. */
  async connect(): Promise<void> {
    await this.getConnection(this.opTimeout);
  }

  /** Closes the connection; deliveries not acked return to their queues at once. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.closing = (async () => {
      if (this.backoffTimer) clearTimeout(this.backoffTimer);
      this.backoffWake?.();
      for (const w of this.connWaiters) {
        clearTimeout(w.timer);
        w.reject(new ClosedError(NAME));
      }
      this.connWaiters.clear();
      const channels: Array<Promise<Channel> | null> = [];
      for (const g of this.groups.values()) {
        if (g.idleTimer) clearTimeout(g.idleTimer);
        if (g.retryTimer) clearTimeout(g.retryTimer);
        for (const w of g.waiters.slice()) w.finish([]);
        g.buffer = [];
        channels.push(g.channel ? Promise.resolve(g.channel) : g.channelOpening);
      }
      for (const h of this.held.values()) clearTimeout(h.timer);
      this.held.clear();
      const conn = this.conn;
      this.conn = null;
      if (conn) {
        // Close the channels first: a channel's close is ordered after the acks sent on it, whereas
        // amqplib may write the connection close ahead of channel frames still buffered.
        channels.push(...conn.channels.values());
        await Promise.all(channels.map((p) => p?.then((ch) => ch.close()).catch(noop)));
        conn.lost = true;
        await conn.model.close().catch(noop);
      }
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError(NAME);
  }

  /** The live connection, waiting up to `timeoutMs` for (re)connection. */
  private getConnection(timeoutMs: number): Promise<Conn> {
    if (this.closed) return Promise.reject(new ClosedError(NAME));
    if (this.conn) return Promise.resolve(this.conn);
    this.supervise();
    return new Promise<Conn>((resolve, reject) => {
      const waiter: ConnWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.connWaiters.delete(waiter);
          reject(new ConnectionError(`no connection to RabbitMQ within ${timeoutMs} ms: ${errText(this.lastError)}`, this.lastError));
        }, Math.max(0, timeoutMs)),
      };
      this.connWaiters.add(waiter);
    });
  }

  /** Starts the (re)connection loop unless it runs. */
  private supervise(): void {
    if (this.supervising || this.closed || this.conn) return;
    this.supervising = true;
    void this.connectLoop();
  }

  private async connectLoop(): Promise<void> {
    let delay = this.backoffInitial;
    try {
      while (!this.closed) {
        let model: ChannelModel | undefined;
        try {
          model = await amqpConnect(this.target, this.socketOptions);
        } catch (err) {
          this.lastError = err;
          this.downSince ??= Date.now();
        }
        if (model && this.closed) {
          await model.close().catch(noop);
          return;
        }
        if (model) {
          const conn = this.adopt(model);
          if (conn) {
            this.onConnected(conn);
            return;
          }
        }
        // Back off (jittered, cancellable by close) before the next attempt: no busy loop while down.
        const wait = Math.round(delay * (0.5 + Math.random() / 2));
        delay = Math.min(this.backoffMax, delay * 2);
        await new Promise<void>((resolve) => {
          this.backoffWake = resolve;
          this.backoffTimer = setTimeout(resolve, wait);
          this.backoffTimer.unref();
        });
        this.backoffTimer = null;
        this.backoffWake = null;
      }
    } finally {
      this.supervising = false;
    }
  }

  /** Wires a fresh connection; returns undefined if it already closed again. */
  private adopt(model: ChannelModel): Conn | undefined {
    const conn: Conn = { model, lost: false, channels: new Map(), exchanges: null, groups: new Map() };
    model.on('error', (err: unknown) => {
      this.lastError = err;
    });
    model.on('close', (err?: unknown) => this.onConnectionClosed(conn, err));
    model.on('blocked', noop);
    model.on('unblocked', noop);
    if (conn.lost) return undefined;
    this.conn = conn;
    this.downSince = null;
    return conn;
  }

  private onConnected(conn: Conn): void {
    for (const w of this.connWaiters) {
      clearTimeout(w.timer);
      w.resolve(conn);
    }
    this.connWaiters.clear();
    for (const g of this.groups.values()) if (g.waiters.length > 0) this.kickConsumer(g);
  }

  private onConnectionClosed(conn: Conn, err: unknown): void {
    conn.lost = true;
    if (err !== undefined) this.lastError = err;
    if (this.conn !== conn) return;
    this.conn = null;
    this.downSince = Date.now();
    // Every channel of the connection is gone: RabbitMQ has requeued what they held.
    for (const [token, h] of this.held) if (h.channel.connection === conn.model.connection) this.dropHeld(token);
    for (const g of this.groups.values()) {
      g.channel = null;
      g.channelOpening = null;
      g.consumerTag = null;
      g.prefetch = 0;
      g.buffer = [];
    }
    if (!this.closed) this.supervise();
  }

  /** Whether an error of an attempt is worth another attempt (connection or channel gone, nack, unroutable). */
  private isTransient(err: unknown, conn: Conn): boolean {
    if (conn.lost || err instanceof UnroutableError) return true;
    const code = amqpReplyCode(err);
    if (code !== undefined && code !== 320 && code !== 541) return false;
    return /channel (closed|ended|closing)|connection (closed|closing)|nacked|ECONNRESET|EPIPE/i.test(errText(err));
  }

  /**
   * Runs `op` on the live connection; on transport failures waits for reconnection and runs it again,
   * for up to `operationTimeoutMs`.
   */
  private async run<T>(what: string, op: (conn: Conn) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.opTimeout;
    let lastErr: unknown;
    for (;;) {
      this.assertOpen();
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ConnectionError(`${what} did not complete within ${this.opTimeout} ms: ${errText(lastErr)}`, lastErr);
      }
      const conn = await this.getConnection(remaining);
      try {
        return await op(conn);
      } catch (err) {
        if (this.closed) throw new ClosedError(NAME);
        if (err instanceof TasukiError) throw err;
        if (!this.isTransient(err, conn)) throw new ConnectionError(`${what} failed: ${errText(err)}`, err);
        lastErr = err;
        await sleep(Math.min(100, deadline - Date.now()));
      }
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Channels and topology

  private lazyChannel(conn: Conn, key: string, create: () => Promise<Channel>): Promise<Channel> {
    const existing = conn.channels.get(key);
    if (existing) return existing;
    const p = create().then((ch) => {
      ch.on('error', (err: unknown) => {
        this.lastError = err;
        if (key === 'pub' && amqpReplyCode(err) === NOT_FOUND) {
          // An exchange or queue we believed declared is gone: declare again on the next attempt.
          conn.exchanges = null;
          conn.groups.clear();
        }
      });
      ch.on('close', () => {
        if (conn.channels.get(key) === p) conn.channels.delete(key);
      });
      return ch;
    });
    p.catch(() => {
      if (conn.channels.get(key) === p) conn.channels.delete(key);
    });
    conn.channels.set(key, p);
    return p;
  }

  private pubChannel(conn: Conn): Promise<ConfirmChannel> {
    // The 'pub' slot is only ever filled by the factory below, which creates a ConfirmChannel.
    return this.lazyChannel(conn, 'pub', async () => {
      const ch = await conn.model.createConfirmChannel();
      ch.on('return', (msg: Message) => {
        const id = msg.properties.messageId as unknown;
        if (typeof id === 'string' && this.inflightPublishes.has(id)) this.returnedIds.add(id);
      });
      return ch;
    }) as Promise<ConfirmChannel>;
  }

  /**
   * Runs `fn` on the channel `role:(slot % TOPOLOGY_CHANNELS)`. Declarations and checks are spread
   * over a few channels so that RabbitMQ handles them in parallel (amqplib runs one RPC at a time per
   * channel). When another operation made RabbitMQ close the shared channel (404, 406), `fn` is run
   * again on a fresh one.
   */
  private async onChannel<T>(conn: Conn, role: 'admin' | 'check', slot: number, fn: (ch: Channel) => Promise<T>): Promise<T> {
    const key = `${role}:${slot % TOPOLOGY_CHANNELS}`;
    for (let attempt = 0; ; attempt++) {
      const ch = await this.lazyChannel(conn, key, () => conn.model.createChannel());
      try {
        return await fn(ch);
      } catch (err) {
        const collateral = amqpReplyCode(err) === undefined && /channel (ended|closed|closing)/i.test(errText(err));
        // Each round completes at least the operation that closed the channel, so this ends.
        if (attempt < 64 && collateral && !conn.lost) continue;
        throw err;
      }
    }
  }

  /** Declares the shared delay exchanges and their pass-down bindings once per connection. */
  private ensureExchanges(conn: Conn): Promise<void> {
    if (!conn.exchanges) {
      const p = (async () => {
        const names = delayExchangeNames(this.prefix);
        await Promise.all(
          names.map((name, i) =>
            this.onChannel(conn, 'admin', i, async (ch) => {
              try {
                await ch.assertExchange(name, 'topic', { durable: true, autoDelete: false, internal: false });
              } catch (err) {
                throw toTopologyMismatch(err, `exchange "${name}"`, { type: 'topic', durable: true }) ?? err;
              }
            }),
          ),
        );
        await Promise.all(
          names.slice(1).map((name, i) =>
            this.onChannel(conn, 'admin', i, (ch) => ch.bindExchange(delayExchangeName(this.prefix, i), name, passDownBindingKey(i + 1))),
          ),
        );
      })();
      conn.exchanges = p;
      p.catch(() => {
        if (conn.exchanges === p) conn.exchanges = null;
      });
    }
    return conn.exchanges;
  }

  /** Declares a group's queues and bindings once per connection; a conflicting queue fails with `TopologyMismatchError`. */
  private ensureGroup(conn: Conn, group: string): Promise<void> {
    let p = conn.groups.get(group);
    if (!p) {
      const declared = this.declareGroup(conn, group);
      p = declared;
      conn.groups.set(group, declared);
      declared.catch(() => {
        if (conn.groups.get(group) === declared) conn.groups.delete(group);
      });
    }
    return p;
  }

  private async declareGroup(conn: Conn, group: string): Promise<void> {
    await this.ensureExchanges(conn);
    const names = groupQueueNames(this.prefix, group);
    const declare = async (ch: Channel, queue: string, args: Record<string, unknown>): Promise<void> => {
      try {
        await ch.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false, arguments: args });
      } catch (err) {
        throw toTopologyMismatch(err, `queue "${queue}"`, args) ?? err;
      }
    };
    const tasks: Array<(ch: Channel) => Promise<void>> = [
      async (ch) => {
        await declare(ch, names.work, plainQueueArguments(this.queueType));
        await ch.bindQueue(names.work, delayExchangeName(this.prefix, 0), levelBindingKey(0, 0, group));
      },
      (ch) => declare(ch, names.dead, plainQueueArguments(this.queueType)),
      ...names.delay.map((queue, level) => async (ch: Channel) => {
        await declare(ch, queue, delayQueueArguments(this.prefix, group, level, this.queueType));
        await ch.bindQueue(queue, delayExchangeName(this.prefix, level), levelBindingKey(level, 1, group));
      }),
    ];
    await Promise.all(tasks.map((task, i) => this.onChannel(conn, 'admin', i, task)));
  }

  /** Message count of a queue; 0 when it does not exist. */
  private async countQueue(conn: Conn, queue: string, slot: number): Promise<number> {
    try {
      return await this.onChannel(conn, 'check', slot, async (ch) => (await ch.checkQueue(queue)).messageCount);
    } catch (err) {
      if (amqpReplyCode(err) === NOT_FOUND) return 0;
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing

  /**
   * Publishes messages of one group with confirms, retrying what was not confirmed after transport
   * failures (at-least-once: a message whose confirm was lost may be stored twice). Returns false
   * without publishing the rest when `stillWanted` turns false between attempts.
   */
  private async publishMessages(group: string, items: Outgoing[], stillWanted?: () => boolean): Promise<boolean> {
    let pending = items;
    let gaveUp = false;
    await this.run(`publishing to group "${group}"`, async (conn) => {
      if (stillWanted && !stillWanted()) {
        gaveUp = true;
        return;
      }
      await this.ensureGroup(conn, group);
      const ch = await this.pubChannel(conn);
      const outcomes = await this.sendAll(ch, group, pending);
      const next: Outgoing[] = [];
      let failure: unknown;
      let returned = false;
      outcomes.forEach((outcome, i) => {
        if (outcome === 'ok') return;
        next.push(pending[i] as Outgoing);
        if (outcome === 'returned') returned = true;
        else failure = outcome.error;
      });
      pending = next;
      if (returned) conn.groups.delete(group);
      if (failure !== undefined) throw failure;
      if (returned) throw new UnroutableError(`RabbitMQ returned messages of group "${group}" as unroutable; declaring its queues again`);
    });
    return !gaveUp;
  }

  private async sendAll(ch: ConfirmChannel, group: string, items: Outgoing[]): Promise<Array<'ok' | 'returned' | { error: unknown }>> {
    const names = groupQueueNames(this.prefix, group);
    const results: Array<Promise<'ok' | 'returned' | { error: unknown }>> = [];
    for (const item of items) {
      const now = Date.now();
      const headers: Record<string, string> = { ...item.headers };
      let exchange = '';
      let routingKey = item.target === 'dead' ? names.dead : names.work;
      if (item.target === 'work' && item.availableAt !== undefined && item.availableAt > now) {
        headers[HEADER_AVAILABLE_AT] = String(item.availableAt);
        const route = delayRoute(this.prefix, group, item.availableAt - now);
        exchange = route.exchange;
        routingKey = route.routingKey;
      }
      const id = item.messageId;
      this.inflightPublishes.add(id);
      this.returnedIds.delete(id);
      let full = false;
      results.push(
        new Promise((resolve) => {
          const settle = (outcome: 'ok' | 'returned' | { error: unknown }): void => {
            this.inflightPublishes.delete(id);
            this.returnedIds.delete(id);
            resolve(outcome);
          };
          try {
            full = !ch.publish(
              exchange,
              routingKey,
              Buffer.from(item.body, 'utf8'),
              { persistent: true, mandatory: true, messageId: id, headers },
              (err: unknown) => settle(err ? { error: err } : this.returnedIds.has(id) ? 'returned' : 'ok'),
            );
          } catch (err) {
            settle({ error: err });
          }
        }),
      );
      if (full) {
        // Socket buffer full: wait for it to drain (or the channel to die) before writing more.
        await new Promise<void>((resolve) => {
          const done = (): void => {
            ch.off('drain', done);
            ch.off('close', done);
            resolve();
          };
          ch.on('drain', done);
          ch.on('close', done);
        });
      }
    }
    return Promise.all(results);
  }

  /** Publishes one message body to a group; resolves once RabbitMQ confirmed it. */
  async publish(group: string, body: string, options?: PublishOptions): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    await this.publishMessages(group, [{ body, target: 'work', availableAt: options?.availableAt, messageId: randomUUID() }]);
  }

  /** Publishes many bodies to one group, pipelined, awaiting all confirms. */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    if (items.length === 0) return;
    await this.publishMessages(
      group,
      items.map((i) => ({ body: i.body, target: 'work' as const, availableAt: i.options?.availableAt, messageId: randomUUID() })),
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Consuming

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

  /** Takes up to `max` ready messages, leasing each for `leaseMs`; waits up to `waitMs` for the first. */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.assertOpen();
    assertName('group', group);
    if (!Number.isFinite(max) || max < 1) throw new InvalidOptionError(`fetch max must be ≥ 1, got ${String(max)}`);
    if (!Number.isFinite(options.leaseMs) || options.leaseMs <= 0) throw new InvalidOptionError(`leaseMs must be > 0, got ${String(options.leaseMs)}`);
    if (!Number.isFinite(options.waitMs) || options.waitMs < 0) throw new InvalidOptionError(`waitMs must be ≥ 0, got ${String(options.waitMs)}`);
    const n = Math.floor(max);
    const g = this.groupState(group);
    if (g.idleTimer) {
      clearTimeout(g.idleTimer);
      g.idleTimer = null;
    }
    if (g.buffer.length > 0 && g.waiters.length === 0) {
      const got = this.take(g, n, options.leaseMs);
      this.scheduleIdle(g);
      return got;
    }
    const signal = options.signal;
    if (signal?.aborted) {
      this.scheduleIdle(g);
      return [];
    }
    return new Promise<Delivery[]>((resolve, reject) => {
      let done = false;
      const waiter: Waiter = {
        max: n,
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
      const timer = setTimeout(
        () =>
          waiter.finish(
            this.conn || this.closed || this.downSince === null
              ? []
              : new ConnectionError(`not connected to RabbitMQ: ${errText(this.lastError)}`, this.lastError),
          ),
        options.waitMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      g.waiters.push(waiter);
      this.kickConsumer(g);
    });
  }

  /** Makes sure the group has a consumer with enough prefetch for its waiters. */
  private kickConsumer(g: GroupState): void {
    this.serial(g, () => this.ensureConsumer(g)).catch((err: unknown) => this.onConsumerError(g, err));
  }

  private onConsumerError(g: GroupState, err: unknown): void {
    if (this.closed) return;
    if (err instanceof TasukiError && err.code !== 'ERR_CONNECTION' && err.code !== 'ERR_CLOSED') {
      for (const w of g.waiters.slice()) w.finish(err);
      return;
    }
    const conn = this.conn;
    if (!(err instanceof TasukiError) && conn && !this.isTransient(err, conn)) {
      // RabbitMQ refused something outright (e.g. 403 ACCESS_REFUSED): tell the callers.
      const failure = new ConnectionError(`consuming group "${g.name}" failed: ${errText(err)}`, err);
      for (const w of g.waiters.slice()) w.finish(failure);
      return;
    }
    this.lastError = err;
    // Channel-level failure on a live connection: try again shortly. Connection loss: the
    // reconnection restarts consumers of groups with waiters.
    if (this.conn && g.waiters.length > 0 && !g.retryTimer) {
      g.retryTimer = setTimeout(() => {
        g.retryTimer = null;
        if (g.waiters.length > 0) this.kickConsumer(g);
      }, 200);
      g.retryTimer.unref();
    }
  }

  private async ensureConsumer(g: GroupState): Promise<void> {
    if (this.closed || g.waiters.length === 0) return;
    const conn = await this.getConnection(this.opTimeout);
    if (g.waiters.length === 0) return;
    await this.ensureGroup(conn, g.name);
    const ch = await this.consumeChannel(conn, g);
    const largest = Math.max(...g.waiters.map((w) => w.max));
    const want = this.fixedPrefetch ?? Math.min(65_535, Math.max(g.prefetch, g.holds + largest));
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
    const tag = `tasuki.${this.instanceId}.${++this.consumerSeq}`;
    g.consumerTag = tag;
    try {
      await ch.consume(groupQueueNames(this.prefix, g.name).work, (msg) => this.onDelivery(g, ch, tag, msg), {
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
    const p = conn.model.createChannel().then((ch) => {
      ch.on('error', (err: unknown) => {
        this.lastError = err;
      });
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
    for (const [token, h] of this.held) if (h.channel === ch) this.dropHeld(token);
    if (!this.closed && !conn.lost && g.waiters.length > 0) this.onConsumerError(g, new Error('consumer channel closed'));
  }

  private onDelivery(g: GroupState, ch: Channel, tag: string, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // Server-side cancel (queue deleted, e.g. purged elsewhere): declare and consume again if needed.
      if (g.consumerTag === tag) {
        g.consumerTag = null;
        g.prefetch = 0;
        this.conn?.groups.delete(g.name);
        if (g.waiters.length > 0) this.onConsumerError(g, new Error('consumer cancelled by RabbitMQ'));
      }
      return;
    }
    if (this.closed) return;
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
      await this.publishMessages(g.name, [
        {
          body: msg.content.toString('utf8'),
          target: 'work',
          availableAt: at,
          messageId: typeof msg.properties.messageId === 'string' ? msg.properties.messageId : randomUUID(),
        },
      ]);
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
    if (this.closed || g.idleTimer || g.waiters.length > 0) return;
    if (!g.consumerTag && g.buffer.length === 0) return;
    g.idleTimer = setTimeout(() => {
      g.idleTimer = null;
      if (g.waiters.length === 0) void this.serial(g, () => this.idleCancel(g)).catch(noop);
    }, this.idleMs);
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
    const out: Delivery[] = [];
    for (const { msg, channel } of g.buffer.splice(0, max)) {
      const token = `${this.instanceId}.${(++this.deliverySeq).toString(36)}`;
      const timer = setTimeout(() => this.expireLease(token), leaseMs);
      timer.unref();
      this.held.set(token, { group: g.name, channel, msg, timer });
      g.holds++;
      out.push({ group: g.name, body: msg.content.toString('utf8'), token, redelivered: msg.fields.redelivered });
    }
    return out;
  }

  private dropHeld(token: string): Held | undefined {
    const h = this.held.get(token);
    if (!h) return undefined;
    this.held.delete(token);
    clearTimeout(h.timer);
    const g = this.groups.get(h.group);
    if (g) g.holds = Math.max(0, g.holds - 1);
    return h;
  }

  private expireLease(token: string): void {
    const h = this.dropHeld(token);
    if (h) nackSafe(h.channel, h.msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Settling deliveries

  /** Acks a delivery (after its result was written). A token no longer held is a no-op. */
  async ack(delivery: Delivery): Promise<void> {
    this.assertOpen();
    const h = this.dropHeld(delivery.token);
    if (h) ackSafe(h.channel, h.msg);
  }

  /** Publishes `body` (ready at `availableAt`) with confirm, then acks the delivery. */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.assertOpen();
    const h = this.held.get(delivery.token);
    if (!h) return;
    const published = await this.publishMessages(
      h.group,
      [{ body, target: 'work', availableAt, messageId: randomUUID() }],
      () => this.held.get(delivery.token) === h,
    );
    if (!published) return;
    const still = this.dropHeld(delivery.token);
    if (still) ackSafe(still.channel, still.msg);
  }

  /** Hands the delivery back unchanged and ready at once (nack with requeue). */
  async release(delivery: Delivery): Promise<void> {
    this.assertOpen();
    const h = this.held.get(delivery.token);
    if (!h) return;
    const g = this.groups.get(h.group);
    // Nobody here fetches from the group (shutdown): stop our consumer first so the message goes
    // to another worker rather than back into our own buffer.
    if (g && g.waiters.length === 0) await this.serial(g, () => this.idleCancel(g)).catch(noop);
    const still = this.dropHeld(delivery.token);
    if (still) nackSafe(still.channel, still.msg);
  }

  /** Renews leases; returns the tokens this instance no longer holds. */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.assertOpen();
    const lost: string[] = [];
    for (const d of deliveries) {
      const h = this.held.get(d.token);
      if (!h) {
        lost.push(d.token);
        continue;
      }
      clearTimeout(h.timer);
      h.timer = setTimeout(() => this.expireLease(d.token), leaseMs);
      h.timer.unref();
    }
    return lost;
  }

  /** Publishes the delivery to the group's dead-letter queue (reason in headers, confirmed), then acks it. */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.assertOpen();
    const h = this.held.get(delivery.token);
    if (!h) return;
    const published = await this.publishMessages(
      h.group,
      [
        {
          body: h.msg.content.toString('utf8'),
          target: 'dead',
          messageId: randomUUID(),
          headers: { [HEADER_DEAD_CODE]: reason.code, [HEADER_DEAD_MESSAGE]: reason.message, [HEADER_DEAD_AT]: String(Date.now()) },
        },
      ],
      () => this.held.get(delivery.token) === h,
    );
    if (!published) return;
    const still = this.dropHeld(delivery.token);
    if (still) ackSafe(still.channel, still.msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters

  /**
   * Reads the dead-letter queue of a group with `basic.get` on a private channel, calling `visit` for
   * each message until it returns `'stop'` or the queue is exhausted, then `done`; closing the channel
   * then hands every message not acked back to the queue in its original position. Messages being
   * scanned are invisible to other processes until then (a concurrent listing may miss them).
   */
  private async scanDead(
    conn: Conn,
    group: string,
    visit: (msg: GetMessage, ch: Channel) => 'stop' | void,
    done?: (ch: Channel) => Promise<void>,
  ): Promise<void> {
    const ch = await conn.model.createChannel();
    ch.on('error', (err: unknown) => {
      this.lastError = err;
    });
    try {
      const queue = groupQueueNames(this.prefix, group).dead;
      for (;;) {
        let msg: GetMessage | false;
        try {
          msg = await ch.get(queue, { noAck: false });
        } catch (err) {
          if (amqpReplyCode(err) === NOT_FOUND) return;
          throw err;
        }
        if (msg === false || visit(msg, ch) === 'stop') break;
      }
      await done?.(ch);
    } finally {
      await ch.close().catch(noop);
    }
  }

  private toDeadLetter(group: string, msg: Message): DeadLetter {
    const body = msg.content.toString('utf8');
    const at = Number(headerString(msg, HEADER_DEAD_AT));
    return {
      id: deadLetterId(msg),
      group,
      body,
      reason: { code: headerString(msg, HEADER_DEAD_CODE) ?? 'ERR_UNKNOWN', message: headerString(msg, HEADER_DEAD_MESSAGE) ?? '' },
      at: Number.isFinite(at) ? at : 0,
    };
  }

  /** Lists dead letters of a group, oldest first (reads and hands back the dead-letter queue). */
  async listDeadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]> {
    this.assertOpen();
    assertName('group', group);
    const offset = options?.offset ?? 0;
    const limit = options?.limit ?? Infinity;
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidOptionError(`offset must be an integer ≥ 0, got ${String(offset)}`);
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw new InvalidOptionError(`limit must be an integer ≥ 0, got ${String(limit)}`);
    if (limit === 0) return [];
    return this.run(`listing dead letters of group "${group}"`, async (conn) => {
      const out: DeadLetter[] = [];
      let index = 0;
      await this.scanDead(conn, group, (msg) => {
        if (index >= offset) out.push(this.toDeadLetter(group, msg));
        index++;
        return out.length >= limit ? 'stop' : undefined;
      });
      return out;
    });
  }

  /** Moves dead letters (the given ids, or all) back to the work queue: publish (confirmed), then ack. */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    assertName('group', group);
    const wanted = ids ? new Set(ids) : undefined;
    if (wanted && wanted.size === 0) return 0;
    return this.run(`redriving dead letters of group "${group}"`, async (conn) => {
      const missing = wanted ? new Set(wanted) : undefined;
      const chosen: GetMessage[] = [];
      await this.scanDead(
        conn,
        group,
        (msg) => {
          const id = deadLetterId(msg);
          if (missing && !missing.has(id)) return undefined;
          chosen.push(msg);
          missing?.delete(id);
          return missing?.size === 0 ? 'stop' : undefined;
        },
        async (ch) => {
          if (chosen.length === 0) return;
          // Publish (confirmed) first, then ack: a crash in between duplicates, never loses.
          await this.publishMessages(
            group,
            chosen.map((m) => ({ body: m.content.toString('utf8'), target: 'work' as const, messageId: randomUUID() })),
          );
          for (const m of chosen) ch.ack(m);
        },
      );
      return chosen.length;
    });
  }

  /** Deletes dead letters (the given ids, or all). */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    assertName('group', group);
    const queue = groupQueueNames(this.prefix, group).dead;
    if (!ids) {
      return this.run(`deleting dead letters of group "${group}"`, async (conn) => {
        try {
          return await this.onChannel(conn, 'check', 0, async (ch) => (await ch.purgeQueue(queue)).messageCount);
        } catch (err) {
          if (amqpReplyCode(err) === NOT_FOUND) return 0;
          throw err;
        }
      });
    }
    const wanted = new Set(ids);
    if (wanted.size === 0) return 0;
    return this.run(`deleting dead letters of group "${group}"`, async (conn) => {
      const missing = new Set(wanted);
      let deleted = 0;
      await this.scanDead(conn, group, (msg, ch) => {
        const id = deadLetterId(msg);
        if (!missing.has(id)) return undefined;
        ch.ack(msg);
        deleted++;
        missing.delete(id);
        return missing.size === 0 ? 'stop' : undefined;
      });
      return deleted;
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Monitoring and tear-down

  /**
   * Counts of a group: ready = work queue, delayed = sum over the delay level queues (not read
   * atomically: a message moving between levels during the read may be counted twice or not at all),
   * inFlight = deliveries this instance holds or has buffered, dead = dead-letter queue.
   */
  async counts(group: string): Promise<QueueCounts> {
    this.assertOpen();
    assertName('group', group);
    return this.run(`counting group "${group}"`, async (conn) => {
      const names = groupQueueNames(this.prefix, group);
      const [ready, dead, ...levels] = await Promise.all(
        [names.work, names.dead, ...names.delay].map((queue, i) => this.countQueue(conn, queue, i)),
      );
      const delayed = levels.reduce((sum, n) => sum + n, 0);
      const g = this.groups.get(group);
      return { ready: ready ?? 0, delayed, inFlight: (g?.holds ?? 0) + (g?.buffer.length ?? 0), dead: dead ?? 0 };
    });
  }

  /** Deletes the group's queues (work, dead letters, delay levels) with every message in them. */
  async purge(group: string): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    const g = this.groups.get(group);
    if (g) {
      await this.serial(g, () => this.idleCancel(g)).catch(noop);
      // The queue goes away with these messages; settling them later is a no-op.
      for (const [token, h] of this.held) if (h.group === group) this.dropHeld(token);
    }
    await this.run(`purging group "${group}"`, async (conn) => {
      const names = groupQueueNames(this.prefix, group);
      conn.groups.delete(group);
      await Promise.all(
        [names.work, names.dead, ...names.delay].map((queue, i) => this.onChannel(conn, 'admin', i, (ch) => ch.deleteQueue(queue))),
      );
      conn.groups.delete(group);
    });
  }
  /**
   * Deletes the delay exchanges this prefix shares between groups (tear-down of a whole prefix, e.g.
   * in tests or benchmarks, after `purge` of every group). Delayed messages of groups still in use
   * can no longer travel; the next delayed publish declares the exchanges again.
   */
  async deleteDelayExchanges(): Promise<void> {
    this.assertOpen();
    await this.run('deleting the delay exchanges', async (conn) => {
      conn.exchanges = null;
      conn.groups.clear();
      await Promise.all(delayExchangeNames(this.prefix).map((name, i) => this.onChannel(conn, 'admin', i, (ch) => ch.deleteExchange(name))));
      conn.exchanges = null;
      conn.groups.clear();
    });
  }

}

/** Stable id of a dead letter: its message id, or a content hash for messages put there by others. */
function deadLetterId(msg: Message): string {
  const id = msg.properties.messageId as unknown;
  if (typeof id === 'string' && id !== '') return id;
  return `sha256:${createHash('sha256').update(msg.content).digest('hex').slice(0, 32)}`;
}

/** Acks unless the channel is gone (then RabbitMQ has requeued the message already). */
function ackSafe(ch: Channel, msg: Message): void {
  try {
    ch.ack(msg);
  } catch {
    // channel closed
  }
}

/** Nacks with requeue unless the channel is gone. */
function nackSafe(ch: Channel, msg: Message): void {
  try {
    ch.nack(msg, false, true);
  } catch {
    // channel closed
  }
}

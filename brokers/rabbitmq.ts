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
 * - Delays live in per-group delay level queues (powers of two, see `rabbitmq-topology.ts`); the
 *   delay mover of each fetching instance moves them on by confirmed publish-then-ack, so a RabbitMQ
 *   crash loses no delayed message or retry.
 * - Dead letters live in a per-group queue; listing reads them with `basic.get` on a private channel
 *   and hands them back by closing that channel (RabbitMQ requeues them in their original order).
 * - Declarations and counts are spread over a few channels so RabbitMQ handles them in parallel.
 *
 * - Clusters: `urls` lists the nodes; each (re)connection tries them in turn (see the option), so
 *   after a node dies the broker reconnects to a surviving one. With `queueType: 'quorum'` the queues
 *   are replicated and a confirmed publish is on a majority of nodes; `deliveryLimit` sets a quorum
 *   work queue's `x-delivery-limit`, with the group's dead-letter queue as RabbitMQ's dead-letter target.
 *
 * Limits worth knowing: RabbitMQ's `consumer_timeout` (30 min by default) closes a channel whose
 * delivery stays unacked longer — for handlers that run longer, raise it in `rabbitmq.conf`
 * (`extend` then reports the lease lost, and the message is redelivered). RabbitMQ 3.10 has no
 * per-queue value (the `x-consumer-timeout` argument and `consumer-timeout` policy key came with
 * 3.11.15/3.12), so tasuki does not declare one. A message prefetched into
 * an idle consumer's buffer and handed back is marked redelivered by RabbitMQ although no handler saw it.
 */
import { randomUUID } from 'node:crypto';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Channel, Options } from 'amqplib';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, DispatchFeature, PublishOptions, QueueCounts } from '../src/broker.js';
import { InvalidOptionError, UnsupportedError } from '../src/errors.js';
import { DEFAULT_PRIORITY, checkPriority, requireFeature } from '../src/limits.js';
import { assertName } from '../src/names.js';
import { HEADER_DEAD_AT, HEADER_DEAD_CODE, HEADER_DEAD_MESSAGE, PREFIX_PATTERN, groupQueueNames, type RabbitMQQueueType } from './rabbitmq-topology.js';
import { RabbitConnection, type Conn } from './rabbitmq/connection.js';
import { Consumers } from './rabbitmq/consumer.js';
import { DeadLetters } from './rabbitmq/dead-letters.js';
import { Declarations } from './rabbitmq/declarations.js';
import { DEFAULT_HOLD_MS, DelayMover } from './rabbitmq/delay-mover.js';
import { Leases } from './rabbitmq/leases.js';
import { Publisher } from './rabbitmq/publisher.js';
import { connectionTargets } from './rabbitmq/targets.js';
import { ackSafe, errText, nackSafe, positiveInt, priorityOf } from './rabbitmq/util.js';

export type { RabbitMQQueueType } from './rabbitmq-topology.js';

/** Options of {@link RabbitMQBroker}. */
export interface RabbitMQBrokerOptions {
  /** `amqp://` or `amqps://` URL (default `amqp://guest:guest@127.0.0.1:5672`). Ignored when `connection` or `urls` is given. */
  url?: string;
  /**
   * URLs of the nodes of a RabbitMQ cluster, instead of `url`. Each (re)connection tries them in turn,
   * starting at a random one (which spreads instances over the nodes) and, after a lost connection,
   * at the node after the one lost; a full round of failed attempts backs off like a single URL.
   */
  urls?: readonly string[];
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
  /** Prefix of every queue name (default `tasuki`; 1 to 64 of `A-Z a-z 0-9 _ : -`; no `.`, so that two prefixes' queue names never coincide). */
  prefix?: string;
  /** Type of the declared queues: `classic` (default) or `quorum` (RabbitMQ clusters). */
  queueType?: RabbitMQQueueType;
  /**
   * Declare work queues with `x-max-priority` 9, so that the `priority` send control works (classic
   * queues only; default false). Every process of a group must use the same setting: an existing
   * work queue declared the other way fails with `TopologyMismatchError`. Quorum queues (RabbitMQ
   * 3.10) have no priorities: with `queueType: 'quorum'` this option is refused (`UnsupportedError`).
   */
  priorities?: boolean;
  /**
   * Quorum queues only: declare work queues with `x-delivery-limit` = this and dead-letter a message
   * over the limit into the group's dead-letter queue (`x-dead-letter-exchange` `""`,
   * `x-dead-letter-routing-key` `P.dead.G`) instead of letting RabbitMQ drop it. RabbitMQ counts every
   * return (lease expiry, release, a worker's lost connection, an idle consumer's hand-back), so keep
   * it well above the core's `maxDeliveries` (default 5), e.g. 100. Default: no limit (RabbitMQ 3.10
   * has no default delivery limit). Changing it on an existing queue is a `TopologyMismatchError`.
   */
  deliveryLimit?: number;
  /**
   * Fixed per-consumer prefetch (1 to 65 535). Without it the prefetch grows to the deliveries this
   * instance holds in the group plus the largest `max` asked by `fetch` (the core's concurrency).
   */
  prefetch?: number;
  /** A consumer with no `fetch` waiting for this long (ms) is cancelled and hands back its buffered messages (default 250). */
  consumerIdleMs?: number;
  /**
   * Longest time in ms a delay mover holds a delayed message unacked before it is due to move on
   * (default 60 000): keep it well under RabbitMQ's `consumer_timeout` (30 min by default). A level
   * whose head is due later is handed back and consumed again shortly before.
   */
  delayHoldMs?: number;
  /** First reconnection delay in ms (default 100); doubles up to `reconnectMaxDelayMs`, with jitter. */
  reconnectInitialDelayMs?: number;
  /** Longest reconnection delay in ms (default 5000). */
  reconnectMaxDelayMs?: number;
  /** How long publish, counts, dead-letter and purge operations wait for a (re)connection before rejecting with `ConnectionError` (ms, default 15 000). */
  operationTimeoutMs?: number;
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
  /**
   * `priority` when work queues are declared with priorities (option `priorities`). Keys and limits
   * are not enforced: RabbitMQ pushes messages to consumers and keeps no shared state tasuki could
   * evaluate a global limit in, so workers refuse them (`UnsupportedError`).
   */
  readonly dispatchFeatures: ReadonlySet<DispatchFeature>;

  private readonly instanceId = randomUUID().slice(0, 12);
  private readonly connection: RabbitConnection;
  private readonly declarations: Declarations;
  private readonly publisher: Publisher;
  private readonly leases: Leases;
  private readonly consumers: Consumers;
  private readonly deadLetters: DeadLetters;
  private readonly mover: DelayMover;
  private closing: Promise<void> | null = null;

  /** @param options connection, naming and tuning options; see {@link RabbitMQBrokerOptions}. */
  constructor(options: RabbitMQBrokerOptions = {}) {
    this.prefix = options.prefix ?? 'tasuki';
    if (!PREFIX_PATTERN.test(this.prefix)) {
      throw new InvalidOptionError(`prefix ${JSON.stringify(this.prefix)} must be 1 to 64 characters of A-Z a-z 0-9 _ : - (no ".", which separates the parts of queue names)`);
    }
    this.queueType = options.queueType ?? 'classic';
    if (this.queueType !== 'classic' && this.queueType !== 'quorum') {
      throw new InvalidOptionError(`queueType must be "classic" or "quorum", got ${JSON.stringify(this.queueType)}`);
    }
    const priorities = options.priorities ?? false;
    if (typeof priorities !== 'boolean') throw new InvalidOptionError('priorities must be a boolean');
    if (priorities && this.queueType === 'quorum') {
      throw new UnsupportedError('priorities are not supported on quorum queues (RabbitMQ 3.10 quorum queues have no x-max-priority); use classic queues for prioritised groups');
    }
    this.dispatchFeatures = new Set<DispatchFeature>(priorities ? ['priority'] : []);
    const fixedPrefetch = options.prefetch === undefined ? undefined : positiveInt('prefetch', options.prefetch, 1, 1, 65_535);
    const idleMs = positiveInt('consumerIdleMs', options.consumerIdleMs, 250, 1);
    const backoffInitialMs = positiveInt('reconnectInitialDelayMs', options.reconnectInitialDelayMs, 100, 1);
    const backoffMaxMs = positiveInt('reconnectMaxDelayMs', options.reconnectMaxDelayMs, 5000, 1);
    const operationTimeoutMs = positiveInt('operationTimeoutMs', options.operationTimeoutMs, 15_000, 1);
    const holdMs = positiveInt('delayHoldMs', options.delayHoldMs, DEFAULT_HOLD_MS, 1000);
    const heartbeat = positiveInt('heartbeatSeconds', options.heartbeatSeconds, 10, 0, 65_535);
    const targets = connectionTargets(options, heartbeat);
    let deliveryLimit: number | undefined;
    if (options.deliveryLimit !== undefined) {
      if (this.queueType !== 'quorum') throw new InvalidOptionError('deliveryLimit needs queueType "quorum" (classic queues have no delivery limit)');
      deliveryLimit = positiveInt('deliveryLimit', options.deliveryLimit, 1, 1, 2 ** 31 - 1);
    }
    const socketOptions = {
      ...(options.tls ?? {}),
      noDelay: true,
      timeout: positiveInt('connectTimeoutMs', options.connectTimeoutMs, 10_000, 1),
      clientProperties: { connection_name: options.connectionName ?? `tasuki-${this.instanceId}` },
    };

    this.connection = new RabbitConnection(
      { targets, socketOptions, backoffInitialMs, backoffMaxMs, operationTimeoutMs },
      {
        connected: () => {
          this.consumers.onConnected();
          this.mover.onConnected();
        },
        lost: (conn) => this.onLost(conn),
      },
    );
    this.declarations = new Declarations(this.connection, this.prefix, this.queueType, priorities, deliveryLimit);
    this.publisher = new Publisher(this.connection, this.declarations, this.prefix);
    this.leases = new Leases(this.instanceId);
    this.consumers = new Consumers(
      { prefix: this.prefix, instanceId: this.instanceId, fixedPrefetch, idleMs },
      this.connection,
      this.declarations,
      this.publisher,
      this.leases,
    );
    this.deadLetters = new DeadLetters(this.connection, this.publisher, this.prefix);
    this.mover = new DelayMover(this.prefix, this.instanceId, this.connection, this.declarations, this.publisher, holdMs);
  }

  /** Every channel of the lost connection is gone: RabbitMQ has requeued what they held. */
  private onLost(conn: Conn): void {
    this.leases.dropWhere((h) => h.channel.connection === conn.model.connection);
    this.consumers.onLost();
    this.mover.onLost();
  }

  // ---------------------------------------------------------------------------------------------
  // Connection

  /**
   * Index into `urls` (0 with a single `url` or `connection`) of the node this instance is connected
   * to right now, or -1 while it is (re)connecting: for logs and monitoring of a cluster.
   */
  connectedNode(): number {
    return this.connection.currentNode;
  }

  /** Opens the connection (waits up to `operationTimeoutMs`). Idempotent. */
  async connect(): Promise<void> {
    await this.connection.get();
  }

  /** Closes the connection; deliveries not acked return to their queues at once. Idempotent. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.connection.closed = true;
    const channels: Array<Promise<Channel> | null> = [...this.consumers.close(), ...this.mover.close()];
    this.leases.clear();
    this.closing = this.connection.close(channels);
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------------
  // Publishing and fetching

  /** Publishes one message body to a group; resolves once RabbitMQ confirmed it. */
  async publish(group: string, body: string, options?: PublishOptions): Promise<void> {
    this.connection.assertOpen();
    assertName('group', group);
    const priority = this.priorityArg(options);
    await this.publisher.publish(group, [{ body, target: 'work', availableAt: options?.availableAt, messageId: randomUUID(), priority }]);
  }

  /** Publishes many bodies to one group, pipelined, awaiting all confirms. */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.connection.assertOpen();
    assertName('group', group);
    if (items.length === 0) return;
    const priorities = items.map((i) => this.priorityArg(i.options));
    await this.publisher.publish(
      group,
      items.map((i, n) => ({ body: i.body, target: 'work' as const, availableAt: i.options?.availableAt, messageId: randomUUID(), priority: priorities[n] })),
    );
  }

  /**
   * Takes up to `max` ready messages, leasing each for `leaseMs`; waits up to `waitMs` for the first.
   * The first fetch of a group also starts this instance's delay mover of the group (see
   * `rabbitmq/delay-mover.ts`), which runs until `close` or `purge`.
   */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.connection.assertOpen();
    assertName('group', group);
    if (!Number.isFinite(max) || max < 1) throw new InvalidOptionError(`fetch max must be ≥ 1, got ${String(max)}`);
    if (!Number.isFinite(options.leaseMs) || options.leaseMs <= 0) throw new InvalidOptionError(`leaseMs must be > 0, got ${String(options.leaseMs)}`);
    if (!Number.isFinite(options.waitMs) || options.waitMs < 0) throw new InvalidOptionError(`waitMs must be ≥ 0, got ${String(options.waitMs)}`);
    const flow = options.flow;
    if (flow?.rateLimit) requireFeature(this, 'rateLimit', 'rateLimit');
    if (flow?.keyConcurrency !== undefined) requireFeature(this, 'keyConcurrency', 'keyConcurrency');
    if (flow?.keyRateLimit) requireFeature(this, 'keyRateLimit', 'keyRateLimit');
    this.mover.start(group);
    return this.consumers.fetch(group, Math.floor(max), options);
  }

  // ---------------------------------------------------------------------------------------------
  // Settling deliveries

  /** Acks a delivery (after its result was written). A token no longer held is a no-op. */
  async ack(delivery: Delivery): Promise<void> {
    this.connection.assertOpen();
    const h = this.leases.drop(delivery.token);
    if (h) ackSafe(h.channel, h.msg);
  }

  /** Publishes `body` (ready at `availableAt`) with confirm, then acks the delivery. */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.connection.assertOpen();
    const h = this.leases.get(delivery.token);
    if (!h) return;
    const published = await this.publisher.publish(
      h.group,
      [{ body, target: 'work', availableAt, messageId: randomUUID(), priority: priorityOf(h.msg) }],
      () => this.leases.get(delivery.token) === h,
    );
    if (!published) return;
    const still = this.leases.drop(delivery.token);
    if (still) ackSafe(still.channel, still.msg);
  }

  /** Hands the delivery back unchanged and ready at once (nack with requeue). */
  async release(delivery: Delivery): Promise<void> {
    this.connection.assertOpen();
    const h = this.leases.get(delivery.token);
    if (!h) return;
    // Nobody here fetches from the group (shutdown): stop our consumer first so the message goes
    // to another worker rather than back into our own buffer.
    await this.consumers.stopIfIdle(h.group);
    const still = this.leases.drop(delivery.token);
    if (still) nackSafe(still.channel, still.msg);
  }

  /** Renews leases; returns the tokens this instance no longer holds. */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.connection.assertOpen();
    return this.leases.renew(
      deliveries.map((d) => d.token),
      leaseMs,
    );
  }

  /** Publishes the delivery to the group's dead-letter queue (reason in headers, confirmed), then acks it. */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.connection.assertOpen();
    const h = this.leases.get(delivery.token);
    if (!h) return;
    const headers = { [HEADER_DEAD_CODE]: reason.code, [HEADER_DEAD_MESSAGE]: reason.message, [HEADER_DEAD_AT]: String(Date.now()) };
    const published = await this.publisher.publish(
      h.group,
      [{ body: h.msg.content.toString('utf8'), target: 'dead', messageId: randomUUID(), headers, priority: priorityOf(h.msg) }],
      () => this.leases.get(delivery.token) === h,
    );
    if (!published) return;
    const still = this.leases.drop(delivery.token);
    if (still) ackSafe(still.channel, still.msg);
  }

  // ---------------------------------------------------------------------------------------------
  // Dead letters

  /** Lists dead letters of a group, oldest first (reads and hands back the dead-letter queue). */
  async listDeadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]> {
    this.connection.assertOpen();
    assertName('group', group);
    const offset = options?.offset ?? 0;
    const limit = options?.limit ?? Infinity;
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidOptionError(`offset must be an integer ≥ 0, got ${String(offset)}`);
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 0)) throw new InvalidOptionError(`limit must be an integer ≥ 0, got ${String(limit)}`);
    if (limit === 0) return [];
    return this.deadLetters.list(group, offset, limit);
  }

  /** Moves dead letters (the given ids, or all) back to the work queue: publish (confirmed), then ack. */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.connection.assertOpen();
    assertName('group', group);
    const wanted = ids ? new Set(ids) : undefined;
    if (wanted && wanted.size === 0) return 0;
    return this.deadLetters.redrive(group, wanted);
  }

  /** Deletes dead letters (the given ids, or all). */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.connection.assertOpen();
    assertName('group', group);
    const wanted = ids ? new Set(ids) : undefined;
    if (wanted && wanted.size === 0) return 0;
    return this.deadLetters.delete(group, wanted);
  }

  // ---------------------------------------------------------------------------------------------
  // Monitoring and tear-down

  /**
   * Counts of a group: ready = work queue, delayed = sum over the delay level queues plus the
   * delayed messages this instance's mover holds (messages held by other processes' movers are not
   * seen; not read atomically: a message moving between levels during the read may be missed),
   * inFlight = deliveries this instance holds or has buffered, dead = dead-letter queue.
   */
  async counts(group: string): Promise<QueueCounts> {
    this.connection.assertOpen();
    assertName('group', group);
    // Read before the queues: a message this instance's mover already holds is surely not counted
    // in its queue, whereas one pushed to the mover during the reads may have been counted there.
    const moverHolds = this.mover.holding(group);
    return this.connection.run(`counting group "${group}"`, async (conn) => {
      const names = groupQueueNames(this.prefix, group);
      const [ready, dead, ...levels] = await Promise.all(
        [names.work, names.dead, ...names.delay].map((queue, i) => this.declarations.countQueue(conn, queue, i)),
      );
      const delayed = levels.reduce((sum, n) => sum + n, 0) + moverHolds;
      return { ready: ready ?? 0, delayed, inFlight: this.leases.count(group) + this.consumers.buffered(group), dead: dead ?? 0 };
    });
  }

  /** Deletes the group's queues (work, dead letters, delay levels) with every message in them. */
  async purge(group: string): Promise<void> {
    this.connection.assertOpen();
    assertName('group', group);
    await this.mover.stop(group);
    await this.consumers.stop(group);
    // The queue goes away with these messages; settling them later is a no-op.
    this.leases.dropWhere((h) => h.group === group);
    await this.connection.run(`purging group "${group}"`, (conn) => this.declarations.deleteGroup(conn, group));
  }

  /**
   * Deletes the shared topic exchanges `P.delay.NN` of the first delay ladder (no longer declared): once every message has left the old level queues `P.delay.NN.G`, or in tear-down.
   * Messages still in old level queues can no longer travel after it.
   */
  async deleteDelayExchanges(): Promise<void> {
    this.connection.assertOpen();
    await this.connection.run('deleting the delay exchanges', (conn) => this.declarations.deleteLegacyExchanges(conn));
  }

  /** The AMQP priority of a publish: its `priority` (default 5) on a broker with priorities; a priority or key it cannot honour is refused. */
  private priorityArg(options: PublishOptions | undefined): number | undefined {
    if (options?.key !== undefined) requireFeature(this, 'key', 'the key send control');
    if (options?.priority !== undefined) {
      requireFeature(this, 'priority', 'the priority send control (RabbitMQ broker option priorities: true)');
      return checkPriority(options.priority);
    }
    return this.dispatchFeatures.has('priority') ? DEFAULT_PRIORITY : undefined;
  }
}

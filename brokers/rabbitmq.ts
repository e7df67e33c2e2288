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
 * - The acks of one event-loop tick on a consumer channel leave together (`rabbitmq/acks.ts`: one
 *   `multiple` ack for the settled head), and the frames of one tick in one socket write.
 * - Options and their validation: `rabbitmq/options.ts`; counts: `rabbitmq/counts.ts`.
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
import type { Channel } from 'amqplib';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, DispatchFeature, PublishOptions, QueueCounts } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import { DEFAULT_PRIORITY, checkPriority, requireFeature } from '../src/limits.js';
import { assertName } from '../src/names.js';
import { HEADER_DEAD_AT, HEADER_DEAD_CODE, HEADER_DEAD_MESSAGE, type RabbitMQQueueType } from './rabbitmq-topology.js';
import { RabbitConnection, type Conn } from './rabbitmq/connection.js';
import { Consumers } from './rabbitmq/consumer.js';
import { readCounts } from './rabbitmq/counts.js';
import { DeadLetters } from './rabbitmq/dead-letters.js';
import { Declarations } from './rabbitmq/declarations.js';
import { DelayMover } from './rabbitmq/delay-mover.js';
import { Leases } from './rabbitmq/leases.js';
import { resolveOptions, type RabbitMQBrokerOptions } from './rabbitmq/options.js';
import { Publisher } from './rabbitmq/publisher.js';
import { ackSafe, nackSafe, priorityOf } from './rabbitmq/util.js';

export type { RabbitMQQueueType } from './rabbitmq-topology.js';
export type { RabbitMQBrokerOptions } from './rabbitmq/options.js';

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
    const o = resolveOptions(options, this.instanceId);
    this.prefix = o.prefix;
    this.queueType = o.queueType;
    this.dispatchFeatures = new Set<DispatchFeature>(o.priorities ? ['priority'] : []);
    const { fixedPrefetch, idleMs, holdMs, priorities, deliveryLimit } = o;

    this.connection = new RabbitConnection(
      { targets: o.targets, socketOptions: o.socketOptions, backoffInitialMs: o.backoffInitialMs, backoffMaxMs: o.backoffMaxMs, operationTimeoutMs: o.operationTimeoutMs },
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
   * seen), inFlight = deliveries this instance holds or has buffered, dead = dead-letter queue.
   * Read until two consecutive readings agree (see `rabbitmq/counts.ts`): exact for a settled group.
   */
  async counts(group: string): Promise<QueueCounts> {
    this.connection.assertOpen();
    assertName('group', group);
    return readCounts(
      {
        connection: this.connection,
        declarations: this.declarations,
        prefix: this.prefix,
        moverHolds: (g) => this.mover.holding(g),
        inFlight: (g) => this.leases.count(g) + this.consumers.buffered(g),
      },
      group,
    );
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

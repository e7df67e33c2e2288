/**
 * The options of the RabbitMQ broker ({@link RabbitMQBrokerOptions}) and their validation into the
 * settings its parts are built from.
 */
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Options } from 'amqplib';
import { InvalidOptionError, UnsupportedError } from '../../src/errors.js';
import { PREFIX_PATTERN, type RabbitMQQueueType } from '../rabbitmq-topology.js';
import { DEFAULT_HOLD_MS } from './delay-mover.js';
import { connectionTargets } from './targets.js';
import { positiveInt } from './util.js';

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

/** The validated settings of one broker instance. */
export interface RabbitMQSettings {
  readonly prefix: string;
  readonly queueType: RabbitMQQueueType;
  readonly priorities: boolean;
  readonly deliveryLimit: number | undefined;
  readonly fixedPrefetch: number | undefined;
  readonly idleMs: number;
  readonly holdMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly operationTimeoutMs: number;
  readonly targets: Array<string | Options.Connect>;
  readonly socketOptions: Record<string, unknown>;
}

/** Validates `options` (`InvalidOptionError`, `UnsupportedError`) and fills in the defaults; `instanceId` names the connection by default. */
export function resolveOptions(options: RabbitMQBrokerOptions, instanceId: string): RabbitMQSettings {
  const prefix = options.prefix ?? 'tasuki';
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new InvalidOptionError(`prefix ${JSON.stringify(prefix)} must be 1 to 64 characters of A-Z a-z 0-9 _ : - (no ".", which separates the parts of queue names)`);
  }
  const queueType = options.queueType ?? 'classic';
  if (queueType !== 'classic' && queueType !== 'quorum') {
    throw new InvalidOptionError(`queueType must be "classic" or "quorum", got ${JSON.stringify(queueType)}`);
  }
  const priorities = options.priorities ?? false;
  if (typeof priorities !== 'boolean') throw new InvalidOptionError('priorities must be a boolean');
  if (priorities && queueType === 'quorum') {
    throw new UnsupportedError('priorities are not supported on quorum queues (RabbitMQ 3.10 quorum queues have no x-max-priority); use classic queues for prioritised groups');
  }
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
    if (queueType !== 'quorum') throw new InvalidOptionError('deliveryLimit needs queueType "quorum" (classic queues have no delivery limit)');
    deliveryLimit = positiveInt('deliveryLimit', options.deliveryLimit, 1, 1, 2 ** 31 - 1);
  }
  const socketOptions = {
    ...(options.tls ?? {}),
    noDelay: true,
    timeout: positiveInt('connectTimeoutMs', options.connectTimeoutMs, 10_000, 1),
    clientProperties: { connection_name: options.connectionName ?? `tasuki-${instanceId}` },
  };
  return { prefix, queueType, priorities, deliveryLimit, fixedPrefetch, idleMs, holdMs, backoffInitialMs, backoffMaxMs, operationTimeoutMs, targets, socketOptions };
}

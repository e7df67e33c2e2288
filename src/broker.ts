/**
 * The broker interface: the only thing the core knows about message transport.
 *
 * A broker moves opaque message bodies (strings, normally the JSON envelope of `message.ts`) between
 * clients and workers with **at-least-once** delivery. A new transport implements these primitives
 * and passes the broker contract suite (`test/contract/broker.ts`); the core adds everything else
 * (retries, status, expiry, dead-letter decisions) on top.
 *
 * Delivery life cycle:
 * `publish` → (delayed until `availableAt`) → ready → `fetch` → in flight (leased) → exactly one of
 * `ack` (done, removed) | `retry` (replaced by a new body, ready again at a later time) |
 * `release` (handed back unchanged, ready at once) | `deadLetter` (moved to the dead-letter store).
 * An in-flight delivery whose lease runs out (worker killed, hung, disconnected) becomes ready again
 * by itself. `extend` renews leases while handlers run.
 */

/** Options of {@link Broker.publish}. */
export interface PublishOptions {
  /**
   * Epoch milliseconds before which the message must not be delivered. Absent or in the past: ready
   * at once. The delay is held by the broker (it survives restarts of every process).
   */
  availableAt?: number;
  /**
   * The caller's open transaction (the `tx` send control), passed through opaque. Only a broker with
   * {@link Broker.transactional} set accepts it: the message then exists if and only if that
   * transaction commits.
   */
  tx?: unknown;
  /**
   * Priority 0..9 (higher first, default 5 when absent), for brokers that declare the `priority`
   * feature in {@link Broker.dispatchFeatures}. Kept through delays, retries and redeliveries.
   */
  priority?: number;
  /** Flow-control key (tenant, user, account), for brokers that declare the `key` feature. */
  key?: string;
}

/** A token-bucket rate limit: `limit` takes per `periodMs`, bursts of up to `burst` (default `limit`). */
export interface RateLimit {
  /** Takes allowed per period (whole number ≥ 1). */
  limit: number;
  /** Length of the period in ms. */
  periodMs: number;
  /** Bucket size: the most takes at once after a quiet time (default `limit`). */
  burst?: number;
}

/** Flow control a worker asks of {@link Broker.fetch} for its group (see `src/limits.ts`). */
export interface FetchLimits {
  /** Rate limit of the whole group, global across every worker. */
  rateLimit?: RateLimit;
  /** Most deliveries of one key in flight at once, across every worker. */
  keyConcurrency?: number;
  /** Rate limit of each key, global across every worker. */
  keyRateLimit?: RateLimit;
}

/**
 * Why a ready task is held back by flow control (`TaskResult.waiting`, from {@link Broker.waitReason}
 * or the worker's rate gate): `rate-limit` the group's bucket is empty, `key-rate-limit` its key's
 * bucket is empty, `key-concurrency` its key is at its `keyConcurrency` bound, `key-paused` its key
 * was pushed back (`ctl.backoffKey`).
 */
export interface WaitReason {
  /** What holds the task back. */
  reason: 'rate-limit' | 'key-rate-limit' | 'key-concurrency' | 'key-paused';
  /** The task's key, for the per-key reasons. */
  key?: string;
  /** When the hold ends (epoch ms), where known: next token, end of the back-off. Absent for `key-concurrency` (until a task of the key settles). */
  until?: number;
}

/** Flow-control features a broker may enforce natively (declared in {@link Broker.dispatchFeatures}). */
export type DispatchFeature = 'priority' | 'key' | 'rateLimit' | 'keyConcurrency' | 'keyRateLimit' | 'keyBackoff';

/** Options of {@link Broker.fetch}. */
export interface FetchOptions {
  /** Lease length in ms: if neither acked, retried, released nor extended in this time, the delivery is given to another worker. */
  leaseMs: number;
  /**
   * Longest time in ms to wait for a first message when none is ready. The broker returns `[]` after
   * it (callers loop). Implementations block (no polling) while waiting.
   */
  waitMs: number;
  /** Aborts the wait early (shutdown): `fetch` then resolves with whatever it has, possibly `[]`. */
  signal?: AbortSignal;
  /**
   * Flow control of the group, evaluated atomically where messages are taken. Only passed when the
   * worker's group options ask for it, and only to brokers that declare the features.
   */
  flow?: FetchLimits;
}

/** One delivery of a message to a worker. Opaque to the core except `body`. */
export interface Delivery {
  /** Group (queue) the message came from. */
  readonly group: string;
  /** The message body exactly as published. */
  readonly body: string;
  /** Broker-specific handle that identifies this delivery for ack/retry/release/deadLetter/extend. */
  readonly token: string;
  /** True when the broker knows this message was delivered before (lease expiry, channel loss...). */
  readonly redelivered: boolean;
}

/** Why a message was moved to the dead-letter store. */
export interface DeadLetterReason {
  /** Error code, e.g. `ERR_DECODE` or `ERR_UNKNOWN_TASK`. */
  code: string;
  /** Human readable explanation. */
  message: string;
}

/** A message in a group's dead-letter store. */
export interface DeadLetter {
  /** Identifier of the dead letter within its group (stable until redriven or deleted). */
  id: string;
  /** Group it belongs to. */
  group: string;
  /** The message body as it was when dead-lettered. */
  body: string;
  /** Why it was dead-lettered. */
  reason: DeadLetterReason;
  /** When it was dead-lettered (epoch ms). */
  at: number;
}

/** Counts of messages in one group, for monitoring and tests. */
export interface QueueCounts {
  /** Ready to be fetched now. */
  ready: number;
  /** Waiting for their `availableAt`. */
  delayed: number;
  /** Fetched and not yet acked/retried/released (leased). */
  inFlight: number;
  /** In the dead-letter store. */
  dead: number;
}

/**
 * A message transport with at-least-once semantics. Implementations: `brokers/memory`,
 * `brokers/redis`, `brokers/rabbitmq`.
 *
 * Rules every implementation follows (checked by the contract suite):
 * - `publish` resolves only once the message is durably held by the broker.
 * - A message is delivered to one worker at a time; a delivery whose lease expires is delivered again.
 * - `retry` is atomic: never both the old and the new body lost; at worst (crash between steps of a
 *   non-transactional broker) both survive, never neither.
 * - Operations on a delivery whose lease already expired and that was re-delivered elsewhere are
 *   harmless no-ops (they never remove the other worker's delivery).
 * - Methods never throw synchronously; they reject with a `TasukiError` (`ConnectionError` for
 *   transport failures). While the connection is down, implementations reconnect with backoff.
 */
export interface Broker {
  /** Short name for logs ("memory", "redis", "rabbitmq"). */
  readonly kind: string;
  /** True when `publish`/`publishBatch` honour {@link PublishOptions.tx} (write inside the caller's transaction). */
  readonly transactional?: boolean;
  /** Opens connections. Idempotent; other methods call it implicitly. */
  connect(): Promise<void>;
  /** Closes connections. In-flight deliveries not acked return to the queue after their lease (or at once, RabbitMQ). Idempotent. */
  close(): Promise<void>;

  /** Publishes one message body to a group. */
  publish(group: string, body: string, options?: PublishOptions): Promise<void>;
  /** Publishes many bodies to one group in as few round trips as possible; all or an error. */
  publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void>;

  /**
   * Takes up to `max` (≥ 1) ready messages, leasing each for `leaseMs`. Waits up to `waitMs` for the
   * first one; returns `[]` if none came or `signal` aborted.
   */
  fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]>;
  /** Removes a delivered message for good (after its result is written). */
  ack(delivery: Delivery): Promise<void>;
  /** Atomically replaces the delivered message by `body`, ready at `availableAt` (epoch ms). */
  retry(delivery: Delivery, body: string, availableAt: number): Promise<void>;
  /** Hands the delivery back unchanged, ready at once (graceful shutdown). */
  release(delivery: Delivery): Promise<void>;
  /**
   * Renews the leases of deliveries still being worked on. Returns the tokens whose lease could not be
   * renewed because the broker no longer holds them for this worker (already re-delivered).
   */
  extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]>;
  /** Atomically removes the delivery from flight and stores it in the group's dead-letter store. */
  deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void>;

  /** Lists dead letters of a group, oldest first. */
  listDeadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]>;
  /**
   * Moves dead letters back to the group's queue (ready at once): the given ids, or all when `ids` is
   * omitted. Returns how many were moved. Unknown ids are ignored.
   */
  redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number>;
  /** Deletes dead letters: the given ids, or all. Returns how many were deleted. */
  deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number>;

  /** Counts of messages in a group. */
  counts(group: string): Promise<QueueCounts>;
  /** Deletes every message and key of a group (tests, tear-down). */
  purge(group: string): Promise<void>;

  /**
   * Flow-control features this broker enforces natively (absent: none). Senders and workers refuse
   * (UnsupportedError) a priority, key or group limit the broker does not declare.
   */
  readonly dispatchFeatures?: ReadonlySet<DispatchFeature>;
  /** Gives no delivery of `key` in `group` for `ms` (feature `keyBackoff`). */
  backoffKey?(group: string, key: string, ms: number): Promise<void>;
  /**
   * Optional: whether flow control holds back the ready tasks of `group` with `key` (`undefined`:
   * keyless) now, as last evaluated where tasks are taken; `null` when nothing holds them. Read by
   * `client.getStatus` for tasks not started yet; never on the send, fetch or ack path.
   */
  waitReason?(group: string, key: string | undefined): Promise<WaitReason | null>;
}

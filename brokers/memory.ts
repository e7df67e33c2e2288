/**
 * The in-memory broker: the embedded default of tasuki (quick start, users' unit tests, dry runs).
 * Same semantics as the networked brokers — leases with redelivery, delays, retries, dead letters —
 * within one process. Messages live only as long as the process (and the {@link MemoryBrokerStore}).
 */
import { randomUUID } from 'node:crypto';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, DispatchFeature, PublishOptions, QueueCounts, WaitReason } from '../src/broker.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { DEFAULT_PRIORITY, checkKey, checkPriority } from '../src/limits.js';
import { assertName } from '../src/names.js';
import { Entry, MemoryBrokerStore, expireLease, type GroupState, type Waiter } from './memory-store.js';

export { MemoryBrokerStore } from './memory-store.js';

/** Flow-control features the memory broker enforces (all of them). */
const MEMORY_FLOW_FEATURES: ReadonlySet<DispatchFeature> = new Set<DispatchFeature>(['priority', 'key', 'rateLimit', 'keyConcurrency', 'keyRateLimit', 'keyBackoff']);

/** Options of {@link MemoryBroker}. */
export interface MemoryBrokerOptions {
  /** Storage to share with other memory brokers in the process; a new private store by default. */
  store?: MemoryBrokerStore;
}

/** In-process broker with the same delivery semantics as the Redis and RabbitMQ brokers. */
export class MemoryBroker implements Broker {
  /** @inheritdoc */
  readonly kind = 'memory';
  /** Every flow-control feature: priorities, keys, group and key limits, key back-off. */
  readonly dispatchFeatures = MEMORY_FLOW_FEATURES;
  /** The store this broker works on. */
  readonly store: MemoryBrokerStore;
  private closed = false;
  /** Pending fetches of this instance, ended with [] on close. */
  private readonly pending = new Set<(ds: Delivery[]) => void>();

  /** @param options see {@link MemoryBrokerOptions} */
  constructor(options: MemoryBrokerOptions = {}) {
    this.store = options.store ?? new MemoryBrokerStore();
  }

  /** @inheritdoc */
  async connect(): Promise<void> {
    this.check();
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.closed = true;
    for (const finish of [...this.pending]) finish([]);
  }

  /** @inheritdoc */
  async publish(group: string, body: string, options?: PublishOptions): Promise<void> {
    this.check();
    const g = this.store.group(group);
    g.enqueue(flowEntry(g, new Entry(g, body, false), options), options?.availableAt);
  }

  /** @inheritdoc */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.check();
    const g = this.store.group(group);
    // Checked (and built) before any is enqueued: all or an error.
    const entries = items.map((item) => flowEntry(g, new Entry(g, item.body, false), item.options));
    items.forEach((item, i) => g.enqueue(entries[i] as Entry, item.options?.availableAt));
  }

  /** @inheritdoc */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.check();
    const g = this.store.group(group);
    const flow = options.flow;
    if (flow !== undefined) g.startFlow();
    g.promote();
    const now = g.take(max, options.leaseMs, flow);
    if (now.length > 0 || options.waitMs <= 0 || options.signal?.aborted) return now;
    return new Promise<Delivery[]>((resolve) => {
      let done = false;
      const finish = (ds: Delivery[]): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        const i = g.waiters.indexOf(waiter);
        if (i >= 0) g.waiters.splice(i, 1);
        this.pending.delete(finish);
        resolve(ds);
      };
      const waiter: Waiter = { max, leaseMs: options.leaseMs, flow, resolve: finish };
      const onAbort = (): void => finish([]);
      const timer = setTimeout(finish, options.waitMs, []);
      timer.unref();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      g.waiters.push(waiter);
      this.pending.add(finish);
    });
  }

  /** @inheritdoc */
  async ack(delivery: Delivery): Promise<void> {
    this.check();
    this.store.find(delivery.group)?.settle(delivery.token);
  }

  /** @inheritdoc */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.check();
    const entry = this.store.find(delivery.group)?.settle(delivery.token);
    if (entry === undefined) return;
    entry.body = body;
    entry.redelivered = false;
    entry.g.enqueue(entry, availableAt);
  }

  /** @inheritdoc */
  async release(delivery: Delivery): Promise<void> {
    this.check();
    const entry = this.store.find(delivery.group)?.settle(delivery.token);
    if (entry === undefined) return;
    entry.redelivered = true;
    entry.g.toReady(entry, true);
    entry.g.wake();
  }

  /** @inheritdoc */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.check();
    const lost: string[] = [];
    for (const d of deliveries) {
      const entry = this.store.find(d.group)?.inFlight.get(d.token);
      if (entry === undefined || entry.timer === undefined) {
        lost.push(d.token);
        continue;
      }
      if (entry.leaseMs === leaseMs) {
        entry.timer.refresh();
      } else {
        clearTimeout(entry.timer);
        entry.leaseMs = leaseMs;
        entry.timer = setTimeout(expireLease, leaseMs, entry);
        entry.timer.unref();
      }
    }
    return lost;
  }

  /** @inheritdoc */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.check();
    const entry = this.store.find(delivery.group)?.settle(delivery.token);
    if (entry === undefined) return;
    const id = randomUUID();
    if (entry.level !== DEFAULT_PRIORITY || entry.key !== undefined) (entry.g.deadFlow ??= new Map()).set(id, { level: entry.level, key: entry.key });
    entry.g.dead.push({
      id,
      group: entry.g.name,
      body: entry.body,
      reason: { code: reason.code, message: reason.message },
      at: Date.now(),
    });
  }

  /** @inheritdoc */
  async listDeadLetters(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    this.check();
    const offset = options.offset ?? 0;
    const limit = options.limit ?? 100;
    return this.store
      .group(group)
      .dead.slice(offset, offset + limit)
      .map((d) => ({ ...d, reason: { ...d.reason } }));
  }

  /** @inheritdoc */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.check();
    const g = this.store.group(group);
    const moved = removeDead(g, ids);
    for (const d of moved) {
      const entry = new Entry(g, d.body, false);
      const meta = g.deadFlow?.get(d.id);
      if (meta !== undefined) {
        g.deadFlow?.delete(d.id);
        entry.level = meta.level;
        entry.key = meta.key;
        g.startFlow();
      }
      g.toReady(entry, false);
    }
    g.wake();
    return moved.length;
  }

  /** @inheritdoc */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.check();
    const g = this.store.group(group);
    const removed = removeDead(g, ids);
    for (const d of removed) g.deadFlow?.delete(d.id);
    return removed.length;
  }

  /** @inheritdoc */
  async counts(group: string): Promise<QueueCounts> {
    this.check();
    const g = this.store.group(group);
    g.promote();
    return { ready: g.readyCount, delayed: g.delayed.length, inFlight: g.inFlight.size, dead: g.dead.length };
  }

  /** @inheritdoc */
  async purge(group: string): Promise<void> {
    this.check();
    assertName('group', group);
    this.store.drop(group);
  }

  /** Gives no message of `key` in `group` for `ms` (feature `keyBackoff`). */
  async backoffKey(group: string, key: string, ms: number): Promise<void> {
    this.check();
    checkKey(key);
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) throw new InvalidOptionError(`backoff ms must be a number > 0, got ${String(ms)}`);
    this.store.group(group).startFlow().backoff(key, ms, Date.now());
  }

  /** Why ready tasks of `key` in `group` are held back by flow control now (`null`: nothing holds them). */
  async waitReason(group: string, key: string | undefined): Promise<WaitReason | null> {
    this.check();
    return this.store.find(group)?.flow?.waitReason(key, Date.now()) ?? null;
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memory broker');
  }
}

/** Sets the priority and key of a new entry from its publish options (turning the group's flow control on when set). */
function flowEntry(g: GroupState, entry: Entry, options: PublishOptions | undefined): Entry {
  if (options === undefined) return entry;
  const { priority, key } = options;
  if (priority !== undefined || key !== undefined) {
    if (priority !== undefined) entry.level = checkPriority(priority);
    if (key !== undefined) entry.key = checkKey(key);
    g.startFlow();
  }
  return entry;
}

/** Removes dead letters (the given ids, or all) in one pass; returns them oldest first. */
function removeDead(g: GroupState, ids: ReadonlyArray<string> | undefined): DeadLetter[] {
  if (ids === undefined) {
    const all = g.dead;
    g.dead = [];
    return all;
  }
  const wanted = new Set(ids);
  const kept: DeadLetter[] = [];
  const out: DeadLetter[] = [];
  for (const d of g.dead) (wanted.has(d.id) ? out : kept).push(d);
  g.dead = kept;
  return out;
}

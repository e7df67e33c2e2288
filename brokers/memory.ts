/**
 * The in-memory broker: the embedded default of tasuki (quick start, users' unit tests, dry runs).
 * Same semantics as the networked brokers — leases with redelivery, delays, retries, dead letters —
 * within one process. Messages live only as long as the process (and the {@link MemoryBrokerStore}).
 */
import { randomUUID } from 'node:crypto';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError } from '../src/errors.js';
import { assertName } from '../src/names.js';

interface Entry {
  body: string;
  redelivered: boolean;
}

interface Leased extends Entry {
  timer: NodeJS.Timeout;
}

interface Waiter {
  max: number;
  leaseMs: number;
  resolve: (ds: Delivery[]) => void;
}

/** State of one group inside a {@link MemoryBrokerStore}. */
class GroupState {
  readonly ready: Entry[] = [];
  /** Sorted by `at` ascending; ties keep publish order. */
  readonly delayed: Array<{ at: number; entry: Entry }> = [];
  readonly inFlight = new Map<string, Leased>();
  readonly dead: DeadLetter[] = [];
  readonly waiters: Waiter[] = [];
  delayTimer: NodeJS.Timeout | undefined;
  delayTimerAt = Infinity;
}

/**
 * Shared storage of memory brokers. Several {@link MemoryBroker} instances built on one store behave
 * like several worker processes connected to one broker server.
 */
export class MemoryBrokerStore {
  private readonly groups = new Map<string, GroupState>();

  /** @internal Returns (creating) the state of a group. */
  group(name: string): GroupState {
    let g = this.groups.get(name);
    if (!g) {
      g = new GroupState();
      this.groups.set(name, g);
    }
    return g;
  }

  /** @internal Drops a group's state. */
  drop(name: string): void {
    const g = this.groups.get(name);
    if (!g) return;
    for (const leased of g.inFlight.values()) clearTimeout(leased.timer);
    if (g.delayTimer) clearTimeout(g.delayTimer);
    for (const w of g.waiters.splice(0)) w.resolve([]);
    this.groups.delete(name);
  }
}

/** Options of {@link MemoryBroker}. */
export interface MemoryBrokerOptions {
  /** Storage to share with other memory brokers in the process; a new private store by default. */
  store?: MemoryBrokerStore;
}

/** In-process broker with the same delivery semantics as the Redis and RabbitMQ brokers. */
export class MemoryBroker implements Broker {
  /** @inheritdoc */
  readonly kind = 'memory';
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
  async publish(group: string, body: string, options: PublishOptions = {}): Promise<void> {
    this.check();
    assertName('group', group);
    this.enqueue(this.store.group(group), group, { body, redelivered: false }, options.availableAt);
  }

  /** @inheritdoc */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.check();
    assertName('group', group);
    const g = this.store.group(group);
    for (const item of items) this.enqueue(g, group, { body: item.body, redelivered: false }, item.options?.availableAt);
  }

  /** @inheritdoc */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.check();
    assertName('group', group);
    const g = this.store.group(group);
    this.promote(g, group);
    const now = this.take(g, group, max, options.leaseMs);
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
      const waiter: Waiter = { max, leaseMs: options.leaseMs, resolve: finish };
      const onAbort = (): void => finish([]);
      const timer = setTimeout(() => finish([]), options.waitMs);
      timer.unref();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      g.waiters.push(waiter);
      this.pending.add(finish);
    });
  }

  /** @inheritdoc */
  async ack(delivery: Delivery): Promise<void> {
    this.check();
    this.settle(delivery);
  }

  /** @inheritdoc */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.check();
    if (!this.settle(delivery)) return;
    this.enqueue(this.store.group(delivery.group), delivery.group, { body, redelivered: false }, availableAt);
  }

  /** @inheritdoc */
  async release(delivery: Delivery): Promise<void> {
    this.check();
    const leased = this.settle(delivery);
    if (!leased) return;
    const g = this.store.group(delivery.group);
    g.ready.unshift({ body: leased.body, redelivered: true });
    this.wake(g, delivery.group);
  }

  /** @inheritdoc */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.check();
    const lost: string[] = [];
    for (const d of deliveries) {
      const g = this.store.group(d.group);
      const leased = g.inFlight.get(d.token);
      if (!leased) {
        lost.push(d.token);
        continue;
      }
      clearTimeout(leased.timer);
      leased.timer = this.leaseTimer(g, d.group, d.token, leaseMs);
    }
    return lost;
  }

  /** @inheritdoc */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.check();
    const leased = this.settle(delivery);
    if (!leased) return;
    this.store.group(delivery.group).dead.push({
      id: randomUUID(),
      group: delivery.group,
      body: leased.body,
      reason: { code: reason.code, message: reason.message },
      at: Date.now(),
    });
  }

  /** @inheritdoc */
  async listDeadLetters(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    this.check();
    assertName('group', group);
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
    assertName('group', group);
    const g = this.store.group(group);
    const moved = this.removeDead(g, ids);
    for (const d of moved) g.ready.push({ body: d.body, redelivered: false });
    this.wake(g, group);
    return moved.length;
  }

  /** @inheritdoc */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.check();
    assertName('group', group);
    return this.removeDead(this.store.group(group), ids).length;
  }

  /** @inheritdoc */
  async counts(group: string): Promise<QueueCounts> {
    this.check();
    assertName('group', group);
    const g = this.store.group(group);
    this.promote(g, group);
    return { ready: g.ready.length, delayed: g.delayed.length, inFlight: g.inFlight.size, dead: g.dead.length };
  }

  /** @inheritdoc */
  async purge(group: string): Promise<void> {
    this.check();
    assertName('group', group);
    this.store.drop(group);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memory broker');
  }

  private removeDead(g: GroupState, ids: ReadonlyArray<string> | undefined): DeadLetter[] {
    if (ids === undefined) return g.dead.splice(0);
    const wanted = new Set(ids);
    const out: DeadLetter[] = [];
    for (let i = g.dead.length - 1; i >= 0; i--) {
      const d = g.dead[i] as DeadLetter;
      if (wanted.has(d.id)) out.unshift(...g.dead.splice(i, 1));
    }
    return out;
  }

  /** Removes a held delivery from flight; returns it, or undefined when no longer held. */
  private settle(delivery: Delivery): Leased | undefined {
    const g = this.store.group(delivery.group);
    const leased = g.inFlight.get(delivery.token);
    if (!leased) return undefined;
    clearTimeout(leased.timer);
    g.inFlight.delete(delivery.token);
    return leased;
  }

  private enqueue(g: GroupState, group: string, entry: Entry, availableAt: number | undefined): void {
    if (availableAt !== undefined && availableAt > Date.now()) {
      let lo = 0;
      let hi = g.delayed.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((g.delayed[mid] as { at: number }).at <= availableAt) lo = mid + 1;
        else hi = mid;
      }
      g.delayed.splice(lo, 0, { at: availableAt, entry });
      this.armDelayTimer(g, group);
      return;
    }
    g.ready.push(entry);
    this.wake(g, group);
  }

  private armDelayTimer(g: GroupState, group: string): void {
    const next = g.delayed[0];
    if (!next) return;
    if (g.delayTimer && g.delayTimerAt <= next.at) return;
    if (g.delayTimer) clearTimeout(g.delayTimer);
    g.delayTimerAt = next.at;
    g.delayTimer = setTimeout(() => {
      g.delayTimer = undefined;
      g.delayTimerAt = Infinity;
      this.promote(g, group);
      this.armDelayTimer(g, group);
    }, Math.max(0, next.at - Date.now()));
    g.delayTimer.unref();
  }

  /** Moves due delayed messages to ready. */
  private promote(g: GroupState, group: string): void {
    const now = Date.now();
    let n = 0;
    while (n < g.delayed.length && (g.delayed[n] as { at: number }).at <= now) n++;
    if (n === 0) return;
    for (const { entry } of g.delayed.splice(0, n)) g.ready.push(entry);
    this.wake(g, group);
  }

  private wake(g: GroupState, group: string): void {
    while (g.ready.length > 0 && g.waiters.length > 0) {
      const w = g.waiters.shift() as Waiter;
      w.resolve(this.take(g, group, w.max, w.leaseMs));
    }
  }

  private take(g: GroupState, group: string, max: number, leaseMs: number): Delivery[] {
    const out: Delivery[] = [];
    while (out.length < max && g.ready.length > 0) {
      const entry = g.ready.shift() as Entry;
      const token = randomUUID();
      g.inFlight.set(token, { ...entry, timer: this.leaseTimer(g, group, token, leaseMs) });
      out.push({ group, body: entry.body, token, redelivered: entry.redelivered });
    }
    return out;
  }

  private leaseTimer(g: GroupState, group: string, token: string, leaseMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const leased = g.inFlight.get(token);
      if (!leased) return;
      g.inFlight.delete(token);
      g.ready.unshift({ body: leased.body, redelivered: true });
      this.wake(g, group);
    }, leaseMs);
    timer.unref();
    return timer;
  }
}

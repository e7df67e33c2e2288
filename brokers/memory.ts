/**
 * The in-memory broker: the embedded default of tasuki (quick start, users' unit tests, dry runs).
 * Same semantics as the networked brokers — leases with redelivery, delays, retries, dead letters —
 * within one process. Messages live only as long as the process (and the {@link MemoryBrokerStore}).
 */
import { randomUUID } from 'node:crypto';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchLimits, FetchOptions, DispatchFeature, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { Deque } from '../src/deque.js';
import { DEFAULT_PRIORITY, checkKey, checkPriority } from '../src/limits.js';
import { assertName } from '../src/names.js';
import { FlowState } from './memory-lanes.js';
import { DelayHeap } from './memory-delays.js';

/** Flow-control features the memory broker enforces (all of them). */
const MEMORY_FLOW_FEATURES: ReadonlySet<DispatchFeature> = new Set<DispatchFeature>(['priority', 'key', 'rateLimit', 'keyConcurrency', 'keyRateLimit', 'keyBackoff']);

/**
 * One message held by the broker. The same object travels through the message's life in its group
 * (ready → in flight → ready again after a release or an expired lease, or delayed after a retry),
 * so no operation allocates more than the {@link Delivery} it hands out. Never shared with callers.
 */
class Entry {
  /** Due time (epoch ms) while delayed. */
  at = 0;
  /** Store-wide sequence number: keeps publish order among delayed messages due at the same time. */
  seq = 0;
  /** Token of the current delivery while in flight. */
  token = '';
  /** Lease timer while in flight. */
  timer: NodeJS.Timeout | undefined = undefined;
  /** Lease length of the current delivery (ms). */
  leaseMs = 0;
  /** Priority level (flow control). */
  level = DEFAULT_PRIORITY;
  /** Flow-control key, if any. */
  key: string | undefined = undefined;
  /** Counted in its key's running deliveries. */
  counted = false;

  constructor(
    readonly g: GroupState,
    public body: string,
    public redelivered: boolean,
  ) {}
}

interface Waiter {
  max: number;
  leaseMs: number;
  flow: FetchLimits | undefined;
  resolve: (ds: Delivery[]) => void;
}

/** Lease timer callback (no closure per delivery): an expired lease puts the message back in front. */
function expireLease(entry: Entry): void {
  const g = entry.g;
  if (g.inFlight.get(entry.token) !== entry) return;
  g.inFlight.delete(entry.token);
  entry.timer = undefined;
  entry.redelivered = true;
  g.flow?.release(entry);
  g.toReady(entry, true);
  g.wake();
}

/** Delay timer callback: promotes due messages and re-arms for the next one. */
function delayDue(g: GroupState): void {
  g.delayTimer = undefined;
  g.delayTimerAt = Infinity;
  g.promote();
  g.armDelayTimer();
}

/** State of one group inside a {@link MemoryBrokerStore}. */
class GroupState {
  readonly ready = new Deque<Entry>();
  readonly delayed = new DelayHeap<Entry>();
  readonly inFlight = new Map<string, Entry>();
  dead: DeadLetter[] = [];
  readonly waiters: Waiter[] = [];
  delayTimer: NodeJS.Timeout | undefined;
  delayTimerAt = Infinity;
  /** False once purged: timers of a dropped group do nothing. */
  live = true;
  /** Flow-controlled ready set, once the group uses priorities, keys or limits (then `ready` stays empty). */
  flow: FlowState<Entry> | undefined;
  /** Priority and key of dead letters that had them (by dead letter id), for redrive. */
  deadFlow: Map<string, { level: number; key: string | undefined }> | undefined;

  constructor(
    readonly store: MemoryBrokerStore,
    readonly name: string,
  ) {}

  /** Adds a message: delayed when `availableAt` is in the future, else ready at the back. */
  enqueue(entry: Entry, availableAt: number | undefined): void {
    if (availableAt !== undefined && availableAt > Date.now()) {
      entry.at = availableAt;
      entry.seq = this.store.nextSeq();
      this.delayed.push(entry);
      this.armDelayTimer();
      return;
    }
    this.toReady(entry, false);
    if (this.waiters.length > 0) this.wake();
  }

  /** Turns flow control on: the plain ready messages move into the flow state, in order. */
  startFlow(): FlowState<Entry> {
    if (this.flow === undefined) {
      const flow = new FlowState<Entry>(() => {
        if (this.live) this.wake();
      });
      for (let e = this.ready.shift(); e !== undefined; e = this.ready.shift()) flow.add(e, false);
      this.flow = flow;
    }
    return this.flow;
  }

  /** A ready message, at the back (or `front`) of the plain list or of its flow lane. */
  toReady(entry: Entry, front: boolean): void {
    if (this.flow !== undefined) this.flow.add(entry, front);
    else if (front) this.ready.unshift(entry);
    else this.ready.push(entry);
  }

  /** Ready messages (plain and flow-controlled). */
  get readyCount(): number {
    return this.ready.length + (this.flow?.size ?? 0);
  }

  /** Moves due delayed messages to ready. */
  promote(): void {
    let next = this.delayed.peek();
    if (next === undefined) return;
    const now = Date.now();
    if (next.at > now) return;
    do {
      this.delayed.pop();
      this.toReady(next, false);
      next = this.delayed.peek();
    } while (next !== undefined && next.at <= now);
    if (this.waiters.length > 0) this.wake();
  }

  armDelayTimer(): void {
    const next = this.delayed.peek();
    if (next === undefined || !this.live) return;
    if (this.delayTimer && this.delayTimerAt <= next.at) return;
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimerAt = next.at;
    this.delayTimer = setTimeout(delayDue, Math.max(0, next.at - Date.now()), this);
    this.delayTimer.unref();
  }

  /** Serves waiting fetches, oldest first, while messages are ready (and, with flow control, may be taken). */
  wake(): void {
    if (this.flow !== undefined) {
      for (let i = 0; i < this.waiters.length && this.flow.size > 0; ) {
        const w = this.waiters[i] as Waiter;
        const ds = this.take(w.max, w.leaseMs, w.flow);
        if (ds.length === 0) {
          i++;
          continue;
        }
        this.waiters.splice(i, 1);
        w.resolve(ds);
      }
      return;
    }
    while (this.ready.length > 0 && this.waiters.length > 0) {
      const w = this.waiters.shift() as Waiter;
      w.resolve(this.take(w.max, w.leaseMs, w.flow));
    }
  }

  /** Leases up to `max` ready messages (within the limits of `flow`). */
  take(max: number, leaseMs: number, flow: FetchLimits | undefined): Delivery[] {
    const out: Delivery[] = [];
    const taken = this.flow === undefined ? undefined : this.flow.take(max, flow, Date.now());
    let i = 0;
    while (out.length < max) {
      const entry = taken === undefined ? this.ready.shift() : taken[i++];
      if (entry === undefined) break;
      const token = this.store.nextToken();
      entry.token = token;
      entry.leaseMs = leaseMs;
      entry.timer = setTimeout(expireLease, leaseMs, entry);
      entry.timer.unref();
      this.inFlight.set(token, entry);
      out.push({ group: this.name, body: entry.body, token, redelivered: entry.redelivered });
    }
    return out;
  }

  /** Removes a held delivery from flight; returns its entry, or undefined when no longer held. */
  settle(token: string): Entry | undefined {
    const entry = this.inFlight.get(token);
    if (entry === undefined) return undefined;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    this.inFlight.delete(token);
    this.flow?.release(entry);
    return entry;
  }
}

/**
 * Shared storage of memory brokers. Several {@link MemoryBroker} instances built on one store behave
 * like several worker processes connected to one broker server.
 */
export class MemoryBrokerStore {
  private readonly groups = new Map<string, GroupState>();
  /** Makes tokens of different stores differ, so a delivery never matches in another store. */
  private readonly tokenPrefix = `${randomUUID().slice(0, 8)}.`;
  private seq = 0;

  /** @internal Returns (creating, after checking the name) the state of a group. */
  group(name: string): GroupState {
    let g = this.groups.get(name);
    if (g === undefined) {
      assertName('group', name);
      g = new GroupState(this, name);
      this.groups.set(name, g);
    }
    return g;
  }

  /** @internal Returns the state of a group if it exists (never creates one). */
  find(name: string): GroupState | undefined {
    return this.groups.get(name);
  }

  /** @internal Drops a group's state. */
  drop(name: string): void {
    const g = this.groups.get(name);
    if (!g) return;
    g.live = false;
    for (const entry of g.inFlight.values()) clearTimeout(entry.timer);
    if (g.delayTimer) clearTimeout(g.delayTimer);
    g.flow?.stop();
    for (const w of g.waiters.splice(0)) w.resolve([]);
    this.groups.delete(name);
  }

  /** @internal Next store-wide sequence number. */
  nextSeq(): number {
    return ++this.seq;
  }

  /** @internal A delivery token unique within this store (and, by its prefix, across stores). */
  nextToken(): string {
    return this.tokenPrefix + (++this.seq).toString(36);
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

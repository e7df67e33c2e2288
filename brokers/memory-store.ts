/**
 * Storage of the in-memory broker: the {@link MemoryBrokerStore} shared by `MemoryBroker`
 * instances, the per-group state (ready list or flow lanes, delayed heap, leases in flight, dead
 * letters, waiting fetches) and the lease and delay timers. Internal to `./memory.ts`, which
 * re-exports {@link MemoryBrokerStore}.
 */
import { randomUUID } from 'node:crypto';
import type { DeadLetter, Delivery, FetchLimits } from '../src/broker.js';
import { Deque } from '../src/deque.js';
import { DEFAULT_PRIORITY } from '../src/limits.js';
import { assertName } from '../src/names.js';
import { FlowState } from './memory-lanes.js';
import { DelayHeap } from './memory-delays.js';

/**
 * @internal One message held by the broker. The same object travels through the message's life in its group
 * (ready → in flight → ready again after a release or an expired lease, or delayed after a retry),
 * so no operation allocates more than the {@link Delivery} it hands out. Never shared with callers.
 */
export class Entry {
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

/** @internal A fetch waiting for messages of a group. */
export interface Waiter {
  max: number;
  leaseMs: number;
  flow: FetchLimits | undefined;
  resolve: (ds: Delivery[]) => void;
}

/** @internal Lease timer callback (no closure per delivery): an expired lease puts the message back in front. */
export function expireLease(entry: Entry): void {
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

/** @internal State of one group inside a {@link MemoryBrokerStore}. */
export class GroupState {
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
 * Shared storage of memory brokers. Several `MemoryBroker` instances built on one store behave
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

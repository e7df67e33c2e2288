/**
 * The in-memory result backend: the embedded default of tasuki. Same guards and expiries as the
 * networked backends, within one process.
 */
import type { Backend, Expiry, FinalNotice, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError } from '../src/errors.js';
import { MemoryJournal } from './memory-journal.js';
import { completeTaskState, isFinalStatus, type TaskState } from '../src/state.js';
import { MemoryRecordStore, MemoryTaskIndex } from './memory-index.js';
import { MemoryScheduleStore, type MemoryScheduleRecords } from './memory-schedules.js';

/**
 * What is stored for one task id: its state (a private copy, see {@link jsonCopy}, never handed to
 * callers while stored) and its result, each with its own expiry. One map entry per task, updated in
 * place, so the writes of a task's life (sent, running, success + result) insert into the map once.
 */
class Stored {
  state: TaskState | null = null;
  /** Epoch ms; Infinity = forever. */
  stateExpiresAt = 0;
  /** Superjson JSON text. */
  result: string | null = null;
  /** Epoch ms; Infinity = forever. */
  resultExpiresAt = 0;

  /** Drops the parts expired at `now`; true when nothing is left. */
  expire(now: number): boolean {
    if (this.state !== null && this.stateExpiresAt <= now) this.state = null;
    if (this.result !== null && this.resultExpiresAt <= now) this.result = null;
    return this.state === null && this.result === null;
  }
}

/** One {@link MemoryBackend.watchFinal} subscription. */
interface Watch {
  readonly id: string;
  readonly listener: (notice?: FinalNotice) => void;
}

/** Shared storage of memory backends (several instances on one store act like one backend server). */
export class MemoryBackendStore {
  /** @internal State and result by task id. */
  readonly entries = new Map<string, Stored>();
  /** @internal watchFinal subscriptions of every backend on this store, by task id. */
  readonly watches = new Map<string, Set<Watch>>();
  /** @internal Shared records (worker registry, paused groups, claims) of every backend on this store. */
  readonly records = new MemoryRecordStore();
  /** @internal Schedule records (see `memory-schedules.ts`). */
  readonly schedules: MemoryScheduleRecords = new Map();
  private sweeper: NodeJS.Timeout | undefined;

  /** @internal Starts the periodic removal of expired entries (unref'd). */
  startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  /** Removes expired entries now. */
  sweep(now = Date.now()): void {
    for (const [k, v] of this.entries) if (v.expire(now)) this.entries.delete(k);
  }

  /** @internal Every live state (copies), for the task index. */
  *liveStates(now: number): Iterable<TaskState> {
    for (const e of this.entries.values()) if (e.state !== null && e.stateExpiresAt > now) yield jsonCopy(e.state);
  }

  /** @internal Calls the listeners of `id` (a final state was written); their exceptions are dropped. */
  notifyFinal(id: string, state: TaskState, result: string | null): void {
    const set = this.watches.get(id);
    if (set === undefined) return;
    for (const w of set) {
      try {
        w.listener({ state: jsonCopy(state), result });
      } catch {
        // A hint only: a listener's failure must not fail the write that triggered it.
      }
    }
  }

  /** @internal Ends one subscription. */
  unwatch(w: Watch): void {
    const set = this.watches.get(w.id);
    if (set === undefined || !set.delete(w)) return;
    if (set.size === 0) this.watches.delete(w.id);
  }
}

/** Options of {@link MemoryBackend}. */
export interface MemoryBackendOptions {
  /** Storage to share with other memory backends; a new private store by default. */
  store?: MemoryBackendStore;
}

function expiryTime(ttl: Expiry, now: number): number {
  return ttl < 0 ? Infinity : now + ttl * 1000;
}

/** Signals that {@link copyPlain} met a value it does not handle exactly like JSON. */
const NOT_PLAIN: unique symbol = Symbol('not plain');

/**
 * Copies plain JSON-like data exactly as `JSON.parse(JSON.stringify(value))` would (undefined,
 * function and symbol properties dropped, or `null` in arrays; NaN and ±Infinity to `null`; -0 to 0),
 * or returns {@link NOT_PLAIN} when it meets anything else (class instances, `toJSON`, bigint, an own
 * `__proto__` key, nesting deeper than 64, cycles). Several times cheaper than the JSON round trip.
 */
function copyPlain(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? (value === 0 ? 0 : value) : null;
    case 'object':
      break;
    default:
      return NOT_PLAIN; // bigint; undefined, functions and symbols are handled by the callers below
  }
  if (value === null) return null;
  if (depth > 64) return NOT_PLAIN;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return NOT_PLAIN;
    const out = new Array<unknown>(value.length);
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') {
        out[i] = null;
        continue;
      }
      const copy = copyPlain(item, depth + 1);
      if (copy === NOT_PLAIN) return NOT_PLAIN;
      out[i] = copy;
    }
    return out;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return NOT_PLAIN;
  const obj = value as Record<string, unknown>;
  if (typeof obj.toJSON === 'function') return NOT_PLAIN;
  const out: Record<string, unknown> = {};
  for (const key in obj) {
    if (!Object.prototype.hasOwnProperty.call(obj, key)) continue;
    const item = obj[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    if (key === '__proto__') return NOT_PLAIN;
    const copy = copyPlain(item, depth + 1);
    if (copy === NOT_PLAIN) return NOT_PLAIN;
    out[key] = copy;
  }
  return out;
}

/**
 * A private copy of a state with exactly the JSON round trip's result (and its errors: a bigint or a
 * cycle throws the same `TypeError`), through the fast path when the state is plain data.
 */
function jsonCopy(state: TaskState): TaskState {
  const copy = copyPlain(state, 0);
  // Completed as the JSON stores' readers complete a compact record (`completeTaskState`).
  return completeTaskState((copy === NOT_PLAIN ? JSON.parse(JSON.stringify(state)) : copy) as TaskState);
}

/**
 * In-process result backend. States are stored as private copies with JSON semantics (as if written
 * as JSON text and read back), so callers never share objects with it.
 */
export class MemoryBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'memory';
  /** The store this backend works on. */
  readonly store: MemoryBackendStore;
  /** Flow journals (shared by the backends of the same store). */
  readonly journal: MemoryJournal;
  private closed = false;
  /** This instance's watchFinal subscriptions, ended on close. */
  private readonly watches = new Set<Watch>();
  /** @inheritdoc */
  readonly index: MemoryTaskIndex;
  /** @inheritdoc */
  readonly records: MemoryRecordStore;
  readonly scheduleStore: MemoryScheduleStore;

  /** @param options see {@link MemoryBackendOptions} */
  constructor(options: MemoryBackendOptions = {}) {
    this.store = options.store ?? new MemoryBackendStore();
    this.scheduleStore = new MemoryScheduleStore(this.store.schedules, () => this.closed);
    this.store.startSweeper();
    this.index = new MemoryTaskIndex(this.store);
    this.records = this.store.records;
    this.journal = new MemoryJournal(this.store);
  }

  /** @inheritdoc */
  async connect(): Promise<void> {
    this.check();
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) this.store.unwatch(w);
    this.watches.clear();
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    const now = Date.now();
    const id = w.state.id;
    const entries = this.store.entries;
    let entry = entries.get(id);
    let prev: TaskState | null = null;
    if (entry !== undefined && entry.state !== null) {
      if (entry.stateExpiresAt <= now) entry.state = null;
      else prev = entry.state;
    }
    if (prev !== null) {
      const blocked =
        prev.status === 'success' || w.guard === 'absent' || (w.guard === 'notFinal' && isFinalStatus(prev.status));
      if (blocked) return { written: false, previous: jsonCopy(prev) };
    }
    // Copied before anything is stored: a state JSON cannot hold fails the write, result included.
    const state = jsonCopy(w.state);
    const stores = w.stateTtl !== 0 || (w.result !== undefined && (w.resultTtl ?? 0) !== 0);
    if (entry === undefined && stores) {
      entry = new Stored();
      entries.set(id, entry);
    }
    if (entry !== undefined) {
      if (w.result !== undefined) {
        const ttl = w.resultTtl ?? 0;
        entry.result = ttl === 0 ? null : w.result;
        entry.resultExpiresAt = expiryTime(ttl, now);
      }
      // The replaced copy is no longer referenced by the store: the caller may have it as `previous`.
      entry.state = w.stateTtl === 0 ? null : state;
      entry.stateExpiresAt = expiryTime(w.stateTtl, now);
      if (entry.state === null && entry.expire(now)) entries.delete(id);
    }
    if (this.store.watches.size !== 0 && isFinalStatus(state.status)) {
      this.store.notifyFinal(id, state, w.result !== undefined && (w.resultTtl ?? 0) !== 0 ? w.result : null);
    }
    return { written: true, previous: prev };
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    return this.readState(id, Date.now());
  }

  /** @inheritdoc */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    const now = Date.now();
    const out = new Array<TaskState | null>(ids.length);
    for (let i = 0; i < ids.length; i++) out[i] = this.readState(ids[i] as string, now);
    return out;
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    const e = this.store.entries.get(id);
    if (e === undefined || e.result === null) return null;
    const now = Date.now();
    if (e.resultExpiresAt <= now) {
      if (e.expire(now)) this.store.entries.delete(id);
      return null;
    }
    return e.result;
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    this.store.entries.delete(id);
  }

  /**
   * @inheritdoc
   * In process the subscription is active at once. Listeners run synchronously inside the `write`
   * (on any backend of the same store) that stores a final state for `id`; their exceptions are
   * ignored. `close()` ends every subscription of this instance.
   */
  async watchFinal(id: string, listener: (notice?: FinalNotice) => void): Promise<() => void> {
    this.check();
    const w: Watch = { id, listener };
    let set = this.store.watches.get(id);
    if (set === undefined) {
      set = new Set();
      this.store.watches.set(id, set);
    }
    set.add(w);
    this.watches.add(w);
    return () => {
      this.watches.delete(w);
      this.store.unwatch(w);
    };
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memory backend');
  }

  private readState(id: string, now: number): TaskState | null {
    const e = this.store.entries.get(id);
    if (e === undefined || e.state === null) return null;
    if (e.stateExpiresAt <= now) {
      if (e.expire(now)) this.store.entries.delete(id);
      return null;
    }
    return jsonCopy(e.state);
  }
}

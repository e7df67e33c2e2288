/**
 * The in-memory result backend: the embedded default of tasuki. Same guards and expiries as the
 * networked backends, within one process.
 */
import type { Backend, Expiry, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError } from '../src/errors.js';
import { isFinalStatus, type TaskState } from '../src/state.js';

interface Stored<T> {
  value: T;
  /** Epoch ms; Infinity = forever. */
  expiresAt: number;
}

/** Shared storage of memory backends (several instances on one store act like one backend server). */
export class MemoryBackendStore {
  /** @internal */
  readonly states = new Map<string, Stored<string>>();
  /** @internal */
  readonly results = new Map<string, Stored<string>>();
  private sweeper: NodeJS.Timeout | undefined;

  /** @internal Starts the periodic removal of expired entries (unref'd). */
  startSweeper(): void {
    if (this.sweeper) return;
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  /** Removes expired entries now. */
  sweep(now = Date.now()): void {
    for (const map of [this.states, this.results]) {
      for (const [k, v] of map) if (v.expiresAt <= now) map.delete(k);
    }
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

/** In-process result backend. States are kept as JSON text so callers never share objects with it. */
export class MemoryBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'memory';
  /** The store this backend works on. */
  readonly store: MemoryBackendStore;
  private closed = false;

  /** @param options see {@link MemoryBackendOptions} */
  constructor(options: MemoryBackendOptions = {}) {
    this.store = options.store ?? new MemoryBackendStore();
    this.store.startSweeper();
  }

  /** @inheritdoc */
  async connect(): Promise<void> {
    this.check();
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.closed = true;
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    const now = Date.now();
    const previous = this.get(this.store.states, w.state.id, now);
    const prevState = previous === null ? null : (JSON.parse(previous) as TaskState);
    if (prevState !== null) {
      const blocked =
        prevState.status === 'success' ||
        w.guard === 'absent' ||
        (w.guard === 'notFinal' && isFinalStatus(prevState.status));
      if (blocked) return { written: false, previous: prevState };
    }
    if (w.result !== undefined) this.put(this.store.results, w.state.id, w.result, w.resultTtl ?? 0, now);
    this.put(this.store.states, w.state.id, JSON.stringify(w.state), w.stateTtl, now);
    return { written: true, previous: prevState };
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const text = this.get(this.store.states, id, Date.now());
    return text === null ? null : (JSON.parse(text) as TaskState);
  }

  /** @inheritdoc */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    const now = Date.now();
    return ids.map((id) => {
      const text = this.get(this.store.states, id, now);
      return text === null ? null : (JSON.parse(text) as TaskState);
    });
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    return this.get(this.store.results, id, Date.now());
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    this.store.states.delete(id);
    this.store.results.delete(id);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memory backend');
  }

  private get(map: Map<string, Stored<string>>, id: string, now: number): string | null {
    const e = map.get(id);
    if (!e) return null;
    if (e.expiresAt <= now) {
      map.delete(id);
      return null;
    }
    return e.value;
  }

  private put(map: Map<string, Stored<string>>, id: string, value: string, ttl: Expiry, now: number): void {
    if (ttl === 0) {
      map.delete(id);
      return;
    }
    map.set(id, { value, expiresAt: expiryTime(ttl, now) });
  }
}

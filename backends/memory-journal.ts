/**
 * Flow journal storage of the memory backend: one record per flow in a map shared by every
 * backend on the same {@link MemoryBackendStore}, expiring as a whole.
 */
import type { Expiry } from '../src/backend.js';
import type { EnterOutcome, FlowJournalStore, JournalEntry, JournalPutMode, JournalPutOutcome, JournalSnapshot, SuspendOutcome } from '../src/journal.js';
import type { MemoryBackendStore } from './memory.js';

/** Everything stored for one flow (entries as JSON text: callers never share objects with the store). */
interface FlowRecord {
  entries: Map<string, string>;
  signals: Map<string, string[]>;
  live: string | undefined;
  liveAt: number;
  wanted: number | undefined;
  /** Run lease: holder run id and its end (epoch ms). */
  holder: string | undefined;
  holderUntil: number;
  /** Epoch ms; Infinity = forever. */
  expiresAt: number;
}

const journals = new WeakMap<MemoryBackendStore, Map<string, FlowRecord>>();

/** Flow journals of one memory store. */
export class MemoryJournal implements FlowJournalStore {
  private readonly flows: Map<string, FlowRecord>;
  private writes = 0;

  /** @param store the memory store whose backends share these journals */
  constructor(store: MemoryBackendStore) {
    let flows = journals.get(store);
    if (flows === undefined) {
      flows = new Map();
      journals.set(store, flows);
    }
    this.flows = flows;
  }

  private get(flowId: string): FlowRecord | undefined {
    const r = this.flows.get(flowId);
    if (r !== undefined && r.expiresAt <= Date.now()) {
      this.flows.delete(flowId);
      return undefined;
    }
    return r;
  }

  private touch(flowId: string, ttl: Expiry): FlowRecord {
    if (++this.writes % 256 === 0) {
      const now = Date.now();
      for (const [k, v] of this.flows) if (v.expiresAt <= now) this.flows.delete(k);
    }
    let r = this.get(flowId);
    if (r === undefined) {
      r = { entries: new Map(), signals: new Map(), live: undefined, liveAt: 0, wanted: undefined, holder: undefined, holderUntil: 0, expiresAt: Infinity };
      this.flows.set(flowId, r);
    }
    r.expiresAt = ttl < 0 ? Infinity : Date.now() + ttl * 1000;
    return r;
  }

  /** @inheritdoc */
  async read(flowId: string): Promise<JournalSnapshot> {
    const r = this.get(flowId);
    const out: JournalSnapshot = { entries: [], signals: {} };
    if (r === undefined) return out;
    for (const text of r.entries.values()) out.entries.push(JSON.parse(text) as JournalEntry);
    for (const [name, list] of r.signals) out.signals[name] = [...list];
    return out;
  }

  /** @inheritdoc */
  async put(flowId: string, entry: JournalEntry, mode: JournalPutMode, ttl: Expiry): Promise<JournalPutOutcome> {
    const text = JSON.stringify(entry);
    const r = this.touch(flowId, ttl);
    const stored = r.entries.get(entry.key);
    if (stored !== undefined) {
      const prev = JSON.parse(stored) as JournalEntry;
      if (mode === 'absent' || prev.status !== 'pending') return { written: false, entry: prev };
    }
    r.entries.set(entry.key, text);
    return { written: true, entry: JSON.parse(text) as JournalEntry };
  }

  /** @inheritdoc */
  async signal(flowId: string, name: string, payload: string, ttl: Expiry): Promise<number> {
    const r = this.touch(flowId, ttl);
    let list = r.signals.get(name);
    if (list === undefined) {
      list = [];
      r.signals.set(name, list);
    }
    list.push(payload);
    return list.length - 1;
  }

  /** @inheritdoc */
  async enter(flowId: string, runId: string, token: string, now: number, leaseMs: number, ttl: Expiry): Promise<EnterOutcome> {
    const r = this.touch(flowId, ttl);
    if (r.holder === undefined || r.holderUntil <= now || r.holder === runId) {
      r.holder = runId;
      r.holderUntil = now + leaseMs;
      return { ok: true, until: r.holderUntil };
    }
    r.wanted = Math.min(r.wanted ?? Infinity, now);
    if (r.live === token) r.liveAt = r.holderUntil;
    return { ok: false, until: r.holderUntil };
  }

  /** @inheritdoc */
  async leave(flowId: string, runId: string): Promise<void> {
    const r = this.get(flowId);
    if (r !== undefined && r.holder === runId) r.holder = undefined;
  }

  /** @inheritdoc */
  async suspend(flowId: string, token: string, wakeAt: number, ttl: Expiry, runId?: string): Promise<SuspendOutcome> {
    const r = this.touch(flowId, ttl);
    if (runId !== undefined && r.holder === runId) r.holder = undefined;
    const at = Math.min(wakeAt, r.wanted ?? Infinity);
    if (r.live === undefined || r.live === token || at < r.liveAt) {
      r.live = token;
      r.liveAt = at;
      r.wanted = undefined;
      return { reschedule: true, at };
    }
    r.wanted = Math.min(r.wanted ?? Infinity, wakeAt);
    return { reschedule: false, at: r.liveAt };
  }

  /** @inheritdoc */
  async remove(flowId: string, keys: ReadonlyArray<string>): Promise<void> {
    const r = this.get(flowId);
    if (r === undefined) return;
    for (const k of keys) r.entries.delete(k);
    r.live = undefined;
    r.liveAt = 0;
    r.wanted = undefined;
    r.holder = undefined;
  }

  /** @inheritdoc */
  async delete(flowId: string): Promise<void> {
    this.flows.delete(flowId);
  }
}

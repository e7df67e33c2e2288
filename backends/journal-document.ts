/**
 * Flow journals kept as one JSON document per flow, updated by compare-and-set: the shared part of
 * the Memcache (CAS) and MongoDB (versioned document) journal stores. Each operation of
 * `FlowJournalStore` is a pure change of the document ({@link JournalDoc}); {@link CasJournal}
 * reads the document with its version, applies the change and writes it back only if the version
 * is unchanged, retrying on conflict — so every operation is atomic.
 */
import type { Expiry } from '../src/backend.js';
import { ConnectionError } from '../src/errors.js';
import type { EnterOutcome, FlowJournalStore, JournalEntry, JournalPutMode, JournalPutOutcome, JournalSnapshot, SuspendOutcome } from '../src/journal.js';

/** The journal document of one flow. */
export interface JournalDoc {
  /** Entries by key. */
  e: Record<string, JournalEntry>;
  /** Signal payloads by name. */
  s: Record<string, string[]>;
  /** Token of the flow's live message (see `FlowJournalStore.suspend`). */
  live?: string;
  /** When the live message is due (epoch ms). */
  liveAt?: number;
  /** Earliest wake time wanted by a dropped or refused message (epoch ms). */
  wanted?: number;
  /** Run id holding the run lease. */
  holder?: string;
  /** End of the run lease (epoch ms). */
  holderUntil?: number;
  /** When the document expires (epoch ms); absent: never. */
  x?: number;
}

/** A stored document and the version to compare against. */
export interface Versioned<V> {
  /** The document. */
  doc: JournalDoc;
  /** Its version (Memcache CAS value, Mongo counter). */
  version: V;
}

/** Compare-and-set storage of journal documents. */
export interface CasAdapter<V> {
  /** Reads a flow's document; null when absent or expired. */
  load(flowId: string): Promise<Versioned<V> | null>;
  /**
   * Stores `doc` if the stored version is still `version` (null: only if absent), expiring at
   * `doc.x` (epoch ms; absent: never); false on conflict.
   */
  save(flowId: string, doc: JournalDoc, version: V | null): Promise<boolean>;
  /** Deletes a flow's document. */
  remove(flowId: string): Promise<void>;
}

const MAX_ATTEMPTS = 200;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const copy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** A change of a document: its result and whether the document must be written. */
type Change<T> = { value: T; changed: boolean };

/** Flow journals on a {@link CasAdapter}. */
export class CasJournal<V> implements FlowJournalStore {
  /** @param store the document storage */
  constructor(private readonly store: CasAdapter<V>) {}

  /** Applies `change` atomically; `ttl` sets the document's expiry (undefined: kept). */
  private async update<T>(flowId: string, ttl: Expiry | undefined, change: (doc: JournalDoc) => Change<T>): Promise<T> {
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await this.store.load(flowId);
      const doc: JournalDoc = cur === null ? { e: {}, s: {} } : cur.doc;
      const out = change(doc);
      if (!out.changed) return out.value;
      if (ttl !== undefined) {
        if (ttl < 0) delete doc.x;
        else doc.x = Date.now() + ttl * 1000;
      }
      if (await this.store.save(flowId, doc, cur === null ? null : cur.version)) return out.value;
      await sleep(Math.min(50, attempt) * Math.random());
    }
    throw new ConnectionError(`journal of flow ${flowId}: too many concurrent updates`);
  }

  /** @inheritdoc */
  async read(flowId: string): Promise<JournalSnapshot> {
    const cur = await this.store.load(flowId);
    if (cur === null) return { entries: [], signals: {} };
    if (cur.doc.x !== undefined && cur.doc.x <= Date.now()) return { entries: [], signals: {} };
    return { entries: Object.values(cur.doc.e), signals: cur.doc.s };
  }

  /** @inheritdoc */
  put(flowId: string, entry: JournalEntry, mode: JournalPutMode, ttl: Expiry): Promise<JournalPutOutcome> {
    const mine = copy(entry);
    return this.update<JournalPutOutcome>(flowId, ttl, (doc) => {
      const prev = doc.e[entry.key];
      if (prev !== undefined && (mode === 'absent' || prev.status !== 'pending')) return { value: { written: false, entry: prev }, changed: false };
      doc.e[entry.key] = mine;
      return { value: { written: true, entry: copy(mine) }, changed: true };
    });
  }

  /** @inheritdoc */
  signal(flowId: string, name: string, payload: string, ttl: Expiry): Promise<number> {
    return this.update(flowId, ttl, (doc) => {
      const list = (doc.s[name] ??= []);
      list.push(payload);
      return { value: list.length - 1, changed: true };
    });
  }

  /** @inheritdoc */
  enter(flowId: string, runId: string, token: string, now: number, leaseMs: number, ttl: Expiry): Promise<EnterOutcome> {
    return this.update<EnterOutcome>(flowId, ttl, (doc) => {
      if (doc.holder === undefined || (doc.holderUntil ?? 0) <= now || doc.holder === runId) {
        doc.holder = runId;
        doc.holderUntil = now + leaseMs;
        return { value: { ok: true, until: doc.holderUntil }, changed: true };
      }
      doc.wanted = Math.min(doc.wanted ?? Infinity, now);
      if (doc.live === token) doc.liveAt = doc.holderUntil;
      return { value: { ok: false, until: doc.holderUntil ?? now }, changed: true };
    });
  }

  /** @inheritdoc */
  async leave(flowId: string, runId: string): Promise<void> {
    const cur = await this.store.load(flowId);
    if (cur === null || cur.doc.holder !== runId) return;
    await this.update(flowId, undefined, (doc) => {
      if (doc.holder !== runId) return { value: undefined, changed: false };
      delete doc.holder;
      delete doc.holderUntil;
      return { value: undefined, changed: true };
    }).catch(() => undefined);
  }

  /** @inheritdoc */
  suspend(flowId: string, token: string, wakeAt: number, ttl: Expiry, runId?: string): Promise<SuspendOutcome> {
    return this.update<SuspendOutcome>(flowId, ttl, (doc) => {
      if (runId !== undefined && doc.holder === runId) {
        delete doc.holder;
        delete doc.holderUntil;
      }
      const at = Math.min(wakeAt, doc.wanted ?? Infinity);
      if (doc.live === undefined || doc.live === token || at < (doc.liveAt ?? 0)) {
        doc.live = token;
        doc.liveAt = at;
        delete doc.wanted;
        return { value: { reschedule: true, at }, changed: true };
      }
      doc.wanted = Math.min(doc.wanted ?? Infinity, wakeAt);
      return { value: { reschedule: false, at: doc.liveAt ?? 0 }, changed: true };
    });
  }

  /** @inheritdoc */
  async remove(flowId: string, keys: ReadonlyArray<string>): Promise<void> {
    const cur = await this.store.load(flowId);
    if (cur === null) return;
    await this.update(flowId, undefined, (doc) => {
      for (const k of keys) delete doc.e[k];
      for (const f of ['live', 'liveAt', 'wanted', 'holder', 'holderUntil'] as const) delete doc[f];
      return { value: undefined, changed: true };
    });
  }

  /** @inheritdoc */
  delete(flowId: string): Promise<void> {
    return this.store.remove(flowId);
  }
}

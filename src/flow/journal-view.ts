/**
 * One run's view of a flow journal: entries by key and by position, the position/divergence check,
 * the meta record (arguments and send controls of the flow, written at its first run) and writes
 * that keep the view current.
 */
import type { Expiry } from '../backend.js';
import type { FlowJournalStore, JournalEntry, JournalEntryKind, JournalPutMode, JournalSnapshot } from '../journal.js';
import type { Backoff, EncodedValue } from '../message.js';
import { FlowDivergedError } from './errors.js';

/** Key of the meta entry. */
export const META_KEY = '!meta';
/** Key of the mark written once the callbacks of a final flow ran. */
export const CALLBACKS_KEY = '!callbacks';

/** What the first run of a flow stores about it (JSON in the meta entry's `value`). */
export interface FlowMeta {
  /** The flow's arguments (superjson document). */
  args: EncodedValue;
  /** Flow-level retries left (send control). */
  retriesLeft: number;
  /** Flow-level retries used. */
  retriesUsed: number;
  /** Flow-level backoff. */
  backoff: Backoff;
  /** When the flow was sent (epoch ms). */
  sentAt: number;
  /** When the flow expires (epoch ms), if ever. */
  expireAt: number | null;
  /** Flow-level timeout: wall time since {@link startedAt}. */
  timeoutMs: number | null;
  /** When the flow first ran (or was last restarted). */
  startedAt: number;
  /** Restart generation (child ids include it, so a restarted flow sends new children). */
  gen: number;
  /** The flow that called this one as a child (kept so that a wake-up run that ends the flow wakes it). */
  parent?: { id: string; group: string; name: string };
}

/** Parses the meta entry of a snapshot, or undefined. */
export function readMeta(snapshot: JournalSnapshot): FlowMeta | undefined {
  const e = snapshot.entries.find((x) => x.key === META_KEY);
  if (e?.value === undefined) return undefined;
  return JSON.parse(e.value) as FlowMeta;
}

/** The meta entry for `meta`. */
export function metaEntry(meta: FlowMeta): JournalEntry {
  return { key: META_KEY, name: META_KEY, kind: 'meta', seq: -1, status: 'done', attempts: 0, startedAt: meta.startedAt, value: JSON.stringify(meta) };
}

/** A run's view of the journal of one flow. */
export class JournalView {
  private readonly byKey = new Map<string, JournalEntry>();
  private readonly bySeq = new Map<number, JournalEntry>();
  private maxSeq = -1;

  /**
   * @param store the backend's journal storage
   * @param flowId the flow
   * @param ttl expiry of every write (the flow's `statusExpires`)
   * @param snapshot what was read at the start of the run
   */
  constructor(
    private readonly store: FlowJournalStore,
    readonly flowId: string,
    private readonly ttl: Expiry,
    readonly snapshot: JournalSnapshot,
  ) {
    for (const e of snapshot.entries) this.index(e);
  }

  private index(e: JournalEntry): void {
    this.byKey.set(e.key, e);
    if (e.seq >= 0 && !e.key.endsWith(']')) {
      this.bySeq.set(e.seq, e);
      if (e.seq > this.maxSeq) this.maxSeq = e.seq;
    }
  }

  /** The entry of `key`. */
  get(key: string): JournalEntry | undefined {
    return this.byKey.get(key);
  }

  /** The top-level entry at position `seq`. */
  at(seq: number): JournalEntry | undefined {
    return this.bySeq.get(seq);
  }

  /** Whether the journal holds any top-level entry at position `seq` or later. */
  reached(seq: number): boolean {
    return this.maxSeq >= seq;
  }

  /** Signal payloads of `name` known at the start of the run. */
  signal(name: string, index: number): string | undefined {
    return this.snapshot.signals[name]?.[index];
  }

  /** The divergence error of an operation at `seq`, or undefined when the journal agrees (or knows nothing). */
  check(seq: number, kind: JournalEntryKind, key: string): FlowDivergedError | undefined {
    const there = this.bySeq.get(seq);
    if (there !== undefined && (there.key !== key || there.kind !== kind)) return new FlowDivergedError(seq, `${there.kind} "${there.key}"`, `${kind} "${key}"`);
    const mine = this.byKey.get(key);
    if (mine !== undefined && mine.seq !== seq && mine.seq >= 0) {
      return new FlowDivergedError(seq, `${mine.kind} "${key}" at operation #${mine.seq}`, `${kind} "${key}"`);
    }
    if (mine !== undefined && mine.kind !== kind) return new FlowDivergedError(seq, `${mine.kind} "${key}"`, `${kind} "${key}"`);
    return undefined;
  }

  /** Stores an entry (see {@link FlowJournalStore.put}); returns the entry stored after the call and whether it is ours. */
  async put(entry: JournalEntry, mode: JournalPutMode): Promise<{ written: boolean; entry: JournalEntry }> {
    const out = await this.store.put(this.flowId, entry, mode, this.ttl);
    this.index(out.entry);
    return out;
  }
}

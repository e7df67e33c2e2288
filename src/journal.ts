/**
 * The flow journal: what a backend stores for a durable flow (`server.flow`) beside its task state.
 * An optional capability of a {@link Backend} (`backend.journal`); the flow engine (`src/flow/`) is
 * built on these few atomic operations, and every implementation passes the journal contract suite
 * (`test/contract/journal.ts`).
 *
 * A journal holds, per flow id: entries (one per step, sleep, wait, child call... keyed by name and
 * occurrence), signals (payloads per signal name, in arrival order) and the wake-up bookkeeping of
 * {@link FlowJournalStore.suspend}. Every write refreshes the expiry of the whole journal, so a
 * journal lives as long as the flow's state (`statusExpires`).
 */
import type { Expiry } from './backend.js';
import type { StoredError } from './state.js';

/** What kind of operation an entry records. */
export type JournalEntryKind = 'meta' | 'mark' | 'step' | 'sleep' | 'wait' | 'call' | 'calls' | 'map' | 'patch';

/** Where an entry is: `pending` (started, may still change), `done` or `failed` (final: never changes again). */
export type JournalEntryStatus = 'pending' | 'done' | 'failed';

/** One journal entry (plain JSON). */
export interface JournalEntry {
  /** Key within the flow: `name#occurrence`, `parentKey[i]` for a fan-out item, `!meta`... */
  key: string;
  /** Step name as the flow gave it. */
  name: string;
  /** Operation kind. */
  kind: JournalEntryKind;
  /** Position of the operation in the flow's code order (fan-out items: their parent's; reserved entries: -1). */
  seq: number;
  /** Where it is. */
  status: JournalEntryStatus;
  /** Attempts made so far (steps). */
  attempts: number;
  /** The value (superjson JSON text): a step's result, a signal's payload, a child's result, the meta record. */
  value?: string;
  /** The error of a failed entry (or of the last failed attempt of a pending step). */
  error?: StoredError;
  /** When the operation started (epoch ms). */
  startedAt: number;
  /** When it ended (epoch ms). */
  finishedAt?: number;
  /** Sleep / wait deadline, or the time of a step's next attempt (epoch ms). */
  until?: number;
  /** Child task id (calls). */
  child?: string;
  /** Final status of the child, once it ended (calls). */
  childStatus?: string;
}

/** How {@link FlowJournalStore.put} may replace a stored entry of the same key. */
export type JournalPutMode = 'absent' | 'notFinal';

/** What {@link FlowJournalStore.put} did. */
export interface JournalPutOutcome {
  /** True when the entry was stored. */
  written: boolean;
  /** The entry stored after the call (the caller's when written, else the one that blocked it). */
  entry: JournalEntry;
}

/** Everything stored for one flow. */
export interface JournalSnapshot {
  /** Entries, in no particular order. */
  entries: JournalEntry[];
  /** Signal payloads (superjson JSON text) by signal name, in arrival order. */
  signals: Record<string, string[]>;
}

/** What {@link FlowJournalStore.suspend} decided. */
export interface SuspendOutcome {
  /** True: the caller's message is the flow's live one; reschedule it at {@link at}. False: drop it (another message will wake the flow no later). */
  reschedule: boolean;
  /** When to reschedule (epoch ms), when {@link reschedule}. */
  at: number;
}

/** What {@link FlowJournalStore.enter} decided. */
export interface EnterOutcome {
  /** True: the caller holds the flow's run lease until {@link until}. False: another run holds it until then. */
  ok: boolean;
  /** End of the lease (epoch ms). */
  until: number;
}

/**
 * Journal storage of a backend. Rules (checked by `journalContract`):
 * - `enter` gives one run of a flow at a time its run lease: granted when no lease is held, the
 *   held one ended, or the caller holds it (renewal). A refused caller's time is remembered as
 *   wanted (as by a dropped `suspend`), and when the caller's message is the live one its live time
 *   becomes the lease's end (it is rescheduled then).
 * - `put` is atomic: with `absent` it writes only when no entry has the key; with `notFinal` only
 *   when none has it or the stored one is `pending`. Of two concurrent puts that both pass alone,
 *   one wins and the other sees the winner's entry.
 * - `signal` appends atomically and returns the payload's index (0, 1, ... per name, never repeated).
 * - `suspend` decides atomically which message of a flow stays scheduled. Its time is the earlier of
 *   `wakeAt` and the remembered wanted time; the caller's message (token) is kept, at that time, when
 *   no live message is recorded, when it is the live one, or when that time is before the live
 *   one's (the wanted time is then cleared); otherwise `wakeAt` is remembered as wanted and the
 *   message is to be dropped.
 * - Every write sets the expiry of the whole journal to `ttl` ({@link Expiry}: -1 forever).
 * - Methods reject with a `TasukiError` (`ValueTooLargeError` when an entry exceeds what the store holds).
 */
export interface FlowJournalStore {
  /** Reads the journal of a flow (empty when none is stored). */
  read(flowId: string): Promise<JournalSnapshot>;
  /** Conditionally stores an entry (see the rules). */
  put(flowId: string, entry: JournalEntry, mode: JournalPutMode, ttl: Expiry): Promise<JournalPutOutcome>;
  /** Appends a signal payload; resolves with its index among the signals of that name. */
  signal(flowId: string, name: string, payload: string, ttl: Expiry): Promise<number>;
  /** Takes or renews the run lease of `runId` (message `token`) for `leaseMs` from `now` (see the rules). */
  enter(flowId: string, runId: string, token: string, now: number, leaseMs: number, ttl: Expiry): Promise<EnterOutcome>;
  /** Ends the run lease of `runId`, if it holds it. */
  leave(flowId: string, runId: string): Promise<void>;
  /**
   * Records a suspension of the run `runId` of the message `token`, wanting to wake at `wakeAt`
   * (see the rules; the wanted time counts for the caller too), and ends its run lease.
   */
  suspend(flowId: string, token: string, wakeAt: number, ttl: Expiry, runId?: string): Promise<SuspendOutcome>;
  /** Removes entries by key and forgets the live message (restart from a step). */
  remove(flowId: string, keys: ReadonlyArray<string>): Promise<void>;
  /** Deletes the whole journal of a flow. */
  delete(flowId: string): Promise<void>;
}

/** Largest step value (encoded characters) the engine stores by default; a store may hold less. */
export const DEFAULT_MAX_VALUE_BYTES = 1_000_000;

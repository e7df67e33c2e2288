/**
 * The backend interface: where task states and results are stored. The core knows only this.
 * Implementations: `backends/memory`, `backends/redis`, `backends/memcache`, `backends/mongo`; each
 * passes the backend contract suite (`test/contract/backend.ts`).
 */
import type { RateLimitStore } from './rate-limit-store.js';
import type { FlowJournalStore } from './journal.js';
import type { TaskState, TaskStatus } from './state.js';
import type { ScheduleStore } from './schedule/store.js';

/**
 * Expiry of a stored entry in **seconds**: `-1` keeps it forever, `0` does not store it at all,
 * `N > 0` keeps it N seconds (as YTask's `StatusExpires` / `ResultExpires`).
 */
export type Expiry = number;

/**
 * Condition under which a {@link Backend.write} takes effect, evaluated atomically against the state
 * currently stored (an expired entry counts as absent):
 * - `absent`: only if no state is stored (idempotent create).
 * - `notFinal`: only if no state is stored or its status is not final (running, waiting-retry, progress, failure...).
 * - `notSuccess`: only if the stored status is not `success` (a success is sticky: a late duplicate's
 *   write never replaces it).
 */
export type WriteGuard = 'absent' | 'notFinal' | 'notSuccess';

/** One atomic write of a task's state and, optionally, its result. */
export interface StateWrite {
  /** The new state. */
  state: TaskState;
  /** Expiry of the state entry (seconds; -1 forever; 0 not stored). */
  stateTtl: Expiry;
  /** Result to store beside the state (superjson-encoded JSON text), written only together with the state. */
  result?: string;
  /** Expiry of the result entry (seconds; -1 forever; 0 not stored). Required when `result` is set. */
  resultTtl?: Expiry;
  /** Condition for the write. */
  guard: WriteGuard;
  /**
   * `'refused'`: the caller reads {@link WriteOutcome.previous} only when the write is refused, so a
   * backend may leave it `null` for a write that passes (a remote store then need not send the
   * replaced state back). Default `'always'`.
   */
  previous?: 'always' | 'refused';
  /**
   * The state the caller expects stored before this write (the one it or the client last wrote for
   * the task), when it knows it. A backend may then send only the difference from it, checked
   * against what is stored: a stored state other than this one costs a second call, never a wrong
   * state. The write's guard and outcome are the same with or without it.
   */
  basis?: TaskState;
  /**
   * The caller's open transaction (the `tx` send control), passed through opaque. Only a backend with
   * {@link Backend.transactional} set receives it: the write then exists if and only if that
   * transaction commits.
   */
  tx?: unknown;
}

/** What {@link Backend.write} did. */
export interface WriteOutcome {
  /** True when the state (and result) were written. With `stateTtl` 0 the guard cannot be checked and this is true. */
  written: boolean;
  /**
   * The state stored before the write (or the one that blocked it); `null` when none was stored, or
   * when the write passed and was made with `previous: 'refused'` (then it may be left out).
   */
  previous: TaskState | null;
}

/** What a final write stored, as carried by a {@link Backend.watchFinal} notification. */
export interface FinalNotice {
  /** The final state written (the caller's own copy). */
  state: TaskState;
  /** The result written with it (superjson JSON text), or `null` when that write stored none. */
  result: string | null;
}

/**
 * A result store. Rules (checked by the contract suite):
 * - `write` is atomic with respect to its guard: two concurrent writes never both pass an `absent`
 *   guard, and a stored `success` is only ever replaced by a write whose guard passes (`absent`, `notFinal` and `notSuccess` all refuse it).
 * - A result is never visible without its state having been written by the same call (when both are stored).
 * - Expiries follow {@link Expiry} exactly, including "forever" and "not stored".
 * - Methods reject with a `TasukiError` (`ConnectionError` for transport failures, `ValueTooLargeError`
 *   when a value exceeds what the store can hold); they reconnect by themselves after a restart.
 */
export interface Backend {
  /** Short name for logs ("memory", "redis", "memcache", "mongo"). */
  readonly kind: string;
  /** True when `write` honours {@link StateWrite.tx} (writes inside the caller's transaction). */
  readonly transactional?: boolean;
  /** Opens connections. Idempotent; other methods call it implicitly. */
  connect(): Promise<void>;
  /** Closes connections. Idempotent. */
  close(): Promise<void>;
  /** Conditionally writes a state (and result). */
  write(write: StateWrite): Promise<WriteOutcome>;
  /** Reads a task state; `null` when absent or expired. */
  read(id: string): Promise<TaskState | null>;
  /** Reads many states in one round trip where possible; same order as `ids`. */
  readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>>;
  /** Reads a stored result (superjson JSON text); `null` when absent, expired or not stored. */
  readResult(id: string): Promise<string | null>;
  /** Deletes state and result of a task. */
  delete(id: string): Promise<void>;
  /**
   * Optional push notification, used by `client.getResult` to wake up as soon as a task may have
   * finished instead of waiting for its next poll. Calls `listener` (possibly more than once, possibly
   * spuriously) after a write that stored a final state for `id`, with a {@link FinalNotice} of that
   * write where the backend can carry one (a reader may then skip reading it back). Resolves, once
   * the subscription is active (a final write made after that is never missed), with a function that
   * ends it. A hint only: callers keep polling as a fallback.
   */
  watchFinal?(id: string, listener: (notice?: FinalNotice) => void): Promise<() => void>;
  /** Optional: where schedule records live (`client.schedules`); without it, schedules reject with `ERR_UNSUPPORTED`. */
  readonly scheduleStore?: ScheduleStore;
  /** Optional journal storage of durable flows (`server.flow`); a backend without it cannot run flows. */
  readonly journal?: FlowJournalStore;
  /**
   * Optional task index (see `src/ops/`): lists a group's tasks by status and time. A backend that
   * cannot keep one leaves it out; the operations API then refuses with `ERR_UNSUPPORTED`.
   */
  readonly index?: TaskIndex;
  /**
   * Optional small shared records with expiries (worker registry, paused groups, watchdog claims).
   * A backend without it makes those operations refuse with `ERR_UNSUPPORTED`.
   */
  readonly records?: RecordStore;
  /**
   * Optional shared token buckets (`src/rate-limit-store.ts`): with them a group `rateLimit` works on
   * a broker that cannot enforce it itself (RabbitMQ, PostgreSQL); without them it is refused there.
   */
  readonly rateLimits?: RateLimitStore;
}

/** A query of {@link TaskIndex.list}. */
export interface IndexQuery {
  /** Group to list. */
  group: string;
  /** Only tasks in this status (default: all). */
  status?: TaskStatus;
  /** Only tasks of this name. */
  name?: string;
  /** Only tasks updated at or after this time (epoch ms). */
  since?: number;
  /** Only tasks updated before this time (epoch ms). */
  until?: number;
  /** Most entries returned (≥ 1). */
  limit: number;
  /** Where to go on: the `cursor` of the previous page. */
  cursor?: string;
}

/** One page of {@link TaskIndex.list}: newest first. */
export interface IndexPage {
  /** The current states of the tasks found, newest update first. */
  items: TaskState[];
  /** Cursor of the next page; `null` on the last one. */
  cursor: string | null;
}

/**
 * The task index of a backend: which tasks of a group are in which status, newest first. Entries
 * follow the stored states (a task's entry moves with each write and leaves with its state's
 * expiry or deletion) and are bounded per group and status.
 */
export interface TaskIndex {
  /** Lists tasks (see {@link IndexQuery}); every item is the task's current stored state. */
  list(query: IndexQuery): Promise<IndexPage>;
  /** Groups that have indexed tasks. */
  groups(): Promise<string[]>;
  /** Tasks of a group by status (statuses with none may be left out). */
  statusCounts(group: string): Promise<Partial<Record<TaskStatus, number>>>;
}

/** A record of a {@link RecordStore}. */
export interface StoredRecord {
  /** Its key within its kind. */
  key: string;
  /** Its value (JSON text, opaque to the store). */
  value: string;
}

/**
 * Small shared records with expiries, by kind (`workers`, `paused`, `claims`…) and key. Used by the
 * operations layer for the worker registry, paused groups and watchdog claims.
 */
export interface RecordStore {
  /** Stores a record, replacing one of the same key; `ttlMs` null: no expiry. */
  put(kind: string, key: string, value: string, ttlMs: number | null): Promise<void>;
  /** Reads a live record; `null` when absent or expired. */
  get(kind: string, key: string): Promise<string | null>;
  /** Every live record of a kind (any order). */
  list(kind: string): Promise<StoredRecord[]>;
  /** Removes a record (no error when absent). */
  remove(kind: string, key: string): Promise<void>;
  /**
   * Stores a record only when no live one has the key, atomically: of many concurrent claims of
   * one key exactly one resolves `true`. A claimed record is read with `get`; `list` need not show it.
   */
  claim(kind: string, key: string, value: string, ttlMs: number): Promise<boolean>;
}

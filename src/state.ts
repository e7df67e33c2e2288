import { DecodeError } from './errors.js';

/**
 * The task state record: what a backend stores about a task (its status machine position, retries,
 * error, progress, timestamps). Return values are stored beside it as a separate entry with their own
 * expiry (see `backend.ts`).
 *
 * Status machine: `sent` → `running` → (`waiting-retry` → `running`)* → `success` | `failure` |
 * `expired` | `aborted`. The last four are final. A stored `success` is never overwritten.
 */

/** Every status a task can be in. */
export type TaskStatus = 'sent' | 'running' | 'waiting-retry' | 'success' | 'failure' | 'expired' | 'aborted';

/** All statuses, in machine order. */
export const TASK_STATUSES: readonly TaskStatus[] = ['sent', 'running', 'waiting-retry', 'success', 'failure', 'expired', 'aborted'];

/** Statuses after which a task never runs again. */
export const FINAL_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>(['success', 'failure', 'expired', 'aborted']);

/** True when `status` is final (success, failure, expired, aborted). */
export function isFinalStatus(status: TaskStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/** An error as stored in a task state (plain JSON). */
export interface StoredError {
  /** Class name of the error (`Error`, `TypeError`, `TaskTimeoutError`...). */
  name: string;
  /** Its message. */
  message: string;
  /** Its `code` property when it had a string one. */
  code?: string;
  /** Stack trace from the worker, when available. */
  stack?: string;
}

/** The stored state of one task. Plain JSON; version field `v` allows future changes. */
export interface TaskState {
  /** Record format version (1). */
  v: 1;
  /** Task id. */
  id: string;
  /** Group the task was sent to. */
  group: string;
  /** Task name within the group. */
  name: string;
  /** Current status. */
  status: TaskStatus;
  /** Retries used so far (0 on the first run). */
  retriesUsed: number;
  /** Retries still allowed. */
  retriesLeft: number;
  /** Last error (failure, or the error that caused the pending retry). */
  error?: StoredError;
  /** Last progress value reported by the handler, superjson-encoded JSON text. */
  progress?: string;
  /** When the client sent the task (epoch ms). */
  sentAt?: number;
  /** When the current/last run started (epoch ms). */
  startedAt?: number;
  /** When the task reached a final status (epoch ms). */
  finishedAt?: number;
  /** When a pending retry is due (epoch ms), while `waiting-retry`. */
  retryAt?: number;
  /**
   * Deliveries of the current run that started and never concluded, counting this one (a worker
   * that died or lost its lease in the handler). Written only when above 1; see `maxDeliveries`.
   */
  deliveries?: number;
  /**
   * The task's wire message (JSON text, arguments included), stored with a final `failure`,
   * `expired` or `aborted` state by the worker, so that the operations API can run the task again
   * (`client.ops.retry`). Left out when the state would be too large.
   */
  message?: string;
  /** The task's flow-control key (the `key` send control), when it has one. */
  key?: string;
  /** When this record was last written (epoch ms). */
  updatedAt: number;
}

/** Longest error message and stack stored (characters each); longer ones are cut with a marker. */
export const STORED_ERROR_TEXT_MAX = 16_384;

/** Cuts `text` to at most `max` characters, ending it with a marker that says how much was cut. */
export function truncateText(text: string, max: number): string {
  if (text.length <= max) return text;
  const marker = `… [${text.length - max} more characters cut]`;
  return text.slice(0, Math.max(0, max - marker.length)) + marker;
}

/**
 * Converts any error to its stored form, its message and stack cut to `max` characters each
 * (default {@link STORED_ERROR_TEXT_MAX}); `stack: false` leaves the stack out.
 */
export function storeError(err: Error, max = STORED_ERROR_TEXT_MAX, stack = true): StoredError {
  const out: StoredError = { name: truncateText(String(err.name), 200), message: truncateText(String(err.message), max) };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') out.code = truncateText(code, 200);
  if (stack && typeof err.stack === 'string' && err.stack) out.stack = truncateText(err.stack, max);
  return out;
}

/**
 * Parses a stored state (JSON text) for backends; throws {@link DecodeError} naming `where` (a key or
 * document id) when it is not JSON or not a task state record. `id` is the task id the record was
 * stored under: a record written without its id (`encodeTaskState(state, { omitId: true })`, for a
 * store whose key already names the task) gets it back; a record that has one keeps its own.
 */
export function parseTaskState(text: string, where: string, id?: string): TaskState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DecodeError(`stored state at ${where} is not JSON`, err);
  }
  if (typeof value !== 'object' || value === null) throw new DecodeError(`stored value at ${where} is not a task state`);
  let v = value as { id?: unknown; status?: unknown };
  // Put back first, where a record that names its id has it.
  if (v.id === undefined && id !== undefined) value = v = { id, ...v };
  if (typeof v.status !== 'string' || typeof v.id !== 'string') throw new DecodeError(`stored value at ${where} is not a task state`);
  return completeTaskState(value as TaskState);
}

/**
 * The `updatedAt` a reader assumes for a record without one (see {@link completeTaskState}): the time
 * of its status's own event (`finishedAt` of a final state, `startedAt` of `running`, else `sentAt`),
 * else the first known of them, else 0.
 */
function impliedUpdatedAt(s: Partial<TaskState> & Pick<TaskState, 'status'>): number {
  const own = isFinalStatus(s.status) ? s.finishedAt : s.status === 'running' ? s.startedAt : s.sentAt;
  return own ?? s.finishedAt ?? s.startedAt ?? s.sentAt ?? 0;
}

/**
 * The stored text of a state (JSON) in its compact form, what every backend writes: without `v` 1,
 * `retriesUsed` 0, `updatedAt` when it equals the time readers assume for it (its status's own,
 * see {@link completeTaskState}) and undefined fields. Field order is the object's (the Redis write
 * script relies on `status` coming before the nested `error`). {@link parseTaskState} reads it back
 * to an equal state; so does every release since the one that added `completeTaskState`. With
 * `omitId` the record leaves out `id` too, for a store whose key names the task (the Redis backend:
 * `P:{ID}:state`); read it back with `parseTaskState(text, where, id)`.
 */
export function encodeTaskState(state: TaskState, options?: { readonly omitId?: boolean }): string {
  const out: Record<string, unknown> = {};
  const implied = impliedUpdatedAt(state);
  const omitId = options?.omitId === true;
  for (const k in state) {
    const v = (state as unknown as Record<string, unknown>)[k];
    if (v === undefined) continue;
    if (k === 'id' && omitId) continue;
    if (k === 'v' && v === 1) continue;
    if (k === 'retriesUsed' && v === 0) continue;
    if (k === 'updatedAt' && v === implied) continue;
    out[k] = v;
  }
  return JSON.stringify(out);
}

/**
 * Completes a stored state record (in place) with the fields a compact record may leave out, so that
 * this release reads records written without them (by a later release's compact writes) as it reads
 * complete ones: `v` 1, `retriesUsed` 0, and `updatedAt` the time of the status's own event
 * (`finishedAt` of a final state, `startedAt` of `running`, else `sentAt`; 0 when that is unknown too).
 * A complete record is returned unchanged.
 */
export function completeTaskState(state: TaskState): TaskState {
  const s = state as Partial<TaskState> & TaskState;
  if (s.v === undefined) s.v = 1;
  if (s.retriesUsed === undefined) s.retriesUsed = 0;
  if (s.updatedAt === undefined) s.updatedAt = impliedUpdatedAt(s);
  return s;
}

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
  /** When this record was last written (epoch ms). */
  updatedAt: number;
}

/**
 * Parses a stored state (JSON text) for backends; throws {@link DecodeError} naming `where` (a key or
 * document id) when it is not JSON or not a task state record.
 */
export function parseTaskState(text: string, where: string): TaskState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DecodeError(`stored state at ${where} is not JSON`, err);
  }
  if (typeof value !== 'object' || value === null) throw new DecodeError(`stored value at ${where} is not a task state`);
  const v = value as { id?: unknown; status?: unknown };
  if (typeof v.status !== 'string' || typeof v.id !== 'string') throw new DecodeError(`stored value at ${where} is not a task state`);
  return value as TaskState;
}

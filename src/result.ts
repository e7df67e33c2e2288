/**
 * The result of a task as seen by a client: status, value(s), error, retries, progress, timestamps.
 */
import type { WaitReason } from './broker.js';
import { TaskFailedError } from './errors.js';
import { decodeValueText } from './message.js';
import { isFinalStatus, type StoredError, type TaskState, type TaskStatus } from './state.js';

/** Element `I` of a tuple result, or the result itself for index 0 of a non-tuple. */
export type ResultAt<R, I extends number> = R extends readonly unknown[] ? R[I] : I extends 0 ? R : undefined;

/** A {@link TaskResult} that {@link TaskResult.isSuccess | succeeded}: its `value` is typed `R`. */
export interface SucceededResult<R> extends TaskResult<R> {
  /** Always `success`. */
  readonly status: 'success';
  /** The handler's return value. */
  readonly value: R;
}

/** A snapshot of a task's state and, when it succeeded, its return value. */
export class TaskResult<R = unknown> {
  /** Task id. */
  readonly id: string;
  /** Status at the time of reading. When only a result was stored (status expiry 0), `success`. */
  readonly status: TaskStatus;
  /** The stored state, or `null` when states are not stored (status expiry 0). */
  readonly state: TaskState | null;
  /**
   * Why a task not started yet waits, when flow control holds it back (a rate limit, its key's
   * concurrency bound or back-off); set by `client.getStatus` only, absent otherwise.
   */
  readonly waiting?: WaitReason;
  private readonly resultText: string | null;
  private decoded = false;
  private cached: unknown = undefined;

  /** @internal */
  constructor(id: string, state: TaskState | null, resultText: string | null, waiting?: WaitReason) {
    this.id = id;
    if (waiting !== undefined) this.waiting = waiting;
    this.state = state;
    this.resultText = resultText;
    this.status = state?.status ?? 'success';
  }

  /**
   * True when the task succeeded; narrows `value` to `R` (it is `undefined` only when return values
   * are not stored: `resultExpires: 0`).
   */
  isSuccess(): this is SucceededResult<R> {
    return this.status === 'success';
  }

  /** True when the task reached a final status (success, failure, expired, aborted). */
  isFinished(): boolean {
    return isFinalStatus(this.status);
  }

  /** True when a return value was stored (success with a result expiry other than 0). */
  hasValue(): boolean {
    return this.resultText !== null;
  }

  /**
   * The handler's return value (decoded with superjson: Date, Map, Set, BigInt... intact).
   * `undefined` when the task has not succeeded or its result was not stored.
   */
  get value(): R | undefined {
    if (!this.decoded) {
      this.cached = this.resultText === null ? undefined : decodeValueText(this.resultText);
      this.decoded = true;
    }
    return this.cached as R | undefined;
  }

  /**
   * YTask's `Get(i)`: element `i` of a tuple (multiple) return value; for a non-array value, index 0
   * is the value itself.
   */
  get<I extends number>(index: I): ResultAt<R, I> {
    const v = this.value as unknown;
    if (Array.isArray(v)) return v[index] as ResultAt<R, I>;
    return (index === 0 ? v : undefined) as ResultAt<R, I>;
  }

  /** YTask's `Gets()`: all return values as an array (a non-array value becomes `[value]`). */
  gets(): R extends readonly unknown[] ? R : [R] {
    const v = this.value as unknown;
    return (Array.isArray(v) ? v : [v]) as R extends readonly unknown[] ? R : [R];
  }

  /** The stored error of a failed, expired or aborted task (or the last error before a pending retry). */
  get error(): TaskFailedError | undefined {
    const e: StoredError | undefined = this.state?.error;
    if (!e) return undefined;
    const err = new TaskFailedError(e);
    if (e.stack) err.stack = e.stack;
    return err;
  }

  /** Retries used so far. */
  get retriesUsed(): number {
    return this.state?.retriesUsed ?? 0;
  }

  /** Retries left. */
  get retriesLeft(): number {
    return this.state?.retriesLeft ?? 0;
  }

  /** Last progress value reported with `ctl.progress`. */
  get progress(): unknown {
    const p = this.state?.progress;
    return p === undefined ? undefined : decodeValueText(p);
  }

  /** When the task was sent. */
  get sentAt(): Date | undefined {
    return toDate(this.state?.sentAt);
  }

  /** When its last run started. */
  get startedAt(): Date | undefined {
    return toDate(this.state?.startedAt);
  }

  /** When it reached a final status. */
  get finishedAt(): Date | undefined {
    return toDate(this.state?.finishedAt);
  }
}

function toDate(ms: number | undefined): Date | undefined {
  return ms === undefined ? undefined : new Date(ms);
}

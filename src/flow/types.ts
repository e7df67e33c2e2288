/**
 * The public API of durable flows: the `flow` object a flow function receives, and the options of
 * `server.flow`, its steps, child calls, fan-outs and waits.
 */
import type { Backoff } from '../message.js';
import type { ArgSpec, TaskRef } from '../task.js';

/** Per-step retries and timeout (vtask's RetryTimes / RetryPeriod). */
export interface StepOptions {
  /** Further attempts after a failed one (default 0). */
  retryCount?: number;
  /** Delay between attempts (default fixed 1 000 ms); a delay frees the worker slot (the flow sleeps durably). */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** Timeout of one attempt in ms: a body that has not settled by then fails that attempt with `ERR_TASK_TIMEOUT`. */
  timeout?: number;
}

/** What a step body gets. */
export interface StepContext {
  /** Fires when the flow is aborted, its run times out or the worker shuts down. */
  readonly signal: AbortSignal;
  /** Attempt number, from 1. */
  readonly attempt: number;
}

/** What a fan-out does when a child fails. */
export type FanOutPolicy = 'failFast' | 'waitAll' | 'ignore';

/** Send controls of child tasks. */
export interface CallOptions {
  /** Retries of each child (default 3, as any task). */
  retryCount?: number;
  /** Backoff between the child's retries. */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** Per-run handler timeout of each child in ms. */
  timeout?: number;
  /** Epoch ms after which a child still waiting ends `expired` (absent: never). */
  expireAt?: number;
}

/** Options of `flow.callMany`. */
export interface CallManyOptions extends CallOptions {
  /** Children outstanding at once (default: all). */
  concurrency?: number;
  /**
   * `failFast` (default): the first failed child throws its `ChildFailedError` (no more children are
   * sent; those running finish unobserved). `waitAll`: every child ends, then the first failure
   * throws. `ignore`: failed children give `undefined` in the result array.
   */
  onFailure?: FanOutPolicy;
}

/** Options of `flow.map`. */
export interface MapOptions extends StepOptions {
  /** Items processed at once within the run (default 8). */
  concurrency?: number;
}

/** Options of `flow.waitFor`. */
export interface WaitOptions {
  /** Longest wait in ms from the first time the flow reached this wait; then `ERR_SIGNAL_TIMEOUT`. */
  timeoutMs?: number;
}

/** The journal-backed operations a flow function uses. */
export interface Flow {
  /** The flow's id (its task id). */
  readonly id: string;
  /** Fires when the flow is aborted, its run times out or the worker shuts down. */
  readonly signal: AbortSignal;
  /** Runs `fn` once and remembers its value; a replay returns the stored value without running it. */
  step<T>(name: string, fn: (step: StepContext) => T | Promise<T>, options?: StepOptions): Promise<Awaited<T>>;
  /** Durable sleep: the run ends, the worker slot is freed and the flow is woken by the broker after `ms`. */
  sleep(name: string, ms: number): Promise<void>;
  /** Sends a child task (deterministic id) and resolves with its value; a failed child throws `ChildFailedError`. */
  call<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, ...args: A): Promise<R>;
  /** {@link call} with send controls for the child. */
  callWith<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, args: A, options: CallOptions): Promise<R>;
  /** Fans out one child per argument list, at most `concurrency` outstanding; values in order. */
  callMany<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, argsList: ReadonlyArray<A>, options?: CallManyOptions & { onFailure?: 'failFast' | 'waitAll' }): Promise<R[]>;
  /** {@link callMany} with `onFailure: 'ignore'`: failed children give `undefined`. */
  callMany<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, argsList: ReadonlyArray<A>, options: CallManyOptions & { onFailure: 'ignore' }): Promise<Array<R | undefined>>;
  /** One step per item (keys `name#n[i]`), run in this process with a concurrency bound; values in order. */
  map<T, R>(name: string, items: ReadonlyArray<T>, fn: (item: T, index: number, step: StepContext) => R | Promise<R>, options?: MapOptions): Promise<Array<Awaited<R>>>;
  /**
   * Waits for the next signal `name` sent with `client.signal(flowId, name, payload)` (the n-th wait
   * for a name takes the n-th signal of that name, so a signal sent before the wait is kept).
   */
  waitFor<T = unknown>(name: string, options?: WaitOptions): Promise<T>;
  /**
   * Code-change guard: true when this run reaches this point with the new code (a new run, or one
   * whose journal has not got this far), false when it replays a journal written by code without
   * it. `if (flow.patched('v2')) { new code } else { old code }`.
   */
  patched(id: string): boolean;
}

/** A flow function: receives the `flow` object and the task arguments. */
export type FlowHandler<A extends unknown[], R> = (flow: Flow, ...args: A) => R | Promise<R>;

/** What flow callbacks are told. */
export interface FlowCallbackInfo {
  /** Flow id. */
  id: string;
  /** Group. */
  group: string;
  /** Flow name. */
  name: string;
  /** Final status. */
  status: string;
}

/** Options of `server.flow`. */
export interface FlowOptions<R = unknown> {
  /** Run-time argument check, as for `server.add`. */
  args?: ArgSpec;
  /** Most operations (steps, sleeps, calls, items...) one run of the flow may journal (default 1000). */
  maxSteps?: number;
  /** Largest encoded step value in characters (default 1 000 000); a larger one fails its step with `ERR_VALUE_TOO_LARGE`. */
  maxValueBytes?: number;
  /** Backstop re-check of a flow waiting on children or a signal without timeout, in ms (default 60 000). */
  recheckMs?: number;
  /** Called at least once after a success is stored (errors are logged). */
  onSuccess?: (value: R, info: FlowCallbackInfo) => void | Promise<void>;
  /** Called at least once after a failure, expiry or abort is stored (errors are logged). */
  onFailure?: (error: Error, info: FlowCallbackInfo) => void | Promise<void>;
}

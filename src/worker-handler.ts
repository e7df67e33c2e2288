/**
 * Running a task's function once its job holds a slot and its claim is stored: the seam between the
 * worker and what a task *is*. A {@link HandlerRunner} turns a claimed job into an {@link Outcome};
 * {@link PlainRunner} runs a plain (or `ctl`) handler once, racing its timeout and its signal. Other
 * kinds of task (durable flows, re-run after each suspension) plug in as further runners beside it.
 */
import { TaskCtlImpl } from './ctl.js';
import { BadArgumentsError, TaskTimeoutError, toError } from './errors.js';
import type { TaskMessage } from './message.js';
import { setLongTimeout, type LongTimer } from './timers.js';
import { decodeArgs } from './worker-args.js';
import type { Registration } from './worker-context.js';
import type { Job } from './worker-job.js';

/** What a run ended with, for the outcome recorder. */
export type Outcome =
  | { kind: 'success'; value: unknown; startedAt: number }
  | { kind: 'failure'; error: Error; retryable: boolean; deadLetter: boolean; startedAt?: number }
  | { kind: 'handBack'; startedAt: number }
  /** The runner settled the delivery itself (a durable flow that suspended): nothing to record. */
  | { kind: 'settled' };

/** What a runner gets from its worker. */
export interface RunHooks {
  /**
   * The wait for the handler ended: the job leaves the concurrency bound for the bound of outcomes
   * being recorded. `handler`: the handler's promise when it may still be running (it keeps the
   * slot until it settles or is abandoned).
   */
  handlerDone(job: Job, handler: Promise<unknown> | undefined): void;
  /** Stores a progress value of the job's handler. */
  progress(job: Job, value: unknown): Promise<void>;
  /** Emits `started` (when anyone listens). */
  started(msg: TaskMessage): void;
  /** Backs off the key of the task (`ctl.backoffKey`). */
  backoffKey?(msg: TaskMessage, ms: number): Promise<void>;
}

/** Runs the function of a claimed job (in its slot); never rejects. */
export interface HandlerRunner {
  /** Runs `reg` for `job` and says what to record. Calls {@link RunHooks.handlerDone} exactly once. */
  run(job: Job, reg: Registration): Promise<Outcome>;
}

const NON_RETRYABLE = new Set(['ERR_BAD_ARGS', 'ERR_NOT_SERIALIZABLE', 'ERR_ABORTED', 'ERR_EXPIRED', 'ERR_DECODE']);

/** Whether a handler's return value is a promise (or any thenable) to wait for. */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

/** Runs a plain handler (`fn(...args)`) or a `ctl` handler (`fn(ctl, ...args)`) once. */
export class PlainRunner implements HandlerRunner {
  /** @param hooks the worker's side of a run */
  constructor(private readonly hooks: RunHooks) {}

  /** @inheritdoc */
  async run(job: Job, reg: Registration): Promise<Outcome> {
    const msg = job.msg as TaskMessage;
    job.started();
    const now = job.startedAt;
    if (job.aborted) {
      // Aborted (or lease lost) while waiting for its slot: the handler never starts.
      this.hooks.handlerDone(job, undefined);
      return { kind: 'failure', error: toError(job.abortReason), retryable: false, deadLetter: false, startedAt: now };
    }
    let args: unknown[];
    try {
      args = decodeArgs(reg, msg.args);
    } catch (err) {
      this.hooks.handlerDone(job, undefined);
      const e = err instanceof BadArgumentsError ? err : new BadArgumentsError(toError(err).message);
      return { kind: 'failure', error: e, retryable: false, deadLetter: true, startedAt: now };
    }

    // A plain handler never sees a control object: it gets none (and no AbortController).
    let ctl: TaskCtlImpl | undefined;
    if (reg.options.ctl) {
      job.controller = new AbortController();
      const hooks = this.hooks;
      ctl = new TaskCtlImpl(
        msg.id, msg.group, msg.name, msg.retriesUsed, msg.retriesLeft, job.controller.signal,
        (value) => hooks.progress(job, value),
        hooks.backoffKey ? (ms) => (hooks.backoffKey as NonNullable<RunHooks['backoffKey']>)(msg, ms) : undefined,
      );
    }
    this.hooks.started(msg);
    let value: unknown;
    let error: unknown;
    let threw = false;
    try {
      const ret: unknown = ctl ? reg.fn(...([ctl, ...args] as never[])) : reg.fn(...(args as never[]));
      if (isThenable(ret)) {
        value = await this.awaitHandler(job, msg, reg, Promise.resolve(ret));
      } else {
        value = ret;
        this.hooks.handlerDone(job, undefined);
        // A synchronous handler cannot be interrupted; a signal fired meanwhile still decides.
        if (job.aborted) throw job.abortReason;
      }
    } catch (thrown) {
      threw = true;
      error = thrown;
      this.hooks.handlerDone(job, undefined);
    }
    const retriesLeft = ctl ? ctl.retriesLeft : msg.retriesLeft;
    msg.retriesLeft = retriesLeft;
    if (!threw && ctl?.retryRequested) {
      const e = ctl.retryError === undefined ? new Error('handler asked for a retry') : toError(ctl.retryError);
      return { kind: 'failure', error: e, retryable: retriesLeft > 0, deadLetter: false, startedAt: now };
    }
    if (!threw && ctl?.handBackRequested) return { kind: 'handBack', startedAt: now };
    if (!threw) return { kind: 'success', value, startedAt: now };
    const e = toError(error);
    const code = (e as { code?: unknown }).code;
    const retryable = !NON_RETRYABLE.has(typeof code === 'string' ? code : '') && retriesLeft > 0;
    return { kind: 'failure', error: e, retryable, deadLetter: false, startedAt: now };
  }

  /**
   * Waits for an asynchronous handler, racing its per-task timeout and its job's signal (client
   * abort, lost lease, shutdown): the wait ends even if the handler ignores its signal; the slot is
   * then kept until the handler settles or is abandoned.
   */
  private async awaitHandler(job: Job, msg: TaskMessage, reg: Registration, handler: Promise<unknown>): Promise<unknown> {
    const timeoutMs = msg.timeoutMs ?? reg.options.timeout ?? null;
    let timer: LongTimer | undefined;
    const raced: Promise<unknown> =
      timeoutMs === null
        ? handler
        : Promise.race([
            handler,
            new Promise<never>((_, reject) => {
              timer = setLongTimeout(() => {
                const err = new TaskTimeoutError(timeoutMs);
                job.abort(err);
                reject(err);
              }, timeoutMs);
            }),
          ]);
    // Every abort of a job goes through job.abort(), which calls job.onAbort (no listener on the signal needed).
    const aborted = new Promise<never>((_, reject) => {
      if (job.aborted) reject(job.abortReason);
      else job.onAbort = reject;
    });
    aborted.catch(() => undefined);
    try {
      return await Promise.race([raced, aborted]);
    } finally {
      job.onAbort = undefined;
      timer?.clear();
      this.hooks.handlerDone(job, handler);
    }
  }
}

/**
 * The backend and broker operations on one job: state writes (retried while the backend is
 * unreachable, cut down when too large), ack, retry, dead letter and hand-back — each a no-op once
 * the broker no longer holds the delivery for this worker.
 */
import type { StateWrite, WriteOutcome } from './backend.js';
import type { DeadLetterReason } from './broker.js';
import { toError } from './errors.js';
import type { ServerEvents } from './events.js';
import { encodeMessage, type TaskMessage } from './message.js';
import { storeError, truncateText, STORED_ERROR_TEXT_MAX, type TaskState, type TaskStatus } from './state.js';
import { pause } from './timers.js';
import type { WorkerContext } from './worker-context.js';
import type { Job } from './worker-job.js';

/** Longest message of a cut-down error (characters) when even the {@link STORED_ERROR_TEXT_MAX} cut did not fit. */
const SHRUNK_TEXT_MAX = 1024;

/** The `code` of an error (a tasuki error's, or a driver's), undefined when it has none. */
const codeOf = (e: Error): unknown => (e as { code?: unknown }).code;

const isTooLarge = (e: Error): boolean => codeOf(e) === 'ERR_VALUE_TOO_LARGE';

/**
 * Codes of write errors another attempt does not cure: the record stored for the task is no task
 * state (`ERR_DECODE`), or the backend refuses the write itself (`ERR_INVALID_OPTION`). Connection
 * errors and errors without a tasuki code are retried for as long as the lease is held.
 */
const PERMANENT_WRITE_ERRORS: ReadonlySet<unknown> = new Set(['ERR_DECODE', 'ERR_INVALID_OPTION']);

/** Failed attempts of a write with a permanent error before its task is dead-lettered. */
const PERMANENT_ATTEMPTS = 3;

/** Writes and settles jobs of one group worker. */
export class JobRecorder {
  /**
   * @param ctx server context
   * @param group the worker's group
   * @param stopped fires when the worker stops (a write being retried then gives up)
   */
  constructor(
    readonly ctx: WorkerContext,
    readonly group: string,
    private readonly stopped: AbortSignal,
  ) {}

  /**
   * Writes to the backend, retrying with backoff while the backend is unreachable. Gives up (returns
   * undefined, without acking) when the lease is lost or the worker stops: the message is then
   * delivered again, so nothing is lost. A state too large for the backend is cut down once (error
   * message without stack, no progress); when even that is refused the task fails with
   * `ERR_VALUE_TOO_LARGE` and is dead-lettered ({@link unstorable}), and this returns undefined.
   * A write refused {@link PERMANENT_ATTEMPTS} times with an error another attempt does not cure
   * ({@link PERMANENT_WRITE_ERRORS}) dead-letters the message with that error's code
   * ({@link unwritable}) instead of holding its slot for ever; a dead letter can be redriven once
   * the cause is fixed.
   */
  persist(job: Job, write: StateWrite): Promise<WriteOutcome | undefined> {
    // The worker reads the previous state only of a refused write (the hot path's writes say so already).
    if (write.previous !== 'refused') write.previous = 'refused';
    // The first attempt has no async frame of its own (every task makes two writes); a failure goes on in persistAfter.
    let first: Promise<WriteOutcome>;
    try {
      first = this.ctx.backend.write(write);
    } catch (err) {
      first = Promise.reject(err);
    }
    return first.then(undefined, (err: unknown) => this.persistAfter(job, write, err));
  }

  /** {@link persist} after its write failed with `failure`: cut down, retried or given up. */
  private async persistAfter(job: Job, write: StateWrite, failure: unknown): Promise<WriteOutcome | undefined> {
    let shrunk = false;
    for (let attempt = 1; ; attempt++) {
      const e = toError(failure);
      if (isTooLarge(e)) {
        if (write.result !== undefined) {
          // The result cannot be stored: record the failure instead of losing the task silently.
          write = { state: { ...write.state, status: 'failure', error: storeError(e) }, stateTtl: write.stateTtl, guard: 'notFinal', previous: 'refused' };
        } else if (!shrunk) {
          shrunk = true;
          write = { ...write, state: shrinkState(write.state) };
        } else {
          await this.unstorable(job, write.state, e);
          return undefined;
        }
      } else {
        if (!job.held || this.stopped.aborted) {
          this.ctx.logger.warn('backend write failed; leaving the message for redelivery', { id: write.state.id, error: e });
          return undefined;
        }
        if (attempt >= PERMANENT_ATTEMPTS && PERMANENT_WRITE_ERRORS.has(codeOf(e))) {
          await this.unwritable(job, write.state, e);
          return undefined;
        }
        const wait = Math.min(5000, 50 * 2 ** Math.min(attempt, 7));
        this.ctx.logger.warn('backend write failed; retrying', { id: write.state.id, attempt, retryInMs: wait, error: e });
        await pause(wait, this.stopped);
      }
      try {
        return await this.ctx.backend.write(write);
      } catch (err) {
        failure = err;
      }
    }
  }

  /**
   * Even the cut-down state of a task was refused as too large: stores a minimal failure (best
   * effort, once) and dead-letters the message, so that it is never retried in a loop.
   */
  private async unstorable(job: Job, state: TaskState, e: Error): Promise<void> {
    const message = truncateText(`the state of the task is too large for the backend: ${e.message}`, SHRUNK_TEXT_MAX);
    const now = Date.now();
    const failure: TaskState = {
      v: 1,
      id: state.id,
      group: state.group,
      name: state.name,
      status: 'failure',
      retriesUsed: state.retriesUsed,
      retriesLeft: state.retriesLeft,
      error: { name: e.name, code: 'ERR_VALUE_TOO_LARGE', message },
      finishedAt: now,
      updatedAt: now,
    };
    try {
      await this.ctx.backend.write({ state: failure, stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal', previous: 'refused' });
    } catch (err) {
      this.ctx.logger.warn('could not store even a minimal failure state', { id: state.id, error: toError(err) });
    }
    this.ctx.logger.warn('task state too large for the backend; the task failed and is dead-lettered', { id: state.id, error: e });
    await this.deadLetter(job, { code: 'ERR_VALUE_TOO_LARGE', message }, state.id, state.name);
    if (job.msg !== undefined) this.ctx.emit('failed', { ...this.event(job.msg), error: e });
  }

  /** A write of the task's state failed for good ({@link PERMANENT_WRITE_ERRORS}): dead-letters its message. */
  private async unwritable(job: Job, state: TaskState, e: Error): Promise<void> {
    const code = String(codeOf(e));
    const message = truncateText(`the state of the task could not be written (${PERMANENT_ATTEMPTS} attempts): ${e.message}`, SHRUNK_TEXT_MAX);
    this.ctx.logger.error('backend refused the task state for good; the message is dead-lettered', { id: state.id, attempts: PERMANENT_ATTEMPTS, error: e });
    await this.deadLetter(job, { code, message }, state.id, state.name);
    if (job.msg !== undefined) this.ctx.emit('failed', { ...this.event(job.msg), error: e });
  }

  /**
   * Runs (never rejecting) after a job's final state is stored, before its delivery is acked or
   * dead-lettered (durable flows' hooks); undefined when it has nothing to wait for.
   */
  beforeSettle: ((job: Job) => Promise<void> | undefined) | undefined = undefined;

  /** Acks the delivery (after its outcome is written). */
  async ack(job: Job): Promise<void> {
    if (!job.held) return;
    const hook = this.beforeSettle?.(job);
    if (hook !== undefined) await hook;
    try {
      await this.ctx.broker.ack(job.delivery);
      job.settled();
      job.scope?.settled?.('ack');
    } catch (err) {
      this.ctx.logger.warn('ack failed; the message returns after its lease and is skipped as already done', { id: job.msg?.id, error: toError(err) });
    }
  }

  /** Replaces the delivery by `msg`, due at `at`; false when the broker refused (the message returns after its lease). */
  async retry(job: Job, msg: TaskMessage, at: number, what: string): Promise<boolean> {
    if (!job.held) return false;
    try {
      await this.ctx.broker.retry(job.delivery, encodeMessage(msg), at);
      job.settled();
      job.scope?.settled?.('retry');
      return true;
    } catch (err) {
      this.ctx.logger.warn(`could not ${what}; the message returns after its lease`, { id: msg.id, error: toError(err) });
      return false;
    }
  }

  /** Moves the delivery to the dead letters and emits `deadLettered`. */
  async deadLetter(job: Job, reason: DeadLetterReason, id?: string, name?: string): Promise<void> {
    if (!job.held) return;
    const cut: DeadLetterReason = { code: reason.code, message: truncateText(reason.message, STORED_ERROR_TEXT_MAX) };
    const hook = this.beforeSettle?.(job);
    if (hook !== undefined) await hook;
    try {
      await this.ctx.broker.deadLetter(job.delivery, cut);
      job.settled();
      job.scope?.settled?.('deadLetter');
    } catch (err) {
      this.ctx.logger.warn('dead-lettering failed; the message returns after its lease', { id, error: toError(err) });
      return;
    }
    const event: ServerEvents['deadLettered'][0] = { group: this.group, reason: cut };
    if (id !== undefined) event.id = id;
    if (name !== undefined) event.name = name;
    this.ctx.emit('deadLettered', event);
  }

  /**
   * Hands the delivery back at shutdown (its signal fires with `reason`). A claimed task's state is
   * first set back to `sent` (guarded: a final state stored meanwhile is kept), so that it reads as
   * queued again rather than `running`.
   */
  async handBack(job: Job, reason: Error): Promise<void> {
    if (!job.released()) return;
    job.abort(reason);
    const msg = job.msg;
    try {
      if (msg !== undefined && job.phase !== 'fetched') {
        const state = this.state(msg, 'sent');
        if (job.progress !== undefined) state.progress = job.progress;
        await this.ctx.backend.write({ state, stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal', previous: 'refused' });
      }
    } catch (err) {
      this.ctx.logger.warn('could not mark a handed-back task as sent; it reads running until it runs again', { group: this.group, id: msg?.id, error: toError(err) });
    }
    try {
      await this.ctx.broker.release(job.delivery);
      this.ctx.logger.info('handed back an unfinished task', { group: this.group, id: msg?.id });
    } catch (err) {
      this.ctx.logger.warn('could not hand back a task; it returns after its lease', { group: this.group, id: msg?.id, error: toError(err) });
    }
  }

  /** The event payload of a task. */
  event(msg: TaskMessage): ServerEvents['started'][0] {
    return { id: msg.id, group: msg.group, name: msg.name, retriesUsed: msg.retriesUsed };
  }

  /** A state record of `msg` in `status`, written at `updatedAt` (default now), with the fields of `extra` after its own. */
  state(msg: TaskMessage, status: TaskStatus, extra?: Partial<TaskState>, updatedAt = Date.now()): TaskState {
    const state: TaskState = {
      v: 1,
      id: msg.id,
      group: msg.group,
      name: msg.name,
      status,
      retriesUsed: msg.retriesUsed,
      retriesLeft: msg.retriesLeft,
      sentAt: msg.sentAt,
      updatedAt,
    };
    if (msg.key !== undefined) state.key = msg.key;
    return extra === undefined ? state : Object.assign(state, extra);
  }

  /** A final state record of a task known only by id and name (undecodable message). */
  bareState(id: string, name: string, status: TaskStatus, err: Error): TaskState {
    const now = Date.now();
    return { v: 1, id, group: this.group, name, status, retriesUsed: 0, retriesLeft: 0, error: storeError(err), finishedAt: now, updatedAt: now };
  }
}

/** A state cut down to fit: error message cut to {@link SHRUNK_TEXT_MAX} characters, no stack, no progress. */
function shrinkState(state: TaskState): TaskState {
  const out: TaskState = { ...state };
  delete out.progress;
  delete out.message;
  if (out.error !== undefined) {
    const { name, code, message } = out.error;
    out.error = { name: truncateText(name, 200), message: truncateText(message, SHRUNK_TEXT_MAX) };
    if (code !== undefined) out.error.code = code;
  }
  return out;
}

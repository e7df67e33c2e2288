/**
 * Outcome recording: what a finished run (or a message that needs no run) leaves behind — the state
 * and result written, then the delivery acked, retried or dead-lettered, then the event emitted.
 * Success is written with the `notSuccess` guard (a late duplicate never replaces it), everything
 * else with `notFinal`.
 */
import type { StateWrite } from './backend.js';
import { TaskAbortedError, TaskExpiredError, TooManyDeliveriesError, UnknownTaskError, toError } from './errors.js';
import { backoffDelay, type MessageDecodeError, type TaskMessage } from './message.js';
import { encodeValueTextFast } from './plain.js';
import { isFinalStatus, storeError, truncateText, type TaskState } from './state.js';
import type { Outcome } from './worker-handler.js';
import type { Job } from './worker-job.js';
import type { JobRecorder } from './worker-record.js';

/** Longest decode reason written into a log line (characters). */
const LOG_TEXT_MAX = 1024;

/** Records outcomes of one group worker's jobs. */
export class OutcomeRecorder {
  /** @param rec the job operations */
  constructor(private readonly rec: JobRecorder) {}

  /** Writes the outcome of a run, then settles the delivery with the broker. */
  async conclude(job: Job, outcome: Outcome): Promise<void> {
    const { rec } = this;
    if (outcome.kind === 'settled') return;
    const msg = job.msg as TaskMessage;
    const { statusExpires, resultExpires } = rec.ctx.settings;
    const now = Date.now();
    if (outcome.kind === 'handBack') {
      // ctl.backoffKey(): the task waits with its key (not failed, not counted as an attempt).
      await rec.handBack(job, new Error('its key was backed off: the task was handed back to wait'));
      return;
    }
    if (outcome.kind === 'success') {
      let result: string | undefined;
      try {
        result = resultExpires === 0 ? undefined : encodeValueTextFast(outcome.value, 'return value');
      } catch (err) {
        return this.conclude(job, { kind: 'failure', error: toError(err), retryable: false, deadLetter: false, startedAt: outcome.startedAt });
      }
      const state = rec.state(msg, 'success', undefined, now);
      state.startedAt = outcome.startedAt;
      state.finishedAt = now;
      if (job.progress !== undefined) state.progress = job.progress;
      const write: StateWrite = { state, stateTtl: statusExpires, guard: 'notSuccess', previous: 'refused' };
      if (job.stored !== undefined) write.basis = job.stored;
      if (result !== undefined) {
        write.result = result;
        write.resultTtl = resultExpires;
      }
      const w = await rec.persist(job, write);
      if (w === undefined) return;
      if (w.written) job.succeeded = result === undefined ? {} : { result };
      await rec.ack(job);
      if (rec.ctx.listens('succeeded')) {
        rec.ctx.emit('succeeded', { id: msg.id, group: msg.group, name: msg.name, retriesUsed: msg.retriesUsed, durationMs: now - outcome.startedAt });
      }
      return;
    }

    const { error } = outcome;
    const signalReason: unknown = job.aborted ? job.abortReason : undefined;
    if (!job.held) {
      rec.ctx.logger.debug('outcome of a task no longer held is not recorded', { id: msg.id, error });
      return;
    }
    if (signalReason instanceof TaskAbortedError) {
      // Aborted by a client: the `aborted` state is already stored (final).
      await rec.ack(job);
      rec.ctx.emit('aborted', rec.event(msg));
      return;
    }
    const extra: Partial<TaskState> = { error: storeError(error) };
    if (outcome.startedAt !== undefined) extra.startedAt = outcome.startedAt;
    if (job.progress !== undefined) extra.progress = job.progress;
    if (outcome.retryable && msg.retriesLeft > 0) {
      const delayMs = backoffDelay(msg.backoff, msg.retriesUsed);
      const retryAt = now + delayMs;
      Object.assign(extra, { retryAt, retriesUsed: msg.retriesUsed + 1, retriesLeft: msg.retriesLeft - 1 });
      const w = await rec.persist(job, { state: rec.state(msg, 'waiting-retry', extra), stateTtl: statusExpires, guard: 'notFinal' });
      if (w === undefined) return;
      if (!w.written) {
        await rec.ack(job);
        if (w.previous?.status === 'aborted') rec.ctx.emit('aborted', rec.event(msg));
        return;
      }
      const next: TaskMessage = { ...msg, retriesLeft: msg.retriesLeft - 1, retriesUsed: msg.retriesUsed + 1 };
      if (!(await rec.retry(job, next, retryAt, 'schedule a retry'))) return;
      rec.ctx.emit('retrying', { ...rec.event(msg), error, delayMs, retriesLeft: next.retriesLeft });
      return;
    }
    extra.finishedAt = extra.updatedAt = now;
    extra.message = job.delivery.body;
    if ((await rec.persist(job, { state: rec.state(msg, 'failure', extra), stateTtl: statusExpires, guard: 'notFinal' })) === undefined) return;
    if (outcome.deadLetter) {
      await rec.deadLetter(job, { code: (error as { code?: string }).code ?? 'ERR_TASK_FAILED', message: error.message }, msg.id, msg.name);
    } else {
      await rec.ack(job);
    }
    rec.ctx.emit('failed', { ...rec.event(msg), error });
  }

  /**
   * An undecodable message: its readable id gets a failure state — only when no state is stored for
   * it or the stored one belongs to this group (a message in the wrong queue never writes over
   * another group's task) — then it moves to the dead letters.
   */
  async undecodable(job: Job, e: MessageDecodeError): Promise<void> {
    const { rec } = this;
    const { id, name } = e.partial;
    rec.ctx.logger.warn('undecodable message moved to dead letters', { group: rec.group, reason: truncateText(e.message, LOG_TEXT_MAX), id });
    if (id !== undefined) {
      const state = rec.bareState(id, name ?? '', 'failure', e);
      const ttl = rec.ctx.settings.statusExpires;
      const w = await rec.persist(job, { state, stateTtl: ttl, guard: 'absent' });
      const prev = w?.previous;
      if (w !== undefined && !w.written && prev && prev.group === rec.group && !isFinalStatus(prev.status)) {
        await rec.persist(job, { state, stateTtl: ttl, guard: 'notFinal' });
      }
    }
    await rec.deadLetter(job, { code: e.code, message: e.message }, id, name);
  }

  /** The task's `expireAt` passed before it ran: `expired`, acked. */
  async expired(job: Job, msg: TaskMessage, expireAt: number, now: number): Promise<void> {
    const { rec } = this;
    const err = new TaskExpiredError(expireAt);
    await rec.persist(job, { state: rec.state(msg, 'expired', { error: storeError(err), finishedAt: now, message: job.delivery.body }), stateTtl: rec.ctx.settings.statusExpires, guard: 'notFinal' });
    rec.ctx.emit('expired', rec.event(msg));
    await rec.ack(job);
  }

  /** The run was delivered too often without concluding: failure with `ERR_TOO_MANY_DELIVERIES`, dead-lettered. */
  async tooManyDeliveries(job: Job, msg: TaskMessage, deliveries: number): Promise<void> {
    const { rec } = this;
    const err = new TooManyDeliveriesError(deliveries, rec.ctx.settings.maxDeliveries);
    rec.ctx.logger.warn('task delivered too many times without concluding; failed and dead-lettered', { group: rec.group, id: msg.id, deliveries });
    const state = rec.state(msg, 'failure', { error: storeError(err), finishedAt: Date.now(), deliveries, message: job.delivery.body });
    if ((await rec.persist(job, { state, stateTtl: rec.ctx.settings.statusExpires, guard: 'notFinal' })) === undefined) return;
    await rec.deadLetter(job, { code: err.code, message: err.message }, msg.id, msg.name);
    rec.ctx.emit('failed', { ...rec.event(msg), error: err });
  }

  /** Unknown task name: retried for `unknownTaskRetryMs` (rolling deploys), then failure + dead letter. */
  async unknownTask(job: Job, msg: TaskMessage, now: number): Promise<void> {
    const { rec } = this;
    const { unknownTaskRetryMs, unknownTaskRetryDelayMs, statusExpires } = rec.ctx.settings;
    const first = msg.firstUnknownAt ?? now;
    const err = new UnknownTaskError(msg.group, msg.name);
    if (now - first < unknownTaskRetryMs) {
      rec.ctx.logger.warn('unknown task; retrying later in case a worker that knows it is being deployed', { group: msg.group, name: msg.name, id: msg.id });
      await rec.retry(job, { ...msg, firstUnknownAt: first }, now + unknownTaskRetryDelayMs, 'reschedule an unknown task');
      return;
    }
    const state = rec.state(msg, 'failure', { error: storeError(err), finishedAt: now, message: job.delivery.body });
    if ((await rec.persist(job, { state, stateTtl: statusExpires, guard: 'notFinal' })) === undefined) return;
    await rec.deadLetter(job, { code: err.code, message: err.message }, msg.id, msg.name);
    rec.ctx.emit('failed', { ...rec.event(msg), error: err });
  }

  /** Stores a progress value of a running handler (kept for the final state too). */
  async progress(job: Job, value: unknown): Promise<void> {
    const { rec } = this;
    const progress = encodeValueTextFast(value, 'progress');
    if (!job.held || job.phase === 'done') return;
    job.progress = progress;
    const msg = job.msg as TaskMessage;
    const state = rec.state(msg, 'running', { progress, startedAt: job.startedAt || Date.now() });
    if (job.deliveries > 1) state.deliveries = job.deliveries;
    const write: StateWrite = { state, stateTtl: rec.ctx.settings.statusExpires, guard: 'notFinal', previous: 'refused' };
    if (job.stored !== undefined) write.basis = job.stored;
    const w = await rec.ctx.backend.write(write);
    if (w.written) job.stored = state;
  }
}

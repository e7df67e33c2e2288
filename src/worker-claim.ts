/**
 * Preparing a fetched job: decode and check its message, settle the ones that need no run (bad
 * message, expired, unknown task, delivered too often, already final) and claim the rest by storing
 * `running` (guarded: a final state stored by a duplicate, an abort or an expiry wins).
 */
import { toError } from './errors.js';
import { MessageDecodeError, decodeMessage, type TaskMessage } from './message.js';
import type { StateWrite } from './backend.js';
import { MAX_MS } from './options.js';
import { sentState } from './outgoing.js';
import type { TaskState } from './state.js';
import type { Registration } from './worker-context.js';
import type { Job } from './worker-job.js';
import type { OutcomeRecorder } from './worker-outcome.js';
import type { JobRecorder } from './worker-record.js';

/** Decodes, checks and claims jobs of one group worker. */
export class JobClaimer {
  /** @param rec job operations @param outcomes outcome recording */
  constructor(
    private readonly rec: JobRecorder,
    private readonly outcomes: OutcomeRecorder,
  ) {}

  /**
   * Decodes and checks a message and claims it. Returns the handler to run, or undefined when the
   * job is settled here or must be left for redelivery.
   */
  async prepare(job: Job): Promise<Registration | undefined> {
    const { rec, outcomes } = this;
    const { ctx, group } = rec;
    let msg: TaskMessage;
    try {
      msg = decodeMessage(job.delivery.body);
      if (msg.group !== group) throw new MessageDecodeError(`message for group "${msg.group}" arrived in queue of "${group}"`, msg);
      if (msg.timeoutMs !== null && !(msg.timeoutMs >= 1 && msg.timeoutMs <= MAX_MS)) {
        throw new MessageDecodeError(`message field timeoutMs must be from 1 to ${MAX_MS} ms, got ${msg.timeoutMs}`, msg);
      }
    } catch (err) {
      await outcomes.undecodable(job, err instanceof MessageDecodeError ? err : new MessageDecodeError(toError(err).message, {}));
      return undefined;
    }
    job.msg = msg;
    const now = Date.now();

    if (msg.expireAt !== null && now > msg.expireAt) {
      await outcomes.expired(job, msg, msg.expireAt, now);
      return undefined;
    }

    const reg = ctx.lookup(group, msg.name);
    if (!reg) {
      await outcomes.unknownTask(job, msg, now);
      return undefined;
    }

    const deliveries = job.delivery.redelivered ? await this.deliveries(msg) : 1;
    if (deliveries > ctx.settings.maxDeliveries) {
      await outcomes.tooManyDeliveries(job, msg, deliveries - 1);
      return undefined;
    }

    // Claim: store `running`; a final state stored (success by a duplicate, aborted, expired) means: do not run.
    // Written at the time the run started (a compact record then leaves `updatedAt` out: `encodeTaskState`).
    const running = rec.state(msg, 'running', undefined, now);
    running.startedAt = now;
    if (deliveries > 1) running.deliveries = job.deliveries = deliveries;
    const claim: StateWrite = { state: running, stateTtl: ctx.settings.statusExpires, guard: 'notFinal', previous: 'refused' };
    // A first delivery of a first run finds, as a rule, the `sent` state its client stored.
    if (!job.delivery.redelivered && msg.retriesUsed === 0) claim.basis = sentState(msg);
    const w = await rec.persist(job, claim);
    if (w === undefined) return undefined;
    if (!w.written) {
      ctx.logger.debug('task already final; not running it again', { id: msg.id, status: w.previous?.status });
      await rec.ack(job);
      if (w.previous?.status === 'aborted') ctx.emit('aborted', rec.event(msg));
      return undefined;
    }
    job.stored = running;
    job.claimed();
    return reg;
  }

  /**
   * Which delivery of its current run a redelivered message is: a stored `running` state of the
   * same run means the previous delivery started and never concluded (its worker died or lost its
   * lease). Read only for redelivered messages, so the first delivery costs nothing.
   */
  private async deliveries(msg: TaskMessage): Promise<number> {
    let prior: TaskState | null;
    try {
      prior = await this.rec.ctx.backend.read(msg.id);
    } catch (err) {
      this.rec.ctx.logger.debug('could not read the state of a redelivered task; not counting it', { id: msg.id, error: toError(err) });
      return 1;
    }
    if (prior === null || prior.status !== 'running' || prior.retriesUsed !== msg.retriesUsed || prior.group !== msg.group) return 1;
    return (prior.deliveries ?? 1) + 1;
  }
}

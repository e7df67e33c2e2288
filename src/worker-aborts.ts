/**
 * Abort polling of a group worker: every `abortPollMs`, one `readMany` of the states of the jobs
 * whose `running` claim is stored; an `aborted` state fires the job's signal.
 */
import { TaskAbortedError, toError } from './errors.js';
import type { TaskMessage } from './message.js';
import type { WorkerContext } from './worker-context.js';
import type { Job } from './worker-job.js';

/** Polls the backend for abort requests of a worker's claimed jobs. */
export class AbortPoller {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  /**
   * @param ctx server context
   * @param group the worker's group (for logs)
   * @param jobs the worker's jobs, read at each poll
   */
  constructor(
    private readonly ctx: WorkerContext,
    private readonly group: string,
    private readonly jobs: () => Iterable<Job>,
  ) {}

  /** Starts polling. */
  start(): void {
    this.timer = setInterval(() => void this.poll(), this.ctx.settings.abortPollMs);
    this.timer.unref();
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** One poll (skipped while the previous one is still out). Never rejects. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    const watched: Job[] = [];
    for (const j of this.jobs()) if (j.watched && j.msg) watched.push(j);
    if (watched.length === 0) return;
    this.polling = true;
    try {
      const states = await this.ctx.backend.readMany(watched.map((j) => (j.msg as TaskMessage).id));
      states.forEach((s, i) => {
        if (s?.status === 'aborted') (watched[i] as Job).abort(new TaskAbortedError('task was aborted by a client'));
      });
    } catch (err) {
      this.ctx.logger.debug('abort poll failed', { group: this.group, error: toError(err) });
    } finally {
      this.polling = false;
    }
  }
}

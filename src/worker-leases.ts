/**
 * Lease renewal of a group worker's jobs: every third of `leaseMs`, one `extend` for every delivery
 * still held (prefetched ones too); a lease the broker no longer holds for us marks its job lost and
 * fires its signal. Also knows when a job's lease has certainly run out (a frozen worker).
 */
import { ShutdownError, toError } from './errors.js';
import type { WorkerContext } from './worker-context.js';
import type { Job } from './worker-job.js';

/** True when more than `leaseMs` passed since the job's fetch or last renewal resolved: the broker may have handed it to another worker. */
export function leaseCertainlyExpired(job: Job, now = Date.now()): boolean {
  return now > job.leaseEndsBy;
}

/** Renews the leases of a worker's jobs on a timer. */
export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param ctx server context
   * @param group the worker's group (for logs)
   * @param jobs the worker's jobs, read at each renewal
   */
  constructor(
    private readonly ctx: WorkerContext,
    private readonly group: string,
    private readonly jobs: () => Iterable<Job>,
  ) {}

  /** Starts renewing. */
  start(): void {
    const { leaseMs } = this.ctx.settings;
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(leaseMs / 3)));
    this.timer.unref();
  }

  /** Stops renewing. */
  stop(): void {
    clearInterval(this.timer);
  }

  /** One renewal round. Never rejects. */
  private async renew(): Promise<void> {
    const held: Job[] = [];
    for (const j of this.jobs()) if (j.held) held.push(j);
    if (held.length === 0) return;
    const { leaseMs } = this.ctx.settings;
    try {
      const lost = new Set(await this.ctx.broker.extend(held.map((j) => j.delivery), leaseMs));
      const renewedAt = Date.now();
      for (const job of held) {
        if (!lost.has(job.delivery.token)) {
          job.leaseEndsBy = renewedAt + leaseMs;
          continue;
        }
        if (!job.lost()) continue;
        this.ctx.logger.warn(job.phase === 'fetched' && job.slot === 'none' ? 'lease of a prefetched message lost; it was handed to another worker' : 'lease lost; the task was handed to another worker', {
          group: this.group,
          id: job.msg?.id,
        });
        job.abort(new ShutdownError('lease lost: the task was delivered to another worker'));
      }
    } catch (err) {
      this.ctx.logger.warn('lease renewal failed', { group: this.group, error: toError(err) });
    }
  }
}

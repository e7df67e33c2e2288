/**
 * The worker's side of per-key flow control: `ctl.backoffKey(ms)` pushes the running task's key back
 * in its broker (no task of that key is given to any worker for `ms`).
 */
import { InvalidOptionError } from './errors.js';
import { requireFeature } from './limits.js';
import { checkMs } from './options.js';
import type { WorkerContext } from './worker-context.js';

/** Backs off `key` of `group` for `ms` in the worker's broker; typed errors for a task without key or a broker without the feature. */
export async function backoffKey(ctx: WorkerContext, group: string, key: string | undefined, ms: number): Promise<void> {
  checkMs('backoffKey ms', ms, 1);
  if (key === undefined) throw new InvalidOptionError('backoffKey: this task was sent without a key');
  requireFeature(ctx.broker, 'keyBackoff', 'ctl.backoffKey');
  await (ctx.broker.backoffKey as (group: string, key: string, ms: number) => Promise<void>)(group, key, ms);
}

/**
 * Why a task that has not started waits (`TaskResult.waiting`, read by `client.getStatus`): asked
 * of the broker where it enforces flow control itself (`Broker.waitReason`), else of the backend's
 * shared buckets (`Backend.rateLimits`) that workers use for a group rate limit the broker cannot
 * enforce. Only tasks `sent` (or `waiting-retry` past their retry time) are looked up; getResult's
 * polling never asks.
 */
import type { Backend } from './backend.js';
import type { Broker, WaitReason } from './broker.js';
import type { TaskState } from './state.js';

/** The flow-control hold of the task whose state is `state`, or `undefined` (not held, or not known: a failed look-up is not an error). */
export async function waitReasonOf(broker: Broker, backend: Backend, state: TaskState): Promise<WaitReason | undefined> {
  if (state.status !== 'sent' && state.status !== 'waiting-retry') return undefined;
  // A task whose time has not come waits for its time, not for a limit.
  if (state.retryAt !== undefined && state.retryAt > Date.now()) return undefined;
  try {
    const held = broker.waitReason === undefined ? null : await broker.waitReason(state.group, state.key);
    if (held !== null) return held;
    if (backend.rateLimits !== undefined && broker.dispatchFeatures?.has('rateLimit') !== true) {
      const until = await backend.rateLimits.emptyUntil(state.group);
      if (until !== null) return { reason: 'rate-limit', until };
    }
  } catch {
    // The reason is a hint: a status read does not fail because the broker could not tell it.
  }
  return undefined;
}

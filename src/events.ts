/** Task life-cycle events emitted by a server (`server.on('succeeded', e => ...)`). */
import type { DeadLetterReason } from './broker.js';
import type { AbnormalTask } from './ops/types.js';

/** Fields common to every task event. */
export interface TaskEvent {
  /** Task id. */
  id: string;
  /** Group. */
  group: string;
  /** Task name. */
  name: string;
  /** Retries used before this run. */
  retriesUsed: number;
}

/** Event map of a server: event name → listener arguments. */
export interface ServerEvents {
  /** A handler started. */
  started: [TaskEvent];
  /** A handler succeeded and its result was stored. */
  succeeded: [TaskEvent & { durationMs: number }];
  /** A run failed and a retry was scheduled through the broker. */
  retrying: [TaskEvent & { error: Error; delayMs: number; retriesLeft: number }];
  /** A task failed for good (no retries left, or a non-retryable error). */
  failed: [TaskEvent & { error: Error }];
  /** A task's `expireAt` passed before it ran; it will never run. */
  expired: [TaskEvent];
  /** A task was aborted (before or while running). */
  aborted: [TaskEvent];
  /** A message was moved to its group's dead-letter store. */
  deadLettered: [{ group: string; id?: string; name?: string; reason: DeadLetterReason }];
  /** The watchdog (server option `watchdog`) found abnormal tasks in a group; once per interval over all watching processes. */
  abnormal: [{ group: string; tasks: AbnormalTask[]; at: number }];
  /** A schedule's tick sent a fire (`id`: the fire's task id). */
  scheduleFired: [{ schedule: string; fireAt: number; id: string }];
  /**
   * Fires of a schedule did not run: `'late'` (missed beyond `graceMs`, outside the catch-up policy)
   * or `'overlap'` (skipped, the previous fire still running). `latest`: the most recent such fire time, when known.
   */
  scheduleMissed: [{ schedule: string; reason: 'late' | 'overlap'; count: number; latest: number | null }];
  /** A durable flow ran for the first time. */
  flowStarted: [TaskEvent];
  /** A step (or sleep, wait, child call) of a durable flow ended and was journaled. */
  stepDone: [TaskEvent & { step: string; kind: string; status: 'done' | 'failed'; attempts: number }];
  /** A durable flow reached a final status and it is stored (before its callbacks run). */
  flowDone: [TaskEvent & { status: string }];
}

/**
 * One delivery inside a group worker, with its life as explicit states and named transitions.
 *
 * - `phase`, where the job is in its life:
 *   `fetched` ─claimed()→ `claimed` ─started()→ `running` ─concluding()→ `concluding` ─ended()→ `done`.
 *   A job settled without running (bad message, expired, unknown task, delivered too often, already
 *   final, lease expired) goes from `fetched` or `claimed` straight to `done`.
 * - `hold`, who holds the delivery at the broker: `held` ─settled()→ `settled` (acked, retried,
 *   dead-lettered) | ─lost()→ `lost` (lease lost: another worker may have it) | ─released()→
 *   `released` (handed back at shutdown). Only a `held` delivery sees broker operations.
 * - `slot`, the concurrency bound: `none` ─takeSlot()→ `held` ─lingering()→ `lingering` (the wait
 *   for the handler ended but the handler still runs: only its settling or abandonment frees the
 *   slot) ─freeSlot()→ `none`.
 * - the signal: fired at most once (`abort()`), with the first reason.
 */
import type { Delivery } from './broker.js';
import type { ProcessScope } from './instrumentation.js';
import type { TaskMessage } from './message.js';
import type { TaskState } from './state.js';
import type { Registration } from './worker-context.js';

/** Where a job is in its life. */
export type JobPhase = 'fetched' | 'claimed' | 'running' | 'concluding' | 'done';
/** Who holds the job's delivery at the broker. */
export type JobHold = 'held' | 'settled' | 'lost' | 'released';
/** The job's place in the concurrency bound. */
export type JobSlot = 'none' | 'held' | 'lingering';

/** A delivery being worked on. */
export class Job {
  /** Where the job is in its life. */
  phase: JobPhase = 'fetched';
  /** Who holds the delivery. */
  hold: JobHold = 'held';
  /** The job's place in the concurrency bound. */
  slot: JobSlot = 'none';
  /** The decoded message (after a successful decode). */
  msg: TaskMessage | undefined = undefined;
  /** The signal handed to a `ctl` handler; created only for those. */
  controller: AbortController | undefined = undefined;
  /** Ends the handler wait when the job's signal fires (set while the handler runs). */
  onAbort: ((reason: unknown) => void) | undefined = undefined;
  /**
   * The job's preparation (decode, checks, `running` claim) when it was started ahead of its slot;
   * resolves with the handler to run, or undefined when the job needs no run.
   */
  preparing: Promise<Registration | undefined> | undefined = undefined;
  /** When the handler started (epoch ms; 0 before). */
  startedAt = 0;
  /**
   * Epoch ms by which the broker's lease has certainly run out: `leaseMs` after the fetch or the
   * last renewal resolved (the lease began no later than that).
   */
  leaseEndsBy: number;
  /** Which delivery of its current run this is (counted from redeliveries; see `maxDeliveries`). */
  deliveries = 1;
  /** The last state this delivery stored (its claim, then its progress writes): the basis of its next write (`StateWrite.basis`). */
  stored: TaskState | undefined = undefined;
  /** Last progress value the handler stored (superjson text), kept in the final state. */
  progress: string | undefined = undefined;
  /** Set once this delivery's success is stored: its value text (absent when results are not kept). Read by the flow settle hook. */
  succeeded: { result?: string } | undefined = undefined;
  /** The instrumentation scope of the run (only with an instrumentation). */
  scope: ProcessScope | undefined = undefined;
  private fired = false;
  private reason: unknown = undefined;

  /** @param delivery the broker's delivery @param leaseMs the lease it was fetched with */
  constructor(
    readonly delivery: Delivery,
    leaseMs: number,
  ) {
    this.leaseEndsBy = Date.now() + leaseMs;
  }

  /** The job's signal fired (timeout, client abort, lost lease, shutdown). */
  get aborted(): boolean {
    return this.fired;
  }

  /** Why the signal fired (the first reason). */
  get abortReason(): unknown {
    return this.reason;
  }

  /** The broker still holds the delivery for this worker: broker operations on it are allowed. */
  get held(): boolean {
    return this.hold === 'held';
  }

  /** Our `running` state is stored and the job is not done: abort requests are polled for it. */
  get watched(): boolean {
    return (this.phase === 'claimed' || this.phase === 'running' || this.phase === 'concluding') && this.hold === 'held' && !this.fired;
  }

  /** Fires the signal (once) and ends the handler wait; false when it had fired already. */
  abort(reason: unknown): boolean {
    if (this.fired) return false;
    this.fired = true;
    this.reason = reason;
    this.controller?.abort(reason);
    this.onAbort?.(reason);
    return true;
  }

  /** `fetched` → `claimed`: our `running` state is stored. */
  claimed(): void {
    if (this.phase === 'fetched') this.phase = 'claimed';
  }

  /** → `running`: the handler starts now. */
  started(): void {
    this.phase = 'running';
    this.startedAt = Date.now();
  }

  /** → `concluding`; false when the job was concluding already (each job concludes once). */
  concluding(): boolean {
    if (this.phase === 'concluding' || this.phase === 'done') return false;
    this.phase = 'concluding';
    return true;
  }

  /** → `done`: nothing more happens to the job. */
  ended(): void {
    this.phase = 'done';
  }

  /** `held` → `settled`: acked, retried or dead-lettered. */
  settled(): void {
    if (this.hold === 'held') this.hold = 'settled';
  }

  /** `held` → `lost`: the lease is gone; false when the delivery was not held any more. */
  lost(): boolean {
    if (this.hold !== 'held') return false;
    this.hold = 'lost';
    return true;
  }

  /** `held` → `released`: handed back at shutdown; false when it was not held any more. */
  released(): boolean {
    if (this.hold !== 'held') return false;
    this.hold = 'released';
    return true;
  }

  /** `none` → `held`. */
  takeSlot(): void {
    this.slot = 'held';
  }

  /** `held` → `lingering`: the handler outlives the wait for it and keeps the slot until it settles or is abandoned. */
  lingering(): void {
    if (this.slot === 'held') this.slot = 'lingering';
  }

  /**
   * Frees the slot. `byHandler`: the handler settled or was abandoned (frees a lingering slot too);
   * otherwise only a `held` slot is freed. True when a slot was freed.
   */
  freeSlot(byHandler: boolean): boolean {
    if (this.slot === 'held' || (byHandler && this.slot === 'lingering')) {
      this.slot = 'none';
      return true;
    }
    return false;
  }
}

/**
 * The worker of one group: the fetch loop and the concurrency bound. It fetches messages, starts
 * each in a free slot, and hands the rest of a job's life to the parts in their own files: claiming
 * (`worker-claim.ts`), running the handler (`worker-handler.ts`), recording the outcome
 * (`worker-outcome.ts`, `worker-record.ts`), lease renewal (`worker-leases.ts`) and abort polling
 * (`worker-aborts.ts`). A job's states are in `worker-job.ts`.
 */
import type { Delivery, FetchLimits, FetchOptions } from './broker.js';
import { backoffKey } from './worker-limits.js';
import { splitRateGate, type GateGrant, type RateGate } from './worker-rate-gate.js';
import { Deque } from './deque.js';
import { ShutdownError, toError } from './errors.js';
import { pause, setLongTimeout } from './timers.js';
import { AbortPoller } from './worker-aborts.js';
import { JobClaimer } from './worker-claim.js';
import type { Registration, WorkerContext } from './worker-context.js';
import { PlainRunner, type HandlerRunner, type Outcome, type RunHooks } from './worker-handler.js';
import { FlowRunner, flowOf } from './flow/runner.js';
import { flowSettleHook } from './flow/settle.js';
import type { TaskMessage } from './message.js';
import { Job } from './worker-job.js';
import { LeaseKeeper, leaseCertainlyExpired } from './worker-leases.js';
import { OutcomeRecorder } from './worker-outcome.js';
import { JobRecorder } from './worker-record.js';

export type { Registration, WorkerContext } from './worker-context.js';

/**
 * A prefetched message is claimed (`running` stored) as soon as it is fetched — so that the claim's
 * round trip overlaps the handlers still running — only while recent handlers took less than this
 * (ms) on average: its `running` state then shows at most about this much before its handler starts.
 * Slower tasks are claimed when their slot is free.
 */
export const CLAIM_AHEAD_MAX_MS = 20;
/** Handler durations observed before claiming ahead is considered. */
const CLAIM_AHEAD_SAMPLES = 8;
/** While its group is paused, the fetch loop looks again this often (ms). */
const PAUSED_RECHECK_MS = 200;

/** Runs one group with a hard concurrency bound. */
export class GroupWorker {
  /** Jobs this worker holds: prefetched, handler running, or outcome being written / settled. */
  private readonly jobs = new Set<Job>();
  /**
   * Jobs fetched ahead of free slots (at most `prefetch` beyond the free slots): leased to this
   * worker, renewed with the running jobs, started as soon as a slot frees (no fetch round trip in
   * between), handed back at shutdown.
   */
  private readonly buffer = new Deque<Job>();
  /** Slots taken: handlers running, and handlers that outlived their signal until they settle or are abandoned. */
  private active = 0;
  /** Jobs whose handler settled and whose outcome is still being written or settled with the broker. */
  private concluding = 0;
  /** Bound on {@link concluding}: past it no new task starts (a slow backend cannot pile up finished tasks). */
  private readonly maxConcluding: number;
  /** Messages fetched ahead of free slots. */
  private readonly prefetch: number;
  /** Moving average of handler durations (ms) and how many were observed (for claiming ahead). */
  private handlerMs = 0;
  private handlerSamples = 0;
  private slotFreed: (() => void) | undefined;
  /** Resolves stop()'s wait once no job is held. */
  private idle: (() => void) | undefined;
  private stopping = false;
  /** Set by {@link hurry}: stop waits no longer for running jobs. */
  private hurried = false;
  private hurryUp: (() => void) | undefined;
  private readonly stopFetch = new AbortController();
  private loopDone: Promise<void> | undefined;
  private readonly rec: JobRecorder;
  private readonly outcomes: OutcomeRecorder;
  private readonly claimer: JobClaimer;
  private readonly leases: LeaseKeeper;
  private readonly aborts: AbortPoller;
  /** Runs plain and `ctl` handlers; further kinds of task get runners of their own ({@link runnerFor}). */
  private readonly plain: HandlerRunner;
  private readonly hooks: RunHooks;
  /** Runs durable flows (created at the first one). */
  private flows: HandlerRunner | undefined;
  /** Flow control passed to every fetch (what the broker enforces). */
  private readonly flow: FetchLimits | undefined;
  /** The group rate limit enforced by this worker (broker without the feature), if any. */
  private readonly gate: RateGate | undefined;

  /**
   * @param ctx server context
   * @param group group to run
   * @param concurrency hard bound on handlers running at once
   * @param flow flow control passed to every fetch (group options); with a limit, prefetch defaults to 0
   */
  constructor(
    private readonly ctx: WorkerContext,
    readonly group: string,
    readonly concurrency: number,
    flow?: FetchLimits,
  ) {
    // A group rate limit the broker cannot enforce is enforced here, through the backend's buckets.
    ({ gate: this.gate, flow: this.flow } = splitRateGate(ctx.broker, ctx.backend, ctx.logger, group, flow, ctx.settings.fetchWaitMs));
    // A limited group takes a task from the broker only for a free slot, so that a take (where the
    // limit is counted) and the handler's start stay close together.
    this.prefetch = ctx.settings.prefetch ?? (flow === undefined ? concurrency : 0);
    this.maxConcluding = Math.max(64, 4 * concurrency);
    this.rec = new JobRecorder(ctx, group, this.stopFetch.signal);
    this.outcomes = new OutcomeRecorder(this.rec);
    this.claimer = new JobClaimer(this.rec, this.outcomes);
    this.leases = new LeaseKeeper(ctx, group, () => this.jobs);
    this.aborts = new AbortPoller(ctx, group, () => this.jobs);
    this.rec.beforeSettle = flowSettleHook(ctx);
    this.plain = new PlainRunner((this.hooks = {
      handlerDone: (job, handler) => this.handlerDone(job, handler),
      progress: (job, value) => this.outcomes.progress(job, value),
      started: (msg) => {
        if (ctx.listens('started')) ctx.emit('started', this.rec.event(msg));
      },
      backoffKey: (msg, ms) => backoffKey(ctx, msg.group, msg.key, ms),
    }));
  }

  /** Starts fetching. */
  start(): void {
    this.leases.start();
    this.aborts.start();
    this.loopDone = this.loop();
  }

  /** Number of handlers currently holding a slot. */
  get running(): number {
    return this.active;
  }

  /** Whether fetched messages are claimed at once (short handlers) rather than when their slot frees. */
  private get claimAhead(): boolean {
    return this.prefetch > 0 && this.handlerSamples >= CLAIM_AHEAD_SAMPLES && this.handlerMs < CLAIM_AHEAD_MAX_MS;
  }

  /** The runner of a registration: the seam where kinds of task other than plain handlers plug in. */
  private runnerFor(reg: Registration): HandlerRunner {
    return flowOf(reg) === undefined ? this.plain : (this.flows ??= new FlowRunner(this.ctx, this.hooks, this.rec));
  }

  /**
   * Stops fetching, waits for running jobs until `deadline` (epoch ms), then hands the unfinished
   * ones back to the broker (their signals fire with a `ShutdownError`).
   */
  async stop(deadline: number): Promise<void> {
    this.stopping = true;
    this.stopFetch.abort();
    this.slotFreed?.();
    await this.loopDone;
    const shutdown = (): ShutdownError => new ShutdownError('worker shut down before the task finished; it was handed back');
    await Promise.all(
      this.buffer.takeAll().map((job) => {
        this.jobs.delete(job);
        // A claim made ahead lands first, so that the hand-back's `sent` is written after it.
        return (job.preparing ?? Promise.resolve(undefined)).then(() => this.rec.handBack(job, shutdown())).then(() => job.ended());
      }),
    );
    const left = deadline - Date.now();
    if (left > 0 && this.jobs.size > 0 && !this.hurried) {
      let timer: { clear(): void } | undefined;
      const hurried = new Promise<void>((r) => (this.hurryUp = r));
      await Promise.race([new Promise<void>((r) => (this.idle = r)), new Promise<void>((r) => (timer = setLongTimeout(r, left))), hurried]);
      timer?.clear();
      this.idle = undefined;
    }
    await Promise.all([...this.jobs].filter((j) => j.phase !== 'done').map((job) => this.rec.handBack(job, shutdown())));
    this.leases.stop();
    this.aborts.stop();
  }

  /** During {@link stop}: ends the wait for running jobs now (they are handed back). */
  hurry(): void {
    this.hurried = true;
    this.hurryUp?.();
  }

  private async loop(): Promise<void> {
    let failures = 0;
    const { leaseMs, fetchWaitMs } = this.ctx.settings;
    const prefetch = this.prefetch;
    while (!this.stopping) {
      if (this.ctx.paused?.(this.group) === true) {
        await pause(PAUSED_RECHECK_MS, this.stopFetch.signal);
        continue;
      }
      this.drain();
      const free = this.concurrency - this.active;
      const buffered = this.buffer.length;
      const want = free + prefetch - buffered;
      // Fetch when a slot is free, or ahead of time once the buffer is down to half.
      if (want <= 0 || (free <= 0 && buffered > prefetch / 2) || (buffered > 0 && this.concluding >= this.maxConcluding)) {
        await new Promise<void>((r) => (this.slotFreed = r));
        this.slotFreed = undefined;
        continue;
      }
      let deliveries: Delivery[];
      // With a rate gate, the broker is asked for as many tasks as tokens were reserved.
      let grant: GateGrant | undefined;
      try {
        if (this.gate !== undefined) {
          grant = await this.gate.acquire(want, this.stopFetch.signal);
          if (grant === undefined) continue;
        }
        const options: FetchOptions = { leaseMs, waitMs: fetchWaitMs, signal: this.stopFetch.signal };
        if (this.flow !== undefined) options.flow = this.flow;
        deliveries = await this.ctx.broker.fetch(this.group, grant?.granted ?? want, options);
        failures = 0;
      } catch (err) {
        if (grant !== undefined) this.gate?.settle(grant, 0);
        if (this.stopping) break;
        failures++;
        const wait = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        this.ctx.logger.warn('fetch failed; retrying', { group: this.group, error: toError(err), retryInMs: wait });
        await pause(wait, this.stopFetch.signal);
        continue;
      }
      if (grant !== undefined) this.gate?.settle(grant, deliveries.length);
      const ahead = this.claimAhead;
      for (const d of deliveries) {
        const job = new Job(d, leaseMs);
        this.jobs.add(job);
        if (ahead) job.preparing = this.prepareSafely(job);
        this.buffer.push(job);
      }
    }
  }

  /** Starts buffered jobs while slots are free. */
  private drain(): void {
    if (this.ctx.paused?.(this.group) === true) return;
    while (!this.stopping && this.active < this.concurrency && this.concluding < this.maxConcluding && this.buffer.length > 0) {
      const job = this.buffer.shift() as Job;
      this.active++;
      job.takeSlot();
      void this.process(job);
    }
  }

  /** Frees the slot of a job (`byHandler`: also a lingering one), then {@link wake}s. */
  private freeSlot(job: Job, byHandler: boolean): void {
    if (!job.freeSlot(byHandler)) return;
    this.active--;
    this.wake();
  }

  /** A slot or an outcome bound freed: buffered jobs start at once and the fetch loop looks again. */
  private wake(): void {
    this.drain();
    this.slotFreed?.();
  }

  /**
   * A delivery whose lease has certainly run out (the process was frozen or its event loop blocked
   * for longer than `leaseMs`) is dropped here without any broker operation: the broker delivers
   * it again, or already did to another worker.
   */
  private dropIfExpired(job: Job): boolean {
    if (!job.held || !leaseCertainlyExpired(job)) return false;
    job.lost();
    job.abort(new ShutdownError('lease expired before the task started: it is delivered again'));
    this.ctx.logger.warn('lease of a fetched task certainly expired before its handler started; dropped for redelivery', { group: this.group, id: job.msg?.id });
    return true;
  }

  /** A job's whole life once it has a slot: prepare (unless done ahead), run, record, settle; then its bookkeeping. Never rejects. */
  private async process(job: Job): Promise<void> {
    try {
      if (!this.dropIfExpired(job)) {
        const reg = await (job.preparing ?? this.claimer.prepare(job));
        if (reg !== undefined && job.held && !this.dropIfExpired(job)) {
          const scope = this.ctx.instrumentation?.process?.(job.msg as TaskMessage);
          if (scope === undefined) {
            await this.outcomes.conclude(job, await this.runnerFor(reg).run(job, reg));
          } else {
            // Instrumented: the run inside the scope (`run`), then `ran`, the settle hooks, `end`.
            job.scope = scope;
            try {
              const outcome = await (scope.run === undefined ? this.runnerFor(reg).run(job, reg) : scope.run((): Promise<Outcome> => this.runnerFor(reg).run(job, reg)));
              scope.ran?.(outcome.kind === 'failure' ? outcome.error : undefined);
              await this.outcomes.conclude(job, outcome);
            } finally {
              scope.end?.();
            }
          }
        }
      }
    } catch (err) {
      this.ctx.logger.error('unexpected worker error', { group: this.group, error: toError(err) });
    }
    const wasConcluding = job.phase === 'concluding';
    job.ended();
    this.jobs.delete(job);
    if (wasConcluding) this.concluding--;
    // A slot still held by a handler that outlived its signal is freed by that handler alone.
    if (job.slot === 'held') this.freeSlot(job, false);
    else this.wake();
    if (this.jobs.size === 0) this.idle?.();
  }

  /**
   * The wait for the handler of `job` ended: from here the job no longer counts against the
   * concurrency bound but against {@link maxConcluding}, while its outcome is written and settled.
   * A handler still running (its signal fired and it ignored it) keeps its slot until it settles,
   * or `abandonAfterMs` after its signal fired.
   */
  private handlerDone(job: Job, handler: Promise<unknown> | undefined): void {
    if (!job.concluding()) return;
    this.concluding++;
    if (job.startedAt > 0) {
      const ms = Date.now() - job.startedAt;
      this.handlerMs = this.handlerSamples === 0 ? ms : 0.9 * this.handlerMs + 0.1 * ms;
      this.handlerSamples++;
    }
    if (handler === undefined) {
      this.freeSlot(job, true);
      return;
    }
    job.lingering();
    void this.slotHeldUntil(job, handler).then(() => this.freeSlot(job, true));
  }

  /** Resolves when `handler` settles, or `abandonAfterMs` after its wait ended if it never does. */
  private async slotHeldUntil(job: Job, handler: Promise<unknown>): Promise<void> {
    let settled = false;
    const quiet = handler.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    await Promise.resolve();
    if (settled) return;
    const { abandonAfterMs } = this.ctx.settings;
    let timer: { clear(): void } | undefined;
    await Promise.race([quiet, new Promise<void>((r) => (timer = setLongTimeout(r, abandonAfterMs)))]);
    timer?.clear();
    if (!settled) {
      this.ctx.logger.warn('handler ignored its abort signal and was abandoned; its slot is freed', { group: this.group, id: job.msg?.id, afterMs: abandonAfterMs });
    }
  }

  /** Preparation started ahead of the job's slot: an unexpected error is logged (the message returns after its lease). */
  private prepareSafely(job: Job): Promise<Registration | undefined> {
    return this.claimer.prepare(job).catch((err: unknown) => {
      this.ctx.logger.error('unexpected worker error', { group: this.group, error: toError(err) });
      return undefined;
    });
  }
}

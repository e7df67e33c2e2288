/**
 * The worker of one group: fetches messages from the broker, runs handlers under a hard concurrency
 * bound, writes states and results to the backend, and only then acks (at-least-once). Leases are
 * renewed while handlers run; abort requests are polled; failures go back through the broker.
 */
import type { Backend, StateWrite } from './backend.js';
import type { Broker, DeadLetterReason, Delivery } from './broker.js';
import { TaskCtlImpl } from './ctl.js';
import { Deque } from './deque.js';
import {
  BadArgumentsError,
  ShutdownError,
  TaskAbortedError,
  TaskExpiredError,
  TaskTimeoutError,
  UnknownTaskError,
  toError,
} from './errors.js';
import type { ServerEvents } from './events.js';
import type { Logger } from './logger.js';
import {
  MessageDecodeError,
  backoffDelay,
  decodeMessage,
  decodeValue,
  encodeMessage,
  type TaskMessage,
} from './message.js';
import { encodeValueTextFast } from './plain.js';
import type { ServerSettings } from './options.js';
import type { StoredError, TaskState, TaskStatus } from './state.js';
import type { AddOptions, ArgSpec } from './task.js';

/** A registered handler. */
export interface Registration {
  /** Group. */
  group: string;
  /** Task name. */
  name: string;
  /** The handler as registered (with or without a leading ctl parameter). */
  fn: (...args: never[]) => unknown;
  /** Registration options. */
  options: AddOptions;
}

/** What a group worker needs from its server. */
export interface WorkerContext {
  broker: Broker;
  backend: Backend;
  logger: Logger;
  settings: ServerSettings;
  /** Handlers of the group, looked up at message time (so late registrations are seen). */
  lookup(group: string, name: string): Registration | undefined;
  /** Emits a life-cycle event (listener errors are contained). */
  emit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void;
  /** Whether anyone listens to `event` (so that events nobody hears are not even built). */
  listens(event: keyof ServerEvents): boolean;
}

/** One delivery being worked on. */
interface Job {
  delivery: Delivery;
  msg: TaskMessage | undefined;
  /**
   * The signal handed to a `ctl` handler; created only for those (a plain handler never sees a
   * signal, so its job needs no AbortController).
   */
  controller: AbortController | undefined;
  /** The job's signal fired (timeout, client abort, lost lease, shutdown). */
  aborted: boolean;
  /** Why (the first reason). */
  abortReason: unknown;
  /** The broker no longer holds this delivery for us (lease lost): no broker operation on it. */
  lost: boolean;
  /** Handed back at shutdown: its outcome is written but it is not acked/retried. */
  released: boolean;
  /** Our `running` state is stored, so abort requests are polled for it. */
  runningStored: boolean;
  /** The broker side of this job is settled (acked, retried, dead-lettered, released). */
  finished: boolean;
  /** The job still counts against the concurrency bound. */
  holdsSlot: boolean;
  /** The handler settled; the job counts against the bound of outcomes being recorded. */
  concluding: boolean;
  /** Ends the handler wait when the job's signal fires (set while the handler runs). */
  onAbort: ((reason: unknown) => void) | undefined;
  /**
   * The job's preparation (decode, checks, `running` claim) when it was started ahead of its slot;
   * resolves with the handler to run, or undefined when the job needs no run (already settled).
   */
  preparing: Promise<Registration | undefined> | undefined;
  /** When the handler started (epoch ms; 0 before). */
  startedAt: number;
}

type Outcome =
  | { kind: 'success'; value: unknown; startedAt: number }
  | { kind: 'failure'; error: Error; retryable: boolean; deadLetter: boolean; startedAt?: number };

/**
 * A prefetched message is claimed (`running` stored) as soon as it is fetched — so that the claim's
 * round trip overlaps the handlers still running — only while recent handlers took less than this
 * (ms) on average: its `running` state then shows at most about this much before its handler starts.
 * Slower tasks are claimed when their slot is free.
 */
export const CLAIM_AHEAD_MAX_MS = 20;
/** Handler durations observed before claiming ahead is considered. */
const CLAIM_AHEAD_SAMPLES = 8;

/** Whether a handler's return value is a promise (or any thenable) to wait for. */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function';
}

const NON_RETRYABLE = new Set(['ERR_BAD_ARGS', 'ERR_NOT_SERIALIZABLE', 'ERR_ABORTED', 'ERR_EXPIRED', 'ERR_DECODE']);

/** A job for a fetched delivery (not started, holding no slot). */
function newJob(delivery: Delivery): Job {
  return {
    delivery,
    msg: undefined,
    controller: undefined,
    aborted: false,
    abortReason: undefined,
    lost: false,
    released: false,
    runningStored: false,
    finished: false,
    holdsSlot: false,
    concluding: false,
    onAbort: undefined,
    preparing: undefined,
    startedAt: 0,
  };
}

/** Sleep that ends early when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Converts any error to its stored form. */
export function storeError(err: Error): StoredError {
  const out: StoredError = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') out.code = code;
  if (err.stack) out.stack = err.stack;
  return out;
}

/** Checks arguments against a registration; returns the (possibly transformed) arguments. */
export function checkArgs(reg: Registration, args: unknown[]): unknown[] {
  const spec: ArgSpec | undefined = reg.options.args;
  const declared = Math.max(0, reg.fn.length - (reg.options.ctl ? 1 : 0));
  if (spec === undefined) {
    if (args.length < declared) {
      throw new BadArgumentsError(`task "${reg.name}" expects at least ${declared} argument(s), got ${args.length}`);
    }
    return args;
  }
  if (typeof spec === 'function') {
    try {
      const out = spec(args);
      return Array.isArray(out) ? out : args;
    } catch (err) {
      throw new BadArgumentsError(`task "${reg.name}" arguments rejected: ${toError(err).message}`);
    }
  }
  if (args.length > spec.length || args.length < spec.filter((t) => !t.endsWith('?')).length) {
    throw new BadArgumentsError(`task "${reg.name}" expects ${spec.length} argument(s), got ${args.length}`);
  }
  spec.forEach((t, i) => {
    const optional = t.endsWith('?');
    const type = optional ? t.slice(0, -1) : t;
    const v = args[i];
    if (optional && v === undefined) return;
    if (!matches(type, v)) {
      throw new BadArgumentsError(`task "${reg.name}" argument ${i + 1} must be ${type}, got ${typeName(v)}`);
    }
  });
  return args;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v instanceof Map) return 'map';
  if (v instanceof Set) return 'set';
  return typeof v;
}

function matches(type: string, v: unknown): boolean {
  switch (type) {
    case 'any':
      return true;
    case 'object':
      return typeName(v) === 'object';
    case 'number':
      return typeof v === 'number' && !Number.isNaN(v);
    default:
      return typeName(v) === type;
  }
}

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
  /** Handlers that have not settled yet (a timed-out handler keeps its slot until it settles). */
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
  private readonly stopFetch = new AbortController();
  private loopDone: Promise<void> | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private abortTimer: NodeJS.Timeout | undefined;
  private polling = false;

  /**
   * @param ctx server context
   * @param group group to run
   * @param concurrency hard bound on handlers running at once
   */
  constructor(
    private readonly ctx: WorkerContext,
    readonly group: string,
    readonly concurrency: number,
  ) {
    this.prefetch = ctx.settings.prefetch ?? concurrency;
    this.maxConcluding = Math.max(64, 4 * concurrency);
  }

  /** Starts fetching. */
  start(): void {
    const { leaseMs, abortPollMs } = this.ctx.settings;
    this.leaseTimer = setInterval(() => void this.renewLeases(), Math.max(50, Math.floor(leaseMs / 3)));
    this.leaseTimer.unref();
    this.abortTimer = setInterval(() => void this.pollAborts(), abortPollMs);
    this.abortTimer.unref();
    this.loopDone = this.loop();
  }

  /** Number of handlers currently running. */
  get running(): number {
    return this.active;
  }

  /** Whether fetched messages are claimed at once (short handlers) rather than when their slot frees. */
  private get claimAhead(): boolean {
    return this.prefetch > 0 && this.handlerSamples >= CLAIM_AHEAD_SAMPLES && this.handlerMs < CLAIM_AHEAD_MAX_MS;
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
    await this.releaseBuffered();
    const left = deadline - Date.now();
    if (left > 0 && this.jobs.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((r) => (this.idle = r)),
        new Promise<void>((r) => (timer = setTimeout(r, left))),
      ]);
      clearTimeout(timer);
      this.idle = undefined;
    }
    const unfinished = [...this.jobs].filter((j) => !j.finished);
    await Promise.all(
      unfinished.map(async (job) => {
        job.released = true;
        job.finished = true;
        this.abortJob(job, new ShutdownError('worker shut down before the task finished; it was handed back'));
        try {
          await this.ctx.broker.release(job.delivery);
          this.ctx.logger.info('handed back an unfinished task', { group: this.group, id: job.msg?.id });
        } catch (err) {
          this.ctx.logger.warn('could not hand back a task; it returns after its lease', { group: this.group, id: job.msg?.id, error: toError(err) });
        }
      }),
    );
    clearInterval(this.leaseTimer);
    clearInterval(this.abortTimer);
  }

  private async loop(): Promise<void> {
    let failures = 0;
    const { leaseMs, fetchWaitMs } = this.ctx.settings;
    const prefetch = this.prefetch;
    while (!this.stopping) {
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
      try {
        deliveries = await this.ctx.broker.fetch(this.group, want, { leaseMs, waitMs: fetchWaitMs, signal: this.stopFetch.signal });
        failures = 0;
      } catch (err) {
        if (this.stopping) break;
        failures++;
        const wait = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
        this.ctx.logger.warn('fetch failed; retrying', { group: this.group, error: toError(err), retryInMs: wait });
        await pause(wait, this.stopFetch.signal);
        continue;
      }
      const ahead = this.claimAhead;
      for (const d of deliveries) {
        const job = newJob(d);
        this.jobs.add(job);
        if (ahead) job.preparing = this.prepareSafely(job);
        this.buffer.push(job);
      }
    }
  }

  /** Starts buffered jobs while slots are free. */
  private drain(): void {
    while (
      !this.stopping &&
      this.active < this.concurrency &&
      this.concluding < this.maxConcluding &&
      this.buffer.length > 0
    ) {
      const job = this.buffer.shift() as Job;
      this.active++;
      job.holdsSlot = true;
      void this.process(job);
    }
  }

  /** Hands every buffered (not started) job back to the broker. */
  private async releaseBuffered(): Promise<void> {
    await Promise.all(
      this.buffer.takeAll().map((job) => {
        job.released = true;
        job.finished = true;
        this.jobs.delete(job);
        return this.ctx.broker.release(job.delivery).catch(() => undefined);
      }),
    );
  }

  /** Frees the slot of a job (once), then {@link wake}s. */
  private freeSlot(job: Job): void {
    if (!job.holdsSlot) return;
    job.holdsSlot = false;
    this.active--;
    this.wake();
  }

  /** A slot or an outcome bound freed: buffered jobs start at once and the fetch loop looks again. */
  private wake(): void {
    this.drain();
    this.slotFreed?.();
  }

  /** Fires a job's signal and ends its handler wait. */
  private abortJob(job: Job, reason: unknown): void {
    if (job.aborted) return;
    job.aborted = true;
    job.abortReason = reason;
    job.controller?.abort(reason);
    job.onAbort?.(reason);
  }

  /** A job's whole life once it has a slot: prepare (unless done ahead), run, record, settle; then its bookkeeping. Never rejects. */
  private async process(job: Job): Promise<void> {
    try {
      const reg = await (job.preparing ?? this.prepare(job));
      if (reg !== undefined && !job.lost && !job.released) await this.conclude(job, await this.run(job, reg));
    } catch (err) {
      this.ctx.logger.error('unexpected worker error', { group: this.group, error: toError(err) });
    }
    job.finished = true;
    this.jobs.delete(job);
    if (job.concluding) {
      job.concluding = false;
      this.concluding--;
    }
    if (job.holdsSlot) this.freeSlot(job);
    else this.wake();
    if (this.jobs.size === 0) this.idle?.();
  }

  /**
   * The handler of `job` settled (or its wait ended): from here the job no longer counts against the
   * concurrency bound but against {@link maxConcluding}, while its outcome is written and settled.
   */
  private handlerDone(job: Job, handler: Promise<unknown> | undefined): void {
    if (job.concluding) return;
    job.concluding = true;
    this.concluding++;
    if (job.startedAt > 0) {
      const ms = Date.now() - job.startedAt;
      this.handlerMs = this.handlerSamples === 0 ? ms : 0.9 * this.handlerMs + 0.1 * ms;
      this.handlerSamples++;
    }
    if (handler === undefined) this.freeSlot(job);
    else void this.slotHeldUntil(job, handler).then(() => this.freeSlot(job));
  }

  /**
   * The slot of a job is free when its handler settles. A handler still running here had its signal
   * fired (timeout, abort, lost lease, shutdown); it keeps the slot at most `abandonAfterMs` more.
   */
  private async slotHeldUntil(job: Job, handler: Promise<unknown>): Promise<void> {
    let settled = false;
    const quiet = handler.then(
      () => void (settled = true),
      () => void (settled = true),
    );
    await Promise.resolve();
    if (settled) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([quiet, new Promise<void>((r) => (timer = setTimeout(r, this.ctx.settings.abandonAfterMs)))]);
    clearTimeout(timer);
    if (!settled) {
      this.ctx.logger.warn('handler ignored its abort signal and was abandoned; its slot is freed', {
        group: this.group,
        id: job.msg?.id,
        afterMs: this.ctx.settings.abandonAfterMs,
      });
    }
  }

  /** {@link prepare} started ahead of the job's slot: an unexpected error is logged (the message returns after its lease). */
  private prepareSafely(job: Job): Promise<Registration | undefined> {
    return this.prepare(job).catch((err: unknown) => {
      this.ctx.logger.error('unexpected worker error', { group: this.group, error: toError(err) });
      return undefined;
    });
  }

  /**
   * Decodes and checks a message and claims it (`running` stored, unless a final state is stored).
   * Returns the handler to run, or undefined when the job is settled here (bad message, expired,
   * unknown task, already final) or must be left for redelivery.
   */
  private async prepare(job: Job): Promise<Registration | undefined> {
    const { delivery } = job;
    const log = this.ctx.logger;
    let msg: TaskMessage;
    try {
      msg = decodeMessage(delivery.body);
      if (msg.group !== this.group) throw new MessageDecodeError(`message for group "${msg.group}" arrived in queue of "${this.group}"`, msg);
    } catch (err) {
      const e = err instanceof MessageDecodeError ? err : new MessageDecodeError(toError(err).message, {});
      log.warn('undecodable message moved to dead letters', { group: this.group, reason: e.message, id: e.partial.id });
      if (e.partial.id !== undefined) {
        const state = this.bareState(e.partial.id, e.partial.name ?? '', 'failure', e);
        await this.persist(job, { state, stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal' });
      }
      await this.deadLetter(job, { code: e.code, message: e.message }, e.partial.id, e.partial.name);
      return undefined;
    }
    job.msg = msg;
    const now = Date.now();

    if (msg.expireAt !== null && now > msg.expireAt) {
      const err = new TaskExpiredError(msg.expireAt);
      await this.persist(job, { state: this.state(msg, 'expired', { error: storeError(err), finishedAt: now }), stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal' });
      this.ctx.emit('expired', this.event(msg));
      await this.ack(job);
      return undefined;
    }

    const reg = this.ctx.lookup(this.group, msg.name);
    if (!reg) {
      await this.unknownTask(job, msg, now);
      return undefined;
    }

    // Claim: store `running`; a final state stored (success by a duplicate, aborted, expired) means: do not run.
    const runningState = this.state(msg, 'running');
    runningState.startedAt = now;
    const running = await this.persist(job, { state: runningState, stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal' });
    if (running === undefined) return undefined;
    if (!running.written) {
      log.debug('task already final; not running it again', { id: msg.id, status: running.previous?.status });
      await this.ack(job);
      if (running.previous?.status === 'aborted') this.ctx.emit('aborted', this.event(msg));
      return undefined;
    }
    job.runningStored = true;
    return reg;
  }

  /** Runs the handler of a claimed job (in its slot); returns what to record. */
  private async run(job: Job, reg: Registration): Promise<Outcome> {
    const msg = job.msg as TaskMessage;
    const now = Date.now();
    job.startedAt = now;
    if (job.aborted) {
      // Aborted (or lease lost) while waiting for its slot: the handler never starts.
      this.handlerDone(job, undefined);
      return { kind: 'failure', error: toError(job.abortReason), retryable: false, deadLetter: false, startedAt: now };
    }
    let args: unknown[];
    try {
      const decoded = decodeValue(msg.args);
      if (!Array.isArray(decoded)) throw new BadArgumentsError('arguments are not an array');
      args = checkArgs(reg, decoded);
    } catch (err) {
      const e = err instanceof BadArgumentsError ? err : new BadArgumentsError(`arguments cannot be decoded: ${toError(err).message}`);
      this.handlerDone(job, undefined);
      return { kind: 'failure', error: e, retryable: false, deadLetter: true, startedAt: now };
    }

    // A plain handler never sees a control object: it gets none (and no AbortController).
    let ctl: TaskCtlImpl | undefined;
    if (reg.options.ctl) {
      job.controller = new AbortController();
      ctl = new TaskCtlImpl(msg.id, msg.group, msg.name, msg.retriesUsed, msg.retriesLeft, job.controller.signal, (value) =>
        this.progress(job, msg, value),
      );
    }
    if (this.ctx.listens('started')) this.ctx.emit('started', this.event(msg));
    let value: unknown;
    let error: unknown;
    let threw = false;
    try {
      const ret: unknown = ctl ? reg.fn(...([ctl, ...args] as never[])) : reg.fn(...(args as never[]));
      if (isThenable(ret)) {
        value = await this.awaitHandler(job, msg, reg, Promise.resolve(ret));
      } else {
        value = ret;
        this.handlerDone(job, undefined);
        // A synchronous handler cannot be interrupted; a signal fired meanwhile still decides.
        if (job.aborted) throw job.abortReason;
      }
    } catch (thrown) {
      threw = true;
      error = thrown;
      this.handlerDone(job, undefined);
    }
    const retriesLeft = ctl ? ctl.retriesLeft : msg.retriesLeft;
    msg.retriesLeft = retriesLeft;
    if (!threw && ctl?.retryRequested) {
      const e = ctl.retryError === undefined ? new Error('handler asked for a retry') : toError(ctl.retryError);
      return { kind: 'failure', error: e, retryable: retriesLeft > 0, deadLetter: false, startedAt: now };
    }
    if (!threw) return { kind: 'success', value, startedAt: now };
    const e = toError(error);
    const code = (e as { code?: unknown }).code;
    const retryable = !NON_RETRYABLE.has(typeof code === 'string' ? code : '') && retriesLeft > 0;
    return { kind: 'failure', error: e, retryable, deadLetter: false, startedAt: now };
  }

  /**
   * Waits for an asynchronous handler, racing its per-task timeout and its job's signal (client
   * abort, lost lease, shutdown): the wait ends even if the handler ignores its signal; the slot is
   * then kept until the handler settles or is abandoned.
   */
  private async awaitHandler(job: Job, msg: TaskMessage, reg: Registration, handler: Promise<unknown>): Promise<unknown> {
    const timeoutMs = msg.timeoutMs ?? reg.options.timeout ?? null;
    let timer: NodeJS.Timeout | undefined;
    const raced: Promise<unknown> =
      timeoutMs === null
        ? handler
        : Promise.race([
            handler,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                const err = new TaskTimeoutError(timeoutMs);
                this.abortJob(job, err);
                reject(err);
              }, timeoutMs);
            }),
          ]);
    // Every abort of a job goes through abortJob(), which calls job.onAbort (no listener on the signal needed).
    const aborted = new Promise<never>((_, reject) => {
      if (job.aborted) reject(job.abortReason);
      else job.onAbort = reject;
    });
    aborted.catch(() => undefined);
    try {
      return await Promise.race([raced, aborted]);
    } finally {
      job.onAbort = undefined;
      clearTimeout(timer);
      this.handlerDone(job, handler);
    }
  }

  /** Writes the outcome, then settles the delivery with the broker. */
  private async conclude(job: Job, outcome: Outcome): Promise<void> {
    const msg = job.msg as TaskMessage;
    const { statusExpires, resultExpires } = this.ctx.settings;
    const now = Date.now();
    if (outcome.kind === 'success') {
      let result: string | undefined;
      try {
        result = resultExpires === 0 ? undefined : encodeValueTextFast(outcome.value, 'return value');
      } catch (err) {
        return this.conclude(job, { kind: 'failure', error: toError(err), retryable: false, deadLetter: false, startedAt: outcome.startedAt });
      }
      const state = this.state(msg, 'success');
      state.startedAt = outcome.startedAt;
      state.finishedAt = now;
      const write: StateWrite = { state, stateTtl: statusExpires, guard: 'notSuccess' };
      if (result !== undefined) {
        write.result = result;
        write.resultTtl = resultExpires;
      }
      if ((await this.persist(job, write)) === undefined) return;
      await this.ack(job);
      if (this.ctx.listens('succeeded')) {
        this.ctx.emit('succeeded', { id: msg.id, group: msg.group, name: msg.name, retriesUsed: msg.retriesUsed, durationMs: now - outcome.startedAt });
      }
      return;
    }

    const { error } = outcome;
    const signalReason: unknown = job.aborted ? job.abortReason : undefined;
    if (job.lost || job.released) {
      this.ctx.logger.debug('outcome of a task no longer held is not recorded', { id: msg.id, error });
      return;
    }
    if (signalReason instanceof TaskAbortedError) {
      // Aborted by a client: the `aborted` state is already stored (final).
      await this.ack(job);
      this.ctx.emit('aborted', this.event(msg));
      return;
    }
    const startedAt = outcome.startedAt;
    if (outcome.retryable && msg.retriesLeft > 0) {
      const delayMs = backoffDelay(msg.backoff, msg.retriesUsed);
      const retryAt = now + delayMs;
      const extra: Partial<TaskState> = { error: storeError(error), retryAt, retriesUsed: msg.retriesUsed + 1, retriesLeft: msg.retriesLeft - 1 };
      if (startedAt !== undefined) extra.startedAt = startedAt;
      const w = await this.persist(job, { state: this.state(msg, 'waiting-retry', extra), stateTtl: statusExpires, guard: 'notFinal' });
      if (w === undefined) return;
      if (!w.written) {
        await this.ack(job);
        if (w.previous?.status === 'aborted') this.ctx.emit('aborted', this.event(msg));
        return;
      }
      const next: TaskMessage = { ...msg, retriesLeft: msg.retriesLeft - 1, retriesUsed: msg.retriesUsed + 1 };
      try {
        await this.ctx.broker.retry(job.delivery, encodeMessage(next), retryAt);
        job.finished = true;
      } catch (err) {
        this.ctx.logger.warn('could not schedule a retry; the message returns after its lease', { id: msg.id, error: toError(err) });
        return;
      }
      this.ctx.emit('retrying', { ...this.event(msg), error, delayMs, retriesLeft: next.retriesLeft });
      return;
    }
    const extra: Partial<TaskState> = { error: storeError(error), finishedAt: now };
    if (startedAt !== undefined) extra.startedAt = startedAt;
    if ((await this.persist(job, { state: this.state(msg, 'failure', extra), stateTtl: statusExpires, guard: 'notFinal' })) === undefined) return;
    if (outcome.deadLetter) {
      await this.deadLetter(job, { code: (error as { code?: string }).code ?? 'ERR_TASK_FAILED', message: error.message }, msg.id, msg.name);
    } else {
      await this.ack(job);
    }
    this.ctx.emit('failed', { ...this.event(msg), error });
  }

  /** Unknown task name: retried for `unknownTaskRetryMs` (rolling deploys), then failure + dead letter. */
  private async unknownTask(job: Job, msg: TaskMessage, now: number): Promise<void> {
    const { unknownTaskRetryMs, unknownTaskRetryDelayMs, statusExpires } = this.ctx.settings;
    const first = msg.firstUnknownAt ?? now;
    const err = new UnknownTaskError(msg.group, msg.name);
    if (now - first < unknownTaskRetryMs) {
      this.ctx.logger.warn('unknown task; retrying later in case a worker that knows it is being deployed', { group: msg.group, name: msg.name, id: msg.id });
      const next: TaskMessage = { ...msg, firstUnknownAt: first };
      try {
        await this.ctx.broker.retry(job.delivery, encodeMessage(next), now + unknownTaskRetryDelayMs);
        job.finished = true;
      } catch (e) {
        this.ctx.logger.warn('could not reschedule an unknown task; it returns after its lease', { id: msg.id, error: toError(e) });
      }
      return;
    }
    const state = this.state(msg, 'failure', { error: storeError(err), finishedAt: now });
    if ((await this.persist(job, { state, stateTtl: statusExpires, guard: 'notFinal' })) === undefined) return;
    await this.deadLetter(job, { code: err.code, message: err.message }, msg.id, msg.name);
    this.ctx.emit('failed', { ...this.event(msg), error: err });
  }

  private async progress(job: Job, msg: TaskMessage, value: unknown): Promise<void> {
    const progress = encodeValueTextFast(value, 'progress');
    if (job.finished || job.lost) return;
    await this.ctx.backend.write({
      state: this.state(msg, 'running', { progress, startedAt: Date.now() }),
      stateTtl: this.ctx.settings.statusExpires,
      guard: 'notFinal',
      previous: 'refused',
    });
  }

  /**
   * Writes to the backend, retrying with backoff while the backend is unreachable. Gives up (returns
   * undefined, without acking) when the lease is lost or the worker stops: the message is then
   * delivered again, so nothing is lost.
   */
  private async persist(job: Job, write: StateWrite): Promise<{ written: boolean; previous: TaskState | null } | undefined> {
    // The worker reads the previous state only of a refused write.
    write.previous = 'refused';
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.ctx.backend.write(write);
      } catch (err) {
        const e = toError(err);
        if ((e as { code?: string }).code === 'ERR_VALUE_TOO_LARGE' && write.result !== undefined) {
          // The result cannot be stored: record the failure instead of losing the task silently.
          const failed: StateWrite = {
            state: { ...write.state, status: 'failure', error: storeError(e) },
            stateTtl: write.stateTtl,
            guard: 'notFinal',
          };
          return this.persist(job, failed);
        }
        if (job.lost || job.released || this.stopFetch.signal.aborted) {
          this.ctx.logger.warn('backend write failed; leaving the message for redelivery', { id: write.state.id, error: e });
          return undefined;
        }
        const wait = Math.min(5000, 50 * 2 ** Math.min(attempt, 7));
        this.ctx.logger.warn('backend write failed; retrying', { id: write.state.id, attempt, retryInMs: wait, error: e });
        await pause(wait, this.stopFetch.signal);
      }
    }
  }

  private async ack(job: Job): Promise<void> {
    if (job.lost || job.released) return;
    try {
      await this.ctx.broker.ack(job.delivery);
      job.finished = true;
    } catch (err) {
      this.ctx.logger.warn('ack failed; the message returns after its lease and is skipped as already done', { id: job.msg?.id, error: toError(err) });
    }
  }

  private async deadLetter(job: Job, reason: DeadLetterReason, id?: string, name?: string): Promise<void> {
    if (job.lost || job.released) return;
    try {
      await this.ctx.broker.deadLetter(job.delivery, reason);
      job.finished = true;
    } catch (err) {
      this.ctx.logger.warn('dead-lettering failed; the message returns after its lease', { id, error: toError(err) });
      return;
    }
    const event: ServerEvents['deadLettered'][0] = { group: this.group, reason };
    if (id !== undefined) event.id = id;
    if (name !== undefined) event.name = name;
    this.ctx.emit('deadLettered', event);
  }

  private async renewLeases(): Promise<void> {
    // Prefetched jobs are in `jobs` too: their leases are renewed with the running ones.
    const held = [...this.jobs].filter((j) => !j.finished && !j.lost);
    if (held.length === 0) return;
    try {
      const lost = new Set(await this.ctx.broker.extend(held.map((j) => j.delivery), this.ctx.settings.leaseMs));
      if (lost.size === 0) return;
      for (const job of held) {
        if (!lost.has(job.delivery.token) || job.finished) continue;
        job.lost = true;
        this.ctx.logger.warn(job.holdsSlot || job.concluding ? 'lease lost; the task was handed to another worker' : 'lease of a prefetched message lost; it was handed to another worker', {
          group: this.group,
          id: job.msg?.id,
        });
        this.abortJob(job, new ShutdownError('lease lost: the task was delivered to another worker'));
      }
    } catch (err) {
      this.ctx.logger.warn('lease renewal failed', { group: this.group, error: toError(err) });
    }
  }

  private async pollAborts(): Promise<void> {
    if (this.polling) return;
    const watched = [...this.jobs].filter((j) => j.runningStored && !j.finished && !j.aborted && j.msg);
    if (watched.length === 0) return;
    this.polling = true;
    try {
      const states = await this.ctx.backend.readMany(watched.map((j) => (j.msg as TaskMessage).id));
      states.forEach((s, i) => {
        if (s?.status === 'aborted') this.abortJob(watched[i] as Job, new TaskAbortedError('task was aborted by a client'));
      });
    } catch (err) {
      this.ctx.logger.debug('abort poll failed', { group: this.group, error: toError(err) });
    } finally {
      this.polling = false;
    }
  }

  private event(msg: TaskMessage): ServerEvents['started'][0] {
    return { id: msg.id, group: msg.group, name: msg.name, retriesUsed: msg.retriesUsed };
  }

  private state(msg: TaskMessage, status: TaskStatus, extra?: Partial<TaskState>): TaskState {
    const state: TaskState = {
      v: 1,
      id: msg.id,
      group: msg.group,
      name: msg.name,
      status,
      retriesUsed: msg.retriesUsed,
      retriesLeft: msg.retriesLeft,
      sentAt: msg.sentAt,
      updatedAt: Date.now(),
    };
    return extra === undefined ? state : Object.assign(state, extra);
  }

  private bareState(id: string, name: string, status: TaskStatus, err: Error): TaskState {
    const now = Date.now();
    return { v: 1, id, group: this.group, name, status, retriesUsed: 0, retriesLeft: 0, error: storeError(err), finishedAt: now, updatedAt: now };
  }
}

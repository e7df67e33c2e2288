/**
 * The worker of one group: fetches messages from the broker, runs handlers under a hard concurrency
 * bound, writes states and results to the backend, and only then acks (at-least-once). Leases are
 * renewed while handlers run; abort requests are polled; failures go back through the broker.
 */
import type { Backend, StateWrite } from './backend.js';
import type { Broker, DeadLetterReason, Delivery } from './broker.js';
import { TaskCtlImpl } from './ctl.js';
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
}

/** One delivery being worked on. */
interface Job {
  delivery: Delivery;
  msg?: TaskMessage;
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
  /** Ends the handler wait when the job's signal fires (set while the handler runs). */
  onAbort: ((reason: unknown) => void) | undefined;
}

type Outcome =
  | { kind: 'done' }
  | { kind: 'success'; value: unknown; startedAt: number }
  | { kind: 'failure'; error: Error; retryable: boolean; deadLetter: boolean; startedAt?: number };

const NON_RETRYABLE = new Set(['ERR_BAD_ARGS', 'ERR_NOT_SERIALIZABLE', 'ERR_ABORTED', 'ERR_EXPIRED', 'ERR_DECODE']);

/** The signal of the control object of a plain handler, which never sees it. */
const NEVER_ABORTED: AbortSignal = new AbortController().signal;

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
  private readonly jobs = new Set<Job>();
  /**
   * Deliveries fetched ahead of free slots (at most `concurrency` of them): leased to this worker,
   * renewed with the running jobs, started as soon as a slot frees (no fetch round trip in between),
   * handed back at shutdown.
   */
  private readonly buffer: Delivery[] = [];
  /** Handlers that have not settled yet (a timed-out handler keeps its slot until it settles). */
  private active = 0;
  private slotFreed: (() => void) | undefined;
  private stopping = false;
  private readonly stopFetch = new AbortController();
  private loopDone: Promise<void> | undefined;
  private readonly pending = new Set<Promise<void>>();
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
  ) {}

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
    const all = Promise.all([...this.pending]);
    const left = deadline - Date.now();
    if (left > 0 && this.pending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
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
    const prefetch = this.concurrency;
    while (!this.stopping) {
      this.drain();
      const free = this.concurrency - this.active;
      const want = free + prefetch - this.buffer.length;
      // Fetch when a slot is free, or ahead of time once the buffer is down to half.
      if (want <= 0 || (free <= 0 && this.buffer.length > prefetch / 2)) {
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
      for (const d of deliveries) this.buffer.push(d);
    }
  }

  /** Starts buffered deliveries while slots are free. */
  private drain(): void {
    while (!this.stopping && this.active < this.concurrency && this.buffer.length > 0) this.begin(this.buffer.shift() as Delivery);
  }

  /** Hands every buffered (not started) delivery back to the broker. */
  private async releaseBuffered(): Promise<void> {
    const left = this.buffer.splice(0);
    await Promise.all(left.map((d) => this.ctx.broker.release(d).catch(() => undefined)));
  }

  /** Frees the slot of a job (once): the next buffered delivery starts at once, the fetch loop wakes. */
  private freeSlot(job: Job): void {
    if (!job.holdsSlot) return;
    job.holdsSlot = false;
    this.active--;
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

  private begin(delivery: Delivery): void {
    this.active++;
    const job: Job = {
      delivery,
      controller: undefined,
      aborted: false,
      abortReason: undefined,
      lost: false,
      released: false,
      runningStored: false,
      finished: false,
      holdsSlot: true,
      onAbort: undefined,
    };
    this.jobs.add(job);
    let handlerSettled: Promise<unknown> = Promise.resolve();
    const p = this.process(job, (h) => (handlerSettled = h))
      .catch((err: unknown) => this.ctx.logger.error('unexpected worker error', { group: this.group, error: toError(err) }))
      .then(() => {
        job.finished = true;
        this.jobs.delete(job);
        this.pending.delete(p);
        return this.slotHeldUntil(job, handlerSettled);
      })
      .then(() => this.freeSlot(job));
    this.pending.add(p);
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

  private async process(job: Job, trackHandler: (h: Promise<unknown>) => void): Promise<void> {
    const outcome = await this.execute(job, trackHandler);
    if (outcome.kind === 'done') return;
    await this.conclude(job, outcome);
  }

  /** Decodes, checks and runs; returns what to record. */
  private async execute(job: Job, trackHandler: (h: Promise<unknown>) => void): Promise<Outcome> {
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
      return { kind: 'done' };
    }
    job.msg = msg;
    const now = Date.now();

    if (msg.expireAt !== null && now > msg.expireAt) {
      const err = new TaskExpiredError(msg.expireAt);
      await this.persist(job, { state: this.state(msg, 'expired', { error: storeError(err), finishedAt: now }), stateTtl: this.ctx.settings.statusExpires, guard: 'notFinal' });
      this.ctx.emit('expired', this.event(msg));
      await this.ack(job);
      return { kind: 'done' };
    }

    const reg = this.ctx.lookup(this.group, msg.name);
    if (!reg) return this.unknownTask(job, msg, now);

    // Mark running; a final state stored (success by a duplicate, aborted, expired) means: do not run.
    const running = await this.persist(job, {
      state: this.state(msg, 'running', { startedAt: now }),
      stateTtl: this.ctx.settings.statusExpires,
      guard: 'notFinal',
    });
    if (running === undefined) return { kind: 'done' };
    if (!running.written) {
      log.debug('task already final; not running it again', { id: msg.id, status: running.previous?.status });
      await this.ack(job);
      if (running.previous?.status === 'aborted') this.ctx.emit('aborted', this.event(msg));
      return { kind: 'done' };
    }
    job.runningStored = true;

    let args: unknown[];
    try {
      const decoded = decodeValue(msg.args);
      if (!Array.isArray(decoded)) throw new BadArgumentsError('arguments are not an array');
      args = checkArgs(reg, decoded);
    } catch (err) {
      const e = err instanceof BadArgumentsError ? err : new BadArgumentsError(`arguments cannot be decoded: ${toError(err).message}`);
      return { kind: 'failure', error: e, retryable: false, deadLetter: true, startedAt: now };
    }

    let signal = NEVER_ABORTED;
    if (reg.options.ctl) {
      job.controller = new AbortController();
      if (job.aborted) job.controller.abort(job.abortReason);
      signal = job.controller.signal;
    }
    const ctl = new TaskCtlImpl(msg.id, msg.group, msg.name, msg.retriesUsed, msg.retriesLeft, signal, (value) =>
      this.progress(job, msg, value),
    );
    this.ctx.emit('started', this.event(msg));
    const timeoutMs = msg.timeoutMs ?? reg.options.timeout ?? null;
    let timer: NodeJS.Timeout | undefined;
    const handler = (async () => (reg.options.ctl ? reg.fn(...([ctl, ...args] as never[])) : reg.fn(...(args as never[]))))();
    trackHandler(handler);
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
      // An abort (client, lease loss, shutdown) ends the wait even if the handler ignores its signal.
      const value = await Promise.race([raced, aborted]);
      if (ctl.retryRequested) {
        const error = ctl.retryError === undefined ? new Error('handler asked for a retry') : toError(ctl.retryError);
        return { kind: 'failure', error, retryable: ctl.retriesLeft > 0, deadLetter: false, startedAt: now };
      }
      return { kind: 'success', value, startedAt: now };
    } catch (thrown) {
      const error = toError(thrown);
      const code = (error as { code?: unknown }).code;
      const retryable = !NON_RETRYABLE.has(typeof code === 'string' ? code : '') && ctl.retriesLeft > 0;
      return { kind: 'failure', error, retryable, deadLetter: false, startedAt: now };
    } finally {
      job.onAbort = undefined;
      clearTimeout(timer);
      msg.retriesLeft = ctl.retriesLeft;
    }
  }

  /** Writes the outcome, then settles the delivery with the broker. */
  private async conclude(job: Job, outcome: Exclude<Outcome, { kind: 'done' }>): Promise<void> {
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
      const write: StateWrite = {
        state: this.state(msg, 'success', { startedAt: outcome.startedAt, finishedAt: now }),
        stateTtl: statusExpires,
        guard: 'notSuccess',
      };
      if (result !== undefined) {
        write.result = result;
        write.resultTtl = resultExpires;
      }
      if ((await this.persist(job, write)) === undefined) return;
      // The handler has settled and its outcome is stored: its slot may take the next task while the
      // ack travels (the job stays tracked, with its lease renewed, until the ack is done).
      this.freeSlot(job);
      await this.ack(job);
      this.ctx.emit('succeeded', { ...this.event(msg), durationMs: now - outcome.startedAt });
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
  private async unknownTask(job: Job, msg: TaskMessage, now: number): Promise<Outcome> {
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
      return { kind: 'done' };
    }
    const state = this.state(msg, 'failure', { error: storeError(err), finishedAt: now });
    if ((await this.persist(job, { state, stateTtl: statusExpires, guard: 'notFinal' })) === undefined) return { kind: 'done' };
    await this.deadLetter(job, { code: err.code, message: err.message }, msg.id, msg.name);
    this.ctx.emit('failed', { ...this.event(msg), error: err });
    return { kind: 'done' };
  }

  private async progress(job: Job, msg: TaskMessage, value: unknown): Promise<void> {
    const progress = encodeValueTextFast(value, 'progress');
    if (job.finished || job.lost) return;
    await this.ctx.backend.write({
      state: this.state(msg, 'running', { progress, startedAt: Date.now() }),
      stateTtl: this.ctx.settings.statusExpires,
      guard: 'notFinal',
    });
  }

  /**
   * Writes to the backend, retrying with backoff while the backend is unreachable. Gives up (returns
   * undefined, without acking) when the lease is lost or the worker stops: the message is then
   * delivered again, so nothing is lost.
   */
  private async persist(job: Job, write: StateWrite): Promise<{ written: boolean; previous: TaskState | null } | undefined> {
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
    const held = [...this.jobs].filter((j) => !j.finished && !j.lost);
    const buffered = this.buffer.slice();
    if (held.length === 0 && buffered.length === 0) return;
    try {
      const lost = new Set(await this.ctx.broker.extend([...held.map((j) => j.delivery), ...buffered], this.ctx.settings.leaseMs));
      if (lost.size === 0) return;
      for (const job of held) {
        if (!lost.has(job.delivery.token) || job.finished) continue;
        job.lost = true;
        this.ctx.logger.warn('lease lost; the task was handed to another worker', { group: this.group, id: job.msg?.id });
        this.abortJob(job, new ShutdownError('lease lost: the task was delivered to another worker'));
      }
      for (let i = this.buffer.length - 1; i >= 0; i--) {
        if (lost.has((this.buffer[i] as Delivery).token)) {
          this.buffer.splice(i, 1);
          this.ctx.logger.warn('lease of a prefetched message lost; it was handed to another worker', { group: this.group });
        }
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

  private state(msg: TaskMessage, status: TaskStatus, extra: Partial<TaskState> = {}): TaskState {
    return {
      v: 1,
      id: msg.id,
      group: msg.group,
      name: msg.name,
      status,
      retriesUsed: msg.retriesUsed,
      retriesLeft: msg.retriesLeft,
      sentAt: msg.sentAt,
      updatedAt: Date.now(),
      ...extra,
    };
  }

  private bareState(id: string, name: string, status: TaskStatus, err: Error): TaskState {
    const now = Date.now();
    return { v: 1, id, group: this.group, name, status, retriesUsed: 0, retriesLeft: 0, error: storeError(err), finishedAt: now, updatedAt: now };
  }
}

/**
 * The worker's runner of durable flows (plugged in through `GroupWorker.runnerFor`): loads the
 * journal, runs the flow function from the top as a {@link FlowRun}, and turns how it ended into the
 * worker's {@link Outcome} — or, for a suspension, stores `sent` with the wake time and reschedules
 * the message through the broker (`retry`, not counted as a failed retry) or drops it when another
 * message of the flow wakes it no later; the slot is free meanwhile.
 */
import { randomUUID } from 'node:crypto';
import { BadArgumentsError, TaskTimeoutError, toError } from '../errors.js';
import { encodeValue } from '../message.js';
import type { TaskMessage } from '../message.js';
import { setLongTimeout } from '../timers.js';
import { decodeArgs } from '../worker-args.js';
import type { Registration, WorkerContext } from '../worker-context.js';
import type { HandlerRunner, Outcome, RunHooks } from '../worker-handler.js';
import type { Job } from '../worker-job.js';
import type { JobRecorder } from '../worker-record.js';
import { FlowRun, type RunEnd } from './engine.js';
import { FINAL_FLOW_CODES, UnsupportedError } from './errors.js';
import { flowInfo } from './ids.js';
import { JournalView, metaEntry, readMeta, type FlowMeta } from './journal-view.js';
import { flowOf, type FlowDefinition } from './registry.js';

export { flowOf } from './registry.js';

/** Runs durable flows for one group worker. */
export class FlowRunner implements HandlerRunner {
  /** @param ctx server context @param hooks the worker's side of a run @param rec the worker's job operations */
  constructor(
    private readonly ctx: WorkerContext,
    private readonly hooks: RunHooks,
    private readonly rec: JobRecorder,
  ) {}

  /** @inheritdoc */
  async run(job: Job, reg: Registration): Promise<Outcome> {
    const msg = job.msg as TaskMessage;
    job.started();
    const startedAt = job.startedAt;
    const failure = (error: Error, retryable = false): Outcome => {
      this.hooks.handlerDone(job, undefined);
      return { kind: 'failure', error, retryable, deadLetter: false, startedAt };
    };
    if (job.aborted) return failure(toError(job.abortReason));
    const def = flowOf(reg) as FlowDefinition;
    const store = this.ctx.backend.journal;
    if (store === undefined) return failure(new UnsupportedError(`the ${this.ctx.backend.kind} backend cannot journal flows`));
    const ttl = this.ctx.settings.statusExpires;
    const info = flowInfo(msg);

    const runId = randomUUID();
    const leaseMs = this.ctx.settings.leaseMs;
    let view: JournalView;
    let meta: FlowMeta | undefined;
    try {
      // One run of a flow at a time: a wake-up that arrives while another run holds the flow is
      // remembered (that run then wakes again at once) and comes back when the lease ends.
      const entered = await store.enter(msg.id, runId, info.token ?? '', Date.now(), leaseMs, ttl);
      if (!entered.ok) {
        this.hooks.handlerDone(job, undefined);
        await this.rec.retry(job, msg, entered.until + 20, 'wait for the run of the flow in progress');
        return { kind: 'settled' };
      }
      const snapshot = await store.read(msg.id);
      view = new JournalView(store, msg.id, ttl, snapshot);
      meta = readMeta(snapshot);
      if (meta === undefined && info.wake === true) {
        // A wake-up for a flow that has not run yet (a signal sent early): its own message runs it.
        this.hooks.handlerDone(job, undefined);
        await store.leave(msg.id, runId);
        await this.drop(job);
        return { kind: 'settled' };
      }
      if (meta === undefined) {
        const fresh: FlowMeta = {
          args: msg.args, retriesLeft: msg.retriesLeft, retriesUsed: msg.retriesUsed, backoff: msg.backoff,
          sentAt: msg.sentAt, expireAt: msg.expireAt, timeoutMs: msg.timeoutMs, startedAt, gen: 0,
          ...(info.parent !== undefined ? { parent: info.parent } : {}),
        };
        const out = await view.put(metaEntry(fresh), 'absent');
        meta = JSON.parse(out.entry.value ?? '{}') as FlowMeta;
        if (out.written && this.ctx.listens('flowStarted')) this.ctx.emit('flowStarted', this.rec.event(msg));
      }
    } catch (err) {
      // The backend is unreachable: the message comes back after its lease.
      this.ctx.logger.warn('could not read a flow journal; the flow runs again after its lease', { id: msg.id, error: toError(err) });
      this.hooks.handlerDone(job, undefined);
      job.lost();
      return { kind: 'settled' };
    }
    const renew = setInterval(() => {
      store.enter(msg.id, runId, info.token ?? '', Date.now(), leaseMs, ttl).catch(() => undefined);
    }, Math.max(50, Math.floor(leaseMs / 3)));
    renew.unref();
    try {
      const outcome = await this.runFlow(job, reg, def, msg, info.token ?? '', runId, view, meta);
      if (outcome.kind === 'failure') await store.leave(msg.id, runId).catch(() => undefined);
      return outcome;
    } finally {
      clearInterval(renew);
    }
  }

  /** Runs the flow function once the run lease is held and the journal read. */
  private async runFlow(job: Job, reg: Registration, def: FlowDefinition, msg: TaskMessage, token: string, runId: string, view: JournalView, meta: FlowMeta): Promise<Outcome> {
    const startedAt = job.startedAt;
    const ttl = this.ctx.settings.statusExpires;
    const info = flowInfo(msg);
    const failure = (error: Error, retryable = false): Outcome => {
      this.hooks.handlerDone(job, undefined);
      return { kind: 'failure', error, retryable, deadLetter: false, startedAt };
    };
    if (info.wake === true) {
      // A wake-up carries no arguments or controls: those of the flow are in its journal.
      Object.assign(msg, { args: meta.args, backoff: meta.backoff, sentAt: meta.sentAt, expireAt: meta.expireAt, timeoutMs: meta.timeoutMs });
      if (msg.retriesLeft === 0 && msg.retriesUsed === 0) Object.assign(msg, { retriesLeft: meta.retriesLeft, retriesUsed: meta.retriesUsed });
      // A flow called as a child: the run that ends it must wake its parent, whichever message it runs on.
      if (meta.parent !== undefined) msg.flow = { ...(msg.flow ?? {}), parent: meta.parent };
    }

    let args: unknown[];
    try {
      args = decodeArgs({ ...reg, fn: def.fn as Registration['fn'], options: { ...reg.options, ctl: true } }, meta.args);
    } catch (err) {
      return failure(err instanceof BadArgumentsError ? err : new BadArgumentsError(toError(err).message));
    }

    const deadline = meta.timeoutMs === null ? Infinity : meta.startedAt + meta.timeoutMs;
    if (Date.now() >= deadline) return failure(new TaskTimeoutError(meta.timeoutMs ?? 0));
    const controller = new AbortController();
    job.controller = controller;
    const timer = deadline === Infinity ? undefined : setLongTimeout(() => job.abort(new TaskTimeoutError(meta.timeoutMs ?? 0)), deadline - Date.now(), true);
    const run = new FlowRun({
      target: { id: msg.id, group: msg.group, name: msg.name },
      gen: meta.gen,
      view,
      backend: this.ctx.backend,
      broker: this.ctx.broker,
      ttl,
      options: def.options,
      signal: controller.signal,
      stepDone: (entry) => {
        if (this.ctx.listens('stepDone')) {
          this.ctx.emit('stepDone', { ...this.rec.event(msg), step: entry.key, kind: entry.kind, status: entry.status === 'failed' ? 'failed' : 'done', attempts: entry.attempts });
        }
      },
    });
    this.hooks.started(msg);
    let end: RunEnd;
    try {
      end = await run.execute(def.fn, args);
    } finally {
      timer?.clear();
    }
    if (end.kind === 'return') {
      this.hooks.handlerDone(job, undefined);
      try {
        encodeValue(end.value, 'return value');
      } catch (err) {
        return failure(toError(err));
      }
      return { kind: 'success', value: end.value, startedAt };
    }
    if (end.kind === 'throw') {
      const e = toError(end.error);
      const code = (e as { code?: unknown }).code;
      return failure(e, !FINAL_FLOW_CODES.has(typeof code === 'string' ? code : '') && msg.retriesLeft > 0);
    }
    if (end.kind === 'fatal') return failure(end.error);
    if (end.kind === 'aborted') return failure(toError(end.reason));
    this.hooks.handlerDone(job, undefined);
    const wakeAt = Math.min(end.at, deadline, msg.expireAt ?? Infinity);
    await this.suspend(job, msg, token, runId, Math.max(wakeAt, Date.now()));
    return { kind: 'settled' };
  }

  /** Stores `sent` (due at the wake time) and reschedules or drops the message. */
  private async suspend(job: Job, msg: TaskMessage, token: string, runId: string, wakeAt: number): Promise<void> {
    const { rec, ctx } = this;
    const store = ctx.backend.journal;
    if (store === undefined) return;
    let decision: { reschedule: boolean; at: number };
    try {
      decision = await store.suspend(msg.id, token, wakeAt, ctx.settings.statusExpires, runId);
    } catch (err) {
      ctx.logger.warn('could not record a flow suspension; the flow runs again after its lease', { id: msg.id, error: toError(err) });
      job.lost();
      return;
    }
    const w = await rec.persist(job, { state: rec.state(msg, 'sent', { retryAt: decision.at }), stateTtl: ctx.settings.statusExpires, guard: 'notFinal' });
    if (w === undefined) return;
    if (!w.written) {
      // Final meanwhile (aborted, expired): never resumed.
      await rec.ack(job);
      return;
    }
    if (decision.reschedule) await rec.retry(job, msg, decision.at, 'reschedule a suspended flow');
    else await this.drop(job);
  }

  /** Removes a message that another message of the same flow stands for (no settle hook: the flow is not final). */
  private async drop(job: Job): Promise<void> {
    if (!job.held) return;
    try {
      await this.ctx.broker.ack(job.delivery);
      job.settled();
    } catch (err) {
      this.ctx.logger.warn('could not drop a duplicate flow message; it returns after its lease', { id: job.msg?.id, error: toError(err) });
    }
  }
}

/**
 * What the worker does before it acks or dead-letters a delivery whose final state is stored
 * ({@link JobRecorder.beforeSettle}): a child task wakes its parent flow (deterministic wake id, so
 * a duplicate after a crash is harmless: the parent's replay reads the child's stored state); a
 * flow that ended emits `flowDone`, aborts its pending children when it was aborted, and runs its
 * success or failure callback — at least once, deduplicated by a journal mark written after it.
 */
import { TaskFailedError, toError } from '../errors.js';
import { decodeValueText, encodeMessage, type FlowMessageInfo, type TaskMessage } from '../message.js';
import { isFinalStatus, type TaskState } from '../state.js';
import type { WorkerContext } from '../worker-context.js';
import type { Job } from '../worker-job.js';
import type { JournalEntry } from '../journal.js';
import { CALLBACKS_KEY, readMeta } from './journal-view.js';
import { childId, flowInfo, wakeMessage, type FlowTarget } from './ids.js';
import { fanCount, fanValues, fanSignal, type FanPayload } from './fan-in.js';
import { flowOf, type FlowDefinition } from './registry.js';

/**
 * The settle hook of a group worker. Never rejects. A task that is neither a flow nor a flow's child
 * (most tasks) has nothing to do here: undefined, at once (no promise to wait for).
 */
export function flowSettleHook(ctx: WorkerContext): (job: Job) => Promise<void> | undefined {
  return (job) => {
    const msg = job.msg;
    if (msg === undefined) return undefined;
    let def: FlowDefinition | undefined;
    try {
      const reg = ctx.lookup(msg.group, msg.name);
      def = reg === undefined ? undefined : flowOf(reg);
    } catch (err) {
      ctx.logger.warn('flow settle hook failed; the flow is woken by its re-check', { id: msg.id, error: toError(err) });
      return undefined;
    }
    if (def === undefined && msg.flow === undefined) return undefined;
    return settleFlowTask(ctx, job, msg, def);
  };
}

/** The settle hook's work for a flow (`def`) or a flow's child. Never rejects. */
async function settleFlowTask(ctx: WorkerContext, job: Job, msg: TaskMessage, def: FlowDefinition | undefined): Promise<void> {
  try {
    if (def !== undefined) await flowEnded(ctx, msg, def);
    const info = flowInfo(msg);
    const parent = info.parent;
    if (parent === undefined) return;
    if (info.fanIn !== undefined && (await countedIn(ctx, job, parent, info.fanIn))) return;
    await wakeFlow(ctx, parent, `c:${msg.id}`);
  } catch (err) {
    ctx.logger.warn('flow settle hook failed; the flow is woken by its re-check', { id: msg.id, error: toError(err) });
  }
}

/**
 * Counts a child of a counted fan-in (`fan-in.ts`) in: true when it need not wake its flow (it is
 * not the last one counted, and it succeeded or its fan-out is `settled`). Any failure to count in:
 * false (it wakes the flow).
 */
async function countedIn(ctx: WorkerContext, job: Job, parent: FlowTarget, fan: NonNullable<FlowMessageInfo['fanIn']>): Promise<boolean> {
  const store = ctx.backend.journal;
  if (store === undefined) return false;
  const done = job.succeeded;
  const payload: FanPayload = done === undefined ? { i: fan.index, s: 'final' } : { i: fan.index, s: 'success' };
  if (done?.result !== undefined) payload.v = done.result;
  try {
    const n = await store.signal(parent.id, fan.signal, JSON.stringify(payload), ctx.settings.statusExpires);
    // A settled fan-out waits for all its children anyway: only the last one counted wakes it.
    return (done !== undefined || fan.settled === true) && n + 1 < fan.total;
  } catch (err) {
    ctx.logger.warn('could not count a child in; it wakes its flow', { id: job.msg?.id, error: toError(err) });
    return false;
  }
}

/** Publishes a wake-up for a flow. */
export async function wakeFlow(ctx: Pick<WorkerContext, 'broker'>, target: FlowTarget, token: string): Promise<void> {
  await ctx.broker.publish(target.group, encodeMessage(wakeMessage(target, token)));
}

/** Aborts a child task (its `aborted` state; a running handler's signal fires at its next abort poll). */
export async function abortChild(ctx: Pick<WorkerContext, 'backend' | 'settings'>, id: string): Promise<void> {
  const current = await ctx.backend.read(id);
  if (current !== null && isFinalStatus(current.status)) return;
  const now = Date.now();
  const state: TaskState = {
    v: 1, id, group: current?.group ?? '', name: current?.name ?? '', status: 'aborted',
    retriesUsed: current?.retriesUsed ?? 0, retriesLeft: current?.retriesLeft ?? 0,
    error: { name: 'TaskAbortedError', message: 'the parent flow was aborted', code: 'ERR_ABORTED' },
    finishedAt: now, updatedAt: now,
  };
  await ctx.backend.write({ state, stateTtl: ctx.settings.statusExpires, guard: 'notFinal', previous: 'refused' });
}

async function flowEnded(ctx: WorkerContext, msg: TaskMessage, def: FlowDefinition): Promise<void> {
  const store = ctx.backend.journal;
  if (store === undefined) return;
  const state = await ctx.backend.read(msg.id);
  if (state === null || !isFinalStatus(state.status)) return;
  const snapshot = await store.read(msg.id);
  // The callbacks are claimed by a pending mark (taken over once it is older than a lease: its
  // worker died) and marked done after they ran: at least once, normally once.
  const mark = snapshot.entries.find((e) => e.key === CALLBACKS_KEY);
  const now = Date.now();
  if (mark?.status === 'done' || (mark !== undefined && (mark.until ?? 0) > now)) return;
  const claimMark: JournalEntry = { key: CALLBACKS_KEY, name: CALLBACKS_KEY, kind: 'mark', seq: -1, status: 'pending', attempts: 1, startedAt: now, until: now + ctx.settings.leaseMs };
  const claimed = await store.put(msg.id, claimMark, mark === undefined ? 'absent' : 'notFinal', ctx.settings.statusExpires);
  if (!claimed.written) return;
  if (state.status === 'aborted') {
    const children = snapshot.entries.filter((e) => e.kind === 'call' && e.status === 'pending' && e.child !== undefined).map((e) => e.child as string);
    // Children of a counted fan-in have no entries: their ids follow from the fan-out's key.
    const gen = readMeta(snapshot)?.gen ?? 0;
    const done = new Set(snapshot.entries.filter((e) => e.status !== 'pending').map((e) => e.key));
    for (const e of snapshot.entries) {
      const total = e.status === 'pending' ? fanCount(e) : undefined;
      if (total === undefined) continue;
      const known = fanValues(snapshot.signals[fanSignal(gen, e.key)], total);
      for (let i = 0; i < total; i++) if (!known.has(i) && !done.has(`${e.key}[${i}]`)) children.push(childId(msg.id, gen, `${e.key}[${i}]`));
    }
    await Promise.all(children.map((id) => abortChild(ctx, id)));
  }
  const event = { id: msg.id, group: msg.group, name: msg.name, retriesUsed: state.retriesUsed };
  ctx.emit('flowDone', { ...event, status: state.status });
  const info = { id: msg.id, group: msg.group, name: msg.name, status: state.status };
  try {
    if (state.status === 'success') {
      if (def.options.onSuccess !== undefined) {
        const text = await ctx.backend.readResult(msg.id);
        await def.options.onSuccess(text === null ? undefined : decodeValueText(text), info);
      }
    } else if (def.options.onFailure !== undefined) {
      const err = new TaskFailedError(state.error ?? { name: 'Error', message: `flow ended ${state.status}` });
      await def.options.onFailure(err, info);
    }
  } catch (err) {
    ctx.logger.warn('a flow callback threw', { id: msg.id, error: toError(err) });
  }
  await store.put(msg.id, { ...claimMark, status: 'done', finishedAt: Date.now() }, 'notFinal', ctx.settings.statusExpires);
}

/**
 * Child tasks of a flow (`flow.call`, `flow.callMany`): ordinary tasks with deterministic ids (flow
 * id, restart generation, step key) whose messages name the flow as their parent, so that the
 * worker that settles a child wakes the flow (see `settle.ts`). A replay reads the children's stored
 * states: it never sends a child twice, except one whose message was lost before its state was
 * written (sent again, harmlessly: same id).
 */
import { isFinalStatus } from '../state.js';
import { InvalidOptionError } from '../errors.js';
import type { JournalEntry } from '../journal.js';
import { decodeValueText, encodeMessage, encodeValue } from '../message.js';
import { assertName } from '../names.js';
import type { TaskRef } from '../task.js';
import { childMessage, childSentState } from './child-message.js';
import { SUSPEND, type OpResult } from './engine.js';
import { ChildFailedError } from './errors.js';
import { childId } from './ids.js';
import type { StepDeps } from './steps.js';
import type { CallManyOptions } from './types.js';

/** What child calls need from their run. */
export type ChildDeps = StepDeps;

/** The error of a failed child entry. */
function childError(e: JournalEntry): ChildFailedError {
  return new ChildFailedError(e.key, e.child ?? '', e.childStatus ?? 'failure', e.error ?? { name: 'Error', message: 'child failed' });
}

/** Calls (or replays) the children of step `key`: one for `call`, one per argument list for `calls`. */
export async function callChildren(
  run: ChildDeps,
  key: string,
  name: string,
  seq: number,
  kind: 'call' | 'calls',
  ref: TaskRef,
  argsList: ReadonlyArray<unknown[]>,
  options: CallManyOptions,
): Promise<OpResult<unknown[]>> {
  const { view, backend, broker, target, gen, ttl } = run.deps;
  assertName('group', ref?.group);
  assertName('task', ref.name);
  const policy = options.onFailure ?? 'failFast';
  const concurrency = options.concurrency ?? Math.max(1, argsList.length);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`concurrency must be a whole number ≥ 1, got ${String(concurrency)}`);
  const itemKey = (i: number): string => (kind === 'call' ? key : `${key}[${i}]`);
  const values = (): unknown[] =>
    argsList.map((_, i) => {
      const e = view.get(itemKey(i));
      return e?.status === 'done' && e.value !== undefined ? decodeValueText(e.value) : undefined;
    });
  const finalize = async (entry: JournalEntry): Promise<unknown[]> => {
    const out = await view.put(entry, 'notFinal');
    if (out.written) run.deps.stepDone(out.entry);
    if (out.entry.status === 'failed') throw childError(out.entry);
    return values();
  };

  let top = kind === 'calls' ? view.get(key) : undefined;
  if (kind === 'calls') {
    if (top !== undefined && top.status !== 'pending') {
      if (top.status === 'failed') throw childError(top);
      return values();
    }
    top ??= (await view.put({ key, name, kind, seq, status: 'pending', attempts: 0, startedAt: Date.now() }, 'absent')).entry;
  }

  const send = async (i: number, id: string): Promise<void> => {
    const now = Date.now();
    const msg = childMessage(id, ref, encodeValue(argsList[i], `arguments of child ${itemKey(i)}`), options, { parent: { id: target.id, group: target.group, name: target.name } }, now);
    // Published first: a crash before the state write leaves a message (and no state), which a replay sends again.
    await broker.publish(ref.group, encodeMessage(msg));
    await backend.write({ state: childSentState(msg, now), stateTtl: ttl, guard: 'absent', previous: 'refused' });
  };

  // Children already sent: read their states in one round trip and journal the ended ones.
  const pending = argsList.map((_, i) => i).filter((i) => view.get(itemKey(i))?.status === 'pending');
  const states = pending.length === 0 ? [] : await backend.readMany(pending.map((i) => view.get(itemKey(i))?.child ?? ''));
  await Promise.all(
    pending.map(async (i, n) => {
      const e = view.get(itemKey(i)) as JournalEntry;
      const state = states[n] ?? null;
      if (state === null) return send(i, e.child ?? '');
      if (!isFinalStatus(state.status)) return undefined;
      const ended: JournalEntry = { ...e, status: state.status === 'success' ? 'done' : 'failed', finishedAt: state.finishedAt ?? Date.now(), childStatus: state.status };
      if (state.status === 'success') {
        const result = await backend.readResult(e.child ?? '');
        if (result !== null) ended.value = result;
      } else {
        ended.error = state.error ?? { name: 'Error', message: `child ended ${state.status}` };
      }
      const out = await view.put(ended, 'notFinal');
      if (out.written && kind === 'call') run.deps.stepDone(out.entry);
      return undefined;
    }),
  );

  const entries = argsList.map((_, i) => view.get(itemKey(i)));
  const failedAt = entries.findIndex((e) => e?.status === 'failed');
  const failed = failedAt >= 0 ? (entries[failedAt] as JournalEntry) : undefined;
  if (failed !== undefined && policy === 'failFast') {
    if (kind === 'call') throw childError(failed);
    return finalize({ ...(top as JournalEntry), status: 'failed', finishedAt: Date.now(), error: failed.error ?? { name: 'Error', message: 'child failed' }, child: failed.child ?? '', childStatus: failed.childStatus ?? 'failure' });
  }
  // Children not sent yet, up to the bound: journaled and sent concurrently.
  let outstanding = entries.filter((e) => e?.status === 'pending').length;
  const toSend: number[] = [];
  for (let i = 0; i < argsList.length && outstanding < concurrency; i++) {
    if (entries[i] !== undefined) continue;
    toSend.push(i);
    outstanding++;
  }
  await Promise.all(
    toSend.map(async (i) => {
      const id = childId(target.id, gen, itemKey(i));
      const out = await view.put({ key: itemKey(i), name, kind: 'call', seq, status: 'pending', attempts: 1, startedAt: Date.now(), child: id }, 'absent');
      entries[i] = out.entry;
      if (out.written) await send(i, id);
    }),
  );
  if (entries.every((e) => e !== undefined && e.status !== 'pending')) {
    if (kind === 'call') return values();
    if (failed !== undefined && policy === 'waitAll') {
      return finalize({ ...(top as JournalEntry), status: 'failed', finishedAt: Date.now(), error: failed.error ?? { name: 'Error', message: 'child failed' }, child: failed.child ?? '', childStatus: failed.childStatus ?? 'failure' });
    }
    return finalize({ ...(top as JournalEntry), status: 'done', finishedAt: Date.now() });
  }
  return run.suspend(Date.now() + (run.deps.options.recheckMs ?? 60_000));
}

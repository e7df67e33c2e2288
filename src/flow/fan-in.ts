/**
 * A counted fan-in: the children of one fan-out (a workflow's group or chord of plain tasks) are
 * all sent at once, in batches, and each child *counts itself in* instead of waking the flow: the
 * worker that stores a child's final state appends a payload (its index, and its value when it
 * succeeded) to the flow's journal under the fan-out's signal name, an atomic append that returns
 * its position; only the child whose append is the last expected one (or, fail fast, one that did
 * not succeed) wakes the flow. Per child that is one journal write instead of a wake-up message, its fetch and
 * the flow's run it starts; the flow's last run takes the values from the payloads, reading no
 * states. Duplicates (a redelivered child counts itself in again) only make the count reach its end
 * early, which wakes the flow once more (harmless: it finds items still out and suspends).
 *
 * The payloads are the record: no item entries are journaled, except for the rare item whose state
 * had to be read (no payload: its worker crashed before counting in, or ended other than success).
 */
import { isFinalStatus, type TaskState } from '../state.js';
import type { JournalEntry } from '../journal.js';
import { decodeValueText, encodeMessage, type TaskMessage } from '../message.js';
import { encodeValueFast } from '../plain.js';
import { assertName } from '../names.js';
import type { TaskRef } from '../task.js';
import type { OpResult } from './engine.js';
import { childMessage, childSentState } from './child-message.js';
import { ChildFailedError } from './errors.js';
import { childId } from './ids.js';
import type { ChildDeps } from './children.js';
import type { CallOptions } from './types.js';

/** Children published in one batch; the batches go one after the other. */
const SEND_CHUNK = 100;

/** Signal name of the fan-out of step `key` in generation `gen` (`~` keeps it apart from user signals). */
export function fanSignal(gen: number, key: string): string {
  return `~fan:${gen}:${key}`;
}

/** What a child appends when it ends: its index, `success` with its value text, or `final` (read its state). */
export interface FanPayload {
  /** Index of the child in its fan-out. */
  i: number;
  /** `success`, or `final`: ended otherwise, or unknown (the flow reads its state). */
  s: 'success' | 'final';
  /** The value (superjson text) of a succeeded child whose result is stored. */
  v?: string;
}

/** The value of a fan-out's entry (as a value document): how many children it sent at once (abort and `getWorkflow` derive their ids). */
export interface FanMarker {
  /** Number of children. */
  fanIn: number;
}

/** The succeeded children known from the payloads of `list`: index → value text (undefined: no result stored). */
export function fanValues(list: ReadonlyArray<string> | undefined, total: number): Map<number, string | undefined> {
  const known = new Map<number, string | undefined>();
  for (const text of list ?? []) {
    let p: FanPayload;
    try {
      p = JSON.parse(text) as FanPayload;
    } catch {
      continue;
    }
    if (p.s === 'success' && Number.isInteger(p.i) && p.i >= 0 && p.i < total && !known.has(p.i)) known.set(p.i, typeof p.v === 'string' ? p.v : undefined);
  }
  return known;
}

/** The number of children of a pending fan-out entry sent by {@link callFanIn}, or undefined. */
export function fanCount(entry: JournalEntry): number | undefined {
  if (entry.kind !== 'calls' || entry.value === undefined) return undefined;
  try {
    const m = (JSON.parse(entry.value) as { json?: Partial<FanMarker> }).json;
    return typeof m?.fanIn === 'number' && Number.isInteger(m.fanIn) ? m.fanIn : undefined;
  } catch {
    return undefined;
  }
}

/** One child of a fan-out: its task, arguments and controls. */
export interface FanItem {
  /** The task. */
  ref: TaskRef;
  /** Its arguments. */
  args: unknown[];
  /** Its send controls. */
  options: CallOptions;
}

/** How one child ended, in a `settled` fan-out. */
export type FanOutcome = { ok: true; value: unknown } | { ok: false; error: ChildFailedError };

/**
 * Calls (or replays) the children of fan-out `key`; values in order. `settled`: every child ends and
 * each gives a {@link FanOutcome}; else the first failure seen throws (fail fast).
 */
export async function callFanIn(run: ChildDeps, key: string, name: string, seq: number, items: ReadonlyArray<FanItem>, settled: boolean): Promise<OpResult<unknown[]>> {
  const { view, backend, broker, target, gen, ttl } = run.deps;
  for (const item of items) {
    assertName('group', item.ref?.group);
    assertName('task', item.ref.name);
  }
  const total = items.length;
  const all = items.map((_, i) => i);
  const itemKey = (i: number): string => `${key}[${i}]`;
  const ids = items.map((_, i) => childId(target.id, gen, itemKey(i)));
  const signal = fanSignal(gen, key);
  const known = fanValues(view.snapshot.signals[signal], total);
  const ended = (i: number): boolean => {
    const st = view.get(itemKey(i))?.status;
    return st === 'done' || st === 'failed' || known.has(i);
  };
  const entryError = (e: JournalEntry): ChildFailedError => new ChildFailedError(e.key, e.child ?? '', e.childStatus ?? 'failure', e.error ?? { name: 'Error', message: 'child failed' });
  const values = (): unknown[] =>
    all.map((i) => {
      const e = view.get(itemKey(i));
      if (e?.status === 'failed') return { ok: false, error: entryError(e) } satisfies FanOutcome;
      const text = e?.status === 'done' ? e.value : known.get(i);
      const value = text === undefined ? undefined : decodeValueText(text);
      return settled ? ({ ok: true, value } satisfies FanOutcome) : value;
    });

  /** Publishes the children `indices` (one batch per group); resolves once published, with their state writes under way. */
  const sendChunk = async (indices: number[]): Promise<{ written: Promise<unknown> }> => {
    const now = Date.now();
    const msgs = indices.map((i): TaskMessage => {
      const { ref, args, options } = items[i] as FanItem;
      const flow = { parent: { id: target.id, group: target.group, name: target.name }, fanIn: { signal, total, index: i, ...(settled ? { settled: true } : {}) } };
      return childMessage(ids[i] as string, ref, encodeValueFast(args, `arguments of child ${itemKey(i)}`), options, flow, now);
    });
    const byGroup = new Map<string, TaskMessage[]>();
    for (const m of msgs) {
      const list = byGroup.get(m.group);
      if (list === undefined) byGroup.set(m.group, [m]);
      else list.push(m);
    }
    // Published first: a crash before the state writes leaves messages (and no states), which a replay sends again.
    await Promise.all([...byGroup].map(([group, list]) => broker.publishBatch(group, list.map((m) => ({ body: encodeMessage(m) })))));
    const written = Promise.all(msgs.map(async (m) => {
      await backend.write({ state: childSentState(m, now), stateTtl: ttl, guard: 'absent', previous: 'refused' });
    }));
    written.catch(() => undefined); // awaited by send(); never unhandled meanwhile
    return { written };
  };
  // In batches of SEND_CHUNK, one after the other: the first children can start while the rest are sent.
  const send = async (indices: number[]): Promise<void> => {
    const writes: Array<Promise<unknown>> = [];
    for (let k = 0; k < indices.length; k += SEND_CHUNK) writes.push((await sendChunk(indices.slice(k, k + SEND_CHUNK))).written);
    await Promise.all(writes);
  };

  const top = view.get(key);
  if (top?.status === 'failed') throw entryError(top);
  if (top?.status === 'done') return values();
  if (top === undefined) {
    const marker: FanMarker = { fanIn: total };
    // A value document as any entry's (so that `getFlow` can show it).
    const out = await view.put({ key, name, kind: 'calls', seq, status: 'pending', attempts: 1, startedAt: Date.now(), value: JSON.stringify({ json: marker }) }, 'absent');
    if (out.written) {
      await send(all);
      return run.suspend(Date.now() + (run.deps.options.recheckMs ?? 60_000));
    }
  }
  const pendingTop = view.get(key) as JournalEntry;

  // Children not counted in with a value: read their states (a lost message is sent again).
  const unknown = all.filter((i) => !ended(i));
  const states = unknown.length === 0 ? [] : await backend.readMany(unknown.map((i) => ids[i] as string));
  const resend: number[] = [];
  let failed: { i: number; state: TaskState } | undefined;
  await Promise.all(unknown.map(async (i, n) => {
    const state = states[n] ?? null;
    if (state === null) return void resend.push(i);
    if (!isFinalStatus(state.status)) return undefined;
    const base = { key: itemKey(i), name, kind: 'call' as const, seq, attempts: 1, startedAt: state.sentAt ?? Date.now(), finishedAt: state.finishedAt ?? Date.now(), child: ids[i] as string, childStatus: state.status };
    if (state.status !== 'success') {
      if (failed === undefined || i < failed.i) failed = { i, state };
      // Kept for the outcomes of a settled fan-out (a fail-fast one ends with the first failure).
      if (settled) await view.put({ ...base, status: 'failed', error: state.error ?? { name: 'Error', message: `child ended ${state.status}` } }, 'notFinal');
      return undefined;
    }
    const entry: JournalEntry = { ...base, status: 'done' };
    const result = await backend.readResult(ids[i] as string);
    if (result !== null) entry.value = result;
    await view.put(entry, 'notFinal');
    return undefined;
  }));
  const finalize = async (entry: JournalEntry): Promise<unknown[]> => {
    const out = await view.put(entry, 'notFinal');
    if (out.written) run.deps.stepDone(out.entry);
    if (out.entry.status === 'failed') throw entryError(out.entry);
    return values();
  };
  if (failed !== undefined && !settled) {
    const { i, state } = failed;
    const error = state.error ?? { name: 'Error', message: `child ended ${state.status}` };
    return finalize({ ...pendingTop, status: 'failed', finishedAt: Date.now(), error, child: ids[i] as string, childStatus: state.status });
  }
  await send(resend);
  if (all.every(ended)) return finalize({ ...pendingTop, status: 'done', finishedAt: Date.now() });
  return run.suspend(Date.now() + (run.deps.options.recheckMs ?? 60_000));
}

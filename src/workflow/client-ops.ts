/**
 * Client side of workflows: `client.chain` / `group` / `chord` send the workflow flow (in the group
 * of the workflow's first task) with the node tree as its argument; `client.getWorkflow` reads the
 * flow's state and journal and the states of its tasks.
 */
import type { Backend } from '../backend.js';
import { InvalidOptionError } from '../errors.js';
import { UnsupportedError } from '../flow/errors.js';
import { readMeta } from '../flow/journal-view.js';
import type { JournalEntry, JournalSnapshot } from '../journal.js';
import { fanSignal, fanValues } from '../flow/fan-in.js';
import { childId } from '../flow/ids.js';
import { decodeValue, decodeValueText } from '../message.js';
import type { SendOptions } from '../options.js';
import { taskRef, type TaskId, type TaskRef } from '../task.js';
import { ROOT_TASK, WORKFLOW_TASK, fanned, firstTask } from './flow.js';
import type { Step, WorkflowInfo, WorkflowNode, WorkflowStepInfo } from './types.js';
import { compact, expand, type WireNode } from './wire.js';

/** What sending a workflow needs from a client (its `send`, with its defaults and `with()` options). */
export interface WorkflowSender {
  /** The client's typed send. */
  send<A extends unknown[], R>(ref: TaskRef<A, R>, ...args: A): Promise<TaskId<R>>;
  /** A view with more send options. */
  with(options: SendOptions): WorkflowSender;
}

/** Sends the workflow whose root is `root`; resolves with its id. */
export async function sendWorkflow<R>(client: WorkflowSender, backend: Backend, root: Step): Promise<TaskId<R>> {
  if (backend.journal === undefined) throw new UnsupportedError(`workflows need a backend with flow journal storage; the ${backend.kind} backend has none`);
  if (root?.node === undefined) throw new InvalidOptionError('a workflow needs steps made with task(), chain(), group() or chord()');
  const ref = taskRef<[WireNode], R>(firstTask(root.node).group, WORKFLOW_TASK);
  // No retries of the workflow itself: a step's failure is final (steps have their own retries).
  return client.with({ retryCount: 0 }).send(ref, compact(root.node));
}

/** A task of the tree (`fan`: key of its batched fan-out, whose children have no entries of their own) or a nested branch. */
type Leaf = { path: string; key: string; node: Extract<WorkflowNode, { kind: 'task' }>; fan?: { key: string; index: number; total: number } } | { path: string; key: string; branch: WorkflowNode };

/** Leaf tasks of a tree with their paths and journal keys, in the order written. */
function leaves(node: WorkflowNode, path: string, out: Leaf[]): void {
  const sub = (p: string | number): string => (path === '' ? String(p) : `${path}.${p}`);
  if (node.kind === 'task') out.push({ path, key: `${path === '' ? ROOT_TASK : path}#0`, node });
  else if (node.kind === 'chain') node.steps.forEach((s, i) => leaves(s, sub(i), out));
  else {
    if (fanned(node.items)) {
      const fan = `${path === '' ? 'items' : path}#0`;
      node.items.forEach((s, i) => out.push({ path: sub(i), key: `${fan}[${i}]`, node: s as Extract<WorkflowNode, { kind: 'task' }>, fan: { key: fan, index: i, total: node.items.length } }));
    } else {
      node.items.forEach((s, i) => {
        // See runItems: only a task without runAfter runs inline; other items are child workflows.
        if (s.kind === 'task' && s.options.runAfter === undefined) out.push({ path: sub(i), key: `${sub(i)}#0`, node: s });
        else out.push({ path: sub(i), key: `${sub(i)}#0`, branch: s });
      });
    }
    if (node.kind === 'chord') leaves(node.callback, sub('cb'), out);
  }
}

/** Reads a workflow (`client.getWorkflow`); null when neither its state nor its journal is stored. */
export async function getWorkflow(backend: Backend, id: string): Promise<WorkflowInfo | null> {
  const journal = backend.journal;
  if (journal === undefined) throw new UnsupportedError(`the ${backend.kind} backend has no flow journal storage`);
  const [state, snapshot] = await Promise.all([backend.read(id), journal.read(id)]);
  const meta = readMeta(snapshot);
  if (state === null && meta === undefined) return null;
  const info: WorkflowInfo = { id, status: state?.status ?? null, steps: [] };
  if (state?.error !== undefined) info.error = state.error;
  if (state?.status === 'success') {
    const text = await backend.readResult(id);
    if (text !== null) info.value = decodeValueText(text);
  }
  if (meta === undefined) return info;
  const [root] = decodeValue(meta.args) as [WireNode];
  info.steps = await stepsOf(backend, id, snapshot, expand(root), '');
  return info;
}

/** The tasks of the tree `root` journaled in `snapshot` (absent: nothing sent yet), their paths under `prefix`. */
async function stepsOf(backend: Backend, flowId: string, snapshot: JournalSnapshot | undefined, root: WorkflowNode, prefix: string): Promise<WorkflowStepInfo[]> {
  const list: Leaf[] = [];
  leaves(root, '', list);
  const full = (p: string): string => (p === '' ? prefix : prefix === '' ? p : `${prefix}.${p}`);
  const gen = snapshot === undefined ? 0 : (readMeta(snapshot)?.gen ?? 0);
  const all = new Map((snapshot?.entries ?? []).map((e) => [e.key, e]));
  const fans = new Map<string, Map<number, string | undefined>>();
  const fanOf = (key: string, total: number): Map<number, string | undefined> => {
    let known = fans.get(key);
    if (known === undefined) fans.set(key, (known = fanValues(snapshot?.signals[fanSignal(gen, key)], total)));
    return known;
  };
  // A child of a counted fan-in has no entry: once its fan-out is journaled, its id follows from its key.
  const entries = list.map((leaf): JournalEntry | undefined => {
    const e = all.get(leaf.key);
    if (e?.kind === 'call') return e;
    if (!('fan' in leaf) || leaf.fan === undefined || all.get(leaf.fan.key) === undefined) return undefined;
    const known = fanOf(leaf.fan.key, leaf.fan.total);
    const base: JournalEntry = { key: leaf.key, name: leaf.fan.key, kind: 'call', seq: 0, status: 'pending', attempts: 1, startedAt: 0, child: childId(flowId, gen, leaf.key) };
    if (!known.has(leaf.fan.index)) return base;
    const text = known.get(leaf.fan.index);
    return text === undefined ? { ...base, status: 'done' } : { ...base, status: 'done', value: text };
  });
  const childIds = entries.map((e) => e?.child).filter((c): c is string => c !== undefined);
  const states = childIds.length === 0 ? [] : await backend.readMany(childIds);
  const byId = new Map(childIds.map((c, i) => [c, states[i] ?? null]));
  const groups = await Promise.all(list.map(async (leaf, i): Promise<WorkflowStepInfo[]> => {
    const e = entries[i];
    if ('branch' in leaf) {
      // A nested branch run as a child workflow: its tasks are in its own journal.
      const sub = e?.child === undefined || backend.journal === undefined ? undefined : await backend.journal.read(e.child);
      return stepsOf(backend, e?.child ?? '', sub, leaf.branch, full(leaf.path));
    }
    const s = e?.child === undefined ? null : (byId.get(e.child) ?? null);
    const step: WorkflowStepInfo = { path: full(leaf.path), group: leaf.node.group, name: leaf.node.name, status: s?.status ?? 'waiting', attempts: 0 };
    if (e?.child !== undefined) step.id = e.child;
    if (s !== null) {
      step.attempts = s.status === 'sent' ? s.retriesUsed : s.retriesUsed + 1;
      if (s.sentAt !== undefined) step.sentAt = new Date(s.sentAt);
      if (s.startedAt !== undefined) step.startedAt = new Date(s.startedAt);
      if (s.finishedAt !== undefined) step.finishedAt = new Date(s.finishedAt);
      if (s.error !== undefined) step.error = s.error;
    }
    if (e?.status === 'done' && e.value !== undefined) step.value = decodeValueText(e.value);
    else if (s?.status === 'success' && step.id !== undefined) {
      // Succeeded and not journaled yet (the workflow has not woken since).
      const text = await backend.readResult(step.id);
      if (text !== null) step.value = decodeValueText(text);
    }
    return [step];
  }));
  return groups.flat();
}

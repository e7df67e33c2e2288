/**
 * The built-in workflow flow: one durable flow (`tasuki.workflow`, available in every group a
 * server runs) that interprets a {@link WorkflowNode} tree. Each task is a child of the flow whose
 * journal key is its position (`0`, `1.0`, `2.cb`), never its name — so one task may appear any
 * number of times — and whose id is deterministic (`workflowId/1#0`). The worker that stores a
 * child's final state wakes the workflow (push-driven fan-in, no polling); a failed, expired or
 * aborted child throws and ends the workflow with it.
 */
import type { Flow } from '../flow/types.js';
import type { FlowRun } from '../flow/engine.js';
import type { FanItem, FanOutcome } from '../flow/fan-in.js';
import { ChildFailedError } from '../flow/errors.js';
import { registerFlow } from '../flow/registry.js';
import { toError } from '../errors.js';
import type { StoredError } from '../state.js';
import { taskRef } from '../task.js';
import type { Registration } from '../worker-context.js';
import type { CallOptions } from '../flow/types.js';
import type { Settled, WireControls, WorkflowNode } from './types.js';
import { compact, expand, type WireNode } from './wire.js';

/** Name of the workflow flow in every group. */
export const WORKFLOW_TASK = 'tasuki.workflow';

/** Journal name of a task at the root of a (child) workflow. */
export const ROOT_TASK = 'step';

/** Most tasks (and `runAfter` waits) one workflow may hold. */
export const MAX_WORKFLOW_STEPS = 100_000;

/** The value handed to a step: absent for a first step. */
type Input = { value: unknown } | undefined;

function sub(path: string, part: string | number): string {
  return path === '' ? String(part) : `${path}.${part}`;
}

function settledError(err: unknown): Settled<unknown> {
  if (err instanceof ChildFailedError) {
    const status = err.childStatus === 'expired' || err.childStatus === 'aborted' ? err.childStatus : 'failure';
    const error: StoredError = { name: err.originalName, message: err.message };
    if (err.originalCode !== undefined) error.code = err.originalCode;
    return { status, error };
  }
  throw err;
}

function callOptions(o: WireControls): CallOptions {
  const call: CallOptions = {};
  if (o.retryCount !== undefined) call.retryCount = o.retryCount;
  if (o.backoff !== undefined) call.backoff = o.backoff;
  if (o.timeout !== undefined) call.timeout = o.timeout;
  if (o.expireAt !== undefined) call.expireAt = o.expireAt;
  return call;
}

/** Runs `node` at `path` with `input`; resolves with its value. */
export async function runNode(flow: Flow, node: WorkflowNode, path: string, input: Input): Promise<unknown> {
  switch (node.kind) {
    case 'task': {
      // A task at the root (a branch run as a child workflow) is journaled as `step`.
      if (path === '') path = ROOT_TASK;
      const o = node.options;
      if (o.runAfter !== undefined && o.runAfter > 0) await flow.sleep(`${path}:after`, o.runAfter);
      const call = callOptions(o);
      const args = input === undefined ? node.args : [...node.args, input.value];
      return flow.callWith(path, taskRef(node.group, node.name), args, call);
    }
    case 'chain': {
      let cur = input;
      for (let i = 0; i < node.steps.length; i++) cur = { value: await runNode(flow, node.steps[i] as WorkflowNode, sub(path, i), cur) };
      return cur?.value;
    }
    case 'group':
      return runItems(flow, node.items, path, input, node.onFailure === 'settled');
    case 'chord': {
      const values = await runItems(flow, node.items, path, input, node.onFailure === 'settled');
      return runNode(flow, node.callback, sub(path, 'cb'), { value: values });
    }
  }
}

/**
 * Whether a group's items are sent as one counted fan-in (`src/flow/fan-in.ts`: one batch, each
 * child counts itself in, no wake-up per child): all plain tasks (any names, groups and controls)
 * without `runAfter`. Their journal keys are then `path#0[i]` (else each item's own `path.i#0`).
 */
export function fanned(items: WorkflowNode[]): boolean {
  return items.length > 0 && items.every((n) => n.kind === 'task' && n.options.runAfter === undefined);
}

/** Runs items in parallel (operations in a fixed order, so replays line up). */
async function runItems(flow: Flow, items: WorkflowNode[], path: string, input: Input, settled: boolean): Promise<unknown[]> {
  if (fanned(items)) {
    const fan: FanItem[] = items.map((n) => {
      const t = n as Extract<WorkflowNode, { kind: 'task' }>;
      return { ref: taskRef(t.group, t.name), args: input === undefined ? t.args : [...t.args, input.value], options: callOptions(t.options) };
    });
    // The workflow flow always runs on the engine's FlowRun, which has the counted fan-in.
    const out = await (flow as FlowRun).fanIn(path === '' ? 'items' : path, fan, settled);
    if (!settled) return out;
    return (out as FanOutcome[]).map((o): Settled<unknown> => (o.ok ? { status: 'success', value: o.value } : settledError(o.error)));
  }
  return Promise.all(
    items.map((item, i) => {
      // A task item with runAfter, a nested chain, group or chord has operations that start after
      // awaits, in an order timing would decide: it runs as a child workflow, with its own journal.
      // Plain task items start their operation now, in item order.
      const inline = item.kind === 'task' && item.options.runAfter === undefined;
      const p = inline
        ? runNode(flow, item, sub(path, i), input)
        : flow.callWith(sub(path, i), taskRef(firstTask(item).group, WORKFLOW_TASK), input === undefined ? [compact(item)] : [compact(item), input], { retryCount: 0 });
      return settled ? p.then((value): Settled<unknown> => ({ status: 'success', value }), settledError) : p;
    }),
  );
}

/**
 * The error a workflow ends with when a step failed, expired or was aborted: the step's own error
 * (its name and code), its message prefixed with the step's position and final status.
 */
export function stepError(err: ChildFailedError): Error {
  const text = err.message.replace(/^child .*? ended \w+: /, '');
  // A nested branch (a child workflow) failed with its own step's error: name that step.
  const inner = /^step (\S+) ended (\w+): ([\s\S]*)$/.exec(text);
  const e = inner === null
    ? new Error(`step ${stepPath(err)} ended ${err.childStatus}: ${text}`)
    : new Error(`step ${stepPath(err)}${inner[1] === ROOT_TASK ? '' : `.${inner[1] as string}`} ended ${inner[2] as string}: ${inner[3] as string}`);
  e.name = err.originalName;
  if (err.originalCode !== undefined) Object.assign(e, { code: err.originalCode });
  return e;
}

/** The position of the failed step: from its key (`1.2#0`), or its fan-out item (`items#0[3]` → `3`, `1#0[3]` → `1.3`). */
function stepPath(err: ChildFailedError): string {
  const item = /\[(\d+)\]$/.exec(err.childId);
  const base = err.step.replace(/#\d+$/, '');
  if (item === null) return base;
  return base === 'items' ? (item[1] as string) : `${base}.${item[1] as string}`;
}

/** The first task of a tree (a workflow runs in its group). */
export function firstTask(node: WorkflowNode): Extract<WorkflowNode, { kind: 'task' }> {
  switch (node.kind) {
    case 'task':
      return node;
    case 'chain':
      return firstTask(node.steps[0] as WorkflowNode);
    default:
      return firstTask(node.items[0] as WorkflowNode);
  }
}

/** The flow function of a workflow: its tree in wire form (`input`: the value given to a nested branch run as a child workflow). */
async function workflow(flow: Flow, root: WireNode, input?: { value: unknown }): Promise<unknown> {
  try {
    return await runNode(flow, expand(root), '', input);
  } catch (err) {
    throw err instanceof ChildFailedError ? stepError(err) : toError(err);
  }
}

/** The workflow flow registration of each group, made on first lookup (as schedule ticks). */
export class WorkflowFlows {
  private readonly regs = new Map<string, Registration>();

  /** The registration of the workflow flow in `group`; undefined for any other name. */
  lookup(group: string, name: string): Registration | undefined {
    if (name !== WORKFLOW_TASK) return undefined;
    let reg = this.regs.get(group);
    if (reg === undefined) {
      registerFlow((fn) => {
        reg = { group, name, fn, options: { args: ['object', 'object?'] } };
        return taskRef(group, name);
      }, workflow, { maxSteps: MAX_WORKFLOW_STEPS });
      this.regs.set(group, reg as unknown as Registration);
    }
    return reg;
  }
}

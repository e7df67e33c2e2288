/**
 * Builders of workflow steps: `task(ref, ...args)` (a task with its leading arguments bound, the
 * rest — the previous step's value — filled in when it runs), and `chain`, `group`, `chord` to nest
 * them. They check names and controls at once and produce the {@link WorkflowNode} tree the
 * workflow flow interprets.
 */
import { InvalidOptionError } from '../errors.js';
import { assertName } from '../names.js';
import { checkMs } from '../options.js';
import type { TaskRef } from '../task.js';
import type {
  GroupOptions, NestedChainCheck, GroupPolicy, GroupValue, ItemsCheck, LastOut, Step, StepControls, StepIn, StepMismatch, StepOut, StepOuts, TaskStep, WireControls, WorkflowNode,
} from './types.js';

/** The leading parts of an argument tuple that may be bound: `[]`, `[A0]`, `[A0, A1]`... */
export type BindablePrefix<A extends unknown[]> = A extends [infer F, ...infer R] ? [] | [F, ...BindablePrefix<R>] : A;

/** The arguments of `A` after the first `N`. */
export type DropArgs<A extends unknown[], N extends number, Seen extends unknown[] = []> = Seen['length'] extends N
  ? A
  : A extends []
    ? []
    : A extends [unknown?, ...infer R]
      ? DropArgs<R, N, [...Seen, unknown]>
      : A;

function checkControls(c: StepControls): WireControls {
  if (c === null || typeof c !== 'object') throw new InvalidOptionError('step controls must be an object');
  const out: WireControls = {};
  if (c.retryCount !== undefined) {
    if (!Number.isInteger(c.retryCount) || c.retryCount < 0) throw new InvalidOptionError(`retryCount must be a whole number ≥ 0, got ${String(c.retryCount)}`);
    out.retryCount = c.retryCount;
  }
  if (c.backoff !== undefined) out.backoff = c.backoff;
  if (c.runAfter !== undefined) out.runAfter = checkMs('runAfter', c.runAfter, 0);
  if (c.timeout !== undefined) out.timeout = checkMs('timeout', c.timeout, 1);
  if (c.expireAt !== undefined) {
    const at = c.expireAt instanceof Date ? c.expireAt.getTime() : c.expireAt;
    if (typeof at !== 'number' || !Number.isFinite(at)) throw new InvalidOptionError('expireAt must be a Date or epoch milliseconds');
    out.expireAt = at;
  }
  return out;
}

function taskStep<In extends unknown[], Out>(node: Extract<WorkflowNode, { kind: 'task' }>): TaskStep<In, Out> {
  return Object.freeze({
    node,
    with: (controls: StepControls): TaskStep<In, Out> => taskStep({ ...node, options: { ...node.options, ...checkControls(controls) } }),
  });
}

/**
 * A task step: `ref` with its leading arguments `args` bound. A first step binds all of them; a
 * later step binds all but the last, which receives the previous step's value (compile-time
 * checked in `chain`). `.with({ retryCount, backoff, runAfter, expireAt, timeout })` sets its controls.
 */
export function task<A extends unknown[], R, const B extends BindablePrefix<A>>(ref: TaskRef<A, R>, ...args: B): TaskStep<DropArgs<A, B['length']>, R> {
  if (ref === null || typeof ref !== 'object') throw new InvalidOptionError('task() needs a task reference (from server.add or taskRef)');
  assertName('group', ref.group);
  assertName('task', ref.name);
  return taskStep({ kind: 'task', group: ref.group, name: ref.name, args: [...(args as unknown[])], options: {} });
}

function nodes(list: ReadonlyArray<Step>, what: string): WorkflowNode[] {
  if (!Array.isArray(list) || list.length === 0) throw new InvalidOptionError(`${what} needs at least one step`);
  return list.map((s) => {
    if (s === null || typeof s !== 'object' || s.node === undefined) throw new InvalidOptionError(`${what}: every step must come from task(), chain(), group() or chord()`);
    return s.node;
  });
}

function policy(options: GroupOptions | undefined): GroupPolicy {
  const p = options?.onFailure ?? 'failFast';
  if (p !== 'failFast' && p !== 'settled') throw new InvalidOptionError(`onFailure must be 'failFast' or 'settled', got ${String(p)}`);
  return p;
}

/** A nested chain: the first step takes what the chain is given, each next one the previous value. */
export function chain<const S extends readonly [Step, ...Step[]]>(...steps: S & NestedChainCheck<S>): Step<StepIn<S[0]>, LastOut<S>> {
  return Object.freeze({ node: { kind: 'chain' as const, steps: nodes(steps, 'chain') } });
}

/**
 * A group: its items run in parallel (each given what the group is given); its value is their
 * values in order (or, with `onFailure: 'settled'`, their outcomes).
 */
export function group<const S extends readonly [Step, ...Step[]] | readonly Step[], P extends GroupPolicy = 'failFast'>(items: S, options?: GroupOptions<P>): Step<StepIn<S[number]>, GroupValue<S, P>> {
  return Object.freeze({ node: { kind: 'group' as const, items: nodes(items, 'group'), onFailure: policy(options) } });
}

/** A chord: a group whose array of values (or outcomes) is passed to `callback`. */
export function chord<const S extends readonly [Step, ...Step[]] | readonly Step[], C extends Step, P extends GroupPolicy = 'failFast'>(
  items: S,
  callback: C & CallbackCheck<C, GroupValue<S, P>>,
  options?: GroupOptions<P>,
): Step<StepIn<S[number]>, StepOut<C>> {
  const cb = nodes([callback], 'chord callback')[0] as WorkflowNode;
  return Object.freeze({ node: { kind: 'chord' as const, items: nodes(items, 'chord'), callback: cb, onFailure: policy(options) } });
}

/** A chord callback that takes the group's value, or a type no step has. */
export type CallbackCheck<C, V> = [V] extends StepIn<C> ? unknown : StepMismatch<V, StepIn<C>>;

/** Items of a top-level group / chord (re-exported for the client's signatures). */
export type { ItemsCheck, StepOuts };

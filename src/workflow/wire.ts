/**
 * The wire form of a workflow's tree, as it travels in the workflow's arguments (and so in its
 * message, its journal's meta record and every reschedule of it): a group or chord whose items are
 * all tasks of one group and name with equal controls is sent as one `batch` (the task once, the
 * argument lists beside each other) instead of one node per item — for a chord of 1 000 children
 * an eighth of the bytes. {@link compact} makes it, {@link expand} undoes it (and passes any other
 * node through, so a plain tree is valid wire form too).
 */
import type { GroupPolicy, WireControls, WorkflowNode } from './types.js';

/** Items of one task, with equal controls. */
export interface WireBatch {
  /** Group of the task. */
  group: string;
  /** Task name. */
  name: string;
  /** Controls of every item. */
  options: WireControls;
  /** Each item's bound arguments. */
  args: unknown[][];
}

/** A node in wire form. */
export type WireNode =
  | Extract<WorkflowNode, { kind: 'task' }>
  | { kind: 'chain'; steps: WireNode[] }
  | { kind: 'group'; items: WireNode[] | WireBatch; onFailure: GroupPolicy }
  | { kind: 'chord'; items: WireNode[] | WireBatch; callback: WireNode; onFailure: GroupPolicy };

/** Fewest items worth a batch. */
const MIN_BATCH = 2;

function batchOf(items: WorkflowNode[]): WireBatch | undefined {
  const first = items[0];
  if (items.length < MIN_BATCH || first?.kind !== 'task') return undefined;
  const controls = JSON.stringify(first.options);
  const same = items.every((n) => n.kind === 'task' && n.group === first.group && n.name === first.name && JSON.stringify(n.options) === controls);
  if (!same) return undefined;
  return { group: first.group, name: first.name, options: first.options, args: items.map((n) => (n as Extract<WorkflowNode, { kind: 'task' }>).args) };
}

/** The wire form of `node`. */
export function compact(node: WorkflowNode): WireNode {
  switch (node.kind) {
    case 'task':
      return node;
    case 'chain':
      return { kind: 'chain', steps: node.steps.map(compact) };
    case 'group':
      return { kind: 'group', items: batchOf(node.items) ?? node.items.map(compact), onFailure: node.onFailure };
    case 'chord':
      return { kind: 'chord', items: batchOf(node.items) ?? node.items.map(compact), callback: compact(node.callback), onFailure: node.onFailure };
  }
}

function expandItems(items: WireNode[] | WireBatch): WorkflowNode[] {
  if (Array.isArray(items)) return items.map(expand);
  const { group, name, options } = items;
  return items.args.map((args): WorkflowNode => ({ kind: 'task', group, name, args, options }));
}

/** The tree of a wire form (a plain tree comes back as it is). */
export function expand(node: WireNode): WorkflowNode {
  switch (node.kind) {
    case 'task':
      return node;
    case 'chain':
      return { kind: 'chain', steps: node.steps.map(expand) };
    case 'group':
      return { kind: 'group', items: expandItems(node.items), onFailure: node.onFailure };
    case 'chord':
      return { kind: 'chord', items: expandItems(node.items), callback: expand(node.callback), onFailure: node.onFailure };
  }
}

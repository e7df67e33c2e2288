/**
 * Public types of workflows of plain tasks (chain, group, chord): typed steps, per-step controls,
 * the failure policy of fan-outs, and what `client.getWorkflow` returns.
 */
import type { Backoff } from '../message.js';
import type { StoredError, TaskStatus } from '../state.js';

/** Send controls of one step (each step is an ordinary child task). */
export interface StepControls {
  /** Retries of the step after a failed run (default 3, as any task). */
  retryCount?: number;
  /** Delay between the step's retries. */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** Wait this many ms (a durable sleep of the workflow, no slot held) before the step is sent. */
  runAfter?: number;
  /** The step never runs after this time: still waiting then, it ends `expired` (and so does the workflow). */
  expireAt?: Date | number;
  /** Per-run handler timeout of the step in ms. */
  timeout?: number;
}

/** What a group or chord does when one of its items fails, expires or is aborted. */
export type GroupPolicy = 'failFast' | 'settled';

/** Options of a group or chord. */
export interface GroupOptions<P extends GroupPolicy = GroupPolicy> {
  /**
   * `failFast` (default): the workflow fails with the first item failure seen, its other items are
   * left to finish (their outcomes are ignored) and nothing after the group runs. `settled`: every
   * item ends, and the group's value is one {@link Settled} per item, in order.
   */
  onFailure?: P;
}

/** One item's outcome in a `settled` group. */
export type Settled<T> = { status: 'success'; value: T } | { status: 'failure' | 'expired' | 'aborted'; error: StoredError };

/** A node of a workflow as it travels in the workflow's arguments. */
export type WorkflowNode =
  | { kind: 'task'; group: string; name: string; args: unknown[]; options: WireControls }
  | { kind: 'chain'; steps: WorkflowNode[] }
  | { kind: 'group'; items: WorkflowNode[]; onFailure: GroupPolicy }
  | { kind: 'chord'; items: WorkflowNode[]; callback: WorkflowNode; onFailure: GroupPolicy };

/** {@link StepControls} with the time as epoch ms. */
export interface WireControls {
  /** See {@link StepControls.retryCount}. */
  retryCount?: number;
  /** See {@link StepControls.backoff}. */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** See {@link StepControls.runAfter}. */
  runAfter?: number;
  /** See {@link StepControls.expireAt} (epoch ms). */
  expireAt?: number;
  /** See {@link StepControls.timeout}. */
  timeout?: number;
}

/**
 * A workflow step: `In` is the tuple of arguments it still needs — `[]` for a step that needs
 * nothing (a first step), `[P]` for one that takes the previous step's value — and `Out` its value.
 * Types exist at compile time only.
 */
export interface Step<In extends unknown[] = unknown[], Out = unknown> {
  /** What runs. */
  readonly node: WorkflowNode;
  /** Phantom field carrying the types; never set at run time. */
  readonly __step?: { in: In; out: Out };
}

/** A task step: a {@link Step} that takes send controls. */
export interface TaskStep<In extends unknown[] = unknown[], Out = unknown> extends Step<In, Out> {
  /** The same step with these controls (over the ones it has). */
  with(controls: StepControls): TaskStep<In, Out>;
}

/** The arguments a step still needs. */
export type StepIn<S> = S extends Step<infer In, unknown> ? In : never;
/** A step's value. */
export type StepOut<S> = S extends Step<unknown[], infer O> ? O : never;

/** The values of a tuple (or array) of steps. */
export type StepOuts<S extends readonly unknown[]> = { -readonly [K in keyof S]: StepOut<S[K]> };

/** The compile error shown for a step that cannot take the previous value. */
export interface StepMismatch<Prev, In> {
  /** Read the message. */
  readonly 'this step cannot take the previous step\'s value': { previous: Prev; stepNeeds: In };
}

/** The compile error shown for a first step that still needs arguments. */
export interface StepNeedsArguments<In> {
  /** Read the message. */
  readonly 'a first step must have all its arguments bound': { stepNeeds: In };
}

/** Checks a tuple of chain steps: each element is the step itself, or a type no step has. */
export type ChainCheck<S extends readonly unknown[], Prev = never, First extends boolean = true> = S extends readonly [infer H, ...infer T]
  ? [
      First extends true
        ? ([] extends StepIn<H> ? H : StepNeedsArguments<StepIn<H>>)
        : ([Prev] extends StepIn<H> ? H : StepMismatch<Prev, StepIn<H>>),
      ...ChainCheck<T, StepOut<H>, false>,
    ]
  : [];

/** Checks a nested chain's steps: its first step takes what the chain is given (unchecked), the rest as in {@link ChainCheck}. */
export type NestedChainCheck<S extends readonly unknown[]> = S extends readonly [infer H, ...infer T] ? [H, ...ChainCheck<T, StepOut<H>, false>] : [];

/** Checks items of a top-level group or chord: each must need no arguments. */
export type ItemsCheck<S extends readonly unknown[]> = { [K in keyof S]: [] extends StepIn<S[K]> ? S[K] : StepNeedsArguments<StepIn<S[K]>> };

/** The last element's value of a tuple of steps. */
export type LastOut<S extends readonly unknown[]> = S extends readonly [...unknown[], infer L] ? StepOut<L> : unknown;

/** A group's value under a policy. */
export type GroupValue<S extends readonly unknown[], P extends GroupPolicy> = P extends 'settled' ? { -readonly [K in keyof S]: Settled<StepOut<S[K]>> } : StepOuts<S>;

/** One task of a workflow, as {@link WorkflowInfo} shows it. */
export interface WorkflowStepInfo {
  /** Position in the workflow: `0`, `1`, `1.0` (item 0 of the group at step 1), `2.cb` (a chord's callback). */
  path: string;
  /** Group of the task. */
  group: string;
  /** Task name. */
  name: string;
  /** `waiting` (not sent yet) or the task's own status. */
  status: TaskStatus | 'waiting';
  /** The step's task id (an ordinary task: `client.getStatus(id)` works on it), once sent. */
  id?: string;
  /** Runs started (retries included). */
  attempts: number;
  /** When the step was sent. */
  sentAt?: Date;
  /** When its last run started. */
  startedAt?: Date;
  /** When it ended. */
  finishedAt?: Date;
  /** Its value, once it succeeded. */
  value?: unknown;
  /** Its error, once it failed, expired or was aborted. */
  error?: StoredError;
}

/** What `client.getWorkflow` returns. */
export interface WorkflowInfo {
  /** Workflow id. */
  id: string;
  /** The workflow's own status (`sent` while it waits on a step), or null when its state expired. */
  status: TaskStatus | null;
  /** Every task of the workflow, in the order written. */
  steps: WorkflowStepInfo[];
  /** The workflow's value (the last step's), once it succeeded. */
  value?: unknown;
  /** The workflow's error, once it failed. */
  error?: StoredError;
}

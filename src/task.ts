/**
 * Task references and handler types: what `server.add` registers and returns, and what
 * `client.send(ref, ...args)` type-checks against.
 */
import type { TaskCtl } from './ctl.js';

/** A branded task id: a string that also remembers, at compile time, what the task returns. */
export type TaskId<R = unknown> = string & { readonly __tasukiResult?: R };

/**
 * A typed reference to a registered task: group and name plus, at compile time only, its argument
 * tuple `A` and (awaited) return type `R`.
 */
export interface TaskRef<A extends unknown[] = unknown[], R = unknown> {
  /** Group (queue) of the task. */
  readonly group: string;
  /** Task name within the group. */
  readonly name: string;
  /** Phantom field carrying the argument types; never set at run time. */
  readonly __args?: A;
  /** Phantom field carrying the result type; never set at run time. */
  readonly __result?: R;
}

/** A plain handler: receives the task arguments. */
export type PlainHandler<A extends unknown[], R> = (...args: A) => R | Promise<R>;

/** A handler that receives the task control object first (`server.add(..., { ctl: true })`). */
export type CtlHandler<A extends unknown[], R> = (ctl: TaskCtl, ...args: A) => R | Promise<R>;

/**
 * True when the first element of an argument tuple is a {@link TaskCtl} (and not `any`): such a
 * handler must be registered with `{ ctl: true }`.
 */
export type FirstIsCtl<A extends unknown[]> = A extends [infer F, ...unknown[]]
  ? 0 extends 1 & F
    ? false
    : [F] extends [TaskCtl]
      ? true
      : false
  : false;

/**
 * The type a plain handler must have: the handler itself, or — when its first parameter is a
 * {@link TaskCtl} — a type no function has, whose text tells what to do (it shows in the compile error).
 */
export type PlainHandlerCheck<A extends unknown[], R> =
  FirstIsCtl<A> extends true ? PlainHandler<A, R> & 'a handler whose first parameter is a TaskCtl must be registered with { ctl: true }' : PlainHandler<A, R>;

/** Argument types of a handler function type (without the leading `TaskCtl`, when there is one). */
export type HandlerArgs<F> = F extends (ctl: TaskCtl, ...args: infer A) => unknown
  ? A
  : F extends (...args: infer A) => unknown
    ? A
    : never;

/** Awaited return type of a handler function type. */
export type HandlerResult<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

/** Names of the run-time argument types an {@link ArgSpec} can check. */
export type ArgType = 'string' | 'number' | 'boolean' | 'bigint' | 'object' | 'array' | 'date' | 'map' | 'set' | 'null' | 'any';

/**
 * Run-time check of incoming arguments (the compile-time check covers senders that use a
 * {@link TaskRef}; this one also covers untyped and foreign senders):
 * - an array of {@link ArgType}: exact count and the type of each argument (append `?` to allow
 *   `undefined`, e.g. `'number?'`);
 * - a function that throws (any error) when the arguments are wrong and may return them transformed
 *   (a zod schema's `parse` fits: `args: (a) => schema.parse(a)`).
 */
export type ArgSpec = ReadonlyArray<ArgType | `${ArgType}?`> | ((args: unknown[]) => unknown[] | void);

/** Options of `server.add`. */
export interface AddOptions {
  /** Pass the task control object as the handler's first argument. */
  ctl?: boolean;
  /** Default per-task handler timeout in ms when the sender gave none (absent: no timeout). */
  timeout?: number;
  /** Run-time argument check. Without it, only "at least as many arguments as the handler declares" is checked. */
  args?: ArgSpec;
}

/** Creates a typed reference without registering a handler (for client processes). */
export function taskRef<F extends (...args: never[]) => unknown>(group: string, name: string): TaskRef<HandlerArgs<F>, HandlerResult<F>>;
/** Creates a typed reference from explicit argument and result types. */
export function taskRef<A extends unknown[], R>(group: string, name: string): TaskRef<A, R>;
/**
 * Creates a typed reference to a task by group and name, for processes that send but do not run the
 * task: `const add = taskRef<typeof addHandler>('math', 'add')` or `taskRef<[number, number], number>('math', 'add')`.
 */
export function taskRef(group: string, name: string): TaskRef {
  return Object.freeze({ group, name });
}

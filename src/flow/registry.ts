/**
 * Which registrations are durable flows: `server.flow` registers a marker handler through
 * `server.add` and remembers the flow beside it; the worker asks {@link flowOf} for each run.
 */
import type { Backend, Expiry } from '../backend.js';
import { InvalidOptionError } from '../errors.js';
import { checkMs } from '../options.js';
import type { TaskRef } from '../task.js';
import type { Registration } from '../worker-context.js';
import { UnsupportedError } from './errors.js';
import type { FlowHandler, FlowOptions } from './types.js';

/** A registered flow. */
export interface FlowDefinition {
  /** The flow function. */
  readonly fn: FlowHandler<unknown[], unknown>;
  /** Its options. */
  readonly options: FlowOptions;
}

const flows = new WeakMap<object, FlowDefinition>();

/** The flow behind a registration, or undefined for a plain task. */
export function flowOf(reg: Registration): FlowDefinition | undefined {
  return flows.get(reg.fn);
}

/**
 * Registers `fn` as a flow with `add` (the server's `add`, bound to group and name); the
 * registered handler is a marker that is never called as a plain handler.
 */
export function registerFlow<A extends unknown[], R>(
  add: (fn: (...args: never[]) => unknown, options: { args?: FlowOptions['args'] }) => TaskRef,
  fn: FlowHandler<A, R>,
  options: FlowOptions<Awaited<R>>,
): TaskRef<A, Awaited<R>> {
  if (typeof fn !== 'function') throw new InvalidOptionError('a flow must be a function');
  if (options.maxSteps !== undefined && (!Number.isInteger(options.maxSteps) || options.maxSteps < 1)) {
    throw new InvalidOptionError(`maxSteps must be a whole number ≥ 1, got ${String(options.maxSteps)}`);
  }
  if (options.maxValueBytes !== undefined && (!Number.isInteger(options.maxValueBytes) || options.maxValueBytes < 1)) {
    throw new InvalidOptionError(`maxValueBytes must be a whole number ≥ 1, got ${String(options.maxValueBytes)}`);
  }
  if (options.recheckMs !== undefined) checkMs('recheckMs', options.recheckMs, 10);
  const marker = (): never => {
    throw new InvalidOptionError('a flow is run by the flow engine, not as a plain handler');
  };
  const addOptions: { args?: FlowOptions['args'] } = {};
  if (options.args !== undefined) addOptions.args = options.args;
  const ref = add(marker, addOptions);
  flows.set(marker, { fn: fn as FlowHandler<unknown[], unknown>, options: { ...(options as FlowOptions) } });
  return ref as TaskRef<A, Awaited<R>>;
}

/**
 * Refuses to run `group` when it has flows and the backend cannot journal them (no
 * `backend.journal`) or states are not stored (`statusExpires` 0).
 */
export function assertFlowsRunnable(regs: Iterable<Registration>, group: string, backend: Backend, statusExpires: Expiry): void {
  for (const reg of regs) {
    if (reg.group !== group || flowOf(reg) === undefined) continue;
    if (backend.journal === undefined) {
      throw new UnsupportedError(`flow "${reg.name}" of group "${group}" needs a backend with flow journal storage; the ${backend.kind} backend has none`);
    }
    if (statusExpires === 0) throw new UnsupportedError(`flow "${reg.name}" needs stored states: statusExpires must not be 0`);
  }
}

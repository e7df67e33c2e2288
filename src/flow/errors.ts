/** Typed errors of durable flows (codes in `src/errors.ts`'s {@link ErrorCode}). */
import { TasukiError, type ErrorCode } from '../errors.js';
import type { StoredError } from '../state.js';

export { UnsupportedError } from '../errors.js';

/**
 * On replay, the flow's code reached an operation that the journal records differently (another
 * name or kind at that position): the code changed in a way that is not replay-safe. Never retried.
 * Guard changed code with `flow.patched(id)`.
 */
export class FlowDivergedError extends TasukiError {
  /** Position of the operation in code order. */
  readonly position: number;
  /** What the journal holds there (`kind name#occurrence`). */
  readonly recorded: string;
  /** What the code does there now. */
  readonly found: string;
  /** @param position operation position @param recorded journal's operation @param found code's operation */
  constructor(position: number, recorded: string, found: string) {
    super('ERR_FLOW_DIVERGED', `flow diverged from its journal at operation #${position}: the journal records ${recorded}, the code now runs ${found}`);
    this.position = position;
    this.recorded = recorded;
    this.found = found;
  }
}

/** A flow went past its step limit (`maxSteps`, default 1000). Never retried. */
export class FlowLimitError extends TasukiError {
  /** @param limit the limit */
  constructor(limit: number) {
    super('ERR_FLOW_LIMIT', `flow ran more than ${limit} operations (maxSteps)`);
  }
}

/** `restartFlow` on a flow that is not finished. */
export class FlowRunningError extends TasukiError {
  /** @param id flow id @param status its status */
  constructor(id: string, status: string) {
    super('ERR_FLOW_RUNNING', `flow ${id} is ${status}: only a finished flow can be restarted`);
  }
}

/** Re-created error of a journal entry: the same on the first run and on every replay. */
abstract class StoredFlowError extends TasukiError {
  /** Class name of the original error. */
  readonly originalName: string;
  /** Code of the original error, if it had one. */
  readonly originalCode: string | undefined;
  protected constructor(code: ErrorCode, message: string, stored: StoredError) {
    super(code, message);
    this.originalName = stored.name;
    this.originalCode = stored.code;
  }
}

/** A step exhausted its attempts (or failed with a non-retried error); `originalCode` tells why. */
export class StepFailedError extends StoredFlowError {
  /** Step key (`name#occurrence`). */
  readonly step: string;
  /** @param step step key @param stored the stored error of its last attempt */
  constructor(step: string, stored: StoredError) {
    super('ERR_STEP_FAILED', `step ${step} failed: ${stored.message}`, stored);
    this.step = step;
  }
}

/** A child task of `flow.call` / `flow.callMany` ended without success. */
export class ChildFailedError extends StoredFlowError {
  /** Step key of the call. */
  readonly step: string;
  /** Id of the child task. */
  readonly childId: string;
  /** Final status of the child (`failure`, `expired`, `aborted`). */
  readonly childStatus: string;
  /** @param step step key @param childId child id @param status its status @param stored its stored error */
  constructor(step: string, childId: string, status: string, stored: StoredError) {
    super('ERR_CHILD_FAILED', `child ${childId} of step ${step} ended ${status}: ${stored.message}`, stored);
    this.step = step;
    this.childId = childId;
    this.childStatus = status;
  }
}

/** `flow.waitFor` with a timeout saw no signal in time. */
export class SignalTimeoutError extends TasukiError {
  /** @param name signal name @param ms the timeout */
  constructor(name: string, ms: number) {
    super('ERR_SIGNAL_TIMEOUT', `no signal "${name}" within ${ms} ms`);
  }
}

/** Codes that fail a flow for good when uncaught (replaying would throw them again). */
export const FINAL_FLOW_CODES: ReadonlySet<string> = new Set([
  'ERR_FLOW_DIVERGED',
  'ERR_FLOW_LIMIT',
  'ERR_STEP_FAILED',
  'ERR_CHILD_FAILED',
  'ERR_SIGNAL_TIMEOUT',
  'ERR_BAD_ARGS',
  'ERR_UNSUPPORTED',
  'ERR_ABORTED',
  'ERR_TASK_TIMEOUT',
  'ERR_NOT_SERIALIZABLE',
  'ERR_VALUE_TOO_LARGE',
]);

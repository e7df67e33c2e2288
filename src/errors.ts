/**
 * Typed errors of tasuki. Every error the library throws or stores in a result is an instance of
 * {@link TasukiError} with a stable string `code`, so callers can branch on `err.code` instead of
 * parsing messages.
 */

/** Stable codes of every error tasuki raises. */
export type ErrorCode =
  | 'ERR_INVALID_NAME'
  | 'ERR_INVALID_OPTION'
  | 'ERR_NOT_SERIALIZABLE'
  | 'ERR_DECODE'
  | 'ERR_UNKNOWN_TASK'
  | 'ERR_BAD_ARGS'
  | 'ERR_TASK_TIMEOUT'
  | 'ERR_TASK_FAILED'
  | 'ERR_NON_ERROR_THROWN'
  | 'ERR_RESULT_TIMEOUT'
  | 'ERR_ABORTED'
  | 'ERR_EXPIRED'
  | 'ERR_SHUTDOWN'
  | 'ERR_CLOSED'
  | 'ERR_CONNECTION'
  | 'ERR_DATABASE'
  | 'ERR_VALUE_TOO_LARGE'
  | 'ERR_TOPOLOGY_MISMATCH'
  | 'ERR_SHARDS_MISMATCH'
  | 'ERR_DUPLICATE_TASK'
  | 'ERR_NOT_FOUND'
  | 'ERR_TOO_MANY_DELIVERIES'
  // Durable flows (classes in src/flow/errors.ts):
  | 'ERR_UNSUPPORTED'
  | 'ERR_FLOW_DIVERGED'
  | 'ERR_FLOW_LIMIT'
  | 'ERR_FLOW_RUNNING'
  | 'ERR_STEP_FAILED'
  | 'ERR_CHILD_FAILED'
  | 'ERR_SIGNAL_TIMEOUT';

/** Base class of all tasuki errors. */
export class TasukiError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;

  /**
   * @param code stable error code
   * @param message human readable message
   * @param options standard `cause`
   */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A group or task name is empty, too long or contains characters outside `[A-Za-z0-9_.:-]`. */
export class InvalidNameError extends TasukiError {
  /** @param message what is wrong with the name */
  constructor(message: string) {
    super('ERR_INVALID_NAME', message);
  }
}

/** A configuration or per-send option has an invalid value. */
export class InvalidOptionError extends TasukiError {
  /** @param message which option and why */
  constructor(message: string) {
    super('ERR_INVALID_OPTION', message);
  }
}

/** Arguments or a return value cannot be encoded (functions, symbols, circular structures...). */
export class NotSerializableError extends TasukiError {
  /** @param message what could not be encoded @param cause underlying error */
  constructor(message: string, cause?: unknown) {
    super('ERR_NOT_SERIALIZABLE', message, { cause });
  }
}

/** A message or stored record could not be decoded. */
export class DecodeError extends TasukiError {
  /** @param message why decoding failed @param cause underlying error */
  constructor(message: string, cause?: unknown) {
    super('ERR_DECODE', message, { cause });
  }
}

/** No handler is registered for a task name in this group (on this worker). */
export class UnknownTaskError extends TasukiError {
  /** @param group group name @param name task name */
  constructor(group: string, name: string) {
    super('ERR_UNKNOWN_TASK', `no task "${name}" is registered in group "${group}"`);
  }
}

/** The arguments of a task do not match what its handler declared. */
export class BadArgumentsError extends TasukiError {
  /** @param message which argument and why */
  constructor(message: string) {
    super('ERR_BAD_ARGS', message);
  }
}

/** A handler did not settle within its per-task timeout. */
export class TaskTimeoutError extends TasukiError {
  /** @param ms the timeout that passed */
  constructor(ms: number) {
    super('ERR_TASK_TIMEOUT', `task handler did not settle within ${ms} ms`);
  }
}

/** A handler threw something that is not an `Error` (a string, `undefined`, a plain object...). */
export class NonErrorThrownError extends TasukiError {
  /** The thrown value, as thrown. */
  readonly thrown: unknown;
  /** @param thrown the value the handler threw */
  constructor(thrown: unknown) {
    super('ERR_NON_ERROR_THROWN', `task handler threw a non-Error value: ${describe(thrown)}`);
    this.thrown = thrown;
  }
}

/** The error re-created on the client side from a stored failure. */
export class TaskFailedError extends TasukiError {
  /** Name of the original error class on the worker. */
  readonly originalName: string;
  /** Code of the original error, if it had one. */
  readonly originalCode: string | undefined;
  /** @param info the stored error info */
  constructor(info: { name: string; message: string; code?: string | undefined }) {
    super('ERR_TASK_FAILED', info.message);
    this.originalName = info.name;
    this.originalCode = info.code;
  }
}

/** `getResult` gave up before the task finished. */
export class ResultTimeoutError extends TasukiError {
  /** @param id task id @param ms how long it waited */
  constructor(id: string, ms: number) {
    super('ERR_RESULT_TIMEOUT', `task ${id} did not finish within ${ms} ms`);
  }
}

/** The task was aborted (by `client.abort` or shutdown). Passed as the `AbortSignal` reason. */
export class TaskAbortedError extends TasukiError {
  /** @param message why */
  constructor(message = 'task was aborted') {
    super('ERR_ABORTED', message);
  }
}

/** The task's `expireAt` passed before it could run. */
export class TaskExpiredError extends TasukiError {
  /** @param expireAt the deadline that passed (epoch ms) */
  constructor(expireAt: number) {
    super('ERR_EXPIRED', `task expired at ${new Date(expireAt).toISOString()} before it ran`);
  }
}

/** The worker is shutting down; used as the `AbortSignal` reason of tasks still running at the deadline. */
export class ShutdownError extends TasukiError {
  /** @param message details */
  constructor(message = 'worker is shutting down') {
    super('ERR_SHUTDOWN', message);
  }
}

/** An operation was attempted on a closed server, client, broker or backend. */
export class ClosedError extends TasukiError {
  /** @param what which object is closed */
  constructor(what: string) {
    super('ERR_CLOSED', `${what} is closed`);
  }
}

/**
 * A broker or backend connection failed and the operation could not complete. Its message and
 * `cause` never carry a credential: the driver's error is kept as a {@link safeCause} copy (a
 * driver error may hold the arguments of the command that failed, e.g. ioredis
 * `command: { name: 'auth', args: [user, password] }`), and passwords in URLs are masked.
 */
export class ConnectionError extends TasukiError {
  /** @param message details @param cause driver error (kept as a copy without credentials) */
  constructor(message: string, cause?: unknown) {
    super('ERR_CONNECTION', redactCredentials(message), cause === undefined ? undefined : { cause: safeCause(cause) });
  }
}

/** A value is larger than the backend can store (e.g. memcached's item size limit). */
export class ValueTooLargeError extends TasukiError {
  /** @param bytes size of the value @param limit the backend's limit */
  constructor(bytes: number, limit: number) {
    super('ERR_VALUE_TOO_LARGE', `value of ${bytes} bytes exceeds the backend limit of ${limit} bytes`);
  }
}

/** A queue or exchange exists with arguments that differ from what tasuki would declare. */
export class TopologyMismatchError extends TasukiError {
  /** @param message what differs */
  constructor(message: string) {
    super('ERR_TOPOLOGY_MISMATCH', message);
  }
}

/**
 * The Redis broker is configured with another `shards` count for a group than the one recorded by
 * the first broker that used it (every process must use the same count).
 */
export class ShardsMismatchError extends TasukiError {
  /** The group. */
  readonly group: string;
  /** The count recorded for the group in Redis. */
  readonly recorded: number;
  /** The count this broker is configured with. */
  readonly configured: number;

  /**
   * @param group the group
   * @param recorded the count recorded in Redis
   * @param configured the count of this broker
   */
  constructor(group: string, recorded: number, configured: number) {
    super(
      'ERR_SHARDS_MISMATCH',
      `group ${JSON.stringify(group)} uses ${recorded} shard(s) (recorded in Redis by the first broker that used it), but this broker is configured with shards ${configured}: every process must use the same count`,
    );
    this.group = group;
    this.recorded = recorded;
    this.configured = configured;
  }
}

/** A lookup (dead letter, task) found nothing. */
export class NotFoundError extends TasukiError {
  /** @param message what was not found */
  constructor(message: string) {
    super('ERR_NOT_FOUND', message);
  }
}

/**
 * A task was delivered more than `maxDeliveries` times, each earlier delivery having started its
 * handler without concluding (the worker died: `process.exit`, OOM, SIGKILL): it is failed and
 * dead-lettered instead of killing every worker in turn.
 */
export class TooManyDeliveriesError extends TasukiError {
  /** @param deliveries deliveries that started the handler and never concluded @param max the `maxDeliveries` setting */
  constructor(deliveries: number, max: number) {
    super('ERR_TOO_MANY_DELIVERIES', `task was delivered ${deliveries} time(s) without its run concluding (its worker died each time); maxDeliveries is ${max}`);
  }
}

/** A feature was asked of a broker or backend that does not provide it (e.g. schedules on a backend without a schedule store). */
export class UnsupportedError extends TasukiError {
  /** @param message what is unsupported, and where */
  constructor(message: string) {
    super('ERR_UNSUPPORTED', message);
  }
}

/** Short printable description of any thrown value, for messages. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 200 ? value.slice(0, 200) + '…' : value);
  if (typeof value === 'object') {
    try {
      const s = JSON.stringify(value);
      return s === undefined ? Object.prototype.toString.call(value) : s.length > 200 ? s.slice(0, 200) + '…' : s;
    } catch {
      return Object.prototype.toString.call(value);
    }
  }
  return String(value);
}

/** Turns anything a handler threw into an `Error` (non-errors are wrapped in {@link NonErrorThrownError}). */
export function toError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new NonErrorThrownError(thrown);
}

/** `scheme://user:password@` in a URL; the password part is masked by {@link redactCredentials}. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s:@/?#]*):([^\s@/?#]*)@/gi;

/** `text` with the password of every URL in it (`amqp://user:pass@host`, `redis://:pass@host`) replaced by `***`. */
export function redactCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, (_m, scheme: string, user: string) => `${scheme}${user}:***@`);
}

/** Fields of a driver error that say what failed without carrying data (copied by {@link safeCause}). */
const SAFE_FIELDS = ['code', 'errno', 'syscall', 'address', 'port', 'hostname'] as const;

/** How many nested causes {@link safeCause} copies. */
const MAX_CAUSE_DEPTH = 4;

/**
 * A copy of a driver error that is safe to print and log: an `Error` with the same name, message,
 * stack (URL passwords masked) and the plain fields {@link SAFE_FIELDS}, and the same treatment for
 * its own `cause`; every other field (command arguments, connection options, sockets) is dropped. A
 * `TasukiError` is kept as it is (its cause was made safe when it was built); a thrown non-error
 * becomes its masked text.
 */
export function safeCause(cause: unknown, depth = 0): unknown {
  if (cause instanceof TasukiError) return cause;
  if (!(cause instanceof Error)) {
    return typeof cause === 'string' || typeof cause === 'number' || typeof cause === 'boolean' ? redactCredentials(String(cause)) : undefined;
  }
  const nested = depth < MAX_CAUSE_DEPTH && cause.cause !== undefined ? safeCause(cause.cause, depth + 1) : undefined;
  const copy = new Error(redactCredentials(String(cause.message)), nested === undefined ? undefined : { cause: nested });
  Object.defineProperty(copy, 'name', { value: String(cause.name), enumerable: false, configurable: true, writable: true });
  copy.stack = cause.stack === undefined ? `${copy.name}: ${copy.message}` : redactCredentials(String(cause.stack));
  const fields = cause as unknown as Record<string, unknown>;
  for (const key of SAFE_FIELDS) {
    const v = fields[key];
    if (typeof v === 'string') (copy as unknown as Record<string, unknown>)[key] = redactCredentials(v);
    else if (typeof v === 'number') (copy as unknown as Record<string, unknown>)[key] = v;
  }
  return copy;
}

/**
 * Building outgoing task messages: per-send option validation, the wire message of one send and the
 * `sent` state a client records for it.
 */
import { InvalidOptionError } from './errors.js';
import { checkKey, checkPriority } from './limits.js';
import type { PublishOptions } from './broker.js';
import type { Backoff, TaskMessage } from './message.js';
import { DEFAULT_RETRY_COUNT, checkMs, resolveBackoff, toEpoch, type SendOptions } from './options.js';
import { encodeValueFast } from './plain.js';
import type { TaskState } from './state.js';

/** Explicit ids: 1 to 200 printable ASCII characters, no spaces (derived bookkeeping ids use a space). */
const ID_PATTERN = /^[\x21-\x7e]{1,200}$/;

/**
 * The wire message of one send. `index` numbers the tasks of a `sendMany` (for error paths); `id`
 * is the given or generated id (a given one is checked).
 */
export function buildMessage(
  group: string,
  name: string,
  args: unknown[],
  o: SendOptions,
  id: string,
  now: number,
  index: number,
  backoff: Backoff = resolveBackoff(o.backoff),
): TaskMessage {
  // Generated ids (UUIDs) are valid; a given one is checked.
  if (o.id !== undefined && !ID_PATTERN.test(id)) throw new InvalidOptionError('id must be 1 to 200 printable ASCII characters without spaces');
  const encoded = encodeValueFast(args, index === 0 ? 'arguments' : `arguments of task #${index}`);
  let runAt: number | null = null;
  if (o.runAt !== undefined) runAt = toEpoch('runAt', o.runAt);
  else if (o.runAfter !== undefined && o.runAfter > 0) runAt = now + o.runAfter;
  const msg: TaskMessage = {
    v: 1,
    id,
    group,
    name,
    args: encoded,
    retriesLeft: o.retryCount ?? DEFAULT_RETRY_COUNT,
    retriesUsed: 0,
    backoff,
    sentAt: now,
    runAt,
    expireAt: o.expireAt === undefined ? null : toEpoch('expireAt', o.expireAt),
    timeoutMs: o.timeout ?? null,
    firstUnknownAt: null,
  };
  if (o.priority !== undefined) msg.priority = o.priority;
  if (o.key !== undefined) msg.key = o.key;
  return msg;
}

/** The broker publish options of a message: its delay, priority and key. */
export function publishOptionsOf(msg: TaskMessage): PublishOptions {
  const o: PublishOptions = {};
  if (msg.runAt !== null) o.availableAt = msg.runAt;
  if (msg.priority !== undefined) o.priority = msg.priority;
  if (msg.key !== undefined) o.key = msg.key;
  return o;
}

/** The `sent` state recorded for a new message. */
export function sentState(msg: TaskMessage): TaskState {
  const state: TaskState = {
    v: 1,
    id: msg.id,
    group: msg.group,
    name: msg.name,
    status: 'sent',
    retriesUsed: 0,
    retriesLeft: msg.retriesLeft,
    sentAt: msg.sentAt,
    updatedAt: msg.sentAt,
  };
  if (msg.runAt !== null) state.retryAt = msg.runAt;
  if (msg.key !== undefined) state.key = msg.key;
  return state;
}

/** Validates per-send options at the call site (typed errors, nothing sent). */
export function validateSendOptions(o: SendOptions): void {
  if (o.retryCount !== undefined && (!Number.isInteger(o.retryCount) || o.retryCount < 0)) {
    throw new InvalidOptionError(`retryCount must be a whole number ≥ 0, got ${String(o.retryCount)}`);
  }
  if (o.runAfter !== undefined) checkMs('runAfter', o.runAfter, 0);
  if (o.runAt !== undefined) toEpoch('runAt', o.runAt);
  if (o.expireAt !== undefined) toEpoch('expireAt', o.expireAt);
  if (o.timeout !== undefined) checkMs('timeout', o.timeout, 1);
  if (o.backoff !== undefined) resolveBackoff(o.backoff);
  if (o.priority !== undefined) checkPriority(o.priority);
  if (o.key !== undefined) checkKey(o.key);
  if (o.id !== undefined && (typeof o.id !== 'string' || !ID_PATTERN.test(o.id))) {
    throw new InvalidOptionError('id must be 1 to 200 printable ASCII characters without spaces');
  }
}

/** The fresh `sent` state a dead letter gets before it is redriven (a stored success is kept by the caller's guard). */
export function redriveState(msg: TaskMessage, now: number): TaskState {
  const state: TaskState = {
    v: 1, id: msg.id, group: msg.group, name: msg.name, status: 'sent',
    retriesUsed: msg.retriesUsed, retriesLeft: msg.retriesLeft, sentAt: msg.sentAt, updatedAt: now,
  };
  if (msg.key !== undefined) state.key = msg.key;
  return state;
}

/**
 * The wire message and the `sent` state of a flow's child task, shared by the children a flow
 * sends one by one (`children.ts`) and the counted fan-outs (`fan-in.ts`): a task of `ref` with the
 * child's own send controls, naming its parent (and, for a fan-in, its place in the count).
 */
import { WIRE_VERSION, type EncodedValue, type FlowMessageInfo, type TaskMessage } from '../message.js';
import { DEFAULT_RETRY_COUNT, resolveBackoff } from '../options.js';
import type { TaskState } from '../state.js';
import type { TaskRef } from '../task.js';
import type { CallOptions } from './types.js';

/** The message of child `id` of task `ref`, with its encoded arguments `args`, sent at `now`. */
export function childMessage(id: string, ref: TaskRef, args: EncodedValue, options: CallOptions, flow: FlowMessageInfo, now: number): TaskMessage {
  return {
    v: WIRE_VERSION,
    id,
    group: ref.group,
    name: ref.name,
    args,
    retriesLeft: options.retryCount ?? DEFAULT_RETRY_COUNT,
    retriesUsed: 0,
    backoff: resolveBackoff(options.backoff),
    sentAt: now,
    runAt: null,
    expireAt: options.expireAt ?? null,
    timeoutMs: options.timeout ?? null,
    firstUnknownAt: null,
    flow,
  };
}

/** The `sent` state stored for the child message `msg` (sent at `now`). */
export function childSentState(msg: TaskMessage, now: number): TaskState {
  return { v: 1, id: msg.id, group: msg.group, name: msg.name, status: 'sent', retriesUsed: 0, retriesLeft: msg.retriesLeft, sentAt: now, updatedAt: now };
}

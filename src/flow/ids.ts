/** Deterministic ids and the wake-up messages of durable flows. */
import { createHash } from 'node:crypto';
import { WIRE_VERSION, type FlowMessageInfo, type TaskMessage } from '../message.js';

const ID_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** Id of the child task of step `key` in generation `gen` of flow `flowId` (hashed when too long). */
export function childId(flowId: string, gen: number, key: string): string {
  const plain = `${flowId}/${gen === 0 ? '' : `${gen}/`}${key}`;
  if (ID_PATTERN.test(plain)) return plain;
  return `flow-child-${createHash('sha256').update(plain).digest('hex')}`;
}

/** A flow's target as a child's message names it. */
export interface FlowTarget {
  /** Flow id. */
  id: string;
  /** Its group. */
  group: string;
  /** Its name. */
  name: string;
}

/** A wake-up message for a flow: no arguments (they are in its journal), its own token. */
export function wakeMessage(target: FlowTarget, token: string, now = Date.now()): TaskMessage {
  return {
    v: WIRE_VERSION,
    id: target.id,
    group: target.group,
    name: target.name,
    args: { json: [] },
    retriesLeft: 0,
    retriesUsed: 0,
    backoff: { type: 'fixed', delayMs: 0 },
    sentAt: now,
    runAt: null,
    expireAt: null,
    timeoutMs: null,
    firstUnknownAt: null,
    flow: { wake: true, token },
  };
}

/** The flow fields of a message, checked (malformed ones are ignored). */
export function flowInfo(msg: TaskMessage): FlowMessageInfo {
  const f = msg.flow;
  if (f === undefined || f === null || typeof f !== 'object') return {};
  const out: FlowMessageInfo = {};
  if (typeof f.token === 'string') out.token = f.token;
  if (f.wake === true) out.wake = true;
  const p = f.parent;
  if (p !== undefined && p !== null && typeof p === 'object' && typeof p.id === 'string' && typeof p.group === 'string' && typeof p.name === 'string') {
    out.parent = { id: p.id, group: p.group, name: p.name };
  }
  const fan = f.fanIn;
  if (fan !== undefined && fan !== null && typeof fan === 'object' && typeof fan.signal === 'string' && Number.isInteger(fan.total) && Number.isInteger(fan.index)) {
    out.fanIn = { signal: fan.signal, total: fan.total, index: fan.index };
    if (fan.settled === true) out.fanIn.settled = true;
  }
  return out;
}

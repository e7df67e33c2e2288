/**
 * The task page's data: state without the stored wire message, arguments (when the message is
 * stored), result and progress as pretty JSON (cut when large), the timeline, redeliveries, and
 * the steps of a flow or workflow.
 */
import type { Client } from '../src/client.js';
import { decodeMessage, decodeValue, decodeValueText } from '../src/message.js';
import type { TaskState } from '../src/state.js';
import type { WireEvent, WireStep, WireTask, WireValue } from './wire.js';

/** Characters of a value shown before it is cut (the page offers the rest). */
export const SHOWN_CHARS = 20_000;
/** Most characters sent even when all is asked for. */
export const MAX_CHARS = 5_000_000;

/** Pretty JSON of a decoded value: Maps, Sets, bigints, undefined spelled out. */
export function pretty(value: unknown): string {
  const text = JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'bigint') return `${v.toString()}n`;
      if (v instanceof Map) return { '[Map]': [...v.entries()] };
      if (v instanceof Set) return { '[Set]': [...v.values()] };
      if (v === undefined) return '[undefined]';
      return v;
    },
    2,
  );
  return text ?? String(value);
}

/** A value for the page, cut to {@link SHOWN_CHARS} unless `full`. */
export function shownValue(value: unknown, full: boolean): WireValue {
  const text = pretty(value);
  const max = full ? MAX_CHARS : SHOWN_CHARS;
  return text.length > max ? { text: text.slice(0, max), truncated: true, size: text.length } : { text, truncated: false, size: text.length };
}

/** The timeline of a state, oldest first. */
export function timelineOf(s: TaskState): WireEvent[] {
  const out: WireEvent[] = [];
  if (s.sentAt !== undefined) out.push({ at: s.sentAt, what: 'sent' });
  if (s.startedAt !== undefined) out.push({ at: s.startedAt, what: s.retriesUsed > 0 ? `started (try ${s.retriesUsed + 1})` : 'started' });
  if (s.retryAt !== undefined) out.push({ at: s.retryAt, what: s.status === 'sent' ? 'due' : 'retry due' });
  if (s.finishedAt !== undefined) out.push({ at: s.finishedAt, what: `finished: ${s.status}` });
  out.push({ at: s.updatedAt, what: `last write: ${s.status}` });
  return out.sort((a, b) => a.at - b.at);
}

/** Runs `read`; undefined when it throws (no journal on this backend, or not that kind of task). */
async function quietly<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch {
    return undefined;
  }
}

async function stepsOf(client: Client, id: string): Promise<WireTask['steps']> {
  const wf = await quietly(() => client.getWorkflow(id));
  if (wf != null && wf.steps.length > 0) {
    const items: WireStep[] = wf.steps.map((s) => {
      const step: WireStep = { key: s.path, name: `${s.group}.${s.name}`, kind: 'task', status: s.status, attempts: s.attempts };
      if (s.id !== undefined) step.id = s.id;
      if (s.error !== undefined) step.error = s.error.message;
      return step;
    });
    return { kind: 'workflow', items };
  }
  const flow = await quietly(() => client.getFlow(id));
  if (flow != null && flow.steps.length > 0) {
    const items: WireStep[] = flow.steps.map((s) => {
      const step: WireStep = { key: s.key, name: s.name, kind: s.kind, status: s.childStatus ?? s.status, attempts: s.attempts };
      if (s.child !== undefined) step.id = s.child;
      if (s.error !== undefined) step.error = s.error.message;
      return step;
    });
    return { kind: 'flow', items };
  }
  return undefined;
}

/** Everything the task page shows about `id`. */
export async function taskDetail(client: Client, id: string, full: boolean): Promise<WireTask> {
  const r = await client.getStatus(id);
  if (r === null || r.state === null) {
    if (r !== null && r.hasValue()) return { id, found: true, value: shownValue(r.value, full), timeline: [], redeliveries: 0, retryable: false };
    return { id, found: false, timeline: [], redeliveries: 0, retryable: false };
  }
  const { message, progress, ...rest } = r.state;
  const out: WireTask = {
    id,
    found: true,
    state: rest,
    timeline: timelineOf(r.state),
    redeliveries: Math.max(0, (r.state.deliveries ?? 1) - 1),
    retryable: ['failure', 'expired', 'aborted'].includes(r.state.status),
  };
  if (message !== undefined) {
    try {
      out.args = shownValue(decodeValue(decodeMessage(message).args), full);
    } catch (err) {
      out.args = shownValue(`(stored message does not decode: ${(err as Error).message})`, full);
    }
  }
  if (r.hasValue()) out.value = shownValue(r.value, full);
  if (progress !== undefined) {
    try {
      out.progress = shownValue(decodeValueText(progress), full);
    } catch {
      out.progress = shownValue(progress, full);
    }
  }
  const steps = await stepsOf(client, id);
  if (steps !== undefined) out.steps = steps;
  return out;
}

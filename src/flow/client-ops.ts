/**
 * Client-side operations on durable flows (`client.signal`, `client.getFlow`, `client.restartFlow`),
 * attached to `Client` by thin delegating methods.
 */
import type { Backend, Expiry } from '../backend.js';
import type { Broker } from '../broker.js';
import { NotFoundError } from '../errors.js';
import type { FlowJournalStore, JournalEntry, JournalEntryKind, JournalEntryStatus } from '../journal.js';
import { WIRE_VERSION, decodeValueText, encodeMessage, encodeValueText, type TaskMessage } from '../message.js';
import { NAME_PATTERN } from '../names.js';
import { isFinalStatus, type StoredError, type TaskState, type TaskStatus } from '../state.js';
import { FlowRunningError, UnsupportedError } from './errors.js';
import { fanCount } from './fan-in.js';
import { CALLBACKS_KEY, META_KEY, metaEntry, readMeta, type FlowMeta } from './journal-view.js';
import { wakeMessage } from './ids.js';
import { InvalidNameError } from '../errors.js';

/** The connections and settings flow operations use (a client's). */
export interface FlowConnections {
  broker: Broker;
  backend: Backend;
  statusExpires: Expiry;
}

/** One journaled operation of a flow, as {@link getFlow} shows it. */
export interface FlowStepInfo {
  /** Key: `name#occurrence`, `name#occurrence[i]` for a fan-out item. */
  key: string;
  /** Step name. */
  name: string;
  /** Occurrence of the name in the flow (0 for the first). */
  occurrence: number;
  /** Fan-out item index, for items of `map` / `callMany`. */
  index?: number;
  /** Operation kind. */
  kind: JournalEntryKind;
  /** `pending` (running, sleeping, waiting, retrying), `done` or `failed`. */
  status: JournalEntryStatus;
  /** Attempts made (steps). */
  attempts: number;
  /** When it started. */
  startedAt: Date;
  /** When it ended. */
  finishedAt?: Date;
  /** Its value (decoded), when done. */
  value?: unknown;
  /** Its error, when failed (or the last failed attempt of a retrying step). */
  error?: StoredError;
  /** Until when it sleeps / waits / waits to retry. */
  until?: Date;
  /** Child task id (calls) and its final status. */
  child?: string;
  /** Final status of the child. */
  childStatus?: string;
}

/** What {@link getFlow} returns. */
export interface FlowInfo {
  /** Flow id. */
  id: string;
  /** The flow's task status (`sent` while suspended), or null when its state expired. */
  status: TaskStatus | null;
  /** The flow's task state. */
  state: TaskState | null;
  /** Journaled operations, in code order. */
  steps: FlowStepInfo[];
  /** Signals received, counted by name. */
  signals: Record<string, number>;
  /** Operations the flow is waiting on now (sleeps, waits, children, retrying steps). */
  waitingOn: FlowStepInfo[];
}

function journalOf(c: FlowConnections): FlowJournalStore {
  const j = c.backend.journal;
  if (j === undefined) throw new UnsupportedError(`the ${c.backend.kind} backend has no flow journal storage`);
  return j;
}

/** Stores a signal for a flow and wakes it (`client.signal`). */
export async function signalFlow(c: FlowConnections, id: string, name: string, payload: unknown): Promise<void> {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) throw new InvalidNameError(`invalid signal name ${JSON.stringify(name)}`);
  const journal = journalOf(c);
  const text = encodeValueText(payload, 'signal payload');
  const state = await c.backend.read(id);
  if (state === null) throw new NotFoundError(`no flow ${id} is stored`);
  const index = await journal.signal(id, name, text, c.statusExpires);
  if (!isFinalStatus(state.status)) {
    await c.broker.publish(state.group, encodeMessage(wakeMessage({ id, group: state.group, name: state.name }, `s:${name}:${index}`)));
  }
}

/** Parses `name#n` / `name#n[i]`. */
function parseKey(key: string): { occurrence: number; index?: number } {
  const m = /#(\d+)(?:\[(\d+)\])?$/.exec(key);
  if (m === null) return { occurrence: 0 };
  const out: { occurrence: number; index?: number } = { occurrence: Number(m[1]) };
  if (m[2] !== undefined) out.index = Number(m[2]);
  return out;
}

function stepInfo(e: JournalEntry): FlowStepInfo {
  // A sleep is journaled once, with its end: past that time it is done.
  const status = e.kind === 'sleep' && e.status === 'pending' && (e.until ?? 0) <= Date.now() ? 'done' : e.status;
  const out: FlowStepInfo = { key: e.key, name: e.name, ...parseKey(e.key), kind: e.kind, status, attempts: e.attempts, startedAt: new Date(e.startedAt) };
  if (e.finishedAt !== undefined) out.finishedAt = new Date(e.finishedAt);
  if (e.status === 'done' && e.value !== undefined) out.value = decodeValueText(e.value);
  if (e.error !== undefined) out.error = e.error;
  if (e.until !== undefined) out.until = new Date(e.until);
  if (e.child !== undefined) out.child = e.child;
  if (e.childStatus !== undefined) out.childStatus = e.childStatus;
  return out;
}

/** Reads a flow's state and journal (`client.getFlow`); null when neither is stored. */
export async function getFlow(c: FlowConnections, id: string): Promise<FlowInfo | null> {
  const journal = journalOf(c);
  const [state, snapshot] = await Promise.all([c.backend.read(id), journal.read(id)]);
  if (state === null && snapshot.entries.length === 0) return null;
  const entries = snapshot.entries.filter((e) => e.seq >= 0 && e.kind !== 'patch');
  entries.sort((a, b) => a.seq - b.seq || (parseKey(a.key).index ?? -1) - (parseKey(b.key).index ?? -1));
  const steps = entries.map(stepInfo);
  const signals: Record<string, number> = {};
  // `~` names are the engine's own (counted fan-ins), not signals sent to the flow.
  for (const [name, list] of Object.entries(snapshot.signals)) if (!name.startsWith('~')) signals[name] = list.length;
  const final = state !== null && isFinalStatus(state.status);
  const waitingOn = final ? [] : steps.filter((s) => s.status === 'pending' && s.kind !== 'map' && s.kind !== 'calls' && true);
  return { id, status: state?.status ?? null, state, steps, signals, waitingOn };
}

/** Options of {@link restartFlow}. */
export interface RestartOptions {
  /** Step name (its first occurrence) or exact key (`name#n`) to run again from; absent: from the start. */
  fromStep?: string;
}

/**
 * Drops the journal from a step on and runs a finished flow again (`client.restartFlow`, vtask's
 * restart from step N). Refused with `ERR_FLOW_RUNNING` on a flow that is not finished.
 */
export async function restartFlow(c: FlowConnections, id: string, options: RestartOptions = {}): Promise<void> {
  const journal = journalOf(c);
  const state = await c.backend.read(id);
  if (state === null) throw new NotFoundError(`no flow ${id} is stored`);
  if (!isFinalStatus(state.status)) throw new FlowRunningError(id, state.status);
  const snapshot = await journal.read(id);
  const meta = readMeta(snapshot);
  if (meta === undefined) throw new NotFoundError(`flow ${id} has no journal`);
  let from = 0;
  if (options.fromStep !== undefined) {
    const wanted = options.fromStep;
    const hits = snapshot.entries.filter((e) => e.seq >= 0 && (e.key === wanted || (e.name === wanted && !e.key.endsWith(']'))));
    if (hits.length === 0) throw new NotFoundError(`flow ${id} has no step ${JSON.stringify(wanted)} in its journal`);
    from = Math.min(...hits.map((e) => e.seq));
  }
  const drop = snapshot.entries.filter((e) => e.seq >= from || e.key === CALLBACKS_KEY || e.key === META_KEY).map((e) => e.key);
  await journal.remove(id, drop);
  const now = Date.now();
  const next: FlowMeta = { ...meta, retriesLeft: meta.retriesLeft + meta.retriesUsed, retriesUsed: 0, sentAt: now, startedAt: now, gen: meta.gen + 1 };
  await journal.put(id, metaEntry(next), 'notFinal', c.statusExpires);
  await c.backend.delete(id);
  const sent: TaskState = { v: 1, id, group: state.group, name: state.name, status: 'sent', retriesUsed: 0, retriesLeft: next.retriesLeft, sentAt: now, updatedAt: now };
  const claim = await c.backend.write({ state: sent, stateTtl: c.statusExpires, guard: 'absent', previous: 'refused' });
  if (!claim.written) return; // restarted concurrently by another client
  const msg: TaskMessage = {
    ...wakeMessage({ id, group: state.group, name: state.name }, `r:${next.gen}`, now),
    v: WIRE_VERSION,
    args: meta.args,
    retriesLeft: next.retriesLeft,
    backoff: meta.backoff,
    expireAt: meta.expireAt,
    timeoutMs: meta.timeoutMs,
    flow: { token: `r:${next.gen}` },
  };
  await c.broker.publish(state.group, encodeMessage(msg));
}

/**
 * After `client.abort` of `state`'s task: when it is a durable flow with children pending, wakes it
 * (its message then finds it aborted and aborts the children). Best effort: without the wake-up the
 * children are aborted at the flow's next wake-up.
 */
export async function wakeAbortedFlow(c: FlowConnections, state: TaskState): Promise<void> {
  const journal = c.backend.journal;
  if (journal === undefined) return;
  try {
    const snapshot = await journal.read(state.id);
    // Pending children: a pending call, or a pending counted fan-in (whose children have no entries).
    if (!snapshot.entries.some((e) => (e.kind === 'call' || fanCount(e) !== undefined) && e.status === 'pending')) return;
    await c.broker.publish(state.group, encodeMessage(wakeMessage({ id: state.id, group: state.group, name: state.name }, `a:${state.id}`)));
  } catch {
    // best effort, see above
  }
}

/**
 * The operations API (`client.ops`): what is queued, running, delayed and failed in each group,
 * which workers are alive, and the levers — retry, purge, pause and resume. Built only on the broker
 * and backend interfaces (the backend's optional `index` and `records`); where the backend lacks
 * them the operation rejects with `UnsupportedError` (ERR_UNSUPPORTED), never a wrong empty answer.
 */
import type { Backend, Expiry, IndexPage, RecordStore, TaskIndex } from '../backend.js';
import type { Broker } from '../broker.js';
import { InvalidOptionError, UnsupportedError } from '../errors.js';
import { decodeMessage, encodeMessage, type TaskMessage } from '../message.js';
import { assertName } from '../names.js';
import { DEFAULT_EXPIRES, toEpoch } from '../options.js';
import { redriveState } from '../outgoing.js';
import { TASK_STATUSES, type TaskState, type TaskStatus } from '../state.js';
import type { GroupCounts, ListOptions, RetryReport, WorkerInfo } from './types.js';

/** Record kinds used in the backend's record store. */
export const RECORD_KINDS = { workers: 'workers', paused: 'paused', claims: 'claims' } as const;

/** What the operations API works on. */
export interface OpsContext {
  broker: Broker;
  backend: Backend;
  statusExpires: Expiry;
  /** Throws when the owning client is closed. */
  checkOpen(): void;
}

/** The statuses a task may be retried from. */
const RETRYABLE: ReadonlySet<TaskStatus> = new Set<TaskStatus>(['failure', 'expired', 'aborted']);

/** The record store of a backend, or {@link UnsupportedError}. */
export function recordsOf(backend: Backend, what: string): RecordStore {
  if (backend.records === undefined) throw new UnsupportedError(`${what} needs shared records, which the ${backend.kind} backend does not keep`);
  return backend.records;
}

/** The task index of a backend, or {@link UnsupportedError}. */
export function indexOf(backend: Backend, what: string): TaskIndex {
  if (backend.index === undefined) throw new UnsupportedError(`${what} needs a task index, which the ${backend.kind} backend does not keep`);
  return backend.index;
}

/** Parses the worker records of a record store (unreadable ones are skipped). */
export function parseWorkers(records: ReadonlyArray<{ value: string }>): WorkerInfo[] {
  const out: WorkerInfo[] = [];
  for (const r of records) {
    try {
      const w = JSON.parse(r.value) as WorkerInfo;
      if (typeof w.id === 'string' && Array.isArray(w.groups)) out.push(w);
    } catch {
      // a record written by something else: not a worker
    }
  }
  return out.sort((a, b) => a.startedAt - b.startedAt || (a.id < b.id ? -1 : 1));
}

/** Operations on a live system (see the module comment). */
export class Operations {
  /** @param ctx the client's broker, backend and settings */
  constructor(private readonly ctx: OpsContext) {}

  /** Known groups: those with indexed tasks, live workers or a pause, sorted. */
  async groups(): Promise<string[]> {
    this.ctx.checkOpen();
    const { backend } = this.ctx;
    const out = new Set<string>();
    if (backend.index === undefined && backend.records === undefined) {
      throw new UnsupportedError(`listing groups needs a task index or shared records, which the ${backend.kind} backend does not keep`);
    }
    if (backend.index !== undefined) for (const g of await backend.index.groups()) out.add(g);
    if (backend.records !== undefined) {
      for (const w of parseWorkers(await backend.records.list(RECORD_KINDS.workers))) for (const g of w.groups) out.add(g.group);
      for (const r of await backend.records.list(RECORD_KINDS.paused)) out.add(r.key);
    }
    return [...out].sort();
  }

  /** Depths of a group (broker), its tasks by status (backend index), pause state and running handlers. */
  async counts(group: string): Promise<GroupCounts> {
    this.ctx.checkOpen();
    assertName('group', group);
    const { broker, backend } = this.ctx;
    const [queue, statuses, paused, workers, redelivered] = await Promise.all([
      broker.counts(group),
      backend.index?.statusCounts(group),
      backend.records?.get(RECORD_KINDS.paused, group),
      backend.records?.list(RECORD_KINDS.workers),
      backend.index?.list({ group, status: 'running', limit: 1000 }),
    ]);
    let running: number | null = null;
    if (workers !== undefined) {
      running = 0;
      for (const w of parseWorkers(workers)) for (const g of w.groups) if (g.group === group) running += g.running;
    }
    let full: Record<TaskStatus, number> | null = null;
    if (statuses !== undefined) {
      full = {} as Record<TaskStatus, number>;
      for (const s of TASK_STATUSES) full[s] = statuses[s] ?? 0;
    }
    return {
      group,
      ...queue,
      paused: paused !== undefined && paused !== null,
      statuses: full,
      redelivered: redelivered === undefined ? null : redelivered.items.filter((s) => (s.deliveries ?? 1) > 1).length,
      running,
    };
  }

  /**
   * A group's tasks, newest update first, paged (`cursor`): e.g. `{ status: 'failure', since:
   * Date.now() - 3_600_000 }` for the failures of the last hour. Each item is the task's current
   * state. Needs a backend with a task index (memory, Redis, PostgreSQL, MongoDB; not Memcache: ERR_UNSUPPORTED).
   */
  async list(group: string, options: ListOptions = {}): Promise<IndexPage> {
    this.ctx.checkOpen();
    assertName('group', group);
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new InvalidOptionError(`limit must be a whole number from 1 to 1000, got ${String(limit)}`);
    if (options.status !== undefined && !TASK_STATUSES.includes(options.status)) {
      throw new InvalidOptionError(`status must be one of ${TASK_STATUSES.join(', ')}, got ${String(options.status)}`);
    }
    const index = indexOf(this.ctx.backend, 'listing tasks');
    const q: Parameters<TaskIndex['list']>[0] = { group, limit };
    if (options.status !== undefined) q.status = options.status;
    if (options.name !== undefined) q.name = options.name;
    if (options.since !== undefined) q.since = toEpoch('since', options.since);
    if (options.until !== undefined) q.until = toEpoch('until', options.until);
    if (options.cursor !== undefined) q.cursor = options.cursor;
    return index.list(q);
  }

  /** The live workers (servers), as their last heartbeats told; a killed one is gone within its expiry. */
  async workers(): Promise<WorkerInfo[]> {
    this.ctx.checkOpen();
    return parseWorkers(await recordsOf(this.ctx.backend, 'the worker registry').list(RECORD_KINDS.workers));
  }

  /**
   * Pauses a group: durable (stored in the backend), honoured by every worker of the group within
   * about its `pausePollMs` (default 1 s). Running tasks finish; fetched ones wait; nothing is lost.
   */
  async pause(group: string): Promise<void> {
    this.ctx.checkOpen();
    assertName('group', group);
    await recordsOf(this.ctx.backend, 'pausing a group').put(RECORD_KINDS.paused, group, JSON.stringify({ at: Date.now() }), null);
  }

  /** Resumes a paused group (no-op when it is not paused). */
  async resume(group: string): Promise<void> {
    this.ctx.checkOpen();
    assertName('group', group);
    await recordsOf(this.ctx.backend, 'resuming a group').remove(RECORD_KINDS.paused, group);
  }

  /** The paused groups, sorted. */
  async paused(): Promise<string[]> {
    this.ctx.checkOpen();
    return (await recordsOf(this.ctx.backend, 'listing paused groups').list(RECORD_KINDS.paused)).map((r) => r.key).sort();
  }

  /**
   * Deletes every message of a group at the broker (`broker.purge`): ready, delayed, in flight and dead
   * letters. Task states stay; a task running now still finishes and records its outcome.
   */
  async purge(group: string): Promise<void> {
    this.ctx.checkOpen();
    assertName('group', group);
    await this.ctx.broker.purge(group);
  }

  /**
   * Runs finished tasks again (GTA's ForceRerunTasks): each id whose state is `failure`, `expired` or
   * `aborted` is sent again with its stored message — the one the worker kept in the final state, or
   * its dead letter (which is then removed) — with its retries restored, no delay, and an `expireAt`
   * already past dropped. Its state becomes `sent`. Succeeded, unfinished and unknown tasks are
   * skipped, with the reason. Two concurrent retries of one id may both send it (at least once).
   */
  async retry(ids: string | ReadonlyArray<string>): Promise<RetryReport> {
    this.ctx.checkOpen();
    const list = typeof ids === 'string' ? [ids] : [...ids];
    const report: RetryReport = { retried: [], skipped: [] };
    const states = list.length === 0 ? [] : await this.ctx.backend.readMany(list);
    for (let i = 0; i < list.length; i++) {
      const id = list[i] as string;
      const reason = await this.retryOne(id, states[i] ?? null);
      if (reason === null) report.retried.push(id);
      else report.skipped.push({ id, reason });
    }
    return report;
  }

  /** Retries one task; null when sent, else why not. */
  private async retryOne(id: string, state: TaskState | null): Promise<string | null> {
    if (state === null) return 'not found (never sent, or its state expired)';
    if (!RETRYABLE.has(state.status)) return state.status === 'success' ? 'it succeeded' : `it has not finished (${state.status})`;
    let body = state.message;
    let deadId: string | undefined;
    if (body === undefined && state.group !== '') {
      const dead = await this.findDeadLetter(state.group, id);
      if (dead !== undefined) ({ body, id: deadId } = dead);
    }
    if (body === undefined) return 'its message is not stored (no dead letter, and the state holds none)';
    let msg: TaskMessage;
    try {
      msg = decodeMessage(body);
    } catch (err) {
      return `its stored message cannot be decoded: ${(err as Error).message}`;
    }
    const now = Date.now();
    const fresh: TaskMessage = {
      ...msg,
      retriesLeft: msg.retriesLeft + msg.retriesUsed,
      retriesUsed: 0,
      runAt: null,
      expireAt: msg.expireAt !== null && msg.expireAt <= now ? null : msg.expireAt,
      firstUnknownAt: null,
    };
    const ttl = this.ctx.statusExpires === 0 ? DEFAULT_EXPIRES : this.ctx.statusExpires;
    const w = await this.ctx.backend.write({ state: redriveState(fresh, now), stateTtl: ttl, guard: 'notSuccess', previous: 'refused' });
    if (!w.written) return 'it succeeded';
    await this.ctx.broker.publish(fresh.group, encodeMessage(fresh));
    if (deadId !== undefined) await this.ctx.broker.deleteDeadLetters(fresh.group, [deadId]);
    return null;
  }

  /** The dead letter of task `id` in `group` (scanned page by page), if any. */
  private async findDeadLetter(group: string, id: string): Promise<{ body: string; id: string } | undefined> {
    const page = 500;
    for (let offset = 0; ; offset += page) {
      const batch = await this.ctx.broker.listDeadLetters(group, { offset, limit: page });
      for (const d of batch) {
        try {
          if (decodeMessage(d.body).id === id) return { body: d.body, id: d.id };
        } catch {
          // an undecodable dead letter is not this task
        }
      }
      if (batch.length < page) return undefined;
    }
  }
}

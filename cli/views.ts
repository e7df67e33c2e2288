/** The read-only commands of `tasuki`: status, watch, ls, inspect, workers, abnormal. */
import type { Client } from '../src/client.js';
import { decodeValueText } from '../src/message.js';
import { findAbnormal } from '../src/ops/watchdog.js';
import { indexOf } from '../src/ops/operations.js';
import type { GroupCounts, WorkerInfo } from '../src/ops/types.js';
import { TASK_STATUSES, type TaskState, type TaskStatus } from '../src/state.js';
import { ago, CommandFailed, parseDuration, shortDuration, statusColour, table, UsageError, when, type Output } from './format.js';

/** A group's counts with its rates over the last minute. */
export interface GroupStatus extends GroupCounts {
  /** Tasks that succeeded in the last minute (`null` without a task index; at most 1000 counted). */
  succeededLastMinute: number | null;
  /** Tasks that failed in the last minute. */
  failedLastMinute: number | null;
}

const n = (v: number | null): string => (v === null ? '-' : String(v));

async function lastMinute(client: Client, group: string, status: TaskStatus, hasIndex: boolean): Promise<number | null> {
  if (!hasIndex) return null;
  return (await client.ops.list(group, { status, since: Date.now() - 60_000, limit: 1000 })).items.length;
}

/** Counts of the given groups (default: every known group) and the live workers. */
export async function collectStatus(client: Client, groups: string[], hasIndex: boolean, hasRecords: boolean): Promise<{ groups: GroupStatus[]; workers: WorkerInfo[] | null }> {
  const names = groups.length > 0 ? groups : await client.ops.groups();
  const [list, workers] = await Promise.all([
    Promise.all(
      names.map(async (g) => ({
        ...(await client.ops.counts(g)),
        succeededLastMinute: await lastMinute(client, g, 'success', hasIndex),
        failedLastMinute: await lastMinute(client, g, 'failure', hasIndex),
      })),
    ),
    hasRecords ? client.ops.workers() : Promise.resolve(null),
  ]);
  return { groups: list, workers };
}

/** The status view: one row per group, then the workers. */
export function renderStatus(out: Output, s: { groups: GroupStatus[]; workers: WorkerInfo[] | null }): string {
  const rows: string[][] = [['GROUP', 'READY', 'DELAYED', 'IN-FLIGHT', 'RUNNING', 'FAILED', 'DEAD', 'REDELIVERED', 'OK/MIN', 'FAIL/MIN', 'STATE']];
  for (const g of s.groups) {
    rows.push([
      out.paint('bold', g.group),
      String(g.ready),
      String(g.delayed),
      String(g.inFlight),
      n(g.running),
      n(g.statuses?.failure ?? null),
      g.dead > 0 ? out.paint('red', String(g.dead)) : '0',
      n(g.redelivered),
      n(g.succeededLastMinute),
      n(g.failedLastMinute),
      g.paused ? out.paint('yellow', 'paused') : out.paint('green', 'active'),
    ]);
  }
  const parts = [s.groups.length === 0 ? 'no groups known yet' : table(rows, new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]))];
  if (s.workers !== null) parts.push('', renderWorkers(out, s.workers));
  return parts.join('\n');
}

/** The workers table. */
export function renderWorkers(out: Output, workers: WorkerInfo[]): string {
  if (workers.length === 0) return 'no live workers';
  const rows: string[][] = [['WORKER', 'PID', 'GROUPS', 'RUNNING', 'OK', 'FAILED', 'RETRIED', 'UP', 'SEEN', 'VERSION']];
  for (const w of workers) {
    rows.push([
      w.id,
      String(w.pid),
      w.groups.map((g) => `${g.group}(${g.running}/${g.concurrency}${g.paused ? ', paused' : ''})`).join(' '),
      String(w.groups.reduce((a, g) => a + g.running, 0)),
      String(w.succeeded),
      w.failed > 0 ? out.paint('red', String(w.failed)) : '0',
      String(w.retried),
      shortDuration(Date.now() - w.startedAt),
      ago(w.heartbeatAt),
      w.version,
    ]);
  }
  return table(rows, new Set([1, 3, 4, 5, 6]));
}

/** Options of `tasuki ls`. */
export interface LsFlags {
  status?: string;
  name?: string;
  since?: string;
  until?: string;
  limit?: string;
  cursor?: string;
}

/** Parses a status name. */
export function parseStatus(s: string): TaskStatus {
  const alias: Record<string, TaskStatus> = { failed: 'failure', succeeded: 'success', ok: 'success', retrying: 'waiting-retry', delayed: 'sent', queued: 'sent' };
  const status = (alias[s] ?? s) as TaskStatus;
  if (!TASK_STATUSES.includes(status)) throw new UsageError(`--status must be one of ${TASK_STATUSES.join(', ')} (or failed, succeeded, retrying), got ${JSON.stringify(s)}`);
  return status;
}

/** `tasuki ls <group>`. */
export async function ls(client: Client, out: Output, group: string, f: LsFlags): Promise<void> {
  const now = Date.now();
  const opts: Parameters<Client['ops']['list']>[1] = {};
  if (f.status !== undefined) opts.status = parseStatus(f.status);
  if (f.name !== undefined) opts.name = f.name;
  if (f.since !== undefined) opts.since = now - parseDuration(f.since, '--since');
  if (f.until !== undefined) opts.until = now - parseDuration(f.until, '--until');
  if (f.cursor !== undefined) opts.cursor = f.cursor;
  opts.limit = f.limit === undefined ? 20 : Number(f.limit);
  if (!Number.isInteger(opts.limit) || opts.limit < 1 || opts.limit > 1000) throw new UsageError('--limit must be a whole number from 1 to 1000');
  const page = await client.ops.list(group, opts);
  if (out.json) return out.line(JSON.stringify(page));
  if (page.items.length === 0) return out.line('no tasks');
  const rows: string[][] = [['ID', 'NAME', 'STATUS', 'TRIES', 'UPDATED', 'ERROR']];
  for (const s of page.items) {
    const tries = `${s.retriesUsed + 1}${(s.deliveries ?? 1) > 1 ? ` (${s.deliveries} deliveries)` : ''}`;
    const error = s.error === undefined ? '' : `${s.error.code ?? s.error.name}: ${s.error.message}`.split('\n')[0]?.slice(0, 60) ?? '';
    rows.push([s.id, s.name, out.paint(statusColour(s.status), s.status), tries, ago(s.updatedAt, now), error]);
  }
  out.line(table(rows));
  if (page.cursor !== null) out.line(out.paint('grey', `more: --cursor ${page.cursor}`));
}

/** Decodes a stored superjson text for display (the text itself when it does not decode). */
function shown(text: string | undefined | null): string {
  if (text === undefined || text === null) return '-';
  try {
    const v = decodeValueText(text);
    return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  } catch {
    return text;
  }
}

/** `tasuki inspect <id>`: everything stored about a task. */
export async function inspect(client: Client, out: Output, id: string): Promise<void> {
  const r = await client.getStatus(id);
  if (r === null || r.state === null) {
    if (out.json) out.line(JSON.stringify({ id, found: false }));
    throw new CommandFailed(`task ${id} not found (never sent, or its state expired)`);
  }
  const s = r.state as TaskState;
  const value: unknown = r.hasValue() ? r.value : undefined;
  if (out.json) {
    const { message: _m, ...state } = s;
    out.line(JSON.stringify({ id, found: true, state, value: value ?? null, messageStored: s.message !== undefined, waiting: r.waiting ?? null }));
    return;
  }
  const rows: string[][] = [
    ['id', s.id],
    ['group', s.group],
    ['name', s.name],
    ['status', out.paint(statusColour(s.status), s.status)],
    ['retries', `${s.retriesUsed} used, ${s.retriesLeft} left`],
    ['redeliveries', String(Math.max(0, (s.deliveries ?? 1) - 1))],
    ['sent', when(s.sentAt)],
  ];
  if (s.retryAt !== undefined) rows.push([s.status === 'sent' ? 'due' : 'retry at', when(s.retryAt)]);
  if (r.waiting !== undefined) {
    const w = r.waiting;
    rows.push(['held back', out.paint('yellow', `${w.reason}${w.key === undefined ? '' : ` (key ${w.key})`}${w.until === undefined ? '' : ` until ${when(w.until)}`}`)]);
  }
  rows.push(['started', when(s.startedAt)], ['finished', when(s.finishedAt)], ['updated', when(s.updatedAt)]);
  if (s.progress !== undefined) rows.push(['progress', shown(s.progress)]);
  if (r.hasValue()) rows.push(['value', JSON.stringify(value) ?? String(value)]);
  if (s.error !== undefined) rows.push(['error', `${s.error.name}${s.error.code === undefined ? '' : ` [${s.error.code}]`}: ${s.error.message}`]);
  if (s.message !== undefined) rows.push(['retryable', 'yes (message stored: tasuki retry ' + s.id + ')']);
  out.line(table(rows.map(([k, v]) => [out.paint('grey', k as string), v as string])));
  if (s.error?.stack !== undefined) {
    out.line(out.paint('grey', 'stack'));
    out.line(s.error.stack);
  }
}

/** `tasuki workers`. */
export async function workers(client: Client, out: Output): Promise<void> {
  const list = await client.ops.workers();
  out.line(out.json ? JSON.stringify(list) : renderWorkers(out, list));
}

/** `tasuki abnormal <group>`: the watchdog's view, on demand. */
export async function abnormal(client: Client, out: Output, group: string, f: { sentTimeout: string; runningTimeout: string; within: string }, backend: Parameters<typeof indexOf>[0]): Promise<void> {
  const tasks = await findAbnormal(
    indexOf(backend, 'the abnormal-task check'),
    group,
    { sentTimeoutMs: parseDuration(f.sentTimeout, '--sent-timeout'), runningTimeoutMs: parseDuration(f.runningTimeout, '--running-timeout'), intervalMs: parseDuration(f.within, '--within') },
    Date.now(),
  );
  if (out.json) return out.line(JSON.stringify(tasks.map((t) => ({ kind: t.kind, state: { ...t.state, message: undefined } }))));
  if (tasks.length === 0) return out.line('no abnormal tasks');
  const rows: string[][] = [['KIND', 'ID', 'NAME', 'STATUS', 'SINCE', 'DELIVERIES']];
  for (const t of tasks) {
    const since = t.kind === 'not-started' ? Math.max(t.state.retryAt ?? 0, t.state.updatedAt) : (t.state.startedAt ?? t.state.updatedAt);
    rows.push([out.paint('yellow', t.kind), t.state.id, t.state.name, t.state.status, ago(since), String(t.state.deliveries ?? 1)]);
  }
  out.line(table(rows));
}

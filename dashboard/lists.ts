/**
 * Server-side paged lists of the dashboard: a group's tasks (filters, and search by id prefix as a
 * bounded scan of the index), dead letters, and the successes / failures of the last hour per
 * minute (bounded reads, cached a few seconds).
 */
import type { IndexQuery } from '../src/backend.js';
import type { Client } from '../src/client.js';
import { decodeMessage } from '../src/message.js';
import { encodeCursor } from '../src/ops/index-query.js';
import type { ListOptions } from '../src/ops/types.js';
import { TASK_STATUSES, type TaskState, type TaskStatus } from '../src/state.js';
import { DashboardError } from './http.js';
import type { WireDeadPage, WireRates, WireTaskPage, WireTaskRow } from './wire.js';

/** Index entries an id search reads per request at most (the page offers to go on). */
export const SCAN_LIMIT = 5000;
/** Pages of 1000 read for the hourly rates at most (per status). */
const RATE_PAGES = 10;
/** How long the rates of a group are reused. */
const RATE_TTL_MS = 10_000;

/** A list row of a state. */
export function rowOf(s: TaskState): WireTaskRow {
  const row: WireTaskRow = { id: s.id, group: s.group, name: s.name, status: s.status, retriesUsed: s.retriesUsed, updatedAt: s.updatedAt };
  if (s.deliveries !== undefined) row.deliveries = s.deliveries;
  if (s.error !== undefined) row.error = `${s.error.code ?? s.error.name}: ${s.error.message}`.split('\n')[0]?.slice(0, 200) ?? '';
  return row;
}

/** Query of a task list, from the URL: an index query and an id prefix. */
export interface TaskQuery extends IndexQuery {
  /** Id prefix. */
  q?: string;
}

const bad = (message: string): DashboardError => new DashboardError(400, 'ERR_DASHBOARD_REQUEST', message);

function epoch(v: string | null, what: string): number | undefined {
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw bad(`${what} must be a time in epoch milliseconds`);
  return n;
}

/** Reads a task list query from URL parameters. */
export function parseTaskQuery(p: URLSearchParams): TaskQuery {
  const group = p.get('group');
  if (group === null || group === '') throw bad('group is required');
  const q: TaskQuery = { group, limit: Number(p.get('limit') ?? 50) };
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > 500) throw bad('limit must be a whole number from 1 to 500');
  const status = p.get('status');
  if (status !== null && status !== '') {
    if (!TASK_STATUSES.includes(status as TaskStatus)) throw bad(`status must be one of ${TASK_STATUSES.join(', ')}`);
    q.status = status as TaskStatus;
  }
  for (const k of ['name', 'cursor', 'q'] as const) {
    const v = p.get(k);
    if (v !== null && v !== '') q[k] = v;
  }
  const since = epoch(p.get('since'), 'since');
  const until = epoch(p.get('until'), 'until');
  if (since !== undefined) q.since = since;
  if (until !== undefined) q.until = until;
  return q;
}

/** One page of a group's tasks, newest first; with `q`, only ids starting with it (exact id first). */
export async function listTasks(client: Client, q: TaskQuery): Promise<WireTaskPage> {
  const base: ListOptions = {};
  if (q.status !== undefined) base.status = q.status;
  if (q.name !== undefined) base.name = q.name;
  if (q.since !== undefined) base.since = q.since;
  if (q.until !== undefined) base.until = q.until;
  if (q.q === undefined) {
    const page = await client.ops.list(q.group, { ...base, limit: q.limit, ...(q.cursor === undefined ? {} : { cursor: q.cursor }) });
    return { items: page.items.map(rowOf), cursor: page.cursor };
  }
  const prefix = q.q;
  const items: WireTaskRow[] = [];
  if (q.cursor === undefined) {
    // A whole id is found directly, whatever the index holds.
    const exact = await client.getStatus(prefix);
    if (exact?.state != null && exact.state.group === q.group) items.push(rowOf(exact.state));
  }
  let cursor = q.cursor;
  let scanned = 0;
  for (;;) {
    const page = await client.ops.list(q.group, { ...base, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    for (const s of page.items) {
      scanned++;
      if (s.id.startsWith(prefix) && !items.some((x) => x.id === s.id)) items.push(rowOf(s));
      if (items.length >= q.limit || scanned >= SCAN_LIMIT) {
        const more = s !== page.items[page.items.length - 1] || page.cursor !== null;
        return { items, cursor: more ? encodeCursor(s) : null, scanned };
      }
    }
    if (page.cursor === null) return { items, cursor: null, scanned };
    cursor = page.cursor;
  }
}

/** One page of a group's dead letters, oldest first. */
export async function listDead(client: Client, group: string, offset: number, limit: number): Promise<WireDeadPage> {
  if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit < 1 || limit > 500) throw bad('offset must be ≥ 0 and limit 1 to 500 (whole numbers)');
  const list = await client.deadLetters(group, { offset, limit: limit + 1 });
  const items = list.slice(0, limit).map((d) => {
    const row: WireDeadPage['items'][number] = { id: d.id, reason: `${d.reason.code}: ${d.reason.message}`, at: d.at };
    try {
      const m = decodeMessage(d.body);
      row.task = m.id;
      row.name = m.name;
    } catch {
      // undecodable body: shown without task id
    }
    return row;
  });
  return { items, next: list.length > limit ? offset + limit : null };
}

/** Per-minute successes and failures of the last hour, per group, cached for {@link RATE_TTL_MS}. */
export class Rates {
  private readonly cache = new Map<string, { at: number; rates: Promise<WireRates> }>();

  /** @param client the dashboard's client */
  constructor(private readonly client: Client) {}

  /** The rates of `group` (a cached answer up to 10 s old). */
  get(group: string, now = Date.now()): Promise<WireRates> {
    const hit = this.cache.get(group);
    if (hit !== undefined && now - hit.at < RATE_TTL_MS) return hit.rates;
    const rates = this.compute(group, now);
    this.cache.set(group, { at: now, rates });
    rates.catch(() => this.cache.delete(group));
    if (this.cache.size > 1000) this.cache.delete(this.cache.keys().next().value as string);
    return rates;
  }

  private async compute(group: string, now: number): Promise<WireRates> {
    const bucketMs = 60_000;
    const from = Math.floor(now / bucketMs) * bucketMs - 59 * bucketMs;
    const out: WireRates = { from, bucketMs, success: new Array<number>(60).fill(0), failure: new Array<number>(60).fill(0), partial: false };
    for (const status of ['success', 'failure'] as const) {
      let cursor: string | undefined;
      for (let i = 0; i < RATE_PAGES; i++) {
        const page = await this.client.ops.list(group, { status, since: from, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
        for (const s of page.items) {
          const b = Math.floor(((s.finishedAt ?? s.updatedAt) - from) / bucketMs);
          if (b >= 0 && b < 60) out[status][b] = (out[status][b] ?? 0) + 1;
        }
        if (page.cursor === null) break;
        cursor = page.cursor;
        if (i === RATE_PAGES - 1) out.partial = true;
      }
    }
    return out;
  }
}

/** `GET api/abnormal`: the watchdog's check on demand (`tasuki abnormal`), over `client.ops.list`. */
import type { TaskIndex } from '../src/backend.js';
import type { Client } from '../src/client.js';
import { findAbnormal } from '../src/ops/watchdog.js';
import { DashboardError } from './http.js';
import { rowOf } from './lists.js';
import type { WireAbnormal } from './wire.js';

function ms(p: URLSearchParams, name: string, fallback: number): number {
  const v = p.get(name);
  if (v === null || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', `${name} must be a whole number of milliseconds`);
  return n;
}

/** Tasks of a group not started in time, running too long, or redelivered recently (defaults as the CLI's: 5 min, 30 min, 10 min). */
export async function abnormal(client: Client, p: URLSearchParams): Promise<WireAbnormal> {
  const group = p.get('group') ?? '';
  if (group === '') throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'group is required');
  const settings = { sentTimeoutMs: ms(p, 'sentTimeoutMs', 300_000), runningTimeoutMs: ms(p, 'runningTimeoutMs', 1_800_000), intervalMs: ms(p, 'withinMs', 600_000) };
  // The check reads the index through the operations API (which refuses where there is none).
  const index: TaskIndex = {
    list: (q) => client.ops.list(q.group, q),
    groups: () => client.ops.groups(),
    statusCounts: async (g) => (await client.ops.counts(g)).statuses ?? {},
  };
  const found = await findAbnormal(index, group, settings, Date.now());
  return { items: found.map((t) => ({ kind: t.kind, task: rowOf(t.state) })), ...settings };
}

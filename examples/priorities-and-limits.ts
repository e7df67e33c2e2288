/**
 * Priorities, a per-tenant limit and fair dispatch, in one process on the in-memory broker (the
 * Redis broker enforces the same options globally across processes: swap in `RedisBroker` and
 * `RedisBackend`). Run:  npx tsx examples/priorities-and-limits.ts
 *
 * - Group "reports" runs at most 20 tasks per second in total (burst 5), at most 2 per tenant at
 *   once, and each tenant at most 5 per second.
 * - Tenant "big" floods the queue with 200 tasks; tenant "small" sends 3: keys are served
 *   round-robin, so "small" does not wait behind "big".
 * - An urgent task (priority 9) overtakes everything still queued.
 * - A handler whose upstream answers 429 pushes its tenant back with `ctl.backoffKey` (the task is
 *   handed back, not failed).
 * - `getStatus` of a task still queued says what holds it back (`waiting`).
 */
import { Server, type TaskCtl } from '../src/index.js';

const server = new Server({ statusExpires: 300, resultExpires: 300 });
const started: string[] = [];
let rateLimited = false;

const report = server.add(
  'reports',
  'build',
  async (ctl: TaskCtl, tenant: string, n: number) => {
    started.push(`${tenant}#${n}`);
    if (tenant === 'small' && n === 1 && !rateLimited) {
      rateLimited = true; // pretend the upstream answered 429 once
      await ctl.backoffKey(1000);
      return 'handed back';
    }
    await new Promise((r) => setTimeout(r, 10));
    return `${tenant} report ${n}`;
  },
  { ctl: true },
);

const client = server.client();
const big = client.with({ key: 'big' });
const bigIds = await big.sendMany(report, Array.from({ length: 200 }, (_, i): [string, number] => ['big', i]));
const small = await Promise.all([0, 1, 2].map((n) => client.with({ key: 'small' }).send(report, 'small', n)));
const urgent = await client.with({ priority: 9, key: 'big' }).send(report, 'big', 999);

await server.run('reports', 4, {
  rateLimit: { limit: 20, periodMs: 1000, burst: 5 },
  keyConcurrency: 2,
  keyRateLimit: { limit: 5, periodMs: 1000 },
});

for (const id of [urgent, ...small]) {
  const r = await client.getResult(id, 30_000);
  console.log(r.isSuccess() ? r.value : r.error?.message, '— started as task number', started.lastIndexOf(String(r.value).replace(' report ', '#')) + 1);
}
const last = await client.getStatus(bigIds[199] as string);
console.log(`big #199 is ${last?.status}; held back by:`, last?.waiting ?? 'nothing (queued behind the others)');
await server.shutdown(1000);

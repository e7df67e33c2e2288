/**
 * `npx tsx bench/dashboard-lists.ts`: how long the dashboard's API takes on a group of 10 000
 * queued tasks on Redis (the handler in this process, a fresh key prefix, removed at the end):
 * median and minimum of 5 requests each for the overview, a page of 50 tasks, a page filtered by
 * status, and an id search that finds nothing (its 5 000-entry stretch scanned).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client } from '../src/client.js';
import { silentLogger } from '../src/logger.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';
const prefix = `tasuki-dash-bench-${randomUUID()}`;
const client = new Client({ broker: new RedisBroker({ prefix, logger: silentLogger }), backend: new RedisBackend({ prefix, logger: silentLogger }), logger: silentLogger });
const token = 'measure-token-0123456789';
const h = dashboard({ client, auth: { token }, logger: silentLogger });
const s = createServer((req, res) => h(req, res));
await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
const t0 = Date.now();
for (let i = 0; i < 10_000; i += 500) await Promise.all(Array.from({ length: 500 }, () => client.send('big', 'noop')));
console.log('sent 10000 in', Date.now() - t0, 'ms');
const time = async (label: string, path: string): Promise<void> => {
  const ms: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
    await r.arrayBuffer();
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  console.log(label, 'median', ms[2]?.toFixed(1), 'ms', 'min', ms[0]?.toFixed(1));
};
await time('overview (1 group, 10k sent)', '/api/overview');
await time('tasks page 50', '/api/tasks?group=big&limit=50');
await time('tasks page 50 status=sent', '/api/tasks?group=big&status=sent&limit=50');
await time('id search miss (5000 scanned)', '/api/tasks?group=big&q=zzzz');
s.close();
await client.ops.purge('big');
await client.close();
const admin = new Redis();
let cursor = '0';
do {
  const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
  cursor = next;
  if (keys.length > 0) await admin.del(...keys);
} while (cursor !== '0');
await admin.quit();

/**
 * Lateness of schedule fires on Redis (broker and backend): one worker process runs an
 * `everyMs: 1000` schedule for N fires (argument, default 20); prints how late each handler started
 * after its fire time (median, p90, max in ms). Uses its own key prefix and removes it afterwards.
 *   npx tsx bench/schedule-lateness.ts [fires]
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Server, silentLogger, type TaskCtl } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';

const fires = Number(process.argv[2] ?? 20);
const prefix = `tasuki-bench-sched-${randomUUID()}`;
const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
const late: number[] = [];
let done: () => void = () => undefined;
const finished = new Promise<void>((r) => (done = r));
const beat = server.add('bench-sched', 'beat', (ctl: TaskCtl) => {
  late.push(Date.now() - Date.parse(ctl.id.slice(ctl.id.indexOf('@') + 1)));
  if (late.length >= fires) done();
}, { ctl: true });
await server.run('bench-sched', 2);
await server.client().schedules.upsert('lateness', { everyMs: 1000 }, beat);
await finished;
await server.client().schedules.remove('lateness');
await server.shutdown(2000);
const sorted = [...late].sort((a, b) => a - b);
const q = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
console.log(`schedule fires on Redis: ${sorted.length} fires, lateness median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${sorted[sorted.length - 1]} ms`);
const admin = new Redis();
const keys = await admin.keys(`${prefix}:*`);
if (keys.length > 0) await admin.del(...keys);
await admin.quit();

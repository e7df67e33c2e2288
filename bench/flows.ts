/**
 * Flows benchmark (`npm run bench -- --flows`, or `npx tsx bench/flows.ts`), on the local Redis
 * (broker and backend), worker and client in one process:
 * - 1 000 flows of 10 steps each: steps/s, and p50/p99 of the step-to-step latency (from the end of
 *   one step's body to the start of the next one's, which includes journaling the first);
 * - fan-out/fan-in: one flow calls 100 children (`flow.callMany`) and returns; time from send to the
 *   parent's result, median of 5 — beside BullMQ's FlowProducer (a parent with 100 children) on the
 *   same Redis, time from `add` to the parent's completion.
 * Options: --flows N (1000) --steps S (10) --children C (100) --rounds R (5) --concurrency K (50).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Server, silentLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};
const FLOWS = arg('flows', 1000);
const STEPS = arg('steps', 10);
const CHILDREN = arg('children', 100);
const ROUNDS = arg('rounds', 5);
const CONCURRENCY = arg('concurrency', 50);

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const median = (xs: number[]): number => pct(xs, 50);

async function sweep(prefix: string): Promise<void> {
  const r = new Redis();
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await r.del(...keys);
  } while (cursor !== '0');
  await r.quit();
}

async function tasukiFlows(): Promise<{ stepsPerSec: number; p50: number; p99: number; fanInMs: number }> {
  const prefix = `tasuki-bench-flows-${randomUUID().slice(0, 8)}`;
  const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger, statusExpires: 600, resultExpires: 600 });
  const ends = new Map<string, number>();
  const gaps: number[] = [];
  const stepped = server.flow('bench-flows', 'steps', async (flow, n: number) => {
    let acc = n;
    for (let i = 0; i < STEPS; i++) {
      acc = await flow.step('s', () => {
        const now = Date.now();
        const last = ends.get(flow.id);
        if (last !== undefined && i > 0) gaps.push(now - last);
        ends.set(flow.id, Date.now());
        return acc + 1;
      });
    }
    return acc;
  });
  const child = server.add('bench-kids', 'child', (i: number) => i * 2);
  const fan = server.flow('bench-flows', 'fan', async (flow) => {
    const xs = await flow.callMany('kids', child, Array.from({ length: CHILDREN }, (_, i) => [i] as [number]), { concurrency: CHILDREN });
    return xs.length;
  }, { recheckMs: 60_000 });
  await server.run('bench-flows', CONCURRENCY);
  await server.run('bench-kids', CONCURRENCY);
  const client = server.client();

  const t0 = Date.now();
  const ids = await client.sendMany(stepped, Array.from({ length: FLOWS }, (_, i) => [i] as [number]));
  for (const id of ids) {
    const r = await client.getResult(id, 600_000, 50);
    if (r.status !== 'success') throw new Error(`flow ${id} ended ${r.status}`);
  }
  const seconds = (Date.now() - t0) / 1000;

  const fanMs: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    const s = Date.now();
    const r = await client.getResult(await client.send(fan), 120_000, 5);
    if (r.value !== CHILDREN) throw new Error('fan-out lost children');
    fanMs.push(Date.now() - s);
  }
  await server.shutdown();
  await sweep(prefix);
  return { stepsPerSec: (FLOWS * STEPS) / seconds, p50: pct(gaps, 50), p99: pct(gaps, 99), fanInMs: median(fanMs) };
}

async function bullmqFanIn(): Promise<number> {
  const { FlowProducer, Worker, QueueEvents } = await import('bullmq');
  const prefix = `tasuki-bench-bull-${randomUUID().slice(0, 8)}`;
  const connection = { host: '127.0.0.1', port: 6379 };
  const producer = new FlowProducer({ connection, prefix });
  const kids = new Worker('kids', async (job) => (job.data as { i: number }).i * 2, { connection, prefix, concurrency: CONCURRENCY });
  const parents = new Worker('parents', async (job) => Object.keys(await job.getChildrenValues()).length, { connection, prefix, concurrency: CONCURRENCY });
  const events = new QueueEvents('parents', { connection, prefix });
  await Promise.all([kids.waitUntilReady(), parents.waitUntilReady(), events.waitUntilReady()]);
  const times: number[] = [];
  for (let k = 0; k < ROUNDS; k++) {
    const s = Date.now();
    const tree = await producer.add({
      name: 'parent', queueName: 'parents', data: {},
      children: Array.from({ length: CHILDREN }, (_, i) => ({ name: 'child', queueName: 'kids', data: { i } })),
    });
    const value = await tree.job.waitUntilFinished(events, 120_000);
    if (value !== CHILDREN) throw new Error('bullmq fan-in lost children');
    times.push(Date.now() - s);
  }
  await Promise.all([kids.close(), parents.close(), events.close(), producer.close()]);
  await sweep(prefix);
  return median(times);
}

const t = await tasukiFlows();
const b = await bullmqFanIn();
console.log(`| scenario | tasuki flows (Redis) | BullMQ FlowProducer (Redis) |`);
console.log(`|---|---|---|`);
console.log(`| ${FLOWS} flows × ${STEPS} steps | ${Math.round(t.stepsPerSec)} steps/s, step-to-step p50 ${t.p50} ms, p99 ${t.p99} ms | — |`);
console.log(`| fan-out ${CHILDREN} children + fan-in (send → parent's result, median of ${ROUNDS}) | ${t.fanInMs} ms | ${b} ms |`);
console.log(JSON.stringify({ flows: FLOWS, steps: STEPS, stepsPerSec: Math.round(t.stepsPerSec), stepGapP50Ms: t.p50, stepGapP99Ms: t.p99, fanInMs: t.fanInMs, bullmqFanInMs: b }));
process.exit(0);

/**
 * Workflows benchmark (`npm run bench -- --workflows`, or `npx tsx bench/workflows.ts`), on the
 * local Redis (broker and backend), worker and client in one process: a chord of 1 000 children +
 * callback, time from send to the callback's result (median of 7 rounds alternating with BullMQ's) — beside BullMQ's FlowProducer
 * (a parent with 1 000 children) on the same Redis, time from `add` to the parent's completion.
 * Options: --children C (1000) --rounds R (7) --concurrency K (50).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Server, silentLogger, task } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};
const CHILDREN = arg('children', 1000);
const ROUNDS = arg('rounds', 7);
const CONCURRENCY = arg('concurrency', 50);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

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

/** One system under test: `round()` runs one chord / flow of CHILDREN children and resolves with its ms. */
interface System {
  round(): Promise<number>;
  close(): Promise<void>;
}

async function tasuki(): Promise<System> {
  const prefix = `tasuki-bench-wf-${randomUUID().slice(0, 8)}`;
  const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger, statusExpires: 600, resultExpires: 600 });
  const double = server.add('bench-wf', 'double', (i: number) => i * 2);
  const count = server.add('bench-wf', 'count', (xs: number[]) => xs.length);
  await server.run('bench-wf', CONCURRENCY);
  const client = server.client();
  return {
    async round() {
      const s = Date.now();
      const id = await client.chord(Array.from({ length: CHILDREN }, (_, i) => task(double, i)), task(count));
      const r = await client.getResult(id, 300_000, 5);
      if (r.value !== CHILDREN) throw new Error(`chord lost children: ${r.status} ${String(r.value)} ${r.error?.message ?? ''}`);
      return Date.now() - s;
    },
    async close() {
      await server.shutdown();
      await sweep(prefix);
    },
  };
}

async function bullmq(): Promise<System> {
  const { FlowProducer, Worker, QueueEvents } = await import('bullmq');
  const prefix = `tasuki-bench-bullwf-${randomUUID().slice(0, 8)}`;
  const connection = { host: '127.0.0.1', port: 6379 };
  const producer = new FlowProducer({ connection, prefix });
  const kids = new Worker('kids', async (job) => (job.data as { i: number }).i * 2, { connection, prefix, concurrency: CONCURRENCY });
  const parents = new Worker('parents', async (job) => Object.keys(await job.getChildrenValues()).length, { connection, prefix, concurrency: CONCURRENCY });
  const events = new QueueEvents('parents', { connection, prefix });
  await Promise.all([kids.waitUntilReady(), parents.waitUntilReady(), events.waitUntilReady()]);
  return {
    async round() {
      const s = Date.now();
      const tree = await producer.add({
        name: 'parent', queueName: 'parents', data: {},
        children: Array.from({ length: CHILDREN }, (_, i) => ({ name: 'child', queueName: 'kids', data: { i } })),
      });
      const value = await tree.job.waitUntilFinished(events, 300_000);
      if (value !== CHILDREN) throw new Error('bullmq fan-in lost children');
      return Date.now() - s;
    },
    async close() {
      await Promise.all([kids.close(), parents.close(), events.close(), producer.close()]);
      await sweep(prefix);
    },
  };
}

// Both systems up at once; rounds alternate (and alternate which goes first), so that both see the
// same machine load; one warm-up round each is not counted.
const [t, b] = [await tasuki(), await bullmq()];
await t.round();
await b.round();
const tt: number[] = [];
const bb: number[] = [];
for (let k = 0; k < ROUNDS; k++) {
  if (k % 2 === 0) {
    tt.push(await t.round());
    bb.push(await b.round());
  } else {
    bb.push(await b.round());
    tt.push(await t.round());
  }
}
await t.close();
await b.close();
const tm = median(tt);
const bm = median(bb);
console.log(`| scenario | tasuki chord (Redis) | BullMQ FlowProducer (Redis) | BullMQ / tasuki |`);
console.log(`|---|---|---|---|`);
console.log(`| ${CHILDREN} children + callback (send → callback's result, median of ${ROUNDS} alternating rounds) | ${tm} ms | ${bm} ms | ${(bm / tm).toFixed(2)} |`);
console.log(JSON.stringify({ children: CHILDREN, rounds: ROUNDS, tasukiChordMs: tm, bullmqMs: bm, tasukiRounds: tt, bullmqRounds: bb }));
process.exit(0);

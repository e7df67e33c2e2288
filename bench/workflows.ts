/**
 * Workflows benchmark (`npm run bench -- --workflows`, or `npx tsx bench/workflows.ts`), on the
 * local Redis (broker and backend), worker and client in one process: a chord of 1 000 children +
 * callback, time from send to the callback's result (median of 7 rounds alternating with BullMQ's) — beside BullMQ's FlowProducer
 * (a parent with 1 000 children) on the same Redis, time from `add` to the parent's completion.
 * Options: --children C (1000) --rounds R (7) --concurrency K (50); --private-redis runs both on a
 * private redis-server (spawned on a free loopback port, killed by PID at the end) and also reports
 * the Redis commands per child of each (INFO commandstats around each round: every command,
 * those inside scripts included, and the script calls alone) and the CPU time of a round (this
 * process, `process.cpuUsage`, and the redis-server, INFO cpu).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Server, silentLogger, task } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { startPrivateRedis, type PrivateRedis } from '../test/helpers/redis-server.js';

const arg = (name: string, d: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? d : Number(process.argv[i + 1]);
};
const CHILDREN = arg('children', 1000);
const ROUNDS = arg('rounds', 7);
const CONCURRENCY = arg('concurrency', 50);
const PRIVATE = process.argv.includes('--private-redis');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

const privateRedis: PrivateRedis | undefined = PRIVATE ? await startPrivateRedis() : undefined;
const connection = { host: '127.0.0.1', port: privateRedis?.port ?? 6379 };

/** What the Redis server did so far: commands (inside scripts too), script calls, CPU ms; and this process's CPU ms. */
interface Work { all: number; scripts: number; redisCpu: number; nodeCpu: number }

async function work(r: Redis): Promise<Work> {
  const [stats, cpu] = [await r.info('commandstats'), await r.info('cpu')];
  let all = 0;
  let scripts = 0;
  for (const m of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const n = Number(m[2]);
    all += n;
    if (/^(eval|evalsha|fcall)/.test(m[1] as string)) scripts += n;
  }
  const sec = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  const own = process.cpuUsage();
  return { all, scripts, redisCpu: (sec('used_cpu_user') + sec('used_cpu_sys')) * 1000, nodeCpu: (own.user + own.system) / 1000 };
}

async function sweep(prefix: string): Promise<void> {
  const r = new Redis(connection);
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
  const server = new Server({ broker: new RedisBroker({ prefix, connection }), backend: new RedisBackend({ prefix, connection }), logger: silentLogger, statusExpires: 600, resultExpires: 600 });
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
const stats = new Redis(connection);
const tt: number[] = [];
const bb: number[] = [];
const zero = (): Work => ({ all: 0, scripts: 0, redisCpu: 0, nodeCpu: 0 });
const cmds = { t: zero(), b: zero() };
const measure = async (sys: System, times: number[], into: Work): Promise<void> => {
  const before = PRIVATE ? await work(stats) : undefined;
  times.push(await sys.round());
  if (before === undefined) return;
  const after = await work(stats);
  // Less the two INFO calls themselves.
  into.all += after.all - before.all - 2;
  into.scripts += after.scripts - before.scripts;
  into.redisCpu += after.redisCpu - before.redisCpu;
  into.nodeCpu += after.nodeCpu - before.nodeCpu;
};
for (let k = 0; k < ROUNDS; k++) {
  if (k % 2 === 0) {
    await measure(t, tt, cmds.t);
    await measure(b, bb, cmds.b);
  } else {
    await measure(b, bb, cmds.b);
    await measure(t, tt, cmds.t);
  }
}
await stats.quit();
await t.close();
await b.close();
await privateRedis?.remove();
const tm = median(tt);
const bm = median(bb);
const per = (n: number): string => (n / ROUNDS / CHILDREN).toFixed(1);
console.log(`| scenario | tasuki chord (Redis) | BullMQ FlowProducer (Redis) | BullMQ / tasuki |`);
console.log(`|---|---|---|---|`);
console.log(`| ${CHILDREN} children + callback (send → callback's result, median of ${ROUNDS} alternating rounds) | ${tm} ms | ${bm} ms | ${(bm / tm).toFixed(2)} |`);
const cpu = (w: Work): string => `${(w.nodeCpu / ROUNDS).toFixed(0)} + ${(w.redisCpu / ROUNDS).toFixed(0)} ms`;
if (PRIVATE) {
  console.log(`| Redis commands per child (of which script calls), private redis-server | ${per(cmds.t.all)} (${per(cmds.t.scripts)}) | ${per(cmds.b.all)} (${per(cmds.b.scripts)}) | |`);
  console.log(`| CPU per round: this process + redis-server | ${cpu(cmds.t)} | ${cpu(cmds.b)} | |`);
}
console.log(JSON.stringify({ children: CHILDREN, rounds: ROUNDS, tasukiChordMs: tm, bullmqMs: bm, tasukiRounds: tt, bullmqRounds: bb, ...(PRIVATE ? { commandsPerChild: { tasuki: Number(per(cmds.t.all)), bullmq: Number(per(cmds.b.all)) }, scriptCallsPerChild: { tasuki: Number(per(cmds.t.scripts)), bullmq: Number(per(cmds.b.scripts)) }, cpuMsPerRound: { tasuki: { node: cmds.t.nodeCpu / ROUNDS, redis: cmds.t.redisCpu / ROUNDS }, bullmq: { node: cmds.b.nodeCpu / ROUNDS, redis: cmds.b.redisCpu / ROUNDS } } } : {}) }));
process.exit(0);

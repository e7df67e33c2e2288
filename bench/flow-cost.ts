/**
 * Redis commands per task of flow control (priorities and keys) on the broker alone, from the INFO
 * counters of a private redis-server (as `bench/cost.ts`): `tasks` messages over `keys` keys and
 * three priorities, each published alone, fetched 10 at a time with `keyConcurrency: 2` and acked;
 * then the same with every message released once before its ack (release to the head of its lane).
 * Commands run inside scripts are counted by name (`EVALSHA` is the script call itself). Last, the
 * memory of `waiting` keyed messages sent in batches of 1000 (`used_memory` delta per message).
 *
 * `npx tsx bench/flow-cost.ts [--tasks N] [--keys K] [--waiting W] [--json]`
 */
import { Redis } from 'ioredis';
import { RedisBroker } from '../brokers/redis.js';
import { countersDelta, readCounters, startPrivateRedis } from './private-redis.js';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const tasks = arg('tasks', 2000);
const keys = arg('keys', 50);
const waiting = arg('waiting', 100_000);
const flow = { keyConcurrency: 2 };

/** Publishes, fetches and settles `tasks` keyed messages; `release`: hand each back once first. */
async function run(broker: RedisBroker, group: string, release: boolean): Promise<void> {
  for (let i = 0; i < tasks; i++) await broker.publish(group, `m${i}`, { key: `k${i % keys}`, priority: 4 + (i % 3) });
  const released = new Set<string>();
  let done = 0;
  while (done < tasks) {
    const got = await broker.fetch(group, 10, { leaseMs: 60_000, waitMs: 1000, flow });
    await Promise.all(
      got.map((d) => {
        if (release && !released.has(d.body)) {
          released.add(d.body);
          return broker.release(d);
        }
        done++;
        return broker.ack(d);
      }),
    );
  }
}

const server = await startPrivateRedis();
const admin = new Redis({ port: server.port, host: '127.0.0.1' });
const broker = new RedisBroker({ connection: { host: '127.0.0.1', port: server.port }, prefix: 'flowcost' });
const out: Record<string, { commands_per_task: number; by_name: Record<string, number> } | { bytes_per_waiting_task: number }> = {};
try {
  for (const release of [false, true]) {
    const group = release ? 'release' : 'plain';
    const before = await readCounters(admin);
    await run(broker, group, release);
    const d = countersDelta(before, await readCounters(admin));
    const byName: Record<string, number> = {};
    for (const [k, v] of Object.entries(d.byName)) if (k !== 'info') byName[k] = Math.round((v / tasks) * 100) / 100;
    const total = Object.values(byName).reduce((s, v) => s + v, 0);
    out[release ? 'publish+fetch+release+ack' : 'publish+fetch+ack'] = { commands_per_task: Math.round(total * 100) / 100, by_name: byName };
  }
  const before = (await readCounters(admin)).usedMemory;
  for (let i = 0; i < waiting; i += 1000) {
    await broker.publishBatch('waiting', Array.from({ length: Math.min(1000, waiting - i) }, (_, j) => ({ body: 'x'.repeat(100), options: { key: `k${(i + j) % keys}`, priority: 4 + ((i + j) % 3) } })));
  }
  out.memory = { bytes_per_waiting_task: Math.round(((await readCounters(admin)).usedMemory - before) / waiting) };
} finally {
  await broker.close();
  await admin.quit();
  await server.stop();
}
if (process.argv.includes('--json')) console.log(JSON.stringify(out));
else for (const [k, v] of Object.entries(out)) console.log(k, JSON.stringify(v));

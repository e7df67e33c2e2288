/**
 * Fair dispatch and key back-off end to end (issue 14), on the memory and Redis brokers: key A with
 * 10 000 tasks queued, then key B with one — B starts within the first 2 × concurrency tasks; a
 * handler that calls `ctl.backoffKey` is handed back (not failed, not counted as an attempt) and its
 * key waits while other keys run.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server } from '../src/server.js';
import type { Broker } from '../src/broker.js';
import type { Backend } from '../src/backend.js';
import type { TaskCtl } from '../src/ctl.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { silentLogger } from '../src/logger.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('flow-fair');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const setups: Array<{ name: string; make(): { broker: Broker; backend: Backend } }> = [
  { name: 'memory', make: () => ({ broker: new MemoryBroker(), backend: new MemoryBackend() }) },
  { name: 'redis', make: () => ({ broker: new RedisBroker({ prefix: ns.prefix }), backend: new RedisBackend({ prefix: ns.prefix }) }) },
];

describe.each(setups)('fairness on $name', ({ make }) => {
  it('key A with 10 000 queued, then key B with 1: B starts within the first 2 × concurrency tasks', async () => {
    const { broker, backend } = make();
    const server = new Server({ broker, backend, logger: silentLogger, statusExpires: 60, resultExpires: 60 });
    const group = `fair-${randomUUID().slice(0, 8)}`;
    const starts: string[] = [];
    const task = server.add(group, 'work', (label: string) => {
      starts.push(label);
    });
    const client = server.client();
    const concurrency = 4;
    try {
      const a = client.with({ key: 'A' });
      for (let i = 0; i < 10_000; i += 1000) await a.sendMany(task, Array.from({ length: 1000 }, (_, j) => [`A${i + j}`] as [string]));
      await client.with({ key: 'B' }).send(task, 'B0');
      await server.run(group, concurrency);
      while (!starts.includes('B0')) await sleep(5);
      expect(starts.indexOf('B0')).toBeLessThan(2 * concurrency);
    } finally {
      await server.shutdown(2000);
      const b = make().broker;
      await b.purge(group);
      await b.close();
    }
  }, 120_000);

  it('ctl.backoffKey hands the task back without failing it; its key waits, other keys run', async () => {
    const { broker, backend } = make();
    const server = new Server({ broker, backend, logger: silentLogger, statusExpires: 60, resultExpires: 60 });
    const group = `boff-${randomUUID().slice(0, 8)}`;
    const runs: Array<{ label: string; at: number }> = [];
    let backedOffAt = 0;
    const task = server.add(
      group,
      'call',
      async (ctl: TaskCtl, label: string) => {
        runs.push({ label, at: Date.now() });
        if (label === 'A0' && backedOffAt === 0) {
          backedOffAt = Date.now();
          await ctl.backoffKey(500); // the upstream of key A answered 429
          return 'not yet';
        }
        return `done ${label} after ${ctl.retriesUsed} retries`;
      },
      { ctl: true },
    );
    const client = server.client();
    try {
      const a0 = await client.with({ key: 'A' }).send(task, 'A0');
      const a1 = await client.with({ key: 'A' }).send(task, 'A1');
      const b0 = await client.with({ key: 'B' }).send(task, 'B0');
      await server.run(group, 1);
      const r = await client.getResult(a0, 20_000);
      expect(r.isSuccess() && r.value).toBe('done A0 after 0 retries');
      expect((await client.getResult(a1, 20_000)).isSuccess()).toBe(true);
      expect((await client.getResult(b0, 20_000)).isSuccess()).toBe(true);
      const order = runs.map((x) => x.label);
      // B ran while A waited; A's runs after the back-off came at least 500 ms later (broker clock vs ours: 50 ms slack).
      expect(order.indexOf('B0')).toBeLessThan(order.lastIndexOf('A0'));
      for (const x of runs.filter((y) => y.label.startsWith('A')).slice(1)) expect(x.at - backedOffAt).toBeGreaterThanOrEqual(450);
    } finally {
      await server.shutdown(2000);
      const b = make().broker;
      await b.purge(group);
      await b.close();
    }
  }, 60_000);
});

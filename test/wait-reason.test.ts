/**
 * "A task held back by a limit ... its status shows why it waits" (issue 14), on the memory and the
 * Redis broker: `client.getStatus(id).waiting` of a task held by the group rate limit, its key's
 * rate limit, its key's concurrency bound and its key's back-off; absent for a task of a plain group
 * and once the task runs.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server } from '../src/server.js';
import type { Broker, WaitReason } from '../src/broker.js';
import type { Backend } from '../src/backend.js';
import type { Client } from '../src/client.js';
import type { TaskCtl } from '../src/ctl.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { silentLogger } from '../src/logger.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('flow-wait');

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

/** Polls getStatus until its `waiting` is set (a worker's fetch must have evaluated the limit first). */
async function waitingOf(client: Client, id: string): Promise<WaitReason> {
  const until = Date.now() + 20_000;
  for (;;) {
    const s = await client.getStatus(id);
    if (s?.waiting !== undefined) return s.waiting;
    if (Date.now() > until) throw new Error(`no waiting reason for ${id}: ${JSON.stringify(s?.state)}`);
    await sleep(20);
  }
}

/** Waits until one of two tasks has started (a bucket of one token lets one through), and returns the other's id. */
async function held(started: Set<string>, a: [label: string, id: string | undefined], b: [label: string, id: string | undefined]): Promise<string> {
  const until = Date.now() + 20_000;
  while (!started.has(a[0]) && !started.has(b[0])) {
    if (Date.now() > until) throw new Error(`neither ${a[0]} nor ${b[0]} started`);
    await sleep(20);
  }
  return (started.has(a[0]) ? b[1] : a[1]) as string;
}

describe.each(setups)('why a task waits, on $name', ({ make }) => {
  it('rate limit, key rate limit, key concurrency, key back-off; nothing for a plain group or a started task', async () => {
    const { broker, backend } = make();
    const server = new Server({ broker, backend, logger: silentLogger, statusExpires: 60, resultExpires: 60, fetchWaitMs: 200 });
    const g = (n: string): string => `wr-${n}-${randomUUID().slice(0, 8)}`;
    const groups = { rate: g('rate'), keyRate: g('krate'), conc: g('conc'), pause: g('pause'), plain: g('plain') };
    let open: () => void = () => undefined;
    const gate = new Promise<void>((r) => (open = r));
    const started = new Set<string>();
    const tasks = {
      rate: server.add(groups.rate, 'w', (label: string) => void started.add(label)),
      keyRate: server.add(groups.keyRate, 'w', (label: string) => void started.add(label)),
      conc: server.add(groups.conc, 'w', async (label: string) => {
        started.add(label);
        await gate;
      }),
      pause: server.add(groups.pause, 'w', async (ctl: TaskCtl, label: string) => {
        started.add(label);
        if (label === 'p0') await ctl.backoffKey(60_000);
      }, { ctl: true }),
      plain: server.add(groups.plain, 'w', (label: string) => void started.add(label)),
    };
    const client = server.client();
    try {
      const hour = { limit: 1, periodMs: 3_600_000, burst: 1 };
      await server.run(groups.rate, 2, { rateLimit: hour });
      await server.run(groups.keyRate, 2, { keyRateLimit: hour });
      await server.run(groups.conc, 2, { keyConcurrency: 1 });
      await server.run(groups.pause, 2, { keyConcurrency: 5 });

      const [r0, r1] = await client.sendMany(tasks.rate, [['r0'], ['r1']]);
      const [k0, k1] = await client.with({ key: 'tenant-k' }).sendMany(tasks.keyRate, [['k0'], ['k1']]);
      const [c0, c1] = await client.with({ key: 'tenant-c' }).sendMany(tasks.conc, [['c0'], ['c1']]);
      const [p0] = await client.with({ key: 'tenant-p' }).sendMany(tasks.pause, [['p0']]);
      // The plain group has no worker: its task waits in the queue, held by nothing.
      const plainId = await client.send(tasks.plain, 'x');

      const now = Date.now();
      const rate = await waitingOf(client, await held(started, ['r0', r0], ['r1', r1]));
      expect(rate.reason).toBe('rate-limit');
      expect(rate.key).toBeUndefined();
      expect(rate.until).toBeGreaterThan(now);

      const keyRate = await waitingOf(client, await held(started, ['k0', k0], ['k1', k1]));
      expect(keyRate).toMatchObject({ reason: 'key-rate-limit', key: 'tenant-k' });
      expect(keyRate.until).toBeGreaterThan(now);

      const conc = await waitingOf(client, await held(started, ['c0', c0], ['c1', c1]));
      expect(conc).toEqual({ reason: 'key-concurrency', key: 'tenant-c' });

      // p0 ran, backed its key off for a minute and was handed back: it waits, and says why.
      const paused = await waitingOf(client, p0 as string);
      expect(paused).toMatchObject({ reason: 'key-paused', key: 'tenant-p' });
      expect(paused.until).toBeGreaterThan(now + 30_000);
      expect((await client.getStatus(p0 as string))?.status).toBe('sent');

      const plain = await client.getStatus(plainId);
      expect(plain?.status).toBe('sent');
      expect(plain?.waiting).toBeUndefined();

      // Once the held task runs, nothing is reported any more.
      open();
      const c1Result = await client.getResult(c1 as string, 20_000);
      expect(c1Result.status).toBe('success');
      expect((await client.getStatus(c1 as string))?.waiting).toBeUndefined();
      expect(started.has('r1') && started.has('r0')).toBe(false);
    } finally {
      open();
      await server.shutdown(2000);
      const b = make().broker;
      for (const group of Object.values(groups)) await b.purge(group);
      await b.close();
    }
  }, 60_000);
});

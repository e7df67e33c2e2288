/**
 * End to end with the Redis broker and the Memcache backend: the worker runs in another process
 * (`test/fixtures/worker.ts`), the client here. Every task's entries are deleted afterwards.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client, silentLogger, taskRef } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { redisNamespace } from './helpers/redis.js';
import { killAll, startWorker, type WorkerProcess } from './helpers/processes.js';
import { until } from './core/suite.js';

const ns = redisNamespace('e2e-mc');
const workers: WorkerProcess[] = [];
const ids: string[] = [];
const client = new Client({
  broker: new RedisBroker({ prefix: ns.prefix }),
  backend: new MemcacheBackend({ prefix: ns.prefix }),
  logger: silentLogger,
});

afterAll(async () => {
  await killAll(workers);
  const backend = new MemcacheBackend({ prefix: ns.prefix });
  await Promise.all(ids.map((id) => backend.delete(id)));
  expect(await backend.readMany(ids)).toEqual(ids.map(() => null));
  await backend.close();
  await client.close();
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

describe('end to end: Redis broker + Memcache backend, worker in another process', () => {
  it('runs the demo, a retried task and a SIGKILL-interrupted task', async () => {
    const group = `e2e-mc-${randomUUID().slice(0, 8)}`;
    const env = { TASUKI_PREFIX: ns.prefix, TASUKI_GROUP: group, TASUKI_BROKER: 'redis', TASUKI_BACKEND: 'memcache', TASUKI_LEASE_MS: '1000' };
    const first = await startWorker(env);
    workers.push(first);
    const add = taskRef<[number, number], number>(group, 'add');
    const appendUser = taskRef<[{ id: number; name: string }, number[], string[]], Array<{ id: number; name: string }>>(group, 'append_user');
    const flaky = taskRef<[number], number>(group, 'flaky');
    const work = taskRef<[number, number], { value: number; pid: number }>(group, 'work');

    const a = await client.send(add, 123, 44);
    const u = await client.send(appendUser, { id: 1, name: 'aa' }, [322, 11], ['bb', 'cc']);
    const f = await client.with({ backoff: { type: 'fixed', delayMs: 10 } }).send(flaky, 1);
    ids.push(a, u, f);
    expect((await client.getResult(a, 15_000)).value).toBe(167);
    expect((await client.getResult(u, 15_000)).value).toEqual([
      { id: 1, name: 'aa' },
      { id: 322, name: 'bb' },
      { id: 11, name: 'cc' },
    ]);
    const rf = await client.getResult(f, 15_000);
    expect(rf.value).toBe(1);
    expect(rf.retriesUsed).toBe(1);

    const w = await client.send(work, 5, 3000);
    ids.push(w);
    await until(async () => (await client.getStatus(w))?.status === 'running', 15_000, 'running');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await startWorker(env);
    workers.push(second);
    expect((await client.getResult(w, 20_000)).value).toEqual({ value: 5, pid: second.child.pid });
  });
});

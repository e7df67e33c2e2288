/**
 * End to end on Redis (broker and backend): the worker runs in separate processes
 * (`test/fixtures/worker.ts`), the client in this one. Includes crash (SIGKILL), connection-kill and
 * graceful-shutdown runs; each counts what it did and asserts that no task was lost.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client, silentLogger, taskRef, type TaskId } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { connectionsOf, killAll, killAtRandom, startWorker, type WorkerProcess } from './helpers/processes.js';
import { until } from './core/suite.js';

const ns = redisNamespace('e2e');
const admin = new Redis({ connectionName: 'tasuki-test-admin' });
let workers: WorkerProcess[] = [];
let clients: Client[] = [];

const add = taskRef<[number, number], number>('', 'add');
type Work = { value: number; pid: number };

function setup(extraEnv: Record<string, string> = {}): { group: string; client: Client; spawn(env?: Record<string, string>): Promise<WorkerProcess> } {
  const group = `e2e-${randomUUID().slice(0, 8)}`;
  const client = new Client({ broker: new RedisBroker({ prefix: ns.prefix }), backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger });
  clients.push(client);
  const spawn = async (env: Record<string, string> = {}): Promise<WorkerProcess> => {
    const w = await startWorker({ TASUKI_PREFIX: ns.prefix, TASUKI_GROUP: group, TASUKI_BROKER: 'redis', TASUKI_BACKEND: 'redis', ...extraEnv, ...env });
    workers.push(w);
    return w;
  };
  return { group, client, spawn };
}

afterEach(async () => {
  await killAll(workers);
  workers = [];
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await ns.sweep();
});

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  await admin.quit();
});

describe('end to end on Redis, worker in another process', () => {
  it('runs the YTask demo across processes', async () => {
    const { group, client, spawn } = setup();
    await spawn();
    const id = await client.send({ ...add, group }, 123, 44);
    const r = await client.getResult(id, 15_000);
    expect(r.value).toBe(167);
    const appendUser = taskRef<[{ id: number; name: string }, number[], string[]], Array<{ id: number; name: string }>>(group, 'append_user');
    const r2 = await client.getResult(await client.send(appendUser, { id: 1, name: 'aa' }, [322, 11], ['bb', 'cc']), 15_000);
    expect(r2.value).toEqual([
      { id: 1, name: 'aa' },
      { id: 322, name: 'bb' },
      { id: 11, name: 'cc' },
    ]);
    const flaky = taskRef<[number], number>(group, 'flaky');
    const r3 = await client.getResult(await client.with({ backoff: { type: 'fixed', delayMs: 10 } }).send(flaky, 2), 15_000);
    expect(r3.value).toBe(2);
    expect(r3.retriesUsed).toBe(2);
  });

  it('a worker killed with SIGKILL mid-task: a second worker finishes the task', async () => {
    const { group, client, spawn } = setup({ TASUKI_LEASE_MS: '1000', TASUKI_CONCURRENCY: '1' });
    const first = await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const id = await client.send(work, 7, 3000);
    await until(async () => (await client.getStatus(id))?.status === 'running', 15_000, 'running');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await spawn();
    const r = await client.getResult(id, 20_000);
    expect(r.value).toEqual({ value: 7, pid: second.child.pid });
  });

  it('no task is lost across a run of many tasks with workers killed at random instants', async () => {
    const { group, client, spawn } = setup({ TASUKI_LEASE_MS: '1000', TASUKI_CONCURRENCY: '8' });
    await spawn();
    await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const n = 400;
    const ids: Array<TaskId<Work>> = await client.sendMany(
      work,
      Array.from({ length: n }, (_, i) => [i, 50 + ((i * 37) % 100)] as [number, number]),
    );
    const killer = killAtRandom(workers, spawn, 12);
    const results = [];
    for (const id of ids) results.push(await client.getResult(id, 120_000, 50));
    const kills = await killer.stop();
    const pids = new Set(results.map((r) => r.value?.pid));
    console.log(`crash run: ${n} tasks, ${kills} SIGKILLs, ${pids.size} worker processes ran them, retries used ${results.reduce((s, r) => s + r.retriesUsed, 0)}`);
    expect(kills).toBeGreaterThan(0);
    expect(results.map((r) => r.status)).toEqual(Array(n).fill('success'));
    expect(results.map((r) => r.value?.value)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it("cutting the worker's Redis connections during a run loses nothing", async () => {
    const { group, client, spawn } = setup({ TASUKI_LEASE_MS: '2000', TASUKI_CONCURRENCY: '8' });
    const w = await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const n = 300;
    const ids = await client.sendMany(work, Array.from({ length: n }, (_, i) => [i, 20] as [number, number]));
    let cuts = 0;
    let done = false;
    const cutter = (async () => {
      while (!done && cuts < 6) {
        await new Promise((r) => setTimeout(r, 150 + Math.random() * 300));
        for (const addr of await connectionsOf(w.child.pid as number, 6379)) {
          await admin.client('KILL', 'ADDR', addr).catch(() => undefined);
          cuts++;
        }
      }
    })();
    const results = [];
    for (const id of ids) results.push(await client.getResult(id, 120_000, 50));
    done = true;
    await cutter;
    console.log(`connection-kill run: ${n} tasks, ${cuts} connections cut`);
    expect(cuts).toBeGreaterThan(0);
    expect(results.map((r) => r.value?.value)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('SIGTERM shuts down gracefully: running tasks finish, unfinished ones are handed back', async () => {
    const { group, client, spawn } = setup({ TASUKI_CONCURRENCY: '4', TASUKI_SHUTDOWN_MS: '800' });
    const first = await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const quick = await Promise.all([1, 2].map((v) => client.send(work, v, 200)));
    const slow = await Promise.all([3, 4].map((v) => client.send(work, v, 4000)));
    await until(async () => {
      const states = await Promise.all([...quick, ...slow].map((id) => client.getStatus(id)));
      return states.every((s) => s?.status === 'running');
    }, 15_000, 'all running');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.output()).toContain('stopped');
    for (const id of quick) expect((await client.getStatus(id))?.value).toEqual({ value: expect.any(Number), pid: first.child.pid });
    // Handed back: they read as queued again (`sent`), not `running`.
    for (const id of slow) expect((await client.getStatus(id))?.status).toBe('sent');
    const second = await spawn();
    for (const id of slow) expect((await client.getResult(id, 20_000)).value?.pid).toBe(second.child.pid);
  });
});

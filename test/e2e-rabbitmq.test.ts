/**
 * End to end with the RabbitMQ broker and the Redis backend: workers in separate processes
 * (`test/fixtures/worker.ts`), the client here. SIGKILLed workers' unacked messages return at once.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client, silentLogger, taskRef, type TaskId } from '../src/index.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { killAll, killAtRandom, startWorker, type WorkerProcess } from './helpers/processes.js';
import { until } from './core/suite.js';

const redis = redisNamespace('e2e-rmq');
const rabbit = rabbitNamespace('e2e');
let workers: WorkerProcess[] = [];
const client = new Client({
  broker: new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }),
  backend: new RedisBackend({ prefix: redis.prefix }),
  logger: silentLogger,
});
type Work = { value: number; pid: number };

function spawner(group: string, extra: Record<string, string> = {}): () => Promise<WorkerProcess> {
  return async () => {
    const w = await startWorker({
      TASUKI_PREFIX: rabbit.prefix,
      TASUKI_GROUP: group,
      TASUKI_BROKER: 'rabbitmq',
      TASUKI_BACKEND: 'redis',
      TASUKI_REDIS_PREFIX: redis.prefix,
      ...extra,
    });
    workers.push(w);
    return w;
  };
}

afterEach(async () => {
  await killAll(workers);
  workers = [];
});

afterAll(async () => {
  await client.close();
  await rabbit.sweep();
  expect(rabbit.queues()).toEqual([]);
  await redis.sweep();
  expect(await redis.keys()).toEqual([]);
  await redis.quit();
});

describe('end to end: RabbitMQ broker + Redis backend, workers in other processes', () => {
  it('runs the demo and a retried task', async () => {
    const group = `e2e-${randomUUID().slice(0, 8)}`;
    await spawner(group)();
    const add = taskRef<[number, number], number>(group, 'add');
    const flaky = taskRef<[number], number>(group, 'flaky');
    expect((await client.getResult(await client.send(add, 123, 44), 15_000)).value).toBe(167);
    const r = await client.getResult(await client.with({ backoff: { type: 'fixed', delayMs: 50 } }).send(flaky, 2), 20_000);
    expect(r.value).toBe(2);
    expect(r.retriesUsed).toBe(2);
  });

  it('a worker killed with SIGKILL mid-task: the task completes on another worker', async () => {
    const group = `e2e-${randomUUID().slice(0, 8)}`;
    const spawn = spawner(group, { TASUKI_CONCURRENCY: '1' });
    const first = await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const id = await client.send(work, 9, 3000);
    await until(async () => (await client.getStatus(id))?.status === 'running', 15_000, 'running');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await spawn();
    expect((await client.getResult(id, 20_000)).value).toEqual({ value: 9, pid: second.child.pid });
  });

  it('no task is lost across a run with workers killed at random instants', async () => {
    const group = `e2e-${randomUUID().slice(0, 8)}`;
    const spawn = spawner(group, { TASUKI_CONCURRENCY: '8' });
    await spawn();
    await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const n = 300;
    const ids: Array<TaskId<Work>> = await client.sendMany(work, Array.from({ length: n }, (_, i) => [i, 50 + ((i * 37) % 100)] as [number, number]));
    const killer = killAtRandom(workers, spawn, 10);
    const results = [];
    for (const id of ids) results.push(await client.getResult(id, 120_000, 50));
    const kills = await killer.stop();
    console.log(`rabbitmq crash run: ${n} tasks, ${kills} SIGKILLs, ${new Set(results.map((r) => r.value?.pid)).size} worker processes ran them`);
    expect(kills).toBeGreaterThan(0);
    expect(results.map((r) => r.value?.value)).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});

/**
 * Crash run of workflows: 100 chains of 5 steps (one task used three times, steps in two groups, a nested chord last) and
 * 100 chords of 20 children + callback (half of them with a nested chain as one item), run by 3 worker processes (`test/fixtures/workflow-worker.ts`)
 * that are SIGKILLed at random instants and replaced. Every workflow must end `success` with the
 * right value, no chord callback may run with a partial set, no workflow may be left waiting.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, chain, chord, silentLogger, task, taskRef, type TaskId } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { killAll, killAtRandom, startWorker, type WorkerProcess } from './helpers/processes.js';

const fixture = fileURLToPath(new URL('./fixtures/workflow-worker.ts', import.meta.url));
const ns = redisNamespace('e2e-wf');
const rabbit = rabbitNamespace('e2e-wf');
const N = 100;
let workers: WorkerProcess[] = [];
let clients: Client[] = [];

afterEach(async () => {
  await killAll(workers);
  workers = [];
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
});

afterAll(async () => {
  await rabbit.sweep();
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

async function crashRun(brokerKind: 'redis' | 'rabbitmq'): Promise<void> {
  const group = `ew-${randomUUID().slice(0, 8)}`;
  const broker = brokerKind === 'redis' ? new RedisBroker({ prefix: ns.prefix }) : new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix });
  const client = new Client({ broker, backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger });
  clients.push(client);
  const spawn = async (): Promise<WorkerProcess> => {
    const env: Record<string, string> = { TASUKI_PREFIX: brokerKind === 'redis' ? ns.prefix : rabbit.prefix, TASUKI_REDIS_PREFIX: ns.prefix, TASUKI_GROUP: group, TASUKI_BROKER: brokerKind, TASUKI_LEASE_MS: '1000' };
    const w = await startWorker(env, fixture);
    workers.push(w);
    return w;
  };
  await Promise.all([spawn(), spawn(), spawn()]);
  const add = taskRef<[a: number, b: number], number>(group, 'add');
  const double = taskRef<[n: number], number>(group, 'double');
  const sum = taskRef<[ns: number[]], number>(`${group}-b`, 'sum');
  const retry = { retryCount: 5, backoff: { type: 'fixed' as const, delayMs: 50 } };

  const killer = killAtRandom(workers, spawn, 15);
  // ((i + 1) + 10) * 2 + 3, then into a one-item chord: sum([x]) = x
  const chains: Array<TaskId<number>> = await Promise.all(Array.from({ length: N }, (_, i) =>
    client.chain(task(add, i, 1), task(add, 10).with(retry), task(double).with(retry), task(add, 3).with(retry), chord([task(add, 0).with(retry)], task(sum).with(retry)))));
  const chords: Array<TaskId<number>> = await Promise.all(Array.from({ length: N }, (_, c) =>
    // Odd chords: one task kind (sent as one batch). Even ones: item 0 is a nested chain (a child workflow).
    client.chord(Array.from({ length: 20 }, (_, k) => (k === 0 && c % 2 === 0 ? chain(task(add, c, 0).with(retry), task(add, 0).with(retry)) : task(add, c, k).with(retry))), task(sum).with(retry))));
  const chainResults = [];
  for (const id of chains) chainResults.push(await client.getResult(id, 240_000, 100));
  const chordResults = [];
  for (const id of chords) chordResults.push(await client.getResult(id, 240_000, 100));
  const kills = await killer.stop();

  expect(chainResults.map((r) => r.status)).toEqual(Array(N).fill('success'));
  chainResults.forEach((r, i) => expect(r.value).toBe((i + 11) * 2 + 3));
  expect(chordResults.map((r) => r.status)).toEqual(Array(N).fill('success'));
  // sum over k of (c + k) = 20c + 190
  chordResults.forEach((r, c) => expect(r.value).toBe(20 * c + 190));
  for (const id of [...chains, ...chords]) {
    const w = await client.getWorkflow(id);
    expect(w?.steps.every((s) => s.status === 'success')).toBe(true);
  }
  const { Redis } = await import('ioredis');
  const admin = new Redis();
  const sizes = await admin.lrange(`${ns.prefix}:${group}:sums`, 0, -1);
  await admin.quit();
  // Chains' callbacks get one value; chords' get 20; never a partial set.
  expect(sizes.filter((s) => s !== '1' && s !== '20')).toEqual([]);
  expect(sizes.filter((s) => s === '20').length).toBeGreaterThanOrEqual(N);
  console.log(`workflow crash run (${brokerKind}): ${N} chains × 5 + ${N} chords × 21, ${kills} SIGKILLs, ${sizes.length} sum runs for ${2 * N} (${sizes.length - 2 * N} re-run)`);
  expect(kills).toBeGreaterThan(0);
  await broker.purge(group).catch(() => undefined);
  await broker.purge(`${group}-b`).catch(() => undefined);
}

describe('workflows end to end with SIGKILLs', () => {
  it('Redis broker + Redis backend: every chain and chord ends with the right value, no partial fan-in', () => crashRun('redis'), 300_000);
  it('RabbitMQ broker + Redis backend: the same run', () => crashRun('rabbitmq'), 300_000);
});

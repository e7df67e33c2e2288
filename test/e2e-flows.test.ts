/**
 * Crash run of durable flows on Redis (broker and backend): 200 flows, each with 5 steps, a
 * 200–800 ms sleep, a fan-out of 10 children in another group and a signal, run by 3 worker
 * processes (`test/fixtures/flow-worker.ts`) that are SIGKILLed at random instants and replaced.
 * Every flow must end `success` with the right value, no memoized value may ever change (sampled
 * while the run goes on, and checked against the execution log), no parent may be left waiting.
 * Prints the counts (kills, step and child bodies re-run).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, silentLogger, taskRef, type TaskId } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { killAll, killAtRandom, startWorker, type WorkerProcess } from './helpers/processes.js';

const fixture = fileURLToPath(new URL('./fixtures/flow-worker.ts', import.meta.url));
const ns = redisNamespace('e2e-flows');
const rabbit = rabbitNamespace('e2e-flows');
let workers: WorkerProcess[] = [];
let clients: Client[] = [];

type Out = { n: number; steps: string[]; signal: number };

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
  const group = `ef-${randomUUID().slice(0, 8)}`;
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
  const flow = taskRef<[number], Out>(group, 'crashflow');
  const n = 200;
  const ids: Array<TaskId<Out>> = await client.sendMany(flow, Array.from({ length: n }, (_, i) => [i] as [number]));
  const killer = killAtRandom(workers, spawn, 15);

  // Signals at random instants: some before the flow reaches its wait, most after.
  const signals = Promise.all(ids.map((id, i) => new Promise<void>((resolve, reject) => setTimeout(() => client.signal(id, 'go', i).then(resolve, reject), Math.random() * 4000))));

  // Sample memoized values while the run goes on: once seen, a value must never change.
  const seen = new Map<string, unknown>();
  let changed = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (let k = 0; k < 8; k++) {
        const id = ids[Math.floor(Math.random() * n)] as string;
        const f = await client.getFlow(id).catch(() => null);
        for (const s of f?.steps ?? []) {
          if (s.status !== 'done' || (s.kind !== 'step' && s.kind !== 'call')) continue;
          const key = `${id}/${s.key}`;
          if (seen.has(key) && seen.get(key) !== s.value) changed++;
          seen.set(key, s.value);
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();

  await signals;
  const results = [];
  for (const id of ids) results.push(await client.getResult(id, 240_000, 100));
  sampling = false;
  await sampler;
  const kills = await killer.stop();

  expect(results.map((r) => r.status)).toEqual(Array(n).fill('success'));
  results.forEach((r, i) => {
    expect(r.value?.n).toBe(i);
    expect(r.value?.signal).toBe(i);
    expect(r.value?.steps).toHaveLength(6);
  });

  // Every returned value was computed by a logged execution and is the one journaled; samples never changed.
  const { Redis } = await import('ioredis');
  const admin = new Redis();
  const lines = await admin.lrange(`${ns.prefix}:${group}:crashlog`, 0, -1);
  await admin.quit();
  const runs = new Map<string, Set<string>>();
  for (const l of lines) {
    const e = JSON.parse(l) as { id: string; key: string; value: string };
    const k = `${e.id}/${e.key}`;
    if (!runs.has(k)) runs.set(k, new Set());
    runs.get(k)?.add(e.value);
  }
  let childrenOk = 0;
  for (const [i, id] of ids.entries()) {
    const f = await client.getFlow(id);
    const steps = (f?.steps ?? []).filter((s) => s.kind === 'step');
    expect(steps.map((s) => s.value)).toEqual(results[i]?.value?.steps.filter((s) => !s.startsWith('kids:')));
    for (const s of steps) expect(runs.get(`${id}/${s.key}`)?.has(s.value as string)).toBe(true);
    const kids = (f?.steps ?? []).filter((s) => s.kind === 'call');
    expect(kids).toHaveLength(10);
    for (const c of kids) {
      expect(c.status).toBe('done');
      expect(runs.get(`${id}/kid[${c.index ?? -1}]`)?.has(c.value as string)).toBe(true);
      const st = await client.getStatus(c.child as string);
      if (st?.status === 'success') childrenOk++;
    }
    expect(f?.waitingOn).toEqual([]);
  }
  const stepRuns = lines.filter((l) => l.includes('"key":"step#')).length;
  const kidRuns = lines.length - stepRuns;
  const samples = seen.size;
  console.log(
    `flow crash run (${brokerKind}): ${n} flows, ${kills} SIGKILLs, step bodies run ${stepRuns} for ${n * 5} steps (${stepRuns - n * 5} re-run), ` +
      `child bodies run ${kidRuns} for ${n * 10} children (${kidRuns - n * 10} re-run), ${childrenOk} children success, ${samples} memoized values sampled, ${changed} changed`,
  );
  expect(kills).toBeGreaterThan(0);
  expect(changed).toBe(0);
  expect(childrenOk).toBe(n * 10);
  await client.getStatus(ids[0] as string);
  await broker.purge(group).catch(() => undefined);
  await broker.purge(`${group}-kids`).catch(() => undefined);
}

describe('flows end to end with SIGKILLs', () => {
  it('Redis broker + Redis backend: every flow ends success, no memoized value changes, no parent left waiting', () => crashRun('redis'), 300_000);
  it('RabbitMQ broker + Redis backend: the same run', () => crashRun('rabbitmq'), 300_000);
});

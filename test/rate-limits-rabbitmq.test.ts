/**
 * A group rate limit on RabbitMQ (issue 14), which cannot evaluate one itself: the workers take
 * tokens from a bucket in the Redis backend (`Backend.rateLimits`, `src/worker-rate-gate.ts`) before
 * they take tasks. 50/s (burst 10) across 3 worker processes: at most limit + burst taken in every
 * 1 s window, at least half the limit overall (liveness); the same through a worker SIGKILL; on classic
 * and quorum queues, getStatus of a task held back says so; without such a backend (and for the
 * per-key options) it is refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client.js';
import { Server } from '../src/server.js';
import { taskRef } from '../src/task.js';
import { silentLogger } from '../src/logger.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { MemoryBackend } from '../backends/memory.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { killAll, startWorker, type WorkerProcess } from './helpers/processes.js';
import { flowEvents, maxInWindow, type FlowEvent } from './helpers/flow-log.js';

const fixture = fileURLToPath(new URL('./fixtures/limits-worker.ts', import.meta.url));
const redis = redisNamespace('flow-rabbit');
const rabbit = rabbitNamespace('flowrate');

afterAll(async () => {
  await rabbit.sweep();
  await redis.sweep();
  expect(await redis.keys()).toEqual([]);
  await redis.quit();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rate = { limit: 50, periodMs: 1000, burst: 10 };

async function setup(env: Record<string, string>): Promise<{ group: string; logKey: string; client: Client; workers: WorkerProcess[]; spawn(): Promise<WorkerProcess>; close(): Promise<void> }> {
  const group = `rl-${randomUUID().slice(0, 8)}`;
  const logKey = `${redis.prefix}:log:${group}`;
  const broker = new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix });
  const client = new Client({ broker, backend: new RedisBackend({ prefix: redis.prefix }), logger: silentLogger, statusExpires: 600, resultExpires: 600 });
  const workers: WorkerProcess[] = [];
  const spawn = async (): Promise<WorkerProcess> => {
    const w = await startWorker({
      TASUKI_BROKER: 'rabbitmq',
      TASUKI_RABBIT_URL: rabbitUrl,
      TASUKI_RABBIT_PREFIX: rabbit.prefix,
      TASUKI_PREFIX: redis.prefix,
      TASUKI_GROUP: group,
      TASUKI_GROUP_OPTIONS: JSON.stringify({ rateLimit: rate }),
      TASUKI_LOG_KEY: logKey,
      TASUKI_CONCURRENCY: '4',
      ...env,
    }, fixture);
    workers.push(w);
    return w;
  };
  return {
    group, logKey, client, workers, spawn,
    async close() {
      await killAll(workers);
      await broker.purge(group);
      await client.close();
    },
  };
}

/** Waits until `enough(events)` or 90 s. */
async function until(logKey: string, enough: (evs: FlowEvent[]) => boolean): Promise<FlowEvent[]> {
  const stop = Date.now() + 90_000;
  let evs: FlowEvent[] = [];
  while (Date.now() < stop) {
    evs = await flowEvents(redis.admin, logKey);
    if (enough(evs)) break;
    await sleep(200);
  }
  return evs;
}

describe('group rate limit on RabbitMQ (shared bucket in the Redis backend)', () => {
  it('50/s (burst 10) across 3 worker processes: at most limit + burst taken in every 1 s window, at least half the limit overall (liveness)', async () => {
    const run = await setup({});
    try {
      const ref = taskRef<[string, string], void>(run.group, 'run');
      await run.client.sendMany(ref, Array.from({ length: 700 }, (_, i) => ['-', `t${i}`] as [string, string]));
      await Promise.all([run.spawn(), run.spawn(), run.spawn()]);
      const evs = await until(run.logKey, (e) => e.filter((x) => x.kind === 'start').length >= 520);
      const starts = evs.filter((e) => e.kind === 'start').map((e) => e.at).sort((a, b) => a - b);
      const takes = evs.filter((e) => e.kind === 'take').map((e) => e.at);
      const grants = evs.filter((e) => e.kind === 'grant').map((e) => e.at);
      expect(starts.length).toBeGreaterThanOrEqual(520);
      expect(grants).toHaveLength(takes.length);
      // Every process took part.
      expect(new Set(evs.filter((e) => e.kind === 'start').map((e) => e.pid)).size).toBe(3);
      // Counted where the limit applies: when each delivery's tokens were granted, just before its fetch.
      expect(maxInWindow(grants, 1000)).toBeLessThanOrEqual(60);
      const spanS = ((starts.at(-1) as number) - (starts[0] as number)) / 1000;
      // A liveness bound, not a speed one (about 50/s on an idle machine, see the log line).
      expect((starts.length - 10) / spanS).toBeGreaterThanOrEqual(25);
      console.info(`rabbitmq, group limit 50/s burst 10, 3 processes: ${takes.length} taken, most in a 1 s window ${maxInWindow(grants, 1000)} by grant time (by fetch return: ${maxInWindow(takes, 1000)}, by start: ${maxInWindow(starts, 1000)}), ${((starts.length - 10) / spanS).toFixed(1)}/s over ${spanS.toFixed(1)} s`);
    } finally {
      await run.close();
    }
  }, 150_000);

  it('a worker SIGKILLed mid-run: no task lost, the limit still holds after recovery', async () => {
    const run = await setup({ TASUKI_HANDLER_MS: '30' });
    try {
      const ref = taskRef<[string, string], void>(run.group, 'run');
      const ids = await run.client.sendMany(ref, Array.from({ length: 240 }, (_, i) => ['-', `t${i}`] as [string, string]));
      await Promise.all([run.spawn(), run.spawn(), run.spawn()]);
      await until(run.logKey, (e) => e.filter((x) => x.kind === 'start').length >= 60);
      const victim = run.workers[0] as WorkerProcess;
      victim.child.kill('SIGKILL');
      await victim.exited;
      await run.spawn();
      const evs = await until(run.logKey, (e) => new Set(e.filter((x) => x.kind === 'end').map((x) => x.label)).size >= ids.length);
      expect(new Set(evs.filter((e) => e.kind === 'end').map((e) => e.label)).size).toBe(ids.length);
      for (const id of ids) expect((await run.client.getStatus(id))?.status).toBe('success');
      expect(maxInWindow(evs.filter((e) => e.kind === 'grant').map((e) => e.at), 1000)).toBeLessThanOrEqual(60);
    } finally {
      await run.close();
    }
  }, 150_000);

  it.each(['classic', 'quorum'] as const)('%s queues: getStatus of a task held back by the shared bucket says rate-limit; per-key options and a backend without buckets are refused', async (queueType) => {
    const options = { url: rabbitUrl, prefix: rabbit.prefix, queueType };
    const broker = new RabbitMQBroker(options);
    const server = new Server({ broker, backend: new RedisBackend({ prefix: redis.prefix }), logger: silentLogger, statusExpires: 60, resultExpires: 60, fetchWaitMs: 200 });
    const group = `rw-${randomUUID().slice(0, 8)}`;
    const started: string[] = [];
    const task = server.add(group, 't', (label: string) => void started.push(label));
    const client = server.client();
    try {
      await expect(server.run(group, 1, { keyConcurrency: 2 })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('keyConcurrency') });
      const bare = new Server({ broker: new RabbitMQBroker(options), backend: new MemoryBackend(), logger: silentLogger });
      await expect(bare.run(group, 1, { rateLimit: rate })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('rateLimit') });
      await bare.shutdown(100);

      await server.run(group, 2, { rateLimit: { limit: 1, periodMs: 3_600_000, burst: 1 } });
      const [a, b] = await client.sendMany(task, [['a'], ['b']]);
      while (started.length < 1) await sleep(10);
      await sleep(300);
      expect(started).toHaveLength(1);
      const held = await client.getStatus((started[0] === 'a' ? b : a) as string);
      expect(held?.status).toBe('sent');
      expect(held?.waiting?.reason).toBe('rate-limit');
      expect(held?.waiting?.until).toBeGreaterThan(Date.now() + 60_000);
      expect((await client.getStatus((started[0] === 'a' ? a : b) as string))?.waiting).toBeUndefined();
    } finally {
      await server.shutdown(1000);
      const cleaner = new RabbitMQBroker(options);
      await cleaner.purge(group);
      await cleaner.close();
    }
  }, 60_000);
});

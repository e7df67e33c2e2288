/**
 * End to end on a private local Redis Cluster (3 masters + 3 replicas, `test/helpers/redis-cluster.ts`):
 * workers in separate processes (`test/fixtures/worker.ts` with TASUKI_REDIS_CLUSTER), the client in
 * this one, workers SIGKILLed at random instants; every task must complete with its own value.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Client, silentLogger, taskRef, type TaskId } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { haveRedisCluster, startRedisCluster, type PrivateCluster } from './helpers/redis-cluster.js';
import { killAll, killAtRandom, startWorker, type WorkerProcess } from './helpers/processes.js';

if (!haveRedisCluster) console.warn('redis cluster end-to-end tests skipped: redis-server or redis-cli not found');

type Work = { value: number; pid: number };

describe.skipIf(!haveRedisCluster)('end to end on a Redis Cluster, workers in other processes', () => {
  let cluster: PrivateCluster;
  const prefix = `tasuki-e2ecl-${randomUUID().slice(0, 8)}`;
  let workers: WorkerProcess[] = [];
  let clients: Client[] = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);

  afterEach(async () => {
    await killAll(workers);
    workers = [];
    await Promise.all(clients.map((c) => c.close()));
    clients = [];
    await cluster.sweep(`${prefix}:*`);
  });

  afterAll(async () => {
    if (cluster === undefined) return;
    try {
      expect(await cluster.keys(`${prefix}:*`)).toEqual([]);
    } finally {
      await cluster.stop();
    }
  });

  const setup = (shards: number, env: Record<string, string>): { group: string; client: Client; broker: RedisBroker; spawn(): Promise<WorkerProcess> } => {
    const group = `e2e-${randomUUID().slice(0, 8)}`;
    const nodes = cluster.nodes;
    const broker = new RedisBroker({ prefix, cluster: { nodes }, ...(shards > 1 ? { shards } : {}) });
    const client = new Client({
      broker,
      backend: new RedisBackend({ prefix, cluster: { nodes } }),
      logger: silentLogger,
    });
    clients.push(client);
    const spawn = async (): Promise<WorkerProcess> => {
      const w = await startWorker({
        TASUKI_PREFIX: prefix,
        TASUKI_GROUP: group,
        TASUKI_BROKER: 'redis',
        TASUKI_BACKEND: 'redis',
        TASUKI_REDIS_CLUSTER: nodes.map((n) => `${n.host}:${n.port}`).join(','),
        ...(shards > 1 ? { TASUKI_SHARDS: String(shards) } : {}),
        ...env,
      });
      workers.push(w);
      return w;
    };
    return { group, client, broker, spawn };
  };

  const crashRun = async (shards: number): Promise<void> => {
    const { group, client, broker, spawn } = setup(shards, { TASUKI_LEASE_MS: '1000', TASUKI_CONCURRENCY: '8' });
    await spawn();
    await spawn();
    const work = taskRef<[number, number], Work>(group, 'work');
    const n = 300;
    const ids: Array<TaskId<Work>> = await client.sendMany(work, Array.from({ length: n }, (_, i) => [i, 50 + ((i * 37) % 100)] as [number, number]));
    const killer = killAtRandom(workers, spawn, 8);
    const results = [];
    for (const id of ids) results.push(await client.getResult(id, 120_000, 50));
    const kills = await killer.stop();
    console.log(`cluster crash run (${shards} shard(s)): ${n} tasks, ${kills} SIGKILLs, retries used ${results.reduce((s, r) => s + r.retriesUsed, 0)}`);
    expect(kills).toBeGreaterThan(0);
    expect(results.map((r) => r.status)).toEqual(Array(n).fill('success'));
    expect(results.map((r) => r.value?.value)).toEqual(Array.from({ length: n }, (_, i) => i));
    await broker.purge(group);
  };

  it('no task is lost with workers SIGKILLed at random instants', async () => {
    await crashRun(1);
  }, 180_000);

  it('no task is lost with workers SIGKILLed at random instants, group in 3 shards', async () => {
    await crashRun(3);
  }, 180_000);
});

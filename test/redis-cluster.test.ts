/**
 * The Redis broker and backend on a real local Redis Cluster (3 masters + 3 replicas, started once
 * for this file by `test/helpers/redis-cluster.ts` and stopped at its end): the broker and backend
 * contract suites and the core and flow behaviour suites, unsharded and with `shards: 3`, and the shard checks.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from 'ioredis';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { brokerContract } from './contract/broker.js';
import { backendContract } from './contract/backend.js';
import { opsContract } from './contract/ops.js';
import { coreSuite } from './core/suite.js';
import { flowSuite } from './flow/suite.js';
import { haveRedisCluster, startRedisCluster, type PrivateCluster } from './helpers/redis-cluster.js';
import { shardSpecifics } from './redis-shard-checks.js';

if (!haveRedisCluster) console.warn('redis cluster tests skipped: redis-server or redis-cli not found');

describe.skipIf(!haveRedisCluster)('redis cluster', () => {
  let cluster: PrivateCluster;
  const prefix = `tasuki-cl-${randomUUID().slice(0, 8)}`;
  const sweep = (): Promise<void> => cluster.sweep(`${prefix}:*`);

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);

  afterAll(async () => {
    if (cluster === undefined) return;
    try {
      await sweep();
      expect(await cluster.keys(`${prefix}:*`)).toEqual([]);
    } finally {
      await cluster.stop();
    }
  });

  brokerContract('redis cluster', () => ({
    create: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  backendContract('redis cluster', () => ({
    create: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  opsContract('redis cluster', () => ({
    create: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  brokerContract('redis cluster, 3 shards', () => ({
    create: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, shards: 3 }),
    teardown: sweep,
    ordered: false,
  }));

  shardSpecifics('redis cluster', () => ({
    create: (shards) => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, shards }),
    keys: () => cluster.keys(`${prefix}:*`),
    teardown: sweep,
  }));

  coreSuite('redis cluster broker with 3 shards + backend', () => ({
    broker: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, shards: 3 }),
    backend: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  flowSuite('redis cluster broker with 3 shards + backend', () => ({
    broker: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, shards: 3 }),
    backend: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  it('takes an ioredis Cluster as connection (duplicated, left open), refuses both connection and cluster', async () => {
    const given = new Cluster(cluster.nodes.slice(0, 1));
    given.on('error', () => undefined);
    const broker = new RedisBroker({ prefix, connection: given });
    const backend = new RedisBackend({ prefix, connection: given });
    const group = `given-${randomUUID().slice(0, 8)}`;
    await broker.publish(group, 'via a given Cluster');
    const [d] = await broker.fetch(group, 1, { leaseMs: 30_000, waitMs: 2000 });
    expect(d?.body).toBe('via a given Cluster');
    await broker.ack(d!);
    expect(backend.records).toBeDefined();
    await backend.records.put('worker', 'w1', 'v', null);
    expect(await backend.records.list('worker')).toEqual([{ key: 'w1', value: 'v' }]);
    await backend.records.remove('worker', 'w1');
    await broker.purge(group);
    await broker.close();
    await backend.close();
    expect(await given.ping()).toBe('PONG');
    given.disconnect();
    expect(() => new RedisBroker({ cluster: { nodes: cluster.nodes }, connection: 'redis://x' })).toThrow(/either/);
    expect(new RedisBroker({ cluster: { nodes: cluster.nodes }, shards: 3 }).dispatchFeatures.has('priority')).toBe(false);
  });

  coreSuite('redis cluster broker + backend', () => ({
    broker: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes } }),
    backend: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  flowSuite('redis cluster broker + backend', () => ({
    broker: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes } }),
    backend: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));
});

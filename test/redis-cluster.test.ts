/**
 * The Redis broker and backend on a real local Redis Cluster (3 masters + 3 replicas, started once
 * for this file by `test/helpers/redis-cluster.ts` and stopped at its end): the broker and backend
 * contract suites and the core behaviour suite, unsharded and with `shards: 3`, and the shard checks.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { brokerContract } from './contract/broker.js';
import { backendContract } from './contract/backend.js';
import { coreSuite } from './core/suite.js';
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
    await sweep();
    expect(await cluster.keys(`${prefix}:*`)).toEqual([]);
    await cluster.stop();
  });

  brokerContract('redis cluster', () => ({
    create: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));

  backendContract('redis cluster', () => ({
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

  coreSuite('redis cluster broker + backend', () => ({
    broker: () => new RedisBroker({ prefix, cluster: { nodes: cluster.nodes } }),
    backend: () => new RedisBackend({ prefix, cluster: { nodes: cluster.nodes } }),
    teardown: sweep,
  }));
});

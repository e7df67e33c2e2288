/**
 * Sharded groups of the Redis broker (`shards: 3`) on the shared Redis: the broker contract suite and
 * the core and flow behaviour suites, plus the shard-specific promises (spread, every shard fetched, keyed
 * messages on their key's shard, dead letters and counts across shards). The same on a Redis Cluster
 * is in `redis-cluster.test.ts`.
 */
import { afterAll } from 'vitest';
import { expect } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { brokerContract } from './contract/broker.js';
import { coreSuite } from './core/suite.js';
import { flowSuite } from './flow/suite.js';
import { redisNamespace } from './helpers/redis.js';
import { shardSpecifics } from './redis-shard-checks.js';

const ns = redisNamespace('shards');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

brokerContract('redis, 3 shards', () => ({ create: () => new RedisBroker({ prefix: ns.prefix, shards: 3 }), teardown: ns.sweep, ordered: false }));

coreSuite('redis broker with 3 shards + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix, shards: 3 }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

flowSuite('redis broker with 3 shards + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix, shards: 3 }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

shardSpecifics('redis', () => ({ create: (shards) => new RedisBroker({ prefix: ns.prefix, shards }), keys: ns.keys, teardown: ns.sweep }));

import { afterAll, expect } from 'vitest';
import { schedulesContract } from './contract/schedules.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('schedules');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

schedulesContract('redis', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

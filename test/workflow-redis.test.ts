import { afterAll, expect } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('wf');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

workflowSuite('redis broker + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

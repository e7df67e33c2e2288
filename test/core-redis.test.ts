import { afterAll, expect } from 'vitest';
import { coreSuite } from './core/suite.js';
import { sendRaceSuite } from './core/send-race.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('core');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

coreSuite('redis broker + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

sendRaceSuite('redis broker + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

import { afterAll, expect } from 'vitest';
import { journalContract } from './contract/journal.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('journal');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

journalContract('redis', () => ({ create: () => new RedisBackend({ prefix: ns.prefix }), teardown: () => ns.sweep() }));

import { afterAll, expect } from 'vitest';
import { flowSuite } from './flow/suite.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('flow');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

flowSuite('redis broker + redis backend', () => ({
  broker: () => new RedisBroker({ prefix: ns.prefix }),
  backend: () => new RedisBackend({ prefix: ns.prefix }),
  teardown: () => ns.sweep(),
}));

/**
 * The backend on its broker's command connection (`shareConnection`), as in `core-redis.test.ts`:
 * each backend takes the broker made just before it; one made alone borrows from a broker of its
 * own that is closed at once.
 */
function sharedPair(): { broker: () => RedisBroker; backend: () => RedisBackend } {
  let last: RedisBroker | undefined;
  return {
    broker: () => (last = new RedisBroker({ prefix: ns.prefix })),
    backend: () => {
      const from = last;
      last = undefined;
      if (from !== undefined) return new RedisBackend({ prefix: ns.prefix, shareConnection: from });
      const own = new RedisBroker({ prefix: ns.prefix });
      const backend = new RedisBackend({ prefix: ns.prefix, shareConnection: own });
      void own.close();
      return backend;
    },
  };
}

flowSuite('redis broker + redis backend on one connection', () => ({ ...sharedPair(), teardown: () => ns.sweep() }));

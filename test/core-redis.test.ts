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

/**
 * The backend on its broker's command connection (`shareConnection`): each backend takes the broker
 * made just before it (a Client's or Server's pair); one made alone borrows from a broker of its own
 * that is closed at once (the connection then lives until the backend closes).
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

coreSuite('redis broker + redis backend on one connection', () => ({ ...sharedPair(), teardown: () => ns.sweep() }));

sendRaceSuite('redis broker + redis backend on one connection', () => ({ ...sharedPair(), teardown: () => ns.sweep() }));

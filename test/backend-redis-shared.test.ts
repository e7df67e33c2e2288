import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { backendContract, makeState } from './contract/backend.js';
import { RedisBackend } from '../backends/redis.js';
import { RedisBroker } from '../brokers/redis.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { redisNamespace } from './helpers/redis.js';
import { startPrivateRedis } from './helpers/redis-server.js';
import { until } from './core/suite.js';

const ns = redisNamespace('shared');
const { prefix, admin } = ns;

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

// Each backend borrows from a broker closed at once: the connection lives until the backend closes.
backendContract('redis on a broker connection', () => ({
  create: () => {
    const broker = new RedisBroker({ prefix });
    const backend = new RedisBackend({ prefix, shareConnection: broker });
    void broker.close();
    return backend;
  },
  teardown: ns.sweep,
}));

/** The connections named `name` (CLIENT LIST), with the last command each ran. */
async function connections(name: string): Promise<Array<{ name: string; cmd: string }>> {
  const list = (await admin.client('LIST')) as string;
  return list
    .split('\n')
    .map((line) => Object.fromEntries(line.split(' ').map((f) => f.split('=', 2) as [string, string])))
    .filter((c) => typeof c.name === 'string' && c.name.startsWith(name))
    .map((c) => ({ name: c.name as string, cmd: c.cmd as string }));
}

describe('redis backend on a broker connection (shareConnection)', () => {
  it('sends its commands on the broker command connection: one connection for both', async () => {
    const name = `shared-${randomUUID()}`;
    const broker = new RedisBroker({ prefix, connectionName: name });
    const backend = new RedisBackend({ prefix, shareConnection: broker });
    try {
      await broker.connect();
      await backend.connect();
      await broker.publish('g', 'body');
      await backend.write({ state: makeState('one', 'sent', { group: 'g' }), stateTtl: 60, guard: 'absent' });
      expect((await backend.read('one'))?.status).toBe('sent');
      const conns = await connections(name);
      expect(conns).toEqual([{ name: `${name}:cmd`, cmd: 'get' }]);
    } finally {
      await backend.close();
      await broker.close();
      await ns.sweep();
    }
  });

  it('backend closed first: the broker keeps working, and its close shuts the connection', async () => {
    const name = `shared-${randomUUID()}`;
    const broker = new RedisBroker({ prefix, connectionName: name });
    const backend = new RedisBackend({ prefix, shareConnection: broker });
    try {
      await backend.write({ state: makeState('b1', 'sent', { group: 'g' }), stateTtl: 60, guard: 'absent' });
      await backend.close();
      await expect(backend.read('b1')).rejects.toBeInstanceOf(ClosedError);
      await broker.publish('g', 'after');
      const got = await broker.fetch('g', 1, { leaseMs: 5000, waitMs: 0 });
      expect(got.map((d) => d.body)).toEqual(['after']);
      await broker.ack(got[0]!);
      expect(await connections(name)).toHaveLength(1);
      await broker.close();
      await until(async () => (await connections(name)).length === 0);
    } finally {
      await backend.close();
      await broker.close();
      await ns.sweep();
    }
  });

  it('broker closed first: the backend keeps working, and its close shuts the connection', async () => {
    const name = `shared-${randomUUID()}`;
    const broker = new RedisBroker({ prefix, connectionName: name });
    const backend = new RedisBackend({ prefix, shareConnection: broker });
    try {
      await broker.publish('g', 'x');
      await broker.close();
      await expect(broker.publish('g', 'y')).rejects.toBeInstanceOf(ClosedError);
      expect(() => broker.lendConnection()).toThrow(ClosedError);
      await backend.write({ state: makeState('c1', 'sent', { group: 'g' }), stateTtl: 60, guard: 'absent' });
      expect((await backend.read('c1'))?.status).toBe('sent');
      expect(await connections(name)).toHaveLength(1);
      await backend.close();
      await until(async () => (await connections(name)).length === 0);
    } finally {
      await backend.close();
      await broker.close();
      await ns.sweep();
    }
  });

  it('refuses a connection, cluster or operationTimeoutMs of its own', () => {
    const broker = new RedisBroker({ prefix });
    try {
      expect(() => new RedisBackend({ prefix, shareConnection: broker, connection: 'redis://127.0.0.1:6379' })).toThrow(InvalidOptionError);
      expect(() => new RedisBackend({ prefix, shareConnection: broker, operationTimeoutMs: 100 })).toThrow(InvalidOptionError);
    } finally {
      void broker.close();
    }
  });

  it('a publish and a state write issued in one tick reach the server in one read (its own connection: two)', async () => {
    const server = await startPrivateRedis();
    const info = new Redis({ port: server.port, lazyConnect: true });
    const reads = async (): Promise<number> => Number(/total_reads_processed:(\d+)/.exec(await info.info('stats'))?.[1]);
    /** Fewest server reads of one tick's publish + write (plus the INFO that reads the counter) over a few tries. */
    const fewestReads = async (broker: RedisBroker, backend: RedisBackend): Promise<number> => {
      await broker.connect();
      await backend.connect();
      let fewest = Infinity;
      for (let i = 0; i < 4; i++) {
        const before = await reads();
        await Promise.all([broker.publish('g', `m${i}`), backend.write({ state: makeState(`r${i}-${randomUUID()}`, 'sent', { group: 'g' }), stateTtl: 60, guard: 'absent' })]);
        fewest = Math.min(fewest, (await reads()) - before);
      }
      return fewest;
    };
    const connection = { port: server.port };
    const sharedBroker = new RedisBroker({ connection });
    const shared = new RedisBackend({ shareConnection: sharedBroker });
    const ownBroker = new RedisBroker({ connection });
    const own = new RedisBackend({ connection });
    try {
      // One read for the tick's commands, one for the INFO after them.
      expect(await fewestReads(sharedBroker, shared)).toBe(2);
      expect(await fewestReads(ownBroker, own)).toBe(3);
    } finally {
      await Promise.all([shared.close(), sharedBroker.close(), own.close(), ownBroker.close()]);
      info.disconnect();
      await server.remove();
    }
  });
});

/**
 * The Redis backend's connection on its own (`backends/redis-connection.ts`): the options refused
 * before anything connects, connecting once for concurrent callers, and closing in every state.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../backends/redis.js';
import { makeState } from './contract/backend.js';
import { redisNamespace } from './helpers/redis.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ns = redisNamespace('test');
const { prefix } = ns;

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

const invalid = { code: 'ERR_INVALID_OPTION' };

describe('redis backend connection', () => {
  it('refuses a connection with a cluster, a cluster without nodes, a bad prefix or index cap, and a bad operation bound', () => {
    expect(() => new RedisBackend({ prefix, connection: REDIS_URL, cluster: { nodes: [{ host: '127.0.0.1', port: 6379 }] } })).toThrow(
      expect.objectContaining({ ...invalid, message: expect.stringContaining('either connection or cluster') }),
    );
    expect(() => new RedisBackend({ prefix, cluster: { nodes: [] } })).toThrow(expect.objectContaining({ ...invalid, message: expect.stringContaining('cluster.nodes') }));
    for (const bad of ['', 'a{b', 'a}b']) {
      expect(() => new RedisBackend({ prefix: bad, connection: REDIS_URL })).toThrow(expect.objectContaining(invalid));
    }
    for (const cap of [0, 1.5, -1]) {
      expect(() => new RedisBackend({ prefix, connection: REDIS_URL, index: { cap } })).toThrow(expect.objectContaining({ ...invalid, message: expect.stringContaining('index.cap') }));
    }
    for (const ms of [0, 1.5, -1]) {
      expect(() => new RedisBackend({ prefix, connection: REDIS_URL, operationTimeoutMs: ms })).toThrow(
        expect.objectContaining({ ...invalid, message: expect.stringContaining('operationTimeoutMs') }),
      );
    }
  });

  it('concurrent connects share one connection; connect again once ready; after close ERR_CLOSED', async () => {
    const b = new RedisBackend({ prefix, connection: REDIS_URL });
    await Promise.all([b.connect(), b.connect(), b.connect()]);
    await b.connect();
    const id = `conn-${Date.now()}`;
    expect(await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent' })).toMatchObject({ written: true });
    expect((await b.read(id))?.status).toBe('sent');
    await b.delete(id);
    await b.close();
    await b.close();
    await expect(b.connect()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(b.read(id)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('a backend that never connected closes at once, and its first operation connects it', async () => {
    const idle = new RedisBackend({ prefix, connection: REDIS_URL });
    await idle.close();
    await expect(idle.read('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });

    const lazy = new RedisBackend({ prefix, connection: REDIS_URL });
    try {
      expect(await lazy.read(`absent-${Date.now()}`)).toBeNull();
    } finally {
      await lazy.close();
    }
  });
});

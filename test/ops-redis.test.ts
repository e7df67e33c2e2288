import { afterAll, describe, expect, it } from 'vitest';
import { opsContract } from './contract/ops.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { makeState } from './contract/backend.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ns = redisNamespace('ops');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

opsContract('redis', () => ({
  create: () => new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix }),
  teardown: ns.sweep,
}));

describe('redis task index', () => {
  it('keeps at most the cap per group and status (oldest dropped), inside the writes', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix, index: { cap: 3 } });
    try {
      const t0 = Date.now() - 10_000;
      for (let i = 0; i < 6; i++) await b.write({ state: makeState(`cap-${i}`, 'failure', { group: 'capped', updatedAt: t0 + i }), stateTtl: 60, guard: 'notFinal' });
      const page = await b.index?.list({ group: 'capped', status: 'failure', limit: 10 });
      expect(page?.items.map((s) => s.id)).toEqual(['cap-5', 'cap-4', 'cap-3']);
      expect(await ns.admin.zcard(`${ns.prefix}:ix|capped|failure`)).toBe(3);
    } finally {
      await b.close();
      await ns.sweep();
    }
  });

  it('index: false keeps no index keys and the backend has no index', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix, index: false });
    try {
      expect(b.index).toBeUndefined();
      await b.write({ state: makeState('noix', 'sent', { group: 'noix' }), stateTtl: 60, guard: 'absent' });
      expect((await ns.keys()).filter((k) => k.includes(':ix'))).toEqual([]);
    } finally {
      await b.close();
      await ns.sweep();
    }
  });
});

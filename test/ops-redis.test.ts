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

  it('moves entries of ids stored encoded and of plain ids, from an absent write (one set declared) through later writes, in one call or alone', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix });
    try {
      const ids = ['plain-1', '{odd}%id', 'x}y'];
      const t0 = Date.now() - 10_000;
      // Alone: each absent write is its own call (only its new set declared).
      for (const id of ids) await b.write({ state: makeState(id, 'sent', { group: 'enc', updatedAt: t0 }), stateTtl: 60, guard: 'absent' });
      expect(await b.index?.statusCounts('enc')).toMatchObject({ sent: 3, running: 0 });
      // Together in one tick: the group's sets are declared once for every write of the call.
      await Promise.all([
        ...ids.map((id) => b.write({ state: makeState(id, 'running', { group: 'enc', updatedAt: t0 + 1 }), stateTtl: 60, guard: 'notFinal' })),
        b.write({ state: makeState('late', 'sent', { group: 'enc', updatedAt: t0 + 1 }), stateTtl: 60, guard: 'absent' }),
      ]);
      expect(await b.index?.statusCounts('enc')).toMatchObject({ sent: 1, running: 3 });
      // A write that keeps the status updates the score only.
      await b.write({ state: makeState('x}y', 'running', { group: 'enc', updatedAt: t0 + 5 }), stateTtl: 60, guard: 'notFinal' });
      const page = await b.index?.list({ group: 'enc', status: 'running', limit: 10 });
      expect(page?.items[0]?.id).toBe('x}y');
      expect(new Set(page?.items.map((s) => s.id))).toEqual(new Set(ids));
      expect(await ns.admin.zscore(`${ns.prefix}:ix|enc|running`, 'x}y')).toBe(String(t0 + 5));
      expect((await ns.admin.zrange(`${ns.prefix}:ix|enc|running`, 0, -1)).sort()).toEqual([...ids].sort());
      for (const id of ids) await b.write({ state: makeState(id, 'success', { group: 'enc', updatedAt: t0 + 9 }), stateTtl: 60, guard: 'notSuccess' });
      expect(await b.index?.statusCounts('enc')).toMatchObject({ sent: 1, running: 0, success: 3 });
      expect(await b.index?.groups()).toContain('enc');
    } finally {
      await b.close();
      await ns.sweep();
    }
  });

  it('a set created again after it emptied lists its group again (the groups set was lost meanwhile)', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix });
    try {
      await b.write({ state: makeState('g-1', 'sent', { group: 'regrow' }), stateTtl: 60, guard: 'absent' });
      expect(await b.index?.groups()).toContain('regrow');
      await b.write({ state: makeState('g-1', 'running', { group: 'regrow' }), stateTtl: 60, guard: 'notFinal' });
      await ns.admin.del(`${ns.prefix}:ix-groups`);
      await b.write({ state: makeState('g-2', 'sent', { group: 'regrow' }), stateTtl: 60, guard: 'absent' });
      expect(await b.index?.groups()).toContain('regrow');
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

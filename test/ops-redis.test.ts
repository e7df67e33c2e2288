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

  it('trims a set in steps: at most cap + cap/100 entries, back to the cap newest when an add passes that (in one call as alone)', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix, index: { cap: 200 } });
    try {
      const t0 = Date.now() - 10_000;
      const write = (g: string, i: number) =>
        b.write({ state: makeState(`${g}-${i}`, 'failure', { group: g, updatedAt: t0 + i }), stateTtl: 60, guard: 'notFinal' });
      const set = (g: string) => `${ns.prefix}:ix|${g}|failure`;
      // Alone: one script call per write; the set grows to 202 (cap 200 + slack 2), the next add trims it to 200.
      for (let i = 0; i < 202; i++) await write('steps', i);
      expect(await ns.admin.zcard(set('steps'))).toBe(202);
      await write('steps', 202);
      expect(await ns.admin.zcard(set('steps'))).toBe(200);
      expect(await ns.admin.zrange(set('steps'), 0, 0)).toEqual(['steps-3']);
      // In one call (the size read once, then counted in the script): 250 adds end at 200 + 2, the newest.
      await Promise.all(Array.from({ length: 250 }, (_, i) => write('batch', i)));
      expect(await ns.admin.zcard(set('batch'))).toBe(202);
      expect(await ns.admin.zrange(set('batch'), 0, 0)).toEqual(['batch-48']);
      // Moves out of a counted set in the same call are counted too: the first add trims to 200, two
      // entries leave (198), four come (202: no trim; counted without the two it would trim at 203).
      await Promise.all([
        write('batch', 250),
        ...[248, 249].map((i) => b.write({ state: makeState(`batch-${i}`, 'success', { group: 'batch', updatedAt: t0 + 300 + i }), stateTtl: 60, guard: 'notSuccess' })),
        ...[251, 252, 253, 254].map((i) => write('batch', i)),
      ]);
      expect(await ns.admin.zcard(set('batch'))).toBe(202);
      expect(await ns.admin.zrange(set('batch'), 0, 0)).toEqual(['batch-51']);
      const page = await b.index?.list({ group: 'batch', status: 'failure', limit: 1 });
      expect(page?.items[0]?.id).toBe('batch-254');
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

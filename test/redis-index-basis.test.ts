/**
 * The Redis backend's index sets declared by a guarded write with a basis (`StateWrite.basis`): only
 * the set of the status its caller expects stored and its new one. When another status is stored,
 * the script does nothing and the write goes again with all its group's sets declared — with the
 * same outcome and index as a write without a basis (sticky success, refused writes, the entry in
 * the set of the stored status).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisBackend } from '../backends/redis.js';
import { indexKeeping } from '../backends/redis-index.js';
import { IndexPlan, indexPart } from '../backends/redis-index-plan.js';
import { WRITE_COMMAND, WRITE_SCRIPT } from '../backends/redis-scripts.js';
import { prepareWrite, WriteBatcher } from '../backends/redis-writes.js';
import type { RedisClient } from '../brokers/redis-cluster.js';
import { keyCheckPrologue } from './helpers/redis-key-check.js';
import { TASK_STATUSES, type TaskState, type TaskStatus } from '../src/state.js';
import { makeState } from './contract/backend.js';
import { redisNamespace } from './helpers/redis.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ns = redisNamespace('ixbasis');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

describe('index sets declared for a write with a basis', () => {
  it('are the expected status set and the new one (all the group\'s without a basis, or when another write of the call needs them)', () => {
    const narrowed = indexPart('P:ix|g', 'running', 1, 'a', 10, false, 'sent');
    const same = indexPart('P:ix|g', 'running', 1, 'b', 10, false, 'running');
    const plan = new IndexPlan([narrowed, same, indexPart('P:ix|g', 'sent', 1, 'c', 10, true)], 4);
    expect(plan.keys).toEqual(['P:ix|g|running', 'P:ix|g|sent']);
    // The new set at 4; the expected one at 5, in the offset field (+ 8 × (8 × 5 + offset of sent)); the id field empty.
    const running = TASK_STATUSES.indexOf('running');
    expect(plan.arg(narrowed)).toBe(`-4\n${running + 8 * (8 * 5 + TASK_STATUSES.indexOf('sent'))}\n1\n10\n`);
    expect(plan.arg(same)).toBe(`-4\n${running}\n1\n10\n`);
    const mixed = new IndexPlan([narrowed, indexPart('P:ix|g', 'success', 1, 'd', 10, false)], 2);
    expect(mixed.keys).toEqual(TASK_STATUSES.map((s) => `P:ix|g|${s}`));
    expect(mixed.arg(narrowed)).toBe(`2\n${running}\n1\n10\n`);
  });
});

describe('the write script with a key check', () => {
  it('touches only declared keys, with a basis that matches and one that does not (then again with all sets)', async () => {
    const client = new Redis(REDIS_URL);
    client.defineCommand(WRITE_COMMAND, { lua: keyCheckPrologue() + WRITE_SCRIPT });
    const keeping = indexKeeping(ns.prefix, 100);
    const batcher = new WriteBatcher(client as unknown as RedisClient, (err) => err as Error, keeping.groupsKey);
    const group = 'checked';
    const st = (id: string, status: TaskStatus, dt: number): TaskState => makeState(id, status, { group, updatedAt: Date.now() - 1000 + dt });
    const write = (w: Parameters<typeof prepareWrite>[1]) => batcher.add(prepareWrite(ns.prefix, w, keeping));
    try {
      await Promise.all(['k1', 'k2'].map((id) => write({ state: st(id, 'sent', 0), stateTtl: 60, guard: 'absent' })));
      await write({ state: st('k2', 'failure', 1), stateTtl: 60, guard: 'notFinal' });
      const outs = await Promise.all(['k1', 'k2'].map((id) => write({ state: st(id, 'success', 2), basis: st(id, 'sent', 0), stateTtl: 60, guard: 'notSuccess', result: '1', resultTtl: 60 })));
      expect(outs.map((o) => [o.written, o.previous?.status])).toEqual([[true, 'sent'], [true, 'failure']]);
      expect((await ns.admin.zrange(`${ns.prefix}:ix|${group}|success`, 0, -1)).sort()).toEqual(['k1', 'k2']);
      expect(await ns.admin.exists(`${ns.prefix}:ix|${group}|sent`, `${ns.prefix}:ix|${group}|failure`)).toBe(0);
    } finally {
      client.disconnect();
      await ns.sweep();
    }
  });
});

for (const deltaWrites of [false, true]) {
  describe(`writes with a basis on Redis (deltaWrites ${deltaWrites ? 'on' : 'off'})`, () => {
    const group = `basis-${deltaWrites ? 'd' : 'w'}`;
    const make = (): RedisBackend => new RedisBackend({ connection: REDIS_URL, prefix: ns.prefix, deltaWrites });
    const at = Date.now() - 10_000;
    const state = (id: string, status: TaskStatus, dt: number): TaskState =>
      makeState(id, status, { group, sentAt: at, updatedAt: at + dt, ...(status === 'sent' ? {} : { startedAt: at + 1 }) });
    const members = async (status: TaskStatus): Promise<string[]> => (await ns.admin.zrange(`${ns.prefix}:ix|${group}|${status}`, 0, -1)).sort();

    it('another status stored: the write goes again with all sets and moves the entry out of the stored status\'s set', async () => {
      const b = make();
      try {
        // Stored: failure (a retry's write came between); the final write expects its claim (running).
        await b.write({ state: state('x1', 'sent', 0), stateTtl: 60, guard: 'absent' });
        await b.write({ state: state('x1', 'failure', 2), stateTtl: 60, guard: 'notFinal' });
        const out = await b.write({ state: state('x1', 'success', 3), basis: state('x1', 'running', 1), stateTtl: 60, guard: 'notSuccess', result: '{"json":1}', resultTtl: 60 });
        expect(out.written).toBe(true);
        expect(out.previous?.status).toBe('failure');
        expect(await members('failure')).toEqual([]);
        expect(await members('success')).toEqual(['x1']);
        expect((await b.read('x1'))?.status).toBe('success');
        // In one call with writes whose basis is the stored state: each has its own outcome.
        await Promise.all(['y1', 'y2', 'y3'].map((id) => b.write({ state: state(id, 'sent', 0), stateTtl: 60, guard: 'absent' })));
        await b.write({ state: state('y2', 'waiting-retry', 2), stateTtl: 60, guard: 'notFinal' });
        const outs = await Promise.all(['y1', 'y2', 'y3'].map((id) => b.write({ state: state(id, 'running', 3), basis: state(id, 'sent', 0), stateTtl: 60, guard: 'notFinal' })));
        expect(outs.map((o) => [o.written, o.previous?.status])).toEqual([[true, 'sent'], [true, 'waiting-retry'], [true, 'sent']]);
        expect(await members('running')).toEqual(['y1', 'y2', 'y3']);
        expect(await members('sent')).toEqual([]);
        expect(await members('waiting-retry')).toEqual([]);
      } finally {
        await b.close();
        await ns.sweep();
      }
    });

    it('a refused write is refused as without a basis (sticky success), and leaves the index as it is', async () => {
      const b = make();
      try {
        await b.write({ state: state('z1', 'success', 2), stateTtl: 60, guard: 'notSuccess' });
        const claim = await b.write({ state: state('z1', 'running', 3), basis: state('z1', 'sent', 0), stateTtl: 60, guard: 'notFinal' });
        expect([claim.written, claim.previous?.status]).toEqual([false, 'success']);
        const late = await b.write({ state: state('z1', 'failure', 4), basis: state('z1', 'running', 1), stateTtl: 60, guard: 'notSuccess', previous: 'refused' });
        expect([late.written, late.previous?.status]).toEqual([false, 'success']);
        expect(await members('success')).toEqual(['z1']);
        expect(await members('running')).toEqual([]);
        expect(await members('failure')).toEqual([]);
        // Nothing stored: the write passes and its entry is new (nothing to move out).
        const fresh = await b.write({ state: state('z2', 'running', 3), basis: state('z2', 'sent', 0), stateTtl: 60, guard: 'notFinal' });
        expect([fresh.written, fresh.previous]).toEqual([true, null]);
        expect(await members('running')).toEqual(['z2']);
        expect(await b.index?.groups()).toContain(group);
      } finally {
        await b.close();
        await ns.sweep();
      }
    });
  });
}

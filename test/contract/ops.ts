/**
 * The contract of a backend's optional operations capabilities: the task index (`backend.index`)
 * and the record store (`backend.records`). A backend that has them runs this suite:
 *
 * ```ts
 * import { opsContract } from 'tasuki/testing';
 * opsContract('redis', () => ({ create: () => new RedisBackend({ prefix }), teardown: async () => {...} }));
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend, RecordStore, TaskIndex } from '../../src/backend.js';
import type { TaskState, TaskStatus } from '../../src/state.js';
import type { BackendHarness } from './backend.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Registers the task index and record store tests for one backend. */
export function opsContract(name: string, makeHarness: () => BackendHarness): void {
  describe(`ops contract: ${name}`, () => {
    let harness: BackendHarness;
    let backends: Backend[];
    let ids: string[];
    let group: string;
    const make = async (): Promise<Backend> => {
      const b = await harness.create();
      backends.push(b);
      await b.connect();
      return b;
    };
    const idx = (b: Backend): TaskIndex => {
      expect(b.index).toBeDefined();
      return b.index as TaskIndex;
    };
    const rec = (b: Backend): RecordStore => {
      expect(b.records).toBeDefined();
      return b.records as RecordStore;
    };
    const put = async (b: Backend, status: TaskStatus, at: number, extra: Partial<TaskState> = {}, id: string = randomUUID(), ttl = 60): Promise<string> => {
      if (!ids.includes(id)) ids.push(id);
      const state: TaskState = { v: 1, id, group, name: 't', status, retriesUsed: 0, retriesLeft: 3, updatedAt: at, ...extra };
      await b.write({ state, stateTtl: ttl, guard: 'notSuccess' });
      return id;
    };

    beforeEach(() => {
      harness = makeHarness();
      backends = [];
      ids = [];
      group = `g-${randomUUID().slice(0, 8)}`;
    });

    afterEach(async () => {
      const b = backends[0];
      if (b) await Promise.all(ids.map((id) => b.delete(id).catch(() => undefined)));
      if (b?.records) for (const k of ['test', 'test2']) for (const r of await b.records.list(k)) await b.records.remove(k, r.key);
      await Promise.all(backends.map((x) => x.close()));
      await harness.teardown?.();
    });

    it('lists a group newest first, filtered by status and name, with the current states', async () => {
      const b = await make();
      const t0 = Date.now() - 10_000;
      const a = await put(b, 'failure', t0 + 1);
      const c = await put(b, 'failure', t0 + 3, { name: 'other' });
      const r = await put(b, 'running', t0 + 2);
      const page = await idx(b).list({ group, limit: 10 });
      expect(page.items.map((s) => s.id)).toEqual([c, r, a]);
      expect(page.cursor).toBeNull();
      expect((await idx(b).list({ group, status: 'failure', limit: 10 })).items.map((s) => s.id)).toEqual([c, a]);
      expect((await idx(b).list({ group, status: 'failure', name: 't', limit: 10 })).items.map((s) => s.id)).toEqual([a]);
      expect((await idx(b).list({ group, status: 'running', limit: 10 })).items[0]).toMatchObject({ id: r, status: 'running', group });
      expect(await idx(b).groups()).toContain(group);
      expect(await idx(b).statusCounts(group)).toMatchObject({ failure: 2, running: 1 });
    });

    it('an entry moves with its task: a new status, a deletion', async () => {
      const b = await make();
      const t0 = Date.now() - 10_000;
      const id = await put(b, 'running', t0);
      await put(b, 'failure', t0 + 5, {}, id);
      expect((await idx(b).list({ group, status: 'running', limit: 10 })).items).toEqual([]);
      expect((await idx(b).list({ group, status: 'failure', limit: 10 })).items.map((s) => s.status)).toEqual(['failure']);
      const counts = await idx(b).statusCounts(group);
      expect(counts.running ?? 0).toBe(0);
      await b.delete(id);
      expect((await idx(b).list({ group, limit: 10 })).items).toEqual([]);
    });

    it('pages with a cursor and windows by since/until, without gaps or repeats', async () => {
      const b = await make();
      const t0 = Date.now() - 100_000;
      const made: string[] = [];
      for (let i = 0; i < 7; i++) made.push(await put(b, 'failure', t0 + i * 10));
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let n = 0; n < 10; n++) {
        const page = await idx(b).list({ group, status: 'failure', limit: 3, ...(cursor === undefined ? {} : { cursor }) });
        seen.push(...page.items.map((s) => s.id));
        if (page.cursor === null) break;
        cursor = page.cursor;
      }
      expect(seen).toEqual([...made].reverse());
      const window = await idx(b).list({ group, since: t0 + 20, until: t0 + 50, limit: 10 });
      expect(window.items.map((s) => s.id)).toEqual([made[4], made[3], made[2]]);
    });

    it('an entry leaves with its expired state', async () => {
      const b = await make();
      await put(b, 'failure', Date.now(), {}, randomUUID(), 1);
      expect((await idx(b).list({ group, limit: 10 })).items).toHaveLength(1);
      await sleep(2200);
      expect((await idx(b).list({ group, limit: 10 })).items).toEqual([]);
      expect((await idx(b).statusCounts(group)).failure ?? 0).toBe(0);
    });

    it('records: put, get, list, remove, expiry; shared between instances', async () => {
      const b = await make();
      const b2 = await make();
      await rec(b).put('test', 'a', '{"x":1}', null);
      await rec(b).put('test', 'b', '2', 300);
      expect(await rec(b2).get('test', 'a')).toBe('{"x":1}');
      expect((await rec(b2).list('test')).sort((x, y) => (x.key < y.key ? -1 : 1))).toEqual([
        { key: 'a', value: '{"x":1}' },
        { key: 'b', value: '2' },
      ]);
      await sleep(1200);
      expect(await rec(b2).get('test', 'b')).toBeNull();
      expect((await rec(b2).list('test')).map((r) => r.key)).toEqual(['a']);
      await rec(b2).remove('test', 'a');
      expect(await rec(b).get('test', 'a')).toBeNull();
      expect(await rec(b).list('test2')).toEqual([]);
    });

    it('records: of many concurrent claims of a key exactly one wins, and the key can be claimed again after its expiry', async () => {
      const b = await make();
      const b2 = await make();
      const key = randomUUID();
      const wins = await Promise.all(Array.from({ length: 10 }, (_, i) => rec(i % 2 === 0 ? b : b2).claim('test', key, String(i), 400)));
      expect(wins.filter(Boolean)).toHaveLength(1);
      expect(await rec(b).claim('test', key, 'late', 400)).toBe(false);
      await sleep(1200);
      expect(await rec(b2).claim('test', key, 'again', 400)).toBe(true);
      await rec(b).remove('test', key);
    });
  });
}

/**
 * The flow journal contract suite (`backend.journal`, see `src/journal.ts`). Every backend with
 * journal storage runs it unchanged:
 *
 * ```ts
 * import { journalContract } from 'tasuki/testing';
 * journalContract('redis', () => ({ create: () => new RedisBackend({ prefix }), teardown: async () => {...} }));
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../src/backend.js';
import type { FlowJournalStore, JournalEntry } from '../../src/journal.js';
import type { BackendHarness } from './backend.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Builds a journal entry for tests. */
export function makeEntry(key: string, status: JournalEntry['status'], extra: Partial<JournalEntry> = {}): JournalEntry {
  return { key, name: key.split('#')[0] as string, kind: 'step', seq: 0, status, attempts: 1, startedAt: Date.now(), ...extra };
}

/** Registers the journal contract tests for one backend. */
export function journalContract(name: string, makeHarness: () => BackendHarness): void {
  describe(`journal contract: ${name}`, () => {
    let harness: BackendHarness;
    let backends: Backend[];
    let flows: string[];
    const make = async (): Promise<FlowJournalStore> => {
      const b = await harness.create();
      backends.push(b);
      await b.connect();
      if (b.journal === undefined) throw new Error(`${name} backend has no journal`);
      return b.journal;
    };
    const newFlow = (): string => {
      const id = `flow-${randomUUID()}`;
      flows.push(id);
      return id;
    };

    beforeEach(() => {
      harness = makeHarness();
      backends = [];
      flows = [];
    });

    afterEach(async () => {
      const j = backends[0]?.journal;
      if (j !== undefined) for (const f of flows) await j.delete(f).catch(() => undefined);
      for (const b of backends) await b.close();
      await harness.teardown?.();
    });

    it('reads an empty journal for an unknown flow', async () => {
      const j = await make();
      expect(await j.read(newFlow())).toEqual({ entries: [], signals: {} });
    });

    it('put "absent" writes once; "notFinal" replaces only a pending entry; values round-trip exactly', async () => {
      const j = await make();
      const f = newFlow();
      const first = makeEntry('a#0', 'pending', { until: 123, error: { name: 'Error', message: 'm', code: 'X' } });
      expect(await j.put(f, first, 'absent', 60)).toEqual({ written: true, entry: first });
      const again = await j.put(f, makeEntry('a#0', 'pending', { until: 999 }), 'absent', 60);
      expect(again).toEqual({ written: false, entry: first });
      const done = makeEntry('a#0', 'done', { value: '{"json":{"x":[1,"ü"]}}', attempts: 2, finishedAt: 5 });
      expect(await j.put(f, done, 'notFinal', 60)).toEqual({ written: true, entry: done });
      const late = await j.put(f, makeEntry('a#0', 'failed'), 'notFinal', 60);
      expect(late).toEqual({ written: false, entry: done });
      const other = makeEntry('b#0[3]', 'failed', { seq: 1, child: 'c-1', childStatus: 'failure' });
      await j.put(f, other, 'notFinal', 60);
      const snap = await j.read(f);
      expect(snap.entries.sort((x, y) => x.key.localeCompare(y.key))).toEqual([done, other]);
    });

    it('of concurrent puts on one key from several instances, exactly one wins and all see its entry', async () => {
      const [a, b] = [await make(), await make()];
      const f = newFlow();
      const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).put(f, makeEntry('k#0', 'done', { value: `{"json":${i}}` }), 'notFinal', 60)));
      expect(outs.filter((o) => o.written)).toHaveLength(1);
      const winner = outs.find((o) => o.written)?.entry;
      for (const o of outs) expect(o.entry).toEqual(winner);
    });

    it('appends signals with distinct indices in order, even when concurrent', async () => {
      const [a, b] = [await make(), await make()];
      const f = newFlow();
      expect(await a.signal(f, 'go', '{"json":1}', 60)).toBe(0);
      const idx = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).signal(f, 'go', `{"json":${i + 2}}`, 60)));
      expect([...idx].sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(await a.signal(f, 'other', '{"json":"o"}', 60)).toBe(0);
      const snap = await b.read(f);
      expect(snap.signals.go?.[0]).toBe('{"json":1}');
      expect(snap.signals.go).toHaveLength(9);
      idx.forEach((n, i) => expect(snap.signals.go?.[n]).toBe(`{"json":${i + 2}}`));
      expect(snap.signals.other).toEqual(['{"json":"o"}']);
    });

    it('suspend keeps one live message: the first, the live one again, or an earlier one; others are dropped and their times remembered', async () => {
      const j = await make();
      const f = newFlow();
      const t = 1_700_000_000_000;
      expect(await j.suspend(f, 'a', t + 1000, 60)).toEqual({ reschedule: true, at: t + 1000 });
      expect(await j.suspend(f, 'b', t + 2000, 60)).toEqual({ reschedule: false, at: t + 1000 });
      expect(await j.suspend(f, 'c', t + 1500, 60)).toEqual({ reschedule: false, at: t + 1000 });
      // The live one suspends again wanting later: it takes the earliest remembered time.
      expect(await j.suspend(f, 'a', t + 5000, 60)).toEqual({ reschedule: true, at: t + 1500 });
      expect(await j.suspend(f, 'a', t + 5000, 60)).toEqual({ reschedule: true, at: t + 5000 });
      // An earlier one takes over.
      expect(await j.suspend(f, 'd', t + 100, 60)).toEqual({ reschedule: true, at: t + 100 });
      expect(await j.suspend(f, 'a', t + 200, 60)).toEqual({ reschedule: false, at: t + 100 });
      // Concurrent suspensions of distinct messages at one time: exactly one is kept.
      const g = newFlow();
      const outs = await Promise.all(['x', 'y', 'z', 'w'].map((tok) => j.suspend(g, tok, t, 60)));
      expect(outs.filter((o) => o.reschedule)).toHaveLength(1);
    });

    it('enter gives the run lease to one run at a time, renews it for its holder, and frees it on leave, suspend or expiry', async () => {
      const [a, b] = [await make(), await make()];
      const f = newFlow();
      const t = 1_700_000_000_000;
      expect(await a.enter(f, 'run1', 'm1', t, 1000, 60)).toEqual({ ok: true, until: t + 1000 });
      expect(await b.enter(f, 'run2', 'm2', t + 10, 1000, 60)).toEqual({ ok: false, until: t + 1000 });
      expect(await a.enter(f, 'run1', 'm1', t + 500, 1000, 60)).toEqual({ ok: true, until: t + 1500 });
      // Expired: another run takes it.
      expect(await b.enter(f, 'run2', 'm2', t + 1600, 1000, 60)).toEqual({ ok: true, until: t + 2600 });
      await b.leave(f, 'nobody');
      expect((await a.enter(f, 'run3', 'm3', t + 1700, 1000, 60)).ok).toBe(false);
      await b.leave(f, 'run2');
      expect((await a.enter(f, 'run3', 'm3', t + 1700, 1000, 60)).ok).toBe(true);
      await a.suspend(f, 'm3', t + 9000, 60, 'run3');
      expect((await b.enter(f, 'run4', 'm4', t + 1800, 1000, 60)).ok).toBe(true);
      // Of concurrent enters, one wins.
      const g = newFlow();
      const outs = await Promise.all(['p', 'q', 'r', 's'].map((id, i) => (i % 2 ? a : b).enter(g, id, id, t, 1000, 60)));
      expect(outs.filter((o) => o.ok)).toHaveLength(1);
    });

    it('a refused enter is remembered: the live message is moved to the lease end and the next suspension wakes at once', async () => {
      const j = await make();
      const f = newFlow();
      const t = 1_700_000_000_000;
      expect(await j.suspend(f, 'live', t + 60_000, 60)).toEqual({ reschedule: true, at: t + 60_000 });
      expect((await j.enter(f, 'run-poke', 'poke', t, 1000, 60)).ok).toBe(true);
      // The live message wakes (early, say) while the poke's run holds the flow: refused.
      expect(await j.enter(f, 'run-live', 'live', t + 100, 1000, 60)).toEqual({ ok: false, until: t + 1000 });
      // The holder suspends wanting later: it is told to wake at the refused run's time instead.
      expect(await j.suspend(f, 'poke', t + 30_000, 60, 'run-poke')).toEqual({ reschedule: true, at: t + 100 });
    });

    it('remove drops entries and forgets the live message; delete drops everything', async () => {
      const j = await make();
      const f = newFlow();
      await j.put(f, makeEntry('a#0', 'done'), 'absent', 60);
      await j.put(f, makeEntry('b#0', 'done', { seq: 1 }), 'absent', 60);
      await j.signal(f, 's', '{"json":1}', 60);
      await j.suspend(f, 'live', 10_000, 60);
      await j.remove(f, ['b#0', 'nope#0']);
      expect((await j.read(f)).entries.map((e) => e.key)).toEqual(['a#0']);
      expect(await j.suspend(f, 'other', 20_000, 60)).toEqual({ reschedule: true, at: 20_000 });
      await j.delete(f);
      expect(await j.read(f)).toEqual({ entries: [], signals: {} });
    });

    it('expires the whole journal with the ttl of its last write, and keeps it with -1', async () => {
      const j = await make();
      const f = newFlow();
      const g = newFlow();
      await j.put(f, makeEntry('a#0', 'done'), 'absent', 1);
      await j.signal(f, 's', '{"json":1}', 1);
      await j.put(g, makeEntry('a#0', 'done'), 'absent', -1);
      await sleep(2200);
      expect(await j.read(f)).toEqual({ entries: [], signals: {} });
      expect((await j.read(g)).entries).toHaveLength(1);
    });
  });
}

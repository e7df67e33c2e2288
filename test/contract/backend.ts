/**
 * The backend contract suite. Every backend runs it unchanged:
 *
 * ```ts
 * import { backendContract } from 'tasuki/testing';
 * backendContract('redis', () => ({ create: () => new RedisBackend({ prefix }), teardown: async () => {...} }));
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend, FinalNotice, StateWrite } from '../../src/backend.js';
import type { TaskState, TaskStatus } from '../../src/state.js';
import { encodeValueText, decodeValueText } from '../../src/message.js';

/** What a backend factory provides to the suite. */
export interface BackendHarness {
  /** Creates a backend instance; all instances of one harness share a namespace. */
  create(): Backend | Promise<Backend>;
  /** Removes anything left in the namespace (called after each test, after backends are closed). */
  teardown?(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Builds a task state for tests. */
export function makeState(id: string, status: TaskStatus, extra: Partial<TaskState> = {}): TaskState {
  return { v: 1, id, group: 'g', name: 't', status, retriesUsed: 0, retriesLeft: 3, updatedAt: Date.now(), ...extra };
}

/** Registers the backend contract tests for one implementation. */
export function backendContract(name: string, makeHarness: () => BackendHarness): void {
  describe(`backend contract: ${name}`, () => {
    let harness: BackendHarness;
    let backends: Backend[];
    let ids: string[];
    const make = async (): Promise<Backend> => {
      const b = await harness.create();
      backends.push(b);
      await b.connect();
      return b;
    };
    const newId = (): string => {
      const id = randomUUID();
      ids.push(id);
      return id;
    };
    const w = (state: TaskState, guard: StateWrite['guard'], extra: Partial<StateWrite> = {}): StateWrite => ({
      state,
      stateTtl: 60,
      guard,
      ...extra,
    });

    beforeEach(() => {
      harness = makeHarness();
      backends = [];
      ids = [];
    });

    afterEach(async () => {
      const b = backends[0];
      if (b) await Promise.all(ids.map((id) => b.delete(id).catch(() => undefined)));
      await Promise.all(backends.map((x) => x.close()));
      await harness.teardown?.();
    });

    it('writes and reads a state; absent reads as null', async () => {
      const b = await make();
      const id = newId();
      expect(await b.read(id)).toBeNull();
      const state = makeState(id, 'sent', { sentAt: 123, error: { name: 'E', message: 'm', code: 'C' } });
      const out = await b.write(w(state, 'absent'));
      expect(out).toEqual({ written: true, previous: null });
      expect(await b.read(id)).toEqual(state);
    });

    it('the absent guard lets exactly one of many concurrent creators win', async () => {
      const b = await make();
      const b2 = await make();
      const id = newId();
      const outs = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? b : b2).write(w(makeState(id, 'sent', { retriesLeft: i }), 'absent'))),
      );
      const winners = outs.filter((o) => o.written);
      expect(winners).toHaveLength(1);
      const stored = await b.read(id);
      for (const o of outs) if (!o.written) expect(o.previous).toEqual(stored);
    });

    it('a late absent write (a send whose worker got ahead) is refused by a running or final state, which stays', async () => {
      const b = await make();
      for (const status of ['running', 'success'] as const) {
        const id = newId();
        const ahead = makeState(id, status, { startedAt: 5 });
        expect((await b.write(w(ahead, 'notFinal'))).written).toBe(true);
        const late = await b.write({ ...w(makeState(id, 'sent'), 'absent'), previous: 'refused' });
        expect(late.written).toBe(false);
        expect(late.previous?.status).toBe(status);
        expect(await b.read(id)).toEqual(ahead);
      }
    });

    it('notFinal writes over non-final states and is refused by final ones', async () => {
      const b = await make();
      const id = newId();
      expect((await b.write(w(makeState(id, 'sent'), 'notFinal'))).written).toBe(true);
      const run = await b.write(w(makeState(id, 'running', { startedAt: 5 }), 'notFinal'));
      expect(run.written).toBe(true);
      expect(run.previous?.status).toBe('sent');
      expect((await b.write(w(makeState(id, 'waiting-retry'), 'notFinal'))).written).toBe(true);
      expect((await b.write(w(makeState(id, 'failure'), 'notFinal'))).written).toBe(true);
      const late = await b.write(w(makeState(id, 'running'), 'notFinal'));
      expect(late.written).toBe(false);
      expect(late.previous?.status).toBe('failure');
      expect((await b.read(id))?.status).toBe('failure');
    });

    it('a success is sticky: no guard replaces it, and the result stays', async () => {
      const b = await make();
      const id = newId();
      const result = encodeValueText([42]);
      const ok = await b.write(w(makeState(id, 'success'), 'notSuccess', { result, resultTtl: 60 }));
      expect(ok.written).toBe(true);
      for (const guard of ['absent', 'notFinal', 'notSuccess'] as const) {
        const late = await b.write(w(makeState(id, 'failure'), guard, { result: encodeValueText(['x']), resultTtl: 60 }));
        expect(late.written).toBe(false);
        expect(late.previous?.status).toBe('success');
      }
      expect((await b.read(id))?.status).toBe('success');
      expect(decodeValueText((await b.readResult(id)) as string)).toEqual([42]);
    });

    it('notSuccess replaces a final failure or abort with a success', async () => {
      const b = await make();
      const id = newId();
      await b.write(w(makeState(id, 'aborted'), 'notFinal'));
      const out = await b.write(w(makeState(id, 'success'), 'notSuccess', { result: encodeValueText(1), resultTtl: 60 }));
      expect(out.written).toBe(true);
      expect(out.previous?.status).toBe('aborted');
      expect((await b.read(id))?.status).toBe('success');
    });

    it('stores results with superjson types intact', async () => {
      const b = await make();
      const id = newId();
      const value = { when: new Date(1700000000000), tags: new Set(['a']), m: new Map([[1, 'one']]), big: 10n ** 20n, u: undefined, s: 'ünïcødé ✓ 🎌' };
      await b.write(w(makeState(id, 'success'), 'notSuccess', { result: encodeValueText(value), resultTtl: 60 }));
      expect(decodeValueText((await b.readResult(id)) as string)).toEqual(value);
    });

    it('an expiry of 0 stores nothing, -1 keeps the entry, N seconds expires it', async () => {
      const b = await make();
      const none = newId();
      const forever = newId();
      const short = newId();
      const out = await b.write({ state: makeState(none, 'success'), stateTtl: 0, result: encodeValueText(1), resultTtl: 0, guard: 'notSuccess' });
      expect(out.written).toBe(true);
      await b.write({ state: makeState(forever, 'success'), stateTtl: -1, result: encodeValueText(2), resultTtl: -1, guard: 'notSuccess' });
      await b.write({ state: makeState(short, 'success'), stateTtl: 1, result: encodeValueText(3), resultTtl: 60, guard: 'notSuccess' });
      expect(await b.read(none)).toBeNull();
      expect(await b.readResult(none)).toBeNull();
      expect((await b.read(short))?.status).toBe('success');
      await sleep(2200);
      expect(await b.read(short)).toBeNull();
      expect(decodeValueText((await b.readResult(short)) as string)).toBe(3);
      expect((await b.read(forever))?.status).toBe('success');
      expect(decodeValueText((await b.readResult(forever)) as string)).toBe(2);
    });

    it('status and result expire separately', async () => {
      const b = await make();
      const id = newId();
      await b.write({ state: makeState(id, 'success'), stateTtl: 60, result: encodeValueText('r'), resultTtl: 1, guard: 'notSuccess' });
      await sleep(2200);
      expect((await b.read(id))?.status).toBe('success');
      expect(await b.readResult(id)).toBeNull();
    });

    it('an expired state counts as absent for the absent guard', async () => {
      const b = await make();
      const id = newId();
      await b.write({ state: makeState(id, 'success'), stateTtl: 1, guard: 'absent' });
      await sleep(2200);
      expect((await b.write(w(makeState(id, 'sent'), 'absent'))).written).toBe(true);
    });

    it('a refused write stores no result', async () => {
      const b = await make();
      const id = newId();
      await b.write(w(makeState(id, 'failure'), 'notFinal'));
      const out = await b.write(w(makeState(id, 'failure'), 'notFinal', { result: encodeValueText('late'), resultTtl: 60 }));
      expect(out.written).toBe(false);
      expect(await b.readResult(id)).toBeNull();
    });

    it('readMany returns states in order with nulls for missing ids', async () => {
      const b = await make();
      const [a, missing, c] = [newId(), newId(), newId()];
      await b.write(w(makeState(a, 'running'), 'notFinal'));
      await b.write(w(makeState(c, 'aborted'), 'notFinal'));
      const got = await b.readMany([a, missing, c]);
      expect(got.map((s) => s?.status ?? null)).toEqual(['running', null, 'aborted']);
      expect(await b.readMany([])).toEqual([]);
    });

    it('delete removes state and result', async () => {
      const b = await make();
      const id = newId();
      await b.write(w(makeState(id, 'success'), 'notSuccess', { result: encodeValueText(1), resultTtl: 60 }));
      await b.delete(id);
      expect(await b.read(id)).toBeNull();
      expect(await b.readResult(id)).toBeNull();
      await b.delete(id);
    });

    it('a large result is stored intact or refused with ERR_VALUE_TOO_LARGE, never lost silently', async () => {
      const b = await make();
      const id = newId();
      const big = encodeValueText('x'.repeat(2 * 1024 * 1024));
      try {
        await b.write(w(makeState(id, 'success'), 'notSuccess', { result: big, resultTtl: 60 }));
      } catch (err) {
        expect((err as { code?: string }).code).toBe('ERR_VALUE_TOO_LARGE');
        expect(await b.read(id)).toBeNull();
        return;
      }
      expect(await b.readResult(id)).toBe(big);
    });

    /** Polls `cond` every 5 ms for up to 2 s. */
    const eventually = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 400 && !cond(); i++) await sleep(5);
    };

    it('watchFinal (optional): a final write made after it resolved calls the listener, from any instance', async (ctx) => {
      const b = await make();
      if (b.watchFinal === undefined) return ctx.skip();
      const writer = await make();
      const id = newId();
      let calls = 0;
      const stop = await b.watchFinal(id, () => {
        calls++;
      });
      try {
        await writer.write(w(makeState(id, 'running'), 'notFinal'));
        await writer.write(w(makeState(id, 'failure'), 'notFinal'));
        await eventually(() => calls > 0);
        expect(calls).toBeGreaterThan(0);
        const before = calls;
        await writer.write(w(makeState(id, 'success'), 'notSuccess', { result: encodeValueText(1), resultTtl: 60 }));
        await eventually(() => calls > before);
        expect(calls).toBeGreaterThan(before);
      } finally {
        stop();
      }
    });

    it('watchFinal (optional): a notice, when given, is the final write itself (state, and result or null)', async (ctx) => {
      const b = await make();
      if (b.watchFinal === undefined) return ctx.skip();
      const [id, other] = [newId(), newId()];
      const notices: Array<FinalNotice | undefined> = [];
      const otherNotices: Array<FinalNotice | undefined> = [];
      const stop = await b.watchFinal(id, (n) => notices.push(n));
      const stopOther = await b.watchFinal(other, (n) => otherNotices.push(n));
      try {
        const success = makeState(id, 'success');
        await b.write(w(success, 'notSuccess', { result: encodeValueText({ a: [1, 2] }), resultTtl: 60 }));
        await b.write(w(makeState(other, 'failure'), 'notFinal'));
        await eventually(() => notices.length > 0 && otherNotices.length > 0);
        const n = notices[0];
        if (n !== undefined) {
          expect(n.state).toEqual(success);
          expect(n.result).toBe(encodeValueText({ a: [1, 2] }));
          n.state.status = 'failure'; // the listener's own copy
          expect((await b.read(id))?.status).toBe('success');
        }
        const o = otherNotices[0];
        if (o !== undefined) {
          expect(o.state.status).toBe('failure');
          expect(o.result).toBeNull();
        }
      } finally {
        stop();
        stopOther();
      }
    });

    it('watchFinal (optional): listeners of one id are independent; a stopped one is not called again', async (ctx) => {
      const b = await make();
      if (b.watchFinal === undefined) return ctx.skip();
      const [id, sentinel] = [newId(), newId()];
      let stopped = 0;
      let kept = 0;
      let sentinelCalls = 0;
      const stopA = await b.watchFinal(id, () => {
        stopped++;
      });
      const stopB = await b.watchFinal(id, () => {
        kept++;
      });
      const stopS = await b.watchFinal(sentinel, () => {
        sentinelCalls++;
      });
      try {
        stopA();
        stopA();
        await b.write(w(makeState(id, 'aborted'), 'notFinal'));
        await b.write(w(makeState(sentinel, 'aborted'), 'notFinal'));
        await eventually(() => kept > 0 && sentinelCalls > 0);
        expect(kept).toBeGreaterThan(0);
        expect(sentinelCalls).toBeGreaterThan(0);
        expect(stopped).toBe(0);
      } finally {
        stopB();
        stopS();
      }
    });

    it('watchFinal (optional): a listener that throws does not fail the write', async (ctx) => {
      const b = await make();
      if (b.watchFinal === undefined) return ctx.skip();
      const id = newId();
      let called = false;
      const stop = await b.watchFinal(id, () => {
        called = true;
        throw new Error('listener failure');
      });
      try {
        const out = await b.write(w(makeState(id, 'failure'), 'notFinal'));
        expect(out.written).toBe(true);
        await eventually(() => called);
        expect(called).toBe(true);
        expect((await b.read(id))?.status).toBe('failure');
      } finally {
        stop();
      }
    });

    it('close is idempotent and a closed backend rejects work', async () => {
      const b = await make();
      await b.close();
      await b.close();
      await expect(b.read('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    });
  });
}

/**
 * Delta writes of the Redis backend (`backends/redis-delta.ts`): a write with the state its caller
 * expects stored sends only the edits from it; the script rebuilds the whole state when the stored
 * text is that basis, and otherwise the write goes again whole — with the same guard and outcome.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { applyStateDelta, stateDelta } from '../backends/redis-delta.js';
import { RedisBackend } from '../backends/redis.js';
import { redisKeys } from '../backends/redis-keys.js';
import { prepareWrite } from '../backends/redis-writes.js';
import { encodeTaskState, type TaskState } from '../src/state.js';

/** The record the Redis backend stores for a state: compact, without the id its key names. */
const stored = (s: TaskState): string => encodeTaskState(s, { omitId: true });
import { redisNamespace } from './helpers/redis.js';

const id = '7a4197de-9c2c-4ca2-83a1-5a5d9e2b4c96';
const sent: TaskState = { v: 1, id, group: 'g', name: 'noop', status: 'sent', retriesUsed: 0, retriesLeft: 3, sentAt: 1_796_137_376_867, updatedAt: 1_796_137_376_867 };
const running: TaskState = { ...sent, status: 'running', startedAt: 1_796_137_377_154, updatedAt: 1_796_137_377_154 };
const success: TaskState = { ...sent, status: 'success', startedAt: 1_796_137_377_160, finishedAt: 1_796_137_377_161, updatedAt: 1_796_137_377_161 };
const failure: TaskState = {
  ...running, status: 'failure', error: { name: 'Error', message: 'bad, "quoted" } text' }, finishedAt: 1_796_137_377_200, updatedAt: 1_796_137_377_200, message: '{"v":1,"id":"x"}',
};

describe('state deltas', () => {
  it('rebuild the new text exactly from its basis, and are much shorter for the worker\'s writes', () => {
    const pairs: Array<[TaskState, TaskState]> = [[sent, running], [running, success], [running, { ...success, progress: '{"json":5}' }], [running, failure], [failure, sent]];
    for (const [from, to] of pairs) {
      const basis = encodeTaskState(from);
      const next = encodeTaskState(to);
      const delta = stateDelta(basis, next);
      expect(delta).toBeDefined();
      expect(applyStateDelta(basis, delta as string)).toBe(next);
    }
    const claim = stateDelta(encodeTaskState(sent), encodeTaskState(running)) as string;
    expect(claim.length).toBeLessThan(encodeTaskState(running).length / 2);
  });

  it('do not apply to any other text, and are not made when they would not help', () => {
    const delta = stateDelta(encodeTaskState(sent), encodeTaskState(running)) as string;
    expect(applyStateDelta(encodeTaskState({ ...sent, sentAt: sent.sentAt as number + 1 }), delta)).toBeUndefined();
    expect(applyStateDelta(encodeTaskState({ ...sent, retriesLeft: 2 }), delta)).toBeUndefined();
    expect(stateDelta(encodeTaskState(sent), encodeTaskState(sent))).toBeUndefined();
    // Non-ASCII text: offsets would not be byte offsets, so the write goes whole.
    expect(stateDelta(encodeTaskState({ ...sent, name: 'naïve' }), encodeTaskState({ ...running, name: 'naïve' }))).toBeUndefined();
  });

  it('are used by the backend, when on, only for guarded writes that store the state', () => {
    const w = prepareWrite('p', { state: running, basis: sent, stateTtl: 60, guard: 'notFinal' }, undefined, true);
    expect(w.op).toBe('n--p-d60');
    expect(w.whole?.stateText).toBe(stored(running));
    expect(w.stateText.length).toBeLessThan(stored(running).length * 0.6);
    expect(prepareWrite('p', { state: running, basis: sent, stateTtl: 0, guard: 'notFinal' }, undefined, true).whole).toBeUndefined();
    expect(prepareWrite('p', { state: sent, basis: running, stateTtl: 60, guard: 'absent' }, undefined, true).whole).toBeUndefined();
    // Off (the default): the basis is not used.
    expect(prepareWrite('p', { state: running, basis: sent, stateTtl: 60, guard: 'notFinal' }).op).toBe('n--p--60');
    expect(prepareWrite('p', { state: running, stateTtl: 60, guard: 'notFinal' }).op).toBe('n--p--60');
  });
});

describe('delta writes on Redis', () => {
  const ns = redisNamespace('delta');
  afterAll(async () => {
    await ns.sweep();
    await ns.quit();
  });
  const key = (taskId: string): string => redisKeys(ns.prefix, taskId).state;
  const as = (s: TaskState, taskId: string): TaskState => ({ ...s, id: taskId });

  it('rebuild the state from its stored basis, keep the index and publish the whole final state', async () => {
    const b = new RedisBackend({ prefix: ns.prefix, deltaWrites: true });
    try {
      const t = 'd1';
      expect((await b.write({ state: as(sent, t), stateTtl: 60, guard: 'absent' })).written).toBe(true);
      expect((await b.write({ state: as(running, t), basis: as(sent, t), stateTtl: 60, guard: 'notFinal', previous: 'refused' })).written).toBe(true);
      expect(await ns.admin.get(key(t))).toBe(stored(as(running, t)));
      expect(await ns.admin.zscore(`${ns.prefix}:ix|g|running`, t)).toBe(String(running.updatedAt));
      const notices: string[] = [];
      const stop = await b.watchFinal(t, (n) => notices.push(n === undefined ? 'no notice' : encodeTaskState(n.state)));
      const done = await b.write({ state: as(success, t), basis: as(running, t), stateTtl: 60, guard: 'notSuccess', result: '{"json":64}', resultTtl: 60 });
      expect(done.written).toBe(true);
      expect(done.previous).toEqual(as(running, t));
      expect(await b.read(t)).toEqual(as(success, t));
      expect(await b.readResult(t)).toBe('{"json":64}');
      expect(await ns.admin.zscore(`${ns.prefix}:ix|g|running`, t)).toBeNull();
      expect(await ns.admin.zscore(`${ns.prefix}:ix|g|success`, t)).toBe(String(success.updatedAt));
      await expect.poll(() => notices).toEqual([encodeTaskState(as(success, t))]);
      stop();
      // A failure after the claim: three edits (status, the error, the fields at the end).
      const f = 'd1f';
      await b.write({ state: as(running, f), stateTtl: 60, guard: 'absent' });
      const delta = stateDelta(stored(as(running, f)), stored(as(failure, f))) as string;
      expect(delta.split('\n').length).toBe(2 + 3 * 3);
      expect((await b.write({ state: as(failure, f), basis: as(running, f), stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
      expect(await ns.admin.get(key(f))).toBe(stored(as(failure, f)));
    } finally {
      await b.close();
    }
  });

  it('go again whole when the stored state is not the basis (or none is stored), with the same guard', async () => {
    const b = new RedisBackend({ prefix: ns.prefix, deltaWrites: true });
    try {
      // Another writer came between: the claim still lands, whole.
      const t = 'd2';
      await b.write({ state: as({ ...sent, progress: '{"json":1}' }, t), stateTtl: 60, guard: 'absent' });
      expect((await b.write({ state: as(running, t), basis: as(sent, t), stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
      expect(await ns.admin.get(key(t))).toBe(stored(as(running, t)));
      // Nothing stored (expired): written whole.
      const u = 'd3';
      expect((await b.write({ state: as(running, u), basis: as(sent, u), stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
      expect(await b.read(u)).toEqual(as(running, u));
      // A stored success stays: refused, with it as the previous state.
      const v = 'd4';
      await b.write({ state: as(success, v), stateTtl: 60, guard: 'absent' });
      const late = await b.write({ state: as(failure, v), basis: as(running, v), stateTtl: 60, guard: 'notFinal', previous: 'refused' });
      expect(late).toEqual({ written: false, previous: as(success, v) });
      expect(await ns.admin.get(key(v))).toBe(stored(as(success, v)));
      // A duplicate's claim came between: its success overwrites it whole.
      const w = 'd5';
      await b.write({ state: as({ ...running, startedAt: 1, updatedAt: 1 }, w), stateTtl: 60, guard: 'absent' });
      expect((await b.write({ state: as(success, w), basis: as(running, w), stateTtl: 60, guard: 'notSuccess' })).written).toBe(true);
      expect(await b.read(w)).toEqual(as(success, w));
    } finally {
      await b.close();
    }
  });
});

/**
 * Compact records: the wire text leaves out fields at the value readers assume when they are absent,
 * and what the previous release wrote (every field, nulls included) still reads the same.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client, Server, decodeMessage, encodeMessage, silentLogger, type TaskMessage } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { encodeTaskState, parseTaskState, type TaskState } from '../src/state.js';
import { liveState } from '../backends/mongo-documents.js';
import { RedisBackend } from '../backends/redis.js';
import { redisKeys } from '../backends/redis-keys.js';
import { redisNamespace } from './helpers/redis.js';

const message = (extra: Partial<TaskMessage> = {}): TaskMessage => ({
  v: 1,
  id: '6f1c2a57-9d7e-4d59-8a7e-2f3c1b0e9a11',
  group: 'g',
  name: 'add',
  args: { json: [1, 2] },
  retriesLeft: 3,
  retriesUsed: 0,
  backoff: { type: 'exponential', delayMs: 1000, maxDelayMs: 300_000, jitter: 0.5 },
  sentAt: 1_767_225_600_000,
  runAt: null,
  expireAt: null,
  timeoutMs: null,
  firstUnknownAt: null,
  ...extra,
});

describe('compact wire messages', () => {
  it('leaves out null optional fields and retriesUsed 0, and decodes to the same message', () => {
    const msg = message();
    const text = encodeMessage(msg);
    expect(text).not.toContain('null');
    expect(text).not.toContain('retriesUsed');
    expect(JSON.parse(text)).toEqual({ v: 1, id: msg.id, group: 'g', name: 'add', args: { json: [1, 2] }, retriesLeft: 3, backoff: msg.backoff, sentAt: msg.sentAt });
    expect(decodeMessage(text)).toEqual(msg);
  });

  it('keeps every field that is set', () => {
    const msg = message({ retriesUsed: 2, runAt: 1, expireAt: 2, timeoutMs: 3, firstUnknownAt: 4, priority: 5, key: 'k', trace: { traceparent: 'x' } });
    const text = encodeMessage(msg);
    expect(JSON.parse(text)).toEqual(msg);
    expect(decodeMessage(text)).toEqual(msg);
  });

  it('reads a message written by the previous release (every field, nulls included) the same', () => {
    const msg = message();
    const old = JSON.stringify(msg);
    expect(old).toContain('"runAt":null');
    expect(decodeMessage(old)).toEqual(decodeMessage(encodeMessage(msg)));
    expect(encodeMessage(msg).length).toBeLessThan(old.length - 60);
  });
});

/** Complete states of each kind, and the compact records a later release may store for them. */
const complete: TaskState[] = [
  { v: 1, id: 'a', group: 'g', name: 'n', status: 'sent', retriesUsed: 0, retriesLeft: 3, sentAt: 11, updatedAt: 11 },
  { v: 1, id: 'b', group: 'g', name: 'n', status: 'running', retriesUsed: 0, retriesLeft: 3, sentAt: 11, startedAt: 22, updatedAt: 22 },
  { v: 1, id: 'c', group: 'g', name: 'n', status: 'success', retriesUsed: 0, retriesLeft: 3, sentAt: 11, startedAt: 22, finishedAt: 33, updatedAt: 33 },
];
const compactText = (s: TaskState): string => {
  const { v: _v, retriesUsed: _r, updatedAt: _u, ...rest } = s;
  return JSON.stringify(rest);
};

describe('compact state writes (encodeTaskState)', () => {
  it('leaves out v, retriesUsed 0 and an updatedAt readers assume, and reads back to the same state', () => {
    for (const full of complete) {
      const text = encodeTaskState(full);
      expect(text).toBe(compactText(full));
      expect(parseTaskState(text, 'k')).toEqual(full);
    }
  });

  it('keeps retriesUsed above 0, an updatedAt other than the status\'s own time, and leaves out undefined fields', () => {
    const retry: TaskState = { v: 1, id: 'd', group: 'g', name: 'n', status: 'waiting-retry', retriesUsed: 1, retriesLeft: 2, sentAt: 11, retryAt: 50, updatedAt: 44, progress: undefined };
    const text = encodeTaskState(retry);
    expect(JSON.parse(text)).toEqual({ id: 'd', group: 'g', name: 'n', status: 'waiting-retry', retriesUsed: 1, retriesLeft: 2, sentAt: 11, retryAt: 50, updatedAt: 44 });
    expect(parseTaskState(text, 'k')).toEqual({ ...retry, progress: undefined });
    // A final state written later than its finishedAt keeps its updatedAt; a running one written at its start does not.
    const late: TaskState = { ...(complete[2] as TaskState), updatedAt: 34 };
    expect(parseTaskState(encodeTaskState(late), 'k')).toEqual(late);
    expect(encodeTaskState(complete[1] as TaskState)).not.toContain('updatedAt');
  });

  it('with omitId leaves out the id, which the reader puts back from where the record is stored', () => {
    for (const full of complete) {
      const text = encodeTaskState(full, { omitId: true });
      expect(JSON.parse(text)).not.toHaveProperty('id');
      expect(text.length).toBe(compactText(full).length - `"id":"${full.id}",`.length);
      expect(parseTaskState(text, 'k', full.id)).toEqual(full);
    }
    // A record that names its id keeps its own; one without an id and none given is no task state.
    expect(parseTaskState(encodeTaskState(complete[0] as TaskState), 'k', 'other').id).toBe('a');
    expect(() => parseTaskState(encodeTaskState(complete[0] as TaskState, { omitId: true }), 'k')).toThrow(/not a task state/);
  });

  it('keeps status before the nested error (the Redis write script finds the first status key)', () => {
    const failed: TaskState = { v: 1, id: 'e', group: 'g', name: 'n', status: 'failure', retriesUsed: 0, retriesLeft: 0, error: { name: 'Error', message: '"status":"success"' }, finishedAt: 5, updatedAt: 5 };
    const text = encodeTaskState(failed);
    expect(text.indexOf('"status":"failure"')).toBeLessThan(text.indexOf('"error"'));
    expect(parseTaskState(text, 'k')).toEqual(failed);
  });
});

describe('compact stored states', () => {
  const ns = redisNamespace('compact');
  afterAll(async () => {
    await ns.sweep();
    await ns.quit();
  });

  it('the JSON readers (parseTaskState, the Mongo document reader) complete a compact record', () => {
    const now = new Date();
    for (const full of complete) {
      expect(parseTaskState(compactText(full), 'k')).toEqual(full);
      expect(liveState({ _id: full.id, state: compactText(full), stateExpiresAt: null } as never, now)).toEqual(full);
    }
  });

  it('a record written by the previous release (every field) reads unchanged', () => {
    const retry: TaskState = { v: 1, id: 'd', group: 'g', name: 'n', status: 'waiting-retry', retriesUsed: 1, retriesLeft: 2, sentAt: 11, retryAt: 50, updatedAt: 44 };
    for (const full of [...complete, retry]) {
      expect(parseTaskState(JSON.stringify(full), 'k')).toEqual(full);
      expect(liveState({ _id: full.id, state: JSON.stringify(full), stateExpiresAt: null } as never, new Date())).toEqual(full);
    }
  });

  it('the Redis backend reads compact records stored at its keys, and guards against them', async () => {
    const b = new RedisBackend({ prefix: ns.prefix });
    try {
      for (const full of complete) await ns.admin.set(redisKeys(ns.prefix, full.id).state, compactText(full), 'EX', 60);
      expect(await b.readMany(complete.map((s) => s.id))).toEqual(complete);
      // The write script finds the status of a compact record: a stored success stays.
      const late = await b.write({ state: { ...(complete[0] as TaskState), id: 'c' }, stateTtl: 60, guard: 'notFinal' });
      expect(late.written).toBe(false);
      expect(late.previous).toEqual(complete[2]);
      // What the backend writes is the compact record, read back whole.
      const state: TaskState = { v: 1, id: 'w', group: '', name: 'n', status: 'running', retriesUsed: 0, retriesLeft: 3, sentAt: 11, startedAt: 22, updatedAt: 22 };
      expect((await b.write({ state, stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
      // ... without the id its key names.
      const { id: _id, ...withoutId } = JSON.parse(compactText(state)) as Record<string, unknown>;
      expect(await ns.admin.get(redisKeys(ns.prefix, 'w').state)).toBe(JSON.stringify(withoutId));
      expect(await b.read('w')).toEqual(state);
    } finally {
      await b.close();
    }
  });

  it('recordIds: true writes the id into the record (for readers of earlier builds); both forms read the same', async () => {
    const keeping = new RedisBackend({ prefix: ns.prefix, recordIds: true });
    const plain = new RedisBackend({ prefix: ns.prefix });
    try {
      const a: TaskState = { ...(complete[0] as TaskState), id: `ri-${randomUUID()}` };
      const b: TaskState = { ...(complete[1] as TaskState), id: `ri-${randomUUID()}` };
      expect((await keeping.write({ state: a, stateTtl: 60, guard: 'absent' })).written).toBe(true);
      expect((await plain.write({ state: b, stateTtl: 60, guard: 'absent' })).written).toBe(true);
      // What an earlier build reads: the id in the record (parseTaskState without the key's id).
      expect(parseTaskState((await ns.admin.get(redisKeys(ns.prefix, a.id).state)) as string, 'k')).toEqual(a);
      expect(JSON.parse((await ns.admin.get(redisKeys(ns.prefix, b.id).state)) as string)).not.toHaveProperty('id');
      for (const reader of [keeping, plain]) expect(await reader.readMany([a.id, b.id])).toEqual([a, b]);
      // A guarded write over either form finds its status and hands back the previous state whole.
      const over = await plain.write({ state: { ...a, status: 'running', startedAt: 22, updatedAt: 22 }, stateTtl: 60, guard: 'notFinal' });
      expect(over).toMatchObject({ written: true });
      expect(over.previous).toEqual(a);
    } finally {
      await keeping.close();
      await plain.close();
    }
  });

  it('a task run on Redis stores compact sent, running and success records (with deltaWrites too)', async () => {
    for (const deltaWrites of [false, true]) {
      const group = `compact-${randomUUID().slice(0, 8)}`;
      const server = new Server({ broker: new RedisBroker({ prefix: ns.prefix }), backend: new RedisBackend({ prefix: ns.prefix, deltaWrites }), logger: silentLogger });
      const client = new Client({ broker: new RedisBroker({ prefix: ns.prefix }), backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger });
      const seen: Array<string | null> = [];
      let key = '';
      const task = server.add(group, 'echo', async (x: number) => {
        seen.push(await ns.admin.get(key));
        return x;
      });
      try {
        const id = await client.send(task, 5);
        key = redisKeys(ns.prefix, id).state;
        seen.push(await ns.admin.get(key));
        await server.run(group, 1);
        expect((await client.getResult(id, 10_000)).value).toBe(5);
        seen.push(await ns.admin.get(key));
        const [sent, running, success] = seen.map((t) => JSON.parse(t as string) as Record<string, unknown>);
        expect(sent).toMatchObject({ status: 'sent', retriesLeft: 3 });
        expect(running).toMatchObject({ status: 'running', sentAt: sent?.sentAt });
        expect(success).toMatchObject({ status: 'success', sentAt: sent?.sentAt });
        for (const r of [sent, running, success]) {
          expect(r).not.toHaveProperty('id');
          expect(r).not.toHaveProperty('v');
          expect(r).not.toHaveProperty('retriesUsed');
          expect(r).not.toHaveProperty('updatedAt');
        }
        // Read back whole: updatedAt is the status's own time.
        const state = (await client.getStatus(id))?.state;
        expect(state).toMatchObject({ v: 1, id, retriesUsed: 0, status: 'success', updatedAt: success?.finishedAt });
      } finally {
        await client.close();
        await server.shutdown(5000);
      }
    }
  });
});

import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MongoClient } from 'mongodb';
import { backendContract, makeState } from './contract/backend.js';
import { MongoBackend } from '../backends/mongo.js';
import {
  MONGO_MAX_VALUE_BYTES,
  TTL_INDEX_NAME,
  buildUpdatePipeline,
  expiryDate,
  guardAllows,
  guardFilter,
  isDuplicateKeyError,
  liveResult,
  liveState,
  mapMongoError,
  writeStoresSomething,
  type TaskDocument,
} from '../backends/mongo-documents.js';
import type { StateWrite } from '../src/backend.js';
import { encodeTaskState } from '../src/state.js';
import { evalExpr } from './helpers/mongo-stand-in.js';

const MONGO_URL = process.env.MONGO_URL;
if (!MONGO_URL) console.log('mongo backend: MONGO_URL not set, skipping the MongoDB contract tests (the pure helpers and a simulated collection are still tested)');

// ---------------------------------------------------------------------------------------------
// Against a real server, when MONGO_URL is set.
// ---------------------------------------------------------------------------------------------
describe.skipIf(!MONGO_URL)('mongo backend on a real server', () => {
  const collection = `tasuki_test_${randomUUID().replace(/-/g, '')}`;
  const admin = new MongoClient(MONGO_URL ?? 'mongodb://unused');

  afterAll(async () => {
    await admin.db().collection(collection).drop().catch(() => undefined);
    await admin.close();
  });

  backendContract('mongo', () => ({ create: () => new MongoBackend({ url: MONGO_URL, collection }) }));

  it('creates the TTL index, idempotently, and leaves a user-supplied client open', async () => {
    const b1 = new MongoBackend({ client: admin, collection });
    const b2 = new MongoBackend({ client: admin, collection });
    await b1.connect();
    await b2.connect();
    const indexes = await admin.db().collection(collection).indexes();
    const ttl = indexes.find((i) => i.name === TTL_INDEX_NAME);
    expect(ttl).toMatchObject({ key: { expiresAt: 1 }, expireAfterSeconds: 0 });
    const id = randomUUID();
    await b1.write({ state: makeState(id, 'success'), stateTtl: 60, result: '{"json":1}', resultTtl: -1, guard: 'notSuccess' });
    const doc = await admin.db().collection<TaskDocument>(collection).findOne({ _id: id });
    expect(doc).toMatchObject({ _id: id, status: 'success', result: '{"json":1}', resultExpiresAt: null, expiresAt: null });
    await b1.close();
    await b2.close();
    await expect(b1.read(id)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    // The shared client is still usable.
    expect(await admin.db().collection(collection).countDocuments({ _id: id } as object)).toBe(1);
    await admin.db().collection<TaskDocument>(collection).deleteOne({ _id: id });
  });
});

// ---------------------------------------------------------------------------------------------
// Pure helpers (no server).
// ---------------------------------------------------------------------------------------------
const now = new Date('2024-01-01T00:00:00Z');
const w = (extra: Partial<StateWrite> = {}): StateWrite => ({ state: makeState('t1', 'running'), stateTtl: 60, guard: 'notFinal', ...extra });

describe('mongo documents: expiries', () => {
  it('computes end dates: -1 never, N seconds later', () => {
    expect(expiryDate(-1, now)).toBeNull();
    expect(expiryDate(60, now)).toEqual(new Date('2024-01-01T00:01:00Z'));
    expect(expiryDate(90 * 86400, now)).toEqual(new Date('2024-03-31T00:00:00Z'));
    expect(expiryDate(1e15, now)).toBeNull();
    expect(() => expiryDate(0, now)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => expiryDate(-3, now)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
  it('reads expired entries as absent, before the TTL monitor removes them', () => {
    const state = makeState('t1', 'running');
    const doc: TaskDocument = { _id: 't1', state: JSON.stringify(state), status: 'running', stateExpiresAt: new Date(now.getTime() - 1), result: 'r', resultExpiresAt: null };
    expect(liveState(doc, now)).toBeNull();
    expect(liveResult(doc, now)).toBe('r');
    expect(liveState({ ...doc, stateExpiresAt: null }, now)).toEqual(state);
    expect(liveState({ ...doc, stateExpiresAt: new Date(now.getTime() + 1) }, now)).toEqual(state);
    expect(liveResult({ ...doc, resultExpiresAt: now }, now)).toBeNull();
    expect(liveState(null, now)).toBeNull();
    expect(() => liveState({ ...doc, stateExpiresAt: null, state: '{bad' }, now)).toThrow(expect.objectContaining({ code: 'ERR_DECODE' }));
  });
});

describe('mongo documents: guards', () => {
  it('builds one filter per guard on the task id, treating missing or expired states as absent', () => {
    const absent = guardFilter('t1', 'absent', now);
    expect(absent).toEqual({ _id: 't1', $or: [{ state: null }, { stateExpiresAt: { $lte: now } }] });
    const notFinal = guardFilter('t1', 'notFinal', now);
    expect(notFinal).toEqual({ _id: 't1', $or: [{ state: null }, { stateExpiresAt: { $lte: now } }, { status: { $in: ['sent', 'running', 'waiting-retry'] } }] });
    const notSuccess = guardFilter('t1', 'notSuccess', now);
    expect(notSuccess).toEqual({
      _id: 't1',
      $or: [{ state: null }, { stateExpiresAt: { $lte: now } }, { status: { $in: ['sent', 'running', 'waiting-retry', 'failure', 'expired', 'aborted'] } }],
    });
    expect(() => guardFilter('t1', 'bogus' as never, now)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
  it('evaluates guards in memory the same way', () => {
    expect(guardAllows('absent', null)).toBe(true);
    expect(guardAllows('absent', makeState('t', 'sent'))).toBe(false);
    expect(guardAllows('notFinal', makeState('t', 'waiting-retry'))).toBe(true);
    expect(guardAllows('notFinal', makeState('t', 'expired'))).toBe(false);
    expect(guardAllows('notSuccess', makeState('t', 'failure'))).toBe(true);
    for (const g of ['absent', 'notFinal', 'notSuccess'] as const) expect(guardAllows(g, makeState('t', 'success'))).toBe(false);
  });
});

describe('mongo documents: update pipeline', () => {
  it('sets state and result as literals with their own end dates', () => {
    const state = makeState('t1', 'success', { error: { name: 'E', message: '$notAFieldPath' } });
    const p = buildUpdatePipeline(w({ state, result: '$also literal', resultTtl: -1, guard: 'notSuccess' }), now);
    expect(p).toHaveLength(2);
    expect(p[0]).toEqual({
      $set: {
        state: { $literal: encodeTaskState(state) },
        status: { $literal: 'success' },
        stateExpiresAt: { $literal: new Date('2024-01-01T00:01:00Z') },
        result: { $literal: '$also literal' },
        resultExpiresAt: { $literal: null },
      },
    });
    expect(Object.keys((p[1] as { $set: object }).$set)).toEqual(['expiresAt']);
  });
  it('unsets entries with expiry 0 and leaves the result alone when none is given', () => {
    const p = buildUpdatePipeline(w({ stateTtl: 0, result: 'x', resultTtl: 0 }), now);
    expect(p[0]).toEqual({ $unset: ['state', 'status', 'stateExpiresAt', 'result', 'resultExpiresAt'] });
    const q = buildUpdatePipeline(w(), now);
    expect(Object.keys((q[0] as { $set: object }).$set)).toEqual(['state', 'status', 'stateExpiresAt']);
    expect(writeStoresSomething(w({ stateTtl: 0 }))).toBe(false);
    expect(writeStoresSomething(w({ stateTtl: 0, result: 'x', resultTtl: 5 }))).toBe(true);
    expect(() => buildUpdatePipeline(w({ result: 'x' }), now)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});

describe('mongo documents: errors', () => {
  it('maps driver errors to tasuki errors', () => {
    const net = Object.assign(new Error('connect ECONNREFUSED'), { name: 'MongoServerSelectionError' });
    expect(mapMongoError(net, 'read')).toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringContaining('connection lost') });
    expect(mapMongoError({ code: 17419, message: 'Resulting document after update is larger than 16777216' }, 'write', 20e6)).toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    expect(mapMongoError({ code: 10334, codeName: 'BSONObjectTooLarge', message: 'x' }, 'write', 1)).toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    expect(mapMongoError({ code: 85, message: 'Index with name: x already exists with different options' }, 'connect')).toMatchObject({ code: 'ERR_TOPOLOGY_MISMATCH' });
    expect(mapMongoError({ code: 13, message: 'not authorized' }, 'write')).toMatchObject({ code: 'ERR_CONNECTION' });
    expect(isDuplicateKeyError({ code: 11000 })).toBe(true);
    expect(isDuplicateKeyError(new Error('x'))).toBe(false);
  });
  it('refuses a value above the document limit before any I/O', async () => {
    const b = new MongoBackend({ url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200' });
    await expect(
      b.write(w({ state: makeState('t', 'success'), result: 'x'.repeat(MONGO_MAX_VALUE_BYTES), resultTtl: 60, guard: 'notSuccess' })),
    ).rejects.toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    await expect(b.read('t')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await b.close();
    await b.close();
    await expect(b.read('t')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

// ---------------------------------------------------------------------------------------------
// The backend class against a simulated collection: an in-memory model of the few MongoDB query and
// aggregation operators the backend uses, as documented by MongoDB. It checks the backend's own
// logic (guards, duplicate-key handling, expiry bookkeeping) end to end; it is no substitute for a
// server, whose run needs MONGO_URL.
// ---------------------------------------------------------------------------------------------
type Doc = Record<string, unknown>;

function matches(doc: Doc, filter: Doc): boolean {
  return Object.entries(filter).every(([k, cond]) => {
    if (k === '$or') return (cond as Doc[]).some((f) => matches(doc, f));
    const v = doc[k];
    if (cond === null) return v === null || v === undefined;
    if (typeof cond === 'object' && !(cond instanceof Date)) {
      const [op, arg] = Object.entries(cond as Doc)[0] as [string, unknown];
      if (op === '$lte') return v instanceof Date && v.getTime() <= (arg as Date).getTime();
      if (op === '$in') return (arg as unknown[]).includes(v);
      throw new Error(`simulated collection: unsupported query operator ${op}`);
    }
    return v === cond;
  });
}

class SimulatedCollection {
  readonly docs = new Map<string, Doc>();
  indexes: Array<{ key: Doc; options: Doc }> = [];
  async createIndex(key: Doc, options: Doc): Promise<string> {
    if (!this.indexes.some((i) => JSON.stringify(i.key) === JSON.stringify(key))) this.indexes.push({ key, options });
    return options.name as string;
  }
  async findOneAndUpdate(filter: Doc, pipeline: Doc[], options: { upsert: boolean; returnDocument: string }): Promise<Doc | null> {
    await Promise.resolve();
    const id = filter._id as string;
    const existing = this.docs.get(id);
    if (existing && !matches(existing, filter)) {
      if (options.upsert) throw Object.assign(new Error('E11000 duplicate key error'), { code: 11000 });
      return null;
    }
    if (!existing && !options.upsert) return null;
    const before = existing ? { ...existing } : null;
    let doc: Doc = existing ? { ...existing } : { _id: id };
    for (const stage of pipeline) {
      if ('$set' in stage) {
        const next = { ...doc };
        for (const [k, e] of Object.entries(stage.$set as Doc)) {
          const v = evalExpr(e, doc, {});
          if (v === undefined) delete next[k];
          else next[k] = v;
        }
        doc = next;
      } else if ('$unset' in stage) {
        for (const k of stage.$unset as string[]) delete doc[k];
      } else throw new Error('simulated collection: unsupported stage');
    }
    this.docs.set(id, doc);
    return before;
  }
  async findOne(filter: Doc): Promise<Doc | null> {
    await Promise.resolve();
    const d = this.docs.get(filter._id as string);
    return d ? { ...d } : null;
  }
  find(filter: { _id: { $in: string[] } }): { toArray(): Promise<Doc[]> } {
    return { toArray: async () => filter._id.$in.flatMap((id) => (this.docs.has(id) ? [{ ...(this.docs.get(id) as Doc) }] : [])) };
  }
  async updateOne(filter: Doc, update: { $unset: Doc }): Promise<void> {
    const d = this.docs.get(filter._id as string);
    if (d && matches(d, filter)) for (const k of Object.keys(update.$unset)) delete d[k];
  }
  async deleteOne(filter: Doc): Promise<void> {
    this.docs.delete(filter._id as string);
  }
}

function simulatedClient(coll: SimulatedCollection): { client: MongoClient; closed: () => boolean } {
  let closed = false;
  const client = {
    connect: async () => client,
    db: () => ({ collection: () => coll }),
    close: async () => {
      closed = true;
    },
  };
  return { client: client as unknown as MongoClient, closed: () => closed };
}

describe('mongo backend logic on a simulated collection', () => {
  const shared = new SimulatedCollection();
  backendContract('mongo (simulated collection)', () => ({ create: () => new MongoBackend({ client: simulatedClient(shared).client }) }));

  it('keeps the document alive as long as its longest-lived entry, and drops it when nothing is left', async () => {
    const coll = new SimulatedCollection();
    const sim = simulatedClient(coll);
    const b = new MongoBackend({ client: sim.client });
    await b.connect();
    expect(coll.indexes).toEqual([
      { key: { expiresAt: 1 }, options: { name: TTL_INDEX_NAME, expireAfterSeconds: 0 } },
      { key: { group: 1, updatedAt: -1, _id: -1 }, options: { name: 'tasuki_index_group', partialFilterExpression: { group: { $exists: true } } } },
      { key: { group: 1, status: 1, updatedAt: -1, _id: -1 }, options: { name: 'tasuki_index_status', partialFilterExpression: { group: { $exists: true } } } },
    ]);
    const id = 'doc-1';
    const t0 = Date.now();
    await b.write({ state: makeState(id, 'success'), stateTtl: 10, result: 'r', resultTtl: 1000, guard: 'notSuccess' });
    const at = (coll.docs.get(id)?.expiresAt as Date).getTime();
    expect(at).toBeGreaterThanOrEqual(t0 + 1000_000);
    // A state-only write (the success expired, a new run with the same id) keeps the result's time.
    coll.docs.get(id)!.stateExpiresAt = new Date(t0 - 1);
    expect((await b.write({ state: makeState(id, 'sent'), stateTtl: 5, guard: 'absent' })).written).toBe(true);
    expect((coll.docs.get(id)?.expiresAt as Date).getTime()).toBe(at);
    // A state kept forever keeps the document forever.
    await b.write({ state: makeState(id, 'running'), stateTtl: -1, guard: 'notFinal' });
    expect(coll.docs.get(id)?.expiresAt).toBeNull();
    // stateTtl 0 with no result to store and no document: nothing is created.
    expect(await b.write({ state: makeState('doc-2', 'success'), stateTtl: 0, guard: 'notSuccess' })).toEqual({ written: true, previous: null });
    expect(coll.docs.has('doc-2')).toBe(false);
    // An expired result in a living document is dropped when read.
    coll.docs.get(id)!.resultExpiresAt = new Date(t0 - 1);
    expect(await b.readResult(id)).toBeNull();
    expect(coll.docs.get(id)).not.toHaveProperty('result');
    await b.close();
    expect(sim.closed()).toBe(false); // a client passed in is never closed by the backend
  });
});

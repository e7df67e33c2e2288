/**
 * The task index and record store of the MongoDB backend: the ops contract against a real server
 * when MONGO_URL is set (plus the query plans and `index: false`), and always against the in-process
 * stand-in collection (`./helpers/mongo-stand-in.ts`), which checks the backend's own logic — the
 * filters, keyset cursors, update stages, claims — but not MongoDB itself.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { MongoClient, type Document } from 'mongodb';
import { opsContract } from './contract/ops.js';
import { makeState } from './contract/backend.js';
import { MongoBackend } from '../backends/mongo.js';
import { INDEX_SPECS, LIST_SORT, indexStage, listFilter, recordId } from '../backends/mongo-index.js';
import { standInClient } from './helpers/mongo-stand-in.js';

const MONGO_URL = process.env.MONGO_URL;
if (!MONGO_URL) console.log('ops-mongo: MONGO_URL not set, skipping the MongoDB task index tests on a real server (the stand-in collection runs the same contract)');

describe.skipIf(!MONGO_URL)('mongo task index on a real server', () => {
  const collection = `tasuki_test_${randomUUID().replace(/-/g, '')}`;
  const admin = new MongoClient(MONGO_URL ?? 'mongodb://unused');
  afterAll(async () => {
    for (const c of [collection, `${collection}_records`, `${collection}_journal`]) await admin.db().collection(c).drop().catch(() => undefined);
    await admin.close();
  });

  opsContract('mongo', () => ({ create: () => new MongoBackend({ url: MONGO_URL, collection }) }));

  it('lists with one index scan in the index order (no in-memory sort), for a group, a status, a cursor', async () => {
    const b = new MongoBackend({ client: admin, collection });
    try {
      await b.connect();
      const names = (await admin.db().collection(collection).indexes()).map((i) => i.name);
      for (const spec of INDEX_SPECS) expect(names).toContain(spec.name);
      const t0 = Date.now() - 60_000;
      for (let i = 0; i < 30; i++) await b.write({ state: makeState(`plan-${i}`, i % 2 === 0 ? 'failure' : 'success', { group: 'plan', updatedAt: t0 + i }), stateTtl: 60, guard: 'notSuccess' });
      const cursor = Buffer.from(`${t0 + 20}:plan-20`, 'utf8').toString('base64url');
      for (const [q, index] of [
        [{ group: 'plan', limit: 5 }, 'tasuki_index_group'],
        [{ group: 'plan', status: 'failure' as const, limit: 5 }, 'tasuki_index_status'],
        [{ group: 'plan', status: 'failure' as const, since: t0, cursor, limit: 5 }, 'tasuki_index_status'],
      ] as const) {
        // The index named is the one expected; the planner may pick the other one of ours (both give
        // the order), but never a collection scan or an in-memory sort.
        const plan = JSON.stringify(await admin.db().collection(collection).find(listFilter(q, new Date())).sort(LIST_SORT).limit(6).explain());
        expect(plan, `${JSON.stringify(q)} (expected ${index})`).toMatch(/"indexName":"tasuki_index_(group|status)"/);
        expect(plan).not.toContain('"stage":"SORT"');
        expect(plan).not.toContain('"stage":"COLLSCAN"');
      }
      const page = await b.index?.list({ group: 'plan', status: 'failure', limit: 5, cursor });
      expect(page?.items.map((s) => s.id)).toEqual(['plan-18', 'plan-16', 'plan-14', 'plan-12', 'plan-10']);
    } finally {
      await b.close();
    }
  });

  it('index: false keeps no index fields; records still work', async () => {
    const b = new MongoBackend({ client: admin, collection, index: false });
    try {
      expect(b.index).toBeUndefined();
      await b.write({ state: makeState('noix', 'sent', { group: 'noix' }), stateTtl: 60, guard: 'absent' });
      const doc = await admin.db().collection<Document>(collection).findOne({ _id: 'noix' } as Document);
      expect(doc).not.toHaveProperty('group');
      await b.records.put('test', 'noix', '1', 5000);
      expect(await b.records.get('test', 'noix')).toBe('1');
      await b.records.remove('test', 'noix');
      await b.delete('noix');
    } finally {
      await b.close();
    }
  });
});

describe('mongo task index on the stand-in collection', () => {
  const shared = standInClient();
  opsContract('mongo (stand-in collection)', () => ({ create: () => new MongoBackend({ client: shared.client, collection: 'ops' }) }));

  it('keeps the index fields in the write itself, removes them with the state, and not at all with index: false', async () => {
    const sim = standInClient();
    const b = new MongoBackend({ client: sim.client, collection: 'ix' });
    const state = makeState('w1', 'running', { group: 'g', name: 'job', updatedAt: 1234 });
    await b.write({ state, stateTtl: 60, guard: 'notFinal' });
    expect(sim.collection('ix').docs.get('w1')).toMatchObject({ group: 'g', name: 'job', updatedAt: 1234, status: 'running' });
    await b.write({ state: { ...state, status: 'success' }, stateTtl: 0, result: '1', resultTtl: 60, guard: 'notSuccess' });
    expect(sim.collection('ix').docs.get('w1')).not.toHaveProperty('group');
    const off = new MongoBackend({ client: sim.client, collection: 'ix', index: false });
    await off.write({ state: makeState('w2', 'sent', { group: 'g' }), stateTtl: 60, guard: 'absent' });
    expect(sim.collection('ix').docs.get('w2')).not.toHaveProperty('group');
    expect(off.index).toBeUndefined();
    expect(() => new MongoBackend({ client: sim.client, index: true as unknown as false })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(indexStage({ state, stateTtl: 5, guard: 'notFinal' }, true)).toEqual({ $set: { group: { $literal: 'g' }, name: { $literal: 'job' }, updatedAt: { $literal: 1234 } } });
  });

  it('a document written before the index fields existed is listed from its next write on', async () => {
    const sim = standInClient();
    const b = new MongoBackend({ client: sim.client, collection: 'up' });
    const old = makeState('old', 'failure', { group: 'up' });
    sim.collection('up').docs.set('old', { _id: 'old', state: JSON.stringify(old), status: 'failure', stateExpiresAt: null, expiresAt: null });
    expect(await b.read('old')).toEqual(old);
    expect((await b.index?.list({ group: 'up', limit: 10 }))?.items).toEqual([]);
    await b.write({ state: { ...old, updatedAt: Date.now() }, stateTtl: 60, guard: 'notSuccess' });
    expect((await b.index?.list({ group: 'up', status: 'failure', limit: 10 }))?.items.map((x) => x.id)).toEqual(['old']);
  });

  it('states the partial filter and a bounded range in every list filter; records keyed by kind and key', () => {
    const now = new Date(0);
    const cursor = Buffer.from('500:abc', 'utf8').toString('base64url');
    expect(listFilter({ group: 'g', status: 'failure', name: 'n', since: 100, until: 900, cursor, limit: 5 }, now)).toEqual({
      $and: [
        { group: 'g' },
        { group: { $exists: true } },
        { status: 'failure' },
        { name: 'n' },
        { $or: [{ updatedAt: { $lt: 500 } }, { updatedAt: 500, _id: { $lt: 'abc' } }] },
        { updatedAt: { $gte: 100, $lt: 900, $lte: 500 } },
        { $or: [{ stateExpiresAt: null }, { stateExpiresAt: { $gt: now } }] },
      ],
    });
    expect(recordId('a|b', 'c')).not.toBe(recordId('a', 'b|c'));
  });
});

/**
 * The journal contract on the MongoDB backend: against a real server when MONGO_URL is set, and
 * always against a small in-process stand-in of the collection operations the journal uses
 * (findOne, insertOne with duplicate keys, updateOne matching on the version, deleteOne).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { MongoClient, type Collection } from 'mongodb';
import { journalContract } from './contract/journal.js';
import { MongoBackend } from '../backends/mongo.js';
import { MongoJournal, type JournalDocument } from '../backends/mongo-journal.js';
import type { Backend } from '../src/backend.js';

const MONGO_URL = process.env.MONGO_URL;

describe.skipIf(!MONGO_URL)('mongo journal on a real server', () => {
  const collection = `tasuki_test_${randomUUID().replace(/-/g, '')}`;
  const admin = new MongoClient(MONGO_URL ?? 'mongodb://unused');
  afterAll(async () => {
    await admin.db().collection(collection).drop().catch(() => undefined);
    await admin.db().collection(`${collection}_journal`).drop().catch(() => undefined);
    await admin.close();
  });
  journalContract('mongo', () => ({ create: () => new MongoBackend({ url: MONGO_URL, collection }) }));
});

/** The collection operations the journal uses, in memory, with MongoDB's answers. */
function standIn(): Collection<JournalDocument> {
  const docs = new Map<string, JournalDocument>();
  const later = <T>(v: () => T): Promise<T> => new Promise((r, j) => setImmediate(() => { try { r(v()); } catch (e) { j(e); } }));
  const fake = {
    createIndex: () => later(() => 'ok'),
    findOne: (q: { _id: string }) => later(() => { const d = docs.get(q._id); return d === undefined || (d.expiresAt !== null && d.expiresAt.getTime() <= Date.now() - 1000) ? null : structuredClone(d); }),
    insertOne: (d: JournalDocument) => later(() => {
      if (docs.has(d._id)) throw Object.assign(new Error('E11000 duplicate key'), { code: 11000 });
      docs.set(d._id, structuredClone(d));
      return { acknowledged: true };
    }),
    updateOne: (q: { _id: string; v: number }, u: { $set: Partial<JournalDocument> }) => later(() => {
      const d = docs.get(q._id);
      if (d === undefined || d.v !== q.v) return { matchedCount: 0 };
      Object.assign(d, structuredClone(u.$set));
      return { matchedCount: 1 };
    }),
    deleteOne: (q: { _id: string }) => later(() => ({ deletedCount: docs.delete(q._id) ? 1 : 0 })),
  };
  return fake as unknown as Collection<JournalDocument>;
}

journalContract('mongo (stand-in collection)', () => {
  const collection = standIn();
  return {
    create: (): Backend => {
      const journal = new MongoJournal(collection, async () => undefined, (err) => err as Error);
      const none = async (): Promise<never> => Promise.reject(new Error('not used'));
      return { kind: 'mongo-journal', journal, connect: async () => undefined, close: async () => undefined, write: none, read: none, readMany: none, readResult: none, delete: none };
    },
  };
});

/**
 * The task index and the record store of the MongoDB result backend.
 *
 * The index is three fields of the task document — `group`, `name` and `updatedAt` (the state's
 * epoch ms) beside the `status` copy — set by the same `findOneAndUpdate` as the state, so no second
 * structure is kept in step: an entry moves with each write and leaves with its state (expired
 * states are skipped by every query; the TTL monitor removes the documents). It is bounded by the
 * stored states themselves (no per-group cap). Two partial indexes (documents with a `group` only)
 * serve it: `{group, updatedAt: -1, _id: -1}` for a whole group and `{group, status, updatedAt: -1,
 * _id: -1}` for one status and the counts. A list is one indexed `find` sorted as the index, with
 * keyset pagination (`(updatedAt, _id)` before the cursor).
 *
 * Records live in collection `<collection>_records`, one document per kind and key (`_id`: the JSON
 * of `[kind, key]`), with a TTL index on `expiresAt` (null: never); reads skip expired ones.
 */
import type { Collection, Document } from 'mongodb';
import type { IndexPage, IndexQuery, RecordStore, StateWrite, StoredRecord, TaskIndex } from '../src/backend.js';
import { decodeCursor, encodeCursor } from '../src/ops/index-query.js';
import type { TaskStatus } from '../src/state.js';
import { isDuplicateKeyError, liveState, type TaskDocument } from './mongo-documents.js';

/** Names and keys of the index's two indexes (created at connect, idempotently). */
export const INDEX_SPECS: ReadonlyArray<{ key: Document; name: string }> = [
  { key: { group: 1, updatedAt: -1, _id: -1 }, name: 'tasuki_index_group' },
  { key: { group: 1, status: 1, updatedAt: -1, _id: -1 }, name: 'tasuki_index_status' },
];

/** Partial filter of both indexes; every index query states it, so the planner may use them. */
export const INDEXED: Document = { group: { $exists: true } };

/** Name of the TTL index of the records collection. */
export const RECORDS_TTL_INDEX = 'tasuki_records_ttl';

/**
 * The update stage that keeps a document's index fields: set from the state when it is stored and
 * the index is on, else removed (the document leaves the index).
 */
export function indexStage(w: StateWrite, indexed: boolean): Document {
  if (!indexed || w.stateTtl === 0) return { $unset: ['group', 'name', 'updatedAt'] };
  return { $set: { group: { $literal: w.state.group }, name: { $literal: w.state.name }, updatedAt: { $literal: w.state.updatedAt } } };
}

/** Live-state condition (no state expiry, or one still ahead). */
const liveStateFilter = (now: Date): Document => ({ $or: [{ stateExpiresAt: null }, { stateExpiresAt: { $gt: now } }] });

/** The filter of one {@link IndexQuery} (exported for tests). */
export function listFilter(q: IndexQuery, now: Date): Document {
  const and: Document[] = [{ group: q.group }, INDEXED];
  if (q.status !== undefined) and.push({ status: q.status });
  if (q.name !== undefined) and.push({ name: q.name });
  const at: Document = {};
  if (q.since !== undefined) at.$gte = q.since;
  if (q.until !== undefined) at.$lt = q.until;
  if (q.cursor !== undefined) {
    const after = decodeCursor(q.cursor);
    // The bound keeps the scan within the index range; the $or breaks ties by id.
    at.$lte = after.at;
    and.push({ $or: [{ updatedAt: { $lt: after.at } }, { updatedAt: after.at, _id: { $lt: after.id } }] });
  }
  if (Object.keys(at).length > 0) and.push({ updatedAt: at });
  and.push(liveStateFilter(now));
  return { $and: and };
}

/** The sort of every list: the indexes' order. */
export const LIST_SORT: Document = { updatedAt: -1, _id: -1 };

/** {@link TaskIndex} on the index fields of the task documents. */
export class MongoTaskIndex implements TaskIndex {
  /**
   * @param collection the task collection
   * @param ready connects the backend (creates the indexes)
   * @param wrap turns a driver failure into the backend's typed error
   */
  constructor(
    private readonly collection: Collection<TaskDocument>,
    private readonly ready: () => Promise<void>,
    private readonly wrap: (err: unknown, op: string) => Error,
  ) {}

  /** @inheritdoc One indexed `find` per page. */
  async list(q: IndexQuery): Promise<IndexPage> {
    await this.ready();
    const now = new Date();
    let docs: TaskDocument[];
    try {
      docs = await this.collection
        .find(listFilter(q, now), { projection: { state: 1, stateExpiresAt: 1, updatedAt: 1 } })
        .sort(LIST_SORT)
        .limit(q.limit + 1)
        .toArray();
    } catch (err) {
      throw this.wrap(err, 'index list');
    }
    const page = docs.slice(0, q.limit);
    const items = page.map((d) => liveState(d, now)).filter((s) => s !== null);
    const last = page[page.length - 1] as (TaskDocument & { updatedAt?: number }) | undefined;
    const cursor = docs.length > q.limit && last !== undefined ? encodeCursor({ updatedAt: Number(last.updatedAt), id: last._id }) : null;
    return { items, cursor };
  }

  /** @inheritdoc */
  async groups(): Promise<string[]> {
    await this.ready();
    try {
      const found = await this.collection.distinct('group', { $and: [INDEXED, liveStateFilter(new Date())] });
      return found.filter((g): g is string => typeof g === 'string' && g !== '').sort();
    } catch (err) {
      throw this.wrap(err, 'index groups');
    }
  }

  /** @inheritdoc */
  async statusCounts(group: string): Promise<Partial<Record<TaskStatus, number>>> {
    await this.ready();
    try {
      const rows = await this.collection
        .aggregate<{ _id: TaskStatus; n: number }>([
          { $match: { $and: [{ group }, INDEXED, liveStateFilter(new Date())] } },
          { $group: { _id: '$status', n: { $sum: 1 } } },
        ])
        .toArray();
      const out: Partial<Record<TaskStatus, number>> = {};
      for (const r of rows) out[r._id] = r.n;
      return out;
    } catch (err) {
      throw this.wrap(err, 'index counts');
    }
  }
}

/** A record document. */
export interface RecordDocument {
  /** JSON of `[kind, key]`. */
  _id: string;
  kind: string;
  key: string;
  value: string;
  /** When it ends (TTL index); null: never. */
  expiresAt: Date | null;
}

/** The `_id` of a record. */
export const recordId = (kind: string, key: string): string => JSON.stringify([kind, key]);

/** Live-record condition. */
const liveRecord = (now: Date): Document => ({ $or: [{ expiresAt: null }, { expiresAt: { $gt: now } }] });

/** {@link RecordStore} on the records collection. */
export class MongoRecordStore implements RecordStore {
  private indexed: Promise<void> | undefined;

  /**
   * @param collection the records collection
   * @param ready connects the backend
   * @param wrap turns a driver failure into the backend's typed error
   */
  constructor(
    private readonly collection: Collection<RecordDocument>,
    private readonly ready: () => Promise<void>,
    private readonly wrap: (err: unknown, op: string) => Error,
  ) {}

  /** Connects, and creates the collection's indexes once (idempotent on the server). */
  private async connect(): Promise<void> {
    await this.ready();
    this.indexed ??= (async () => {
      await this.collection.createIndex({ expiresAt: 1 }, { name: RECORDS_TTL_INDEX, expireAfterSeconds: 0 });
      await this.collection.createIndex({ kind: 1 }, { name: 'tasuki_records_kind' });
    })().catch((err: unknown) => {
      this.indexed = undefined;
      throw this.wrap(err, 'connect');
    });
    return this.indexed;
  }

  /** @inheritdoc */
  async put(kind: string, key: string, value: string, ttlMs: number | null): Promise<void> {
    await this.connect();
    const expiresAt = ttlMs === null ? null : new Date(Date.now() + Math.max(1, Math.ceil(ttlMs)));
    const doc = { kind, key, value, expiresAt };
    for (let attempt = 1; ; attempt++) {
      try {
        await this.collection.updateOne({ _id: recordId(kind, key) }, { $set: doc }, { upsert: true });
        return;
      } catch (err) {
        // Two first puts of one key at once: the loser's insert meets the winner's; replace it.
        if (attempt < 3 && isDuplicateKeyError(err)) continue;
        throw this.wrap(err, 'record put');
      }
    }
  }

  /** @inheritdoc */
  async get(kind: string, key: string): Promise<string | null> {
    await this.connect();
    try {
      const doc = await this.collection.findOne({ $and: [{ _id: recordId(kind, key) }, liveRecord(new Date())] }, { projection: { value: 1 } });
      return doc?.value ?? null;
    } catch (err) {
      throw this.wrap(err, 'record get');
    }
  }

  /** @inheritdoc */
  async list(kind: string): Promise<StoredRecord[]> {
    await this.connect();
    try {
      const docs = await this.collection.find({ $and: [{ kind }, liveRecord(new Date())] }, { projection: { key: 1, value: 1 } }).toArray();
      return docs.map((d) => ({ key: d.key, value: d.value }));
    } catch (err) {
      throw this.wrap(err, 'record list');
    }
  }

  /** @inheritdoc */
  async remove(kind: string, key: string): Promise<void> {
    await this.connect();
    try {
      await this.collection.deleteOne({ _id: recordId(kind, key) });
    } catch (err) {
      throw this.wrap(err, 'record remove');
    }
  }

  /**
   * @inheritdoc
   * One upsert whose filter matches only an expired record: a live one (or one kept forever) makes
   * the insert meet its `_id`, a duplicate key error, which reads as "taken".
   */
  async claim(kind: string, key: string, value: string, ttlMs: number): Promise<boolean> {
    await this.connect();
    const now = new Date();
    const doc = { kind, key, value, expiresAt: new Date(now.getTime() + Math.max(1, Math.ceil(ttlMs))) };
    try {
      const res = await this.collection.updateOne({ _id: recordId(kind, key), expiresAt: { $lte: now } }, { $set: doc }, { upsert: true });
      return res.upsertedCount === 1 || res.modifiedCount === 1;
    } catch (err) {
      if (isDuplicateKeyError(err)) return false;
      throw this.wrap(err, 'record claim');
    }
  }
}

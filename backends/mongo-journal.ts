/**
 * Flow journal storage of the MongoDB backend: one document per flow in the collection
 * `<collection>_journal`: `{ _id: flowId, v: version, doc: JSON text of the journal, expiresAt }`.
 * Every change is a compare-and-set on `v` (`insertOne` when absent — a duplicate key means another
 * writer came first — else `updateOne({ _id, v })`), retried on conflict. A TTL index on `expiresAt`
 * removes expired journals; reads treat a journal past `expiresAt` as absent before that.
 */
import type { Collection } from 'mongodb';
import type { TasukiError } from '../src/errors.js';
import { CasJournal, type CasAdapter, type JournalDoc, type Versioned } from './journal-document.js';
import { isDuplicateKeyError } from './mongo-documents.js';

/** A stored journal document. */
export interface JournalDocument {
  /** Flow id. */
  _id: string;
  /** Version, compared and incremented by every write. */
  v: number;
  /** JSON text of the journal document. */
  doc: string;
  /** When the TTL index removes it; null: never. */
  expiresAt: Date | null;
}

/** Name of the TTL index of the journal collection. */
export const JOURNAL_TTL_INDEX = 'tasuki_journal_expiry';

/** MongoDB flow journals. */
export class MongoJournal extends CasJournal<number> {
  /**
   * @param collection the journal collection
   * @param ready resolves once the backend is connected (creates the TTL index on first use)
   * @param wrap turns a driver error into the backend's typed error
   */
  constructor(collection: Collection<JournalDocument>, ready: () => Promise<void>, wrap: (err: unknown, op: string, bytes?: number) => TasukiError | Error) {
    let indexed: Promise<void> | undefined;
    const prepare = async (): Promise<void> => {
      await ready();
      indexed ??= collection.createIndex({ expiresAt: 1 }, { name: JOURNAL_TTL_INDEX, expireAfterSeconds: 0 }).then(
        () => undefined,
        (err: unknown) => {
          indexed = undefined;
          throw err;
        },
      );
      await indexed;
    };
    const adapter: CasAdapter<number> = {
      async load(flowId): Promise<Versioned<number> | null> {
        try {
          await prepare();
          const found = await collection.findOne({ _id: flowId });
          if (found === null) return null;
          const doc = JSON.parse(found.doc) as JournalDoc;
          // Past its expiry but not yet removed by the TTL monitor: empty, replaced by CAS.
          if (doc.x !== undefined && doc.x <= Date.now()) return { doc: { e: {}, s: {} }, version: found.v };
          return { doc, version: found.v };
        } catch (err) {
          throw wrap(err, 'journal read');
        }
      },
      async save(flowId, doc, version): Promise<boolean> {
        const text = JSON.stringify(doc);
        const expiresAt = doc.x === undefined ? null : new Date(doc.x);
        try {
          if (version === null) {
            await collection.insertOne({ _id: flowId, v: 1, doc: text, expiresAt });
            return true;
          }
          const r = await collection.updateOne({ _id: flowId, v: version }, { $set: { v: version + 1, doc: text, expiresAt } });
          return r.matchedCount === 1;
        } catch (err) {
          if (isDuplicateKeyError(err)) return false;
          throw wrap(err, 'journal write', text.length);
        }
      },
      async remove(flowId): Promise<void> {
        try {
          await prepare();
          await collection.deleteOne({ _id: flowId });
        } catch (err) {
          throw wrap(err, 'journal delete');
        }
      },
    };
    super(adapter);
  }
}

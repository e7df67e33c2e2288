/**
 * The MongoDB result backend (official `mongodb` 6 driver).
 *
 * One document per task, keyed by the task id (`_id`); the layout, and how state and result keep
 * separate expiries in one document, is described in `backends/mongo-documents.ts`. A write is one
 * `findOneAndUpdate` whose filter expresses the guard, with `upsert` (so `absent` creates atomically):
 * when the document exists but the guard refuses, the upsert's insert fails with a duplicate key
 * error (11000), which reads as "refused". A TTL index on `expiresAt` (`expireAfterSeconds: 0`) is
 * created at start, idempotently; reads also skip entries whose time has passed, because the TTL
 * monitor runs only once a minute. The task index (`group`, `name`, `updatedAt` fields set by the same
 * write) and the operations layer's records are in `./mongo-index.ts`.
 */
import { MongoClient, type Collection, type MongoClientOptions } from 'mongodb';
import type { Backend, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError, ConnectionError, InvalidOptionError, ValueTooLargeError } from '../src/errors.js';
import type { TaskState } from '../src/state.js';
import { MongoJournal, type JournalDocument } from './mongo-journal.js';
import { INDEX_SPECS, INDEXED, indexStage, MongoRecordStore, MongoTaskIndex, type RecordDocument } from './mongo-index.js';
import {
  MONGO_MAX_VALUE_BYTES,
  TTL_INDEX_NAME,
  buildUpdatePipeline,
  checkExpiry,
  guardAllows,
  guardFilter,
  isDuplicateKeyError,
  liveResult,
  liveState,
  mapMongoError,
  writeBytes,
  writeStoresSomething,
  type TaskDocument,
} from './mongo-documents.js';

/** Options of {@link MongoBackend}. */
export interface MongoBackendOptions {
  /**
   * Connection string, used as given (credentials, `authSource`, `replicaSet`, TLS options… are kept);
   * default `mongodb://127.0.0.1:27017`. Ignored when `client` is given.
   */
  url?: string;
  /** Driver options for the client created from `url`. */
  clientOptions?: MongoClientOptions;
  /** A client of your own; the backend uses it and never closes it. */
  client?: MongoClient;
  /** Database name; default: the one in the connection string (else the driver's default, `test`). */
  dbName?: string;
  /** Collection name (default `tasuki_tasks`). */
  collection?: string;
  /**
   * The task index (`client.ops.list`, counts by status, the watchdog): fields of the task document
   * set by the same write as the state, served by two partial indexes (see `./mongo-index.ts`).
   * Default on; `false` keeps no index fields and leaves `index` undefined.
   */
  index?: false;
}

/** How often a write re-evaluates after losing a race (a duplicate key on a guard that now passes). */
const MAX_WRITE_ATTEMPTS = 20;

/** Result backend on MongoDB. */
export class MongoBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'mongo';
  /** Name of the collection in use. */
  readonly collectionName: string;
  private readonly client: MongoClient;
  private readonly ownsClient: boolean;
  private readonly collection: Collection<TaskDocument>;
  /** Flow journals (collection `<collection>_journal`, one versioned document per flow; see `./mongo-journal.ts`). */
  readonly journal: MongoJournal;
  /** The task index (undefined with `index: false`). */
  readonly index: MongoTaskIndex | undefined;
  /** Shared records of the operations layer (collection `<collection>_records`). */
  readonly records: MongoRecordStore;
  private closed = false;
  private ready: Promise<void> | undefined;

  /** @param options see {@link MongoBackendOptions} */
  constructor(options: MongoBackendOptions = {}) {
    this.collectionName = options.collection ?? 'tasuki_tasks';
    if (this.collectionName.length === 0 || this.collectionName.includes('$')) {
      throw new InvalidOptionError(`invalid mongo collection name ${JSON.stringify(this.collectionName)}`);
    }
    if (options.client) {
      this.client = options.client;
      this.ownsClient = false;
    } else {
      this.client = new MongoClient(options.url ?? 'mongodb://127.0.0.1:27017', options.clientOptions);
      this.ownsClient = true;
    }
    this.collection = this.client.db(options.dbName).collection<TaskDocument>(this.collectionName);
    const journals = this.client.db(options.dbName).collection<JournalDocument>(`${this.collectionName}_journal`);
    this.journal = new MongoJournal(journals, () => this.connect(), (err, op, bytes) => this.wrap(err, op, bytes));
    if (options.index !== undefined && options.index !== false) throw new InvalidOptionError('index must be false or left out');
    const wrap = (err: unknown, op: string): Error => this.wrap(err, op);
    this.index = options.index === false ? undefined : new MongoTaskIndex(this.collection, () => this.connect(), wrap);
    const records = this.client.db(options.dbName).collection<RecordDocument>(`${this.collectionName}_records`);
    this.records = new MongoRecordStore(records, () => this.connect(), wrap);
  }

  /** Connects (when the client is ours) and creates the TTL index if missing. Idempotent. */
  async connect(): Promise<void> {
    this.check();
    this.ready ??= (async () => {
      // connect() is idempotent in driver 6, also on a client the user connected already.
      await this.client.connect();
      await this.collection.createIndex({ expiresAt: 1 }, { name: TTL_INDEX_NAME, expireAfterSeconds: 0 });
      if (this.index !== undefined) {
        for (const spec of INDEX_SPECS) await this.collection.createIndex(spec.key, { name: spec.name, partialFilterExpression: INDEXED });
      }
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw this.closed ? new ClosedError('mongo backend') : mapMongoError(err, 'connect');
    });
    return this.ready;
  }

  /** Closes the client when the backend created it; a client passed in `options.client` stays open. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) await this.client.close().catch(() => undefined);
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    guardAllows(w.guard, null); // validates the guard name
    checkExpiry(w.stateTtl, 'stateTtl');
    if (w.result !== undefined) {
      if (w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
      checkExpiry(w.resultTtl, 'resultTtl');
    }
    const bytes = writeBytes(w);
    if (bytes > MONGO_MAX_VALUE_BYTES) throw new ValueTooLargeError(bytes, MONGO_MAX_VALUE_BYTES);
    await this.connect();
    const id = w.state.id;
    const upsert = writeStoresSomething(w);
    try {
      for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
        const now = new Date();
        let before: TaskDocument | null;
        let duplicate = false;
        try {
          const pipeline = [...buildUpdatePipeline(w, now), indexStage(w, this.index !== undefined)];
          before = await this.collection.findOneAndUpdate(guardFilter(id, w.guard, now), pipeline, {
            upsert,
            returnDocument: 'before',
          });
        } catch (err) {
          if (!isDuplicateKeyError(err)) throw err;
          before = null;
          duplicate = true;
        }
        if (before !== null) return { written: true, previous: liveState(before, now) };
        if (upsert && !duplicate) return { written: true, previous: null }; // inserted a new document
        // The filter matched nothing: either the guard refused, or (without upsert) there is no document.
        const current = await this.collection.findOne({ _id: id });
        if (current === null && !upsert) return { written: true, previous: null };
        const previous = liveState(current, new Date());
        if (!guardAllows(w.guard, previous)) return { written: false, previous };
        // The document changed between the two requests (or a concurrent insert won): evaluate again.
      }
    } catch (err) {
      throw this.wrap(err, 'write', bytes);
    }
    throw new ConnectionError(`mongo backend: write of task ${id} gave up after ${MAX_WRITE_ATTEMPTS} contended attempts`);
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    await this.connect();
    let doc: TaskDocument | null;
    try {
      doc = await this.collection.findOne({ _id: id }, { projection: { state: 1, stateExpiresAt: 1 } });
    } catch (err) {
      throw this.wrap(err, 'read');
    }
    return liveState(doc, new Date());
  }

  /** Reads many states with one `find({_id: {$in: ids}})`. */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    if (ids.length === 0) return [];
    await this.connect();
    let docs: TaskDocument[];
    try {
      docs = await this.collection.find({ _id: { $in: [...new Set(ids)] } }, { projection: { state: 1, stateExpiresAt: 1 } }).toArray();
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    const now = new Date();
    const byId = new Map(docs.map((d) => [d._id, d]));
    return ids.map((id) => liveState(byId.get(id), now));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    await this.connect();
    const now = new Date();
    try {
      const doc = await this.collection.findOne({ _id: id }, { projection: { result: 1, resultExpiresAt: 1 } });
      const result = liveResult(doc, now);
      if (result === null && typeof doc?.result === 'string') {
        // An expired result in a document that lives on (e.g. its state is kept forever): drop it now.
        await this.collection.updateOne({ _id: id, resultExpiresAt: { $lte: now } }, { $unset: { result: '', resultExpiresAt: '' } });
      }
      return result;
    } catch (err) {
      throw this.wrap(err, 'readResult');
    }
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    await this.connect();
    try {
      await this.collection.deleteOne({ _id: id });
    } catch (err) {
      throw this.wrap(err, 'delete');
    }
  }

  private check(): void {
    if (this.closed) throw new ClosedError('mongo backend');
  }

  private wrap(err: unknown, op: string, bytes?: number): Error {
    if (this.closed) return new ClosedError('mongo backend');
    return mapMongoError(err, op, bytes);
  }
}

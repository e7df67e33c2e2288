/**
 * Pure helpers of the MongoDB result backend: the document layout, the filter of each write guard,
 * the update pipeline, expiry computation and error mapping. No I/O here, so all of it is unit-tested
 * without a server.
 *
 * ## Document layout (one document per task, in collection `tasuki_tasks` by default)
 * ```
 * { _id: "<task id>",
 *   state: "<TaskState JSON>",  status: "running",  stateExpiresAt: Date | null,   // null: forever
 *   result: "<superjson JSON>",                    resultExpiresAt: Date | null,
 *   expiresAt: Date | null,                        // TTL index field
 *   group: "g", name: "t", updatedAt: 1700000000000 } // task index fields (./mongo-index.ts)
 * ```
 * State and result live in ONE document so that a write (guard + state + result) is one atomic
 * `findOneAndUpdate`; with two documents a refused or half-done write could leave a result behind
 * without transactions (which need a replica set). Their separate expiries are honoured like this:
 * - `stateExpiresAt` / `resultExpiresAt` say when each entry ends; reads ignore an entry whose time
 *   has passed (MongoDB's TTL monitor only runs every 60 s), and guards treat an expired state as absent;
 * - `expiresAt`, the only TTL-indexed field (`expireAfterSeconds: 0`), is the latest end of the entries
 *   present (null, i.e. never, when one of them is kept forever), so the TTL monitor removes the
 *   document once nothing in it is alive. It is recomputed on the server by the update pipeline from
 *   the fields as they are after the write, so a state-only write keeps a longer-lived result's time.
 * - An entry with expiry 0 is removed from the document (`$unset`). An expired result inside a
 *   document that lives on (state kept forever) is removed when `readResult` meets it.
 * The state is stored as JSON text (not a sub-document) so that it reads back exactly as written
 * (BSON would turn `undefined` into `null`); `status` is copied beside it for the guard filters.
 * Times come from the writer's clock.
 */
import type { Document } from 'mongodb';
import type { Expiry, StateWrite, WriteGuard } from '../src/backend.js';
import { ConnectionError, DecodeError, InvalidOptionError, TasukiError, TopologyMismatchError, ValueTooLargeError } from '../src/errors.js';
import { TASK_STATUSES, completeTaskState, encodeTaskState, isFinalStatus, type TaskState, type TaskStatus } from '../src/state.js';

/** A task document as stored. */
export interface TaskDocument {
  /** Task id. */
  _id: string;
  /** JSON text of the task state; absent when no state is stored. */
  state?: string | null;
  /** Copy of the state's status, for guard filters. */
  status?: string | null;
  /** When the state ends; null: never. */
  stateExpiresAt?: Date | null;
  /** The result (superjson JSON text); absent when none is stored. */
  result?: string | null;
  /** When the result ends; null: never. */
  resultExpiresAt?: Date | null;
  /** When the whole document may be removed (TTL index); null: never. */
  expiresAt?: Date | null;
  /** Task index fields (see `./mongo-index.ts`): the state's group, absent when not indexed. */
  group?: string;
  /** The state's task name (index field). */
  name?: string;
  /** The state's `updatedAt`, epoch ms (index field). */
  updatedAt?: number;
}

/** Name of the TTL index on `expiresAt`. */
export const TTL_INDEX_NAME = 'tasuki_expiresAt_ttl';
/** MongoDB's largest document (16 MiB). */
export const MONGO_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;
/** Largest state + result accepted (room left for field names and dates). */
export const MONGO_MAX_VALUE_BYTES = MONGO_MAX_DOCUMENT_BYTES - 16 * 1024;

const NOT_FINAL: readonly TaskStatus[] = TASK_STATUSES.filter((s) => !isFinalStatus(s));
const NOT_SUCCESS: readonly TaskStatus[] = TASK_STATUSES.filter((s) => s !== 'success');

/** Checks an expiry: -1, 0 or a positive number of seconds; throws {@link InvalidOptionError}. */
export function checkExpiry(ttl: unknown, what: string): Expiry {
  if (ttl === -1 || ttl === 0) return ttl;
  if (typeof ttl === 'number' && ttl > 0 && !Number.isNaN(ttl)) return ttl;
  throw new InvalidOptionError(`${what} must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${String(ttl)}`);
}

/** When an entry with expiry `ttl` written at `now` ends: null for forever (-1, or beyond year 275760). */
export function expiryDate(ttl: Expiry, now: Date): Date | null {
  if (ttl === -1 || ttl === Infinity) return null;
  if (ttl === 0) throw new InvalidOptionError('an expiry of 0 means "not stored" and has no date');
  const ms = now.getTime() + checkExpiry(ttl, 'expiry') * 1000;
  return ms > 8.64e15 ? null : new Date(ms);
}

/** True when an entry with this end time is alive at `now` (null/absent: forever). */
export function isAlive(expiresAt: Date | null | undefined, now: Date): boolean {
  return expiresAt === null || expiresAt === undefined || expiresAt.getTime() > now.getTime();
}

/** The state stored in a document, or null when there is none or it has expired. Throws {@link DecodeError}. */
export function liveState(doc: TaskDocument | null | undefined, now: Date): TaskState | null {
  if (!doc || doc.state === null || doc.state === undefined || !isAlive(doc.stateExpiresAt, now)) return null;
  let value: unknown;
  try {
    value = JSON.parse(doc.state);
  } catch (err) {
    throw new DecodeError(`stored state of task ${doc._id} is not JSON`, err);
  }
  if (typeof value !== 'object' || value === null || typeof (value as { status?: unknown }).status !== 'string' || typeof (value as { id?: unknown }).id !== 'string') {
    throw new DecodeError(`stored state of task ${doc._id} is not a task state`);
  }
  return completeTaskState(value as TaskState);
}

/** The result stored in a document, or null when there is none or it has expired. */
export function liveResult(doc: TaskDocument | null | undefined, now: Date): string | null {
  if (!doc || typeof doc.result !== 'string' || !isAlive(doc.resultExpiresAt, now)) return null;
  return doc.result;
}

/** True when a write with `guard` may replace `stored` (a success refuses every guard). */
export function guardAllows(guard: WriteGuard, stored: TaskState | null): boolean {
  if (stored === null) return true;
  switch (guard) {
    case 'absent':
      return false;
    case 'notFinal':
      return NOT_FINAL.includes(stored.status);
    case 'notSuccess':
      return NOT_SUCCESS.includes(stored.status);
    default:
      throw new InvalidOptionError(`unknown write guard ${JSON.stringify(guard as string)}`);
  }
}

/**
 * The filter of a guarded write: the task's document, when it holds no live state or one the guard
 * accepts. A status outside the known ones (a corrupt document) matches no guard.
 */
export function guardFilter(id: string, guard: WriteGuard, now: Date): Document {
  const noLiveState: Document[] = [{ state: null }, { stateExpiresAt: { $lte: now } }];
  switch (guard) {
    case 'absent':
      return { _id: id, $or: noLiveState };
    case 'notFinal':
      return { _id: id, $or: [...noLiveState, { status: { $in: NOT_FINAL } }] };
    case 'notSuccess':
      return { _id: id, $or: [...noLiveState, { status: { $in: NOT_SUCCESS } }] };
    default:
      throw new InvalidOptionError(`unknown write guard ${JSON.stringify(guard as string)}`);
  }
}

/** True when the write leaves something in the document (else it must not create one). */
export function writeStoresSomething(w: StateWrite): boolean {
  return w.stateTtl !== 0 || (w.result !== undefined && w.resultTtl !== 0);
}

/**
 * The update pipeline of a write: sets (or unsets, for expiry 0) state and result, then recomputes
 * `expiresAt` from the document as it now is. Values go through `$literal` so that text starting
 * with `$` is never read as a field path.
 */
export function buildUpdatePipeline(w: StateWrite, now: Date): Document[] {
  const set: Document = {};
  const unset: string[] = [];
  if (w.stateTtl === 0) {
    unset.push('state', 'status', 'stateExpiresAt');
  } else {
    set.state = { $literal: encodeTaskState(w.state) };
    set.status = { $literal: w.state.status };
    set.stateExpiresAt = { $literal: expiryDate(w.stateTtl, now) };
  }
  if (w.result !== undefined) {
    if (w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
    if (w.resultTtl === 0) {
      unset.push('result', 'resultExpiresAt');
    } else {
      set.result = { $literal: w.result };
      set.resultExpiresAt = { $literal: expiryDate(w.resultTtl, now) };
    }
  }
  const pipeline: Document[] = [];
  if (Object.keys(set).length > 0) pipeline.push({ $set: set });
  if (unset.length > 0) pipeline.push({ $unset: unset });
  pipeline.push({ $set: { expiresAt: expiresAtExpression(now) } });
  return pipeline;
}

/**
 * Aggregation expression of the document's end: null (never) when a present entry is kept forever,
 * else the latest end among present entries, and `now` when nothing is present.
 */
export function expiresAtExpression(now: Date): Document {
  const present = (v: string): Document => ({ $ne: [v, null] });
  return {
    $let: {
      vars: {
        s: { $ifNull: ['$state', null] },
        se: { $ifNull: ['$stateExpiresAt', null] },
        r: { $ifNull: ['$result', null] },
        re: { $ifNull: ['$resultExpiresAt', null] },
      },
      in: {
        $cond: [
          {
            $or: [
              { $and: [present('$$s'), { $eq: ['$$se', null] }] },
              { $and: [present('$$r'), { $eq: ['$$re', null] }] },
            ],
          },
          null,
          {
            $max: [
              { $cond: [present('$$s'), '$$se', null] },
              { $cond: [present('$$r'), '$$re', null] },
              { $literal: now },
            ],
          },
        ],
      },
    },
  };
}

/** Size in bytes of what a write stores (state JSON + result). */
export function writeBytes(w: StateWrite): number {
  return Buffer.byteLength(encodeTaskState(w.state)) + (w.result === undefined ? 0 : Buffer.byteLength(w.result));
}

/** True for MongoDB's duplicate key error (E11000), which an upsert meets when its guard refused. */
export function isDuplicateKeyError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 11000;
}

const CONNECTION_ERRORS = new Set([
  'MongoNetworkError',
  'MongoNetworkTimeoutError',
  'MongoServerSelectionError',
  'MongoNotConnectedError',
  'MongoTopologyClosedError',
  'MongoPoolClosedError',
  'MongoServerClosedError',
]);
/** BSONObjectTooLarge, "resulting document after update is larger than 16 MiB" (17419, 17420). */
const TOO_LARGE_CODES = new Set([10334, 17419, 17420]);
/** IndexOptionsConflict, IndexKeySpecsConflict. */
const INDEX_CONFLICT_CODES = new Set([85, 86]);

/** Maps a driver error to a tasuki error (`bytes`: size of the value being written, if any). */
export function mapMongoError(err: unknown, op: string, bytes?: number): TasukiError {
  if (err instanceof TasukiError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as { name?: unknown; code?: unknown; codeName?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  const code = typeof e.code === 'number' ? e.code : undefined;
  if ((code !== undefined && TOO_LARGE_CODES.has(code)) || e.codeName === 'BSONObjectTooLarge' || /too large|larger than (the )?max/i.test(message)) {
    return new ValueTooLargeError(bytes ?? 0, MONGO_MAX_VALUE_BYTES);
  }
  if (code !== undefined && INDEX_CONFLICT_CODES.has(code)) {
    return new TopologyMismatchError(
      `mongo backend: an index on expiresAt exists with other options than tasuki's TTL index (${TTL_INDEX_NAME}, expireAfterSeconds 0): ${message}`,
    );
  }
  const kind = typeof e.name === 'string' && CONNECTION_ERRORS.has(e.name) ? 'connection lost' : 'failed';
  return new ConnectionError(`mongo backend: ${op} ${kind}: ${message}`, err);
}

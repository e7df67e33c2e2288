/**
 * Flow journal storage of the Memcache backend: one item per flow, `P:ID:j` (the key of the task,
 * hashed as its state key is), holding the whole journal as JSON; every change is a read with the
 * item's CAS value and a CAS-guarded write (`add` when absent), retried on conflict. An item holds
 * at most `maxValueBytes` (memcached's item size): a journal that outgrows it fails the step whose
 * write did not fit with `ERR_VALUE_TOO_LARGE`.
 */
import { ValueTooLargeError } from '../src/errors.js';
import { CasJournal, type CasAdapter, type JournalDoc, type Versioned } from './journal-document.js';

/** The CAS primitives of the Memcache backend that the journal uses. */
export interface MemcacheCasOps {
  /** The item's key of a flow. */
  key(flowId: string): string;
  /** GET with the CAS value; null when absent. */
  gets(key: string): Promise<{ value: Buffer; cas: Buffer } | null>;
  /** `add` (cas null) or CAS-guarded `set` with a memcached exptime; false on conflict. */
  store(key: string, value: Buffer, exptime: number, cas: Buffer | null): Promise<boolean>;
  /** DELETE (absent is fine). */
  del(key: string): Promise<void>;
  /** memcached exptime for an expiry in seconds. */
  exptime(ttlSeconds: number): number;
  /** Largest item in bytes. */
  maxValueBytes: number;
}

/** Memcache flow journals. */
export class MemcacheJournal extends CasJournal<Buffer> {
  /** @param ops the backend's CAS primitives */
  constructor(ops: MemcacheCasOps) {
    const adapter: CasAdapter<Buffer> = {
      async load(flowId): Promise<Versioned<Buffer> | null> {
        const item = await ops.gets(ops.key(flowId));
        if (item === null) return null;
        const doc = JSON.parse(item.value.toString('utf8')) as JournalDoc;
        // Expired by its own clock, still held by memcached (whole seconds): empty, replaced by CAS.
        if (doc.x !== undefined && doc.x <= Date.now()) return { doc: { e: {}, s: {} }, version: item.cas };
        return { doc, version: item.cas };
      },
      async save(flowId, doc, version): Promise<boolean> {
        const value = Buffer.from(JSON.stringify(doc), 'utf8');
        if (value.length > ops.maxValueBytes) throw new ValueTooLargeError(value.length, ops.maxValueBytes);
        const exptime = doc.x === undefined ? 0 : ops.exptime(Math.max(1, Math.ceil((doc.x - Date.now()) / 1000)));
        return ops.store(ops.key(flowId), value, exptime, version);
      },
      async remove(flowId): Promise<void> {
        await ops.del(ops.key(flowId));
      },
    };
    super(adapter);
  }
}

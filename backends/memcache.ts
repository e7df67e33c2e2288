/**
 * The Memcache result backend (memjs, memcached binary protocol).
 *
 * Key layout, for a task id `ID` and the prefix `P` (default `tasuki`):
 * - `P:ID:s` — the task state, JSON text of a `TaskState` (flags 0);
 * - `P:ID:r` — the result, superjson JSON text; its flags hold its absolute expiry in Unix seconds
 *   (0: forever), so that a result can be put back with its own expiry (see "writes" below);
 * - `P:ID:l` — a short-lived lock (10 s) held by a write that carries a result, while it writes.
 * Ids that are not printable ASCII without spaces, that start with `#`, or that would make a key
 * longer than memcached's 250 bytes are replaced by `#` + base64url(SHA-256(id)).
 *
 * Expiries: `-1` → exptime 0 (never), `0` → not stored (an existing entry is deleted), `N` → N seconds;
 * memcached reads an exptime above 30 days (2 592 000 s) as an absolute Unix time, so longer expiries
 * are sent as `now + N`.
 *
 * Writes use CAS values over memjs' binary protocol (`./memcache-cas.ts`; keys and expiries in
 * `./memcache-keys.ts`). A write:
 * 0. when it carries a result, takes the task's lock (`add` of `P:ID:l`), so that only one result
 *    writer at a time touches the result key (state-only writes do not lock: they never touch it);
 * 1. reads the state with its CAS value and evaluates the guard (refused: nothing is touched);
 * 2. when a result is given, replaces the result (remembering the item it replaced) — the result goes
 *    first, so a reader never sees a success without its result;
 * 3. writes the state: `add` when none was stored (this is what makes `absent` atomic), else a set
 *    with the CAS value read in 1 (a delete with that CAS value when `stateTtl` is 0).
 * If step 3 loses a race (a state-only writer got in between), the result written in step 2 is put
 * back as it was (CAS-guarded) and the write starts over from step 1, so a refused write leaves no
 * result behind. Between steps 2 and 3 a reader may see the new result beside the old, not yet final,
 * state: harmless, since a result is read once the state says success. The lock expires by itself if
 * its holder dies; the CAS on the state keeps states correct even then. Memcached has no multi-key
 * transaction; this is the strongest ordering it allows.
 */
import { randomUUID } from 'node:crypto';
import { MemcacheJournal } from './memcache-journal.js';
import { CONFLICT, MemcacheCas, OP_ADD, OP_DELETE, OP_SET, STATUS_NOT_FOUND, STATUS_OK, type Item } from './memcache-cas.js';
import { absoluteExpiry, checkExpiry, memcacheKeys, memcachedExptime } from './memcache-keys.js';
import type { Backend, StateWrite, WriteGuard, WriteOutcome } from '../src/backend.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError, ValueTooLargeError } from '../src/errors.js';
import { encodeTaskState, isFinalStatus, parseTaskState, type TaskState } from '../src/state.js';

export { MEMCACHED_MAX_RELATIVE_EXPIRY, absoluteExpiry, memcacheKeys, memcachedExptime } from './memcache-keys.js';

/** Options of {@link MemcacheBackend}. */
export interface MemcacheBackendOptions {
  /** Servers, `host:port,host:port` (default `127.0.0.1:11211`). Keys are spread over them by hash. */
  servers?: string;
  /** SASL user name (memcached started with `-S`). */
  username?: string;
  /** SASL password. */
  password?: string;
  /** Prefix of every key (default `tasuki`). */
  prefix?: string;
  /**
   * Largest value stored, in bytes (default 1 MiB − 1 KiB: memcached's default item size limit `-I 1m`
   * minus room for the key and item header). Larger values are refused with `ValueTooLargeError`
   * before anything is written. Raise it when memcached runs with a larger `-I`.
   */
  maxValueBytes?: number;
  /** Seconds to wait for a server's answer (memjs `timeout`, default 1); connecting may take twice that. */
  timeout?: number;
}

/** Default {@link MemcacheBackendOptions.maxValueBytes}. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 1024;

const MAX_WRITE_ATTEMPTS = 100;
/** Lifetime of a task's write lock, in seconds (a crashed holder blocks result writes this long at most). */
const LOCK_TTL_SECONDS = 10;
/** How long a result write waits for the task's lock before it gives up. */
const LOCK_WAIT_MS = (LOCK_TTL_SECONDS + 5) * 1000;

/** True when a write with `guard` may replace a stored state of status `stored` (a success refuses every guard). */
export function guardAllows(guard: WriteGuard, stored: TaskState | null): boolean {
  if (stored === null) return true;
  if (stored.status === 'success') return false;
  switch (guard) {
    case 'absent':
      return false;
    case 'notFinal':
      return !isFinalStatus(stored.status);
    case 'notSuccess':
      return true;
    default:
      throw new InvalidOptionError(`unknown write guard ${JSON.stringify(guard as string)}`);
  }
}

/** What step 2 of a write did to the result key, to put it back if step 3 loses its race. */
interface ResultChange {
  /** CAS value of the item we stored; null when we deleted the result. */
  ourCas: Buffer | null;
  /** The item replaced (null: there was none). */
  before: Item | null;
}

/** Result backend on memcached. */
export class MemcacheBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'memcache';
  /** Key prefix in use. */
  readonly prefix: string;
  /** Largest value stored, in bytes. */
  readonly maxValueBytes: number;
  /** Flow journals (`P:ID:j`, one CAS-updated item per flow; see `./memcache-journal.ts`). */
  readonly journal: MemcacheJournal;
  /** The binary-protocol requests (CAS-guarded writes) over memjs. */
  private readonly wire: MemcacheCas;
  private closed = false;
  private connected: Promise<void> | undefined;

  /** @param options see {@link MemcacheBackendOptions} */
  constructor(options: MemcacheBackendOptions = {}) {
    this.prefix = options.prefix ?? 'tasuki';
    if (!/^[\x21-\x7e]{1,100}$/.test(this.prefix)) {
      throw new InvalidOptionError(`memcache backend prefix must be 1 to 100 printable ASCII characters without spaces, got ${JSON.stringify(this.prefix)}`);
    }
    this.maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
    if (!(Number.isInteger(this.maxValueBytes) && this.maxValueBytes > 0)) {
      throw new InvalidOptionError(`maxValueBytes must be a positive integer, got ${String(options.maxValueBytes)}`);
    }
    this.wire = new MemcacheCas({
      servers: options.servers ?? '127.0.0.1:11211',
      timeout: options.timeout ?? 1,
      ...(options.username !== undefined ? { username: options.username } : {}),
      ...(options.password !== undefined ? { password: options.password } : {}),
      maxValueBytes: this.maxValueBytes,
    });
    const guarded = <T>(op: string, work: () => Promise<T>): Promise<T> => (this.check(), work().catch((err: unknown) => Promise.reject(this.wrap(err, op))));
    this.journal = new MemcacheJournal({
      key: (flowId) => memcacheKeys(this.prefix, flowId).state.replace(/:s$/, ':j'),
      gets: (key) => guarded('journal read', () => this.wire.gets(key)),
      store: (key, value, exptime, cas) => guarded('journal write', async () => (await this.wire.store(cas === null ? OP_ADD : OP_SET, key, value, exptime, 0, cas)) !== CONFLICT),
      del: (key) => guarded('journal delete', async () => void (await this.wire.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), null, 1))),
      exptime: (ttl) => memcachedExptime(ttl),
      maxValueBytes: this.maxValueBytes,
    });
  }

  /** Checks that every server answers (a VERSION request). Idempotent. */
  async connect(): Promise<void> {
    this.check();
    this.connected ??= this.wire
      .ping()
      .catch((err: unknown) => {
        this.connected = undefined;
        throw this.wrap(err, 'connect');
      });
    return this.connected;
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wire.close();
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    guardAllows(w.guard, null); // validates the guard name
    const stateTtl = checkExpiry(w.stateTtl, 'stateTtl');
    const hasResult = w.result !== undefined;
    if (hasResult && w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
    const resultTtl = hasResult ? checkExpiry(w.resultTtl, 'resultTtl') : 0;
    const stateValue = Buffer.from(encodeTaskState(w.state), 'utf8');
    const resultValue = hasResult ? Buffer.from(w.result as string, 'utf8') : null;
    for (const v of [stateValue, resultValue]) {
      if (v !== null && v.length > this.maxValueBytes) throw new ValueTooLargeError(v.length, this.maxValueBytes);
    }
    const keys = memcacheKeys(this.prefix, w.state.id);
    let lock: Buffer | null = null;
    try {
      if (resultValue !== null) lock = await this.lock(keys.lock);
      for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
        const now = Date.now();
        const current = await this.wire.gets(keys.state);
        const previous = current === null ? null : parseTaskState(current.value.toString('utf8'), keys.state);
        if (!guardAllows(w.guard, previous)) return { written: false, previous };

        let change: ResultChange | null = null;
        if (resultValue !== null) {
          change =
            resultTtl === 0
              ? await this.replaceResult(keys.result, null, 0)
              : await this.replaceResult(keys.result, resultValue, memcachedExptime(resultTtl, now), absoluteExpiry(resultTtl, now));
        }

        let ok: boolean;
        if (stateTtl === 0) {
          ok = current === null ? true : await this.wire.casDelete(keys.state, current.cas);
        } else {
          const exptime = memcachedExptime(stateTtl, now);
          ok = current === null ? await this.wire.store(OP_ADD, keys.state, stateValue, exptime, 0) !== CONFLICT : await this.wire.store(OP_SET, keys.state, stateValue, exptime, 0, current.cas) !== CONFLICT;
        }
        if (ok) return { written: true, previous };
        if (change !== null) await this.undoResult(keys.result, change);
      }
    } catch (err) {
      throw this.wrap(err, 'write', Math.max(stateValue.length, resultValue?.length ?? 0));
    } finally {
      // If our lock expired meanwhile, the CAS value no longer matches and another holder's lock stays.
      if (lock !== null && !this.closed) await this.wire.casDelete(keys.lock, lock).catch(() => undefined);
    }
    throw new ConnectionError(`memcache backend: write of task ${w.state.id} gave up after ${MAX_WRITE_ATTEMPTS} contended attempts`);
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const key = memcacheKeys(this.prefix, id).state;
    let item: Item | null;
    try {
      item = await this.wire.gets(key);
    } catch (err) {
      throw this.wrap(err, 'read');
    }
    return item === null ? null : parseTaskState(item.value.toString('utf8'), key);
  }

  /** Reads many states; the GET requests are written back to back on each server's connection. */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    const keys = ids.map((id) => memcacheKeys(this.prefix, id).state);
    let items: Array<Item | null>;
    try {
      items = await Promise.all(keys.map((k) => this.wire.gets(k)));
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    return items.map((item, i) => (item === null ? null : parseTaskState(item.value.toString('utf8'), keys[i] as string)));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    try {
      const item = await this.wire.gets(memcacheKeys(this.prefix, id).result);
      return item === null ? null : item.value.toString('utf8');
    } catch (err) {
      throw this.wrap(err, 'readResult');
    }
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    const keys = memcacheKeys(this.prefix, id);
    try {
      // The state goes first: a reader never sees a state whose result was already deleted.
      for (const key of [keys.state, keys.result]) {
        const r = await this.wire.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), null, 1);
        if (r.status !== STATUS_OK && r.status !== STATUS_NOT_FOUND) throw this.wire.statusError(r.status, 'delete', 0);
      }
    } catch (err) {
      throw this.wrap(err, 'delete');
    }
  }

  // --- protocol ---

  /** Takes a task's write lock (`add` with a short expiry); returns the lock item's CAS value. */
  private async lock(key: string): Promise<Buffer> {
    const token = Buffer.from(randomUUID());
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
      const cas = await this.wire.store(OP_ADD, key, token, LOCK_TTL_SECONDS, 0);
      if (cas !== CONFLICT) return cas as Buffer;
      if (Date.now() > deadline) throw new ConnectionError(`memcache backend: lock ${key} still held after ${LOCK_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
    }
  }

  /** Step 2 of a write: stores (or deletes, `value` null) the result, CAS-guarded. */
  private async replaceResult(key: string, value: Buffer | null, exptime: number, expiresAt = 0): Promise<ResultChange> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const before = await this.wire.gets(key);
      if (value === null) {
        if (before === null) return { ourCas: null, before: null };
        if (await this.wire.casDelete(key, before.cas)) return { ourCas: null, before };
        continue;
      }
      const cas = before === null ? await this.wire.store(OP_ADD, key, value, exptime, expiresAt) : await this.wire.store(OP_SET, key, value, exptime, expiresAt, before.cas);
      if (cas !== CONFLICT) return { ourCas: cas as Buffer, before };
    }
    throw new ConnectionError(`memcache backend: result write at ${key} gave up after ${MAX_WRITE_ATTEMPTS} contended attempts`);
  }

  /** Puts back the result replaced by {@link replaceResult}, unless someone wrote it again since. */
  private async undoResult(key: string, change: ResultChange): Promise<void> {
    const { ourCas, before } = change;
    if (ourCas === null) {
      // We deleted it: put it back only if the key is still empty.
      if (before !== null) await this.wire.store(OP_ADD, key, before.value, before.flags, before.flags);
      return;
    }
    if (before === null) {
      await this.wire.casDelete(key, ourCas);
      return;
    }
    // flags hold the old result's absolute expiry (0: forever); memcached reads it as such.
    await this.wire.store(OP_SET, key, before.value, before.flags, before.flags, ourCas);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memcache backend');
  }

  private wrap(err: unknown, op: string, bytes?: number): TasukiError {
    if (err instanceof TasukiError) return err;
    if (this.closed) return new ClosedError('memcache backend');
    const message = err instanceof Error ? err.message : String(err);
    if (bytes !== undefined && /too large/i.test(message)) return new ValueTooLargeError(bytes, this.maxValueBytes);
    return new ConnectionError(`memcache backend: ${op} failed: ${message}`, err);
  }
}

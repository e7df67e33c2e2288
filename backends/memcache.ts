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
 * Writes. memjs 1.3 has no CAS API, but its binary protocol carries a CAS field in every request
 * header: this module builds requests with memjs' own `Utils.makeRequestBuffer`, puts the CAS value in
 * header bytes 16–23 and sends them with `Client#perform`. A write:
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
import { createHash, randomUUID } from 'node:crypto';
import memjs from 'memjs';
import { MemcacheJournal } from './memcache-journal.js';
import type { Client as MemjsClient, Response as MemjsResponse, Server as MemjsServer, ServerOptions as MemjsServerOptions } from 'memjs';
import type { Backend, Expiry, StateWrite, WriteGuard, WriteOutcome } from '../src/backend.js';
import {
  ClosedError,
  ConnectionError,
  InvalidOptionError,
  TasukiError,
  ValueTooLargeError,
} from '../src/errors.js';
import { isFinalStatus, parseTaskState, type TaskState } from '../src/state.js';

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

/** Memcached reads a relative expiry above this (30 days, in seconds) as an absolute Unix time. */
export const MEMCACHED_MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30;
/** Default {@link MemcacheBackendOptions.maxValueBytes}. */
export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024 - 1024;
/** Longest key memcached accepts. */
const MAX_KEY_BYTES = 250;

const OP_GET = 0x00;
const OP_SET = 0x01;
const OP_ADD = 0x02;
const OP_DELETE = 0x04;
const OP_VERSION = 0x0b;

const STATUS_OK = 0x00;
const STATUS_NOT_FOUND = 0x01;
const STATUS_EXISTS = 0x02;
const STATUS_TOO_LARGE = 0x03;
const STATUS_NOT_STORED = 0x05;

const STATUS_NAMES: Record<number, string> = {
  0x04: 'invalid arguments',
  0x05: 'item not stored',
  0x06: 'incr/decr on non-numeric value',
  0x08: 'authentication error',
  0x20: 'authentication error',
  0x81: 'unknown command',
  0x82: 'out of memory',
  0x83: 'not supported',
  0x84: 'internal error',
  0x85: 'busy',
  0x86: 'temporary failure',
};

const MAX_WRITE_ATTEMPTS = 100;
/** Lifetime of a task's write lock, in seconds (a crashed holder blocks result writes this long at most). */
const LOCK_TTL_SECONDS = 10;
/** How long a result write waits for the task's lock before it gives up. */
const LOCK_WAIT_MS = (LOCK_TTL_SECONDS + 5) * 1000;

/**
 * Converts an expiry in seconds (-1 forever, N > 0 seconds) to memcached's exptime: 0 for forever, N
 * itself up to 30 days, and the absolute Unix time `now + N` beyond (memcached would read a larger
 * relative value as an absolute time in 1970). An absolute time beyond 2106 (uint32) means forever.
 * Fractions of a second round up. `0` ("not stored") has no exptime: callers do not store then.
 */
export function memcachedExptime(ttl: Expiry, nowMs: number = Date.now()): number {
  if (ttl === -1 || ttl === Infinity) return 0;
  if (!(typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0)) {
    throw new InvalidOptionError(`expiry must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${String(ttl)}`);
  }
  const seconds = Math.ceil(ttl);
  if (seconds <= MEMCACHED_MAX_RELATIVE_EXPIRY) return seconds;
  const absolute = Math.ceil(nowMs / 1000) + seconds;
  return absolute > 0xffffffff ? 0 : absolute;
}

/** Absolute Unix time (seconds) at which an entry with this expiry ends; 0 for forever. */
export function absoluteExpiry(ttl: Expiry, nowMs: number = Date.now()): number {
  const exptime = memcachedExptime(ttl, nowMs);
  if (exptime === 0 || exptime > MEMCACHED_MAX_RELATIVE_EXPIRY) return exptime;
  return Math.ceil(nowMs / 1000) + exptime;
}

/** Checks an expiry: -1, 0 or a positive number of seconds; throws {@link InvalidOptionError}. */
function checkExpiry(ttl: unknown, what: string): Expiry {
  if (ttl === -1 || ttl === 0) return ttl;
  if (typeof ttl === 'number' && ttl > 0 && !Number.isNaN(ttl)) return ttl;
  throw new InvalidOptionError(`${what} must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${String(ttl)}`);
}

/** The keys of a task: `prefix:id:s` (state), `prefix:id:r` (result), `prefix:id:l` (write lock); see the module comment for hashed ids. */
export function memcacheKeys(prefix: string, id: string): { state: string; result: string; lock: string } {
  const plain = /^[\x21-\x7e]+$/.test(id) && !id.startsWith('#') && Buffer.byteLength(`${prefix}:${id}:s`) <= MAX_KEY_BYTES;
  const part = plain ? id : '#' + createHash('sha256').update(id, 'utf8').digest('base64url');
  return { state: `${prefix}:${part}:s`, result: `${prefix}:${part}:r`, lock: `${prefix}:${part}:l` };
}

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


/** One binary-protocol response. */
interface Reply {
  status: number;
  value: Buffer;
  extras: Buffer;
  cas: Buffer;
}

/** A stored item read with its CAS value. */
interface Item {
  value: Buffer;
  flags: number;
  cas: Buffer;
}

/** What step 2 of a write did to the result key, to put it back if step 3 loses its race. */
interface ResultChange {
  /** CAS value of the item we stored; null when we deleted the result. */
  ourCas: Buffer | null;
  /** The item replaced (null: there was none). */
  before: Item | null;
}

class Conflict {}
const CONFLICT = new Conflict();

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
  private readonly client: MemjsClient;
  private readonly pending = new Set<(err: Error) => void>();
  private readonly guardMs: number;
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
    const timeout = options.timeout ?? 1;
    // A request memjs never answers (its socket closed without an error) is failed after this long.
    this.guardMs = Math.max(2000, timeout * 4000);
    const serverOptions: MemjsServerOptions = { timeout };
    if (options.username !== undefined) serverOptions.username = options.username;
    if (options.password !== undefined) serverOptions.password = options.password;
    this.client = memjs.Client.create(options.servers ?? '127.0.0.1:11211', {
      ...serverOptions,
      // Failures reach callers as typed errors; memjs would also print them on the console.
      logger: { log: () => undefined },
      failover: false,
    });
    const guarded = <T>(op: string, work: () => Promise<T>): Promise<T> => (this.check(), work().catch((err: unknown) => Promise.reject(this.wrap(err, op))));
    this.journal = new MemcacheJournal({
      key: (flowId) => memcacheKeys(this.prefix, flowId).state.replace(/:s$/, ':j'),
      gets: (key) => guarded('journal read', () => this.gets(key)),
      store: (key, value, exptime, cas) => guarded('journal write', async () => (await this.store(cas === null ? OP_ADD : OP_SET, key, value, exptime, 0, cas)) !== CONFLICT),
      del: (key) => guarded('journal delete', async () => void (await this.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), null, 1))),
      exptime: (ttl) => memcachedExptime(ttl),
      maxValueBytes: this.maxValueBytes,
    });
  }

  /** Checks that every server answers (a VERSION request). Idempotent. */
  async connect(): Promise<void> {
    this.check();
    this.connected ??= Promise.all(this.client.servers.map((s) => this.ping(s)))
      .then(() => undefined)
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
    this.client.close();
    const err = new ClosedError('memcache backend');
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    guardAllows(w.guard, null); // validates the guard name
    const stateTtl = checkExpiry(w.stateTtl, 'stateTtl');
    const hasResult = w.result !== undefined;
    if (hasResult && w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
    const resultTtl = hasResult ? checkExpiry(w.resultTtl, 'resultTtl') : 0;
    const stateValue = Buffer.from(JSON.stringify(w.state), 'utf8');
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
        const current = await this.gets(keys.state);
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
          ok = current === null ? true : await this.casDelete(keys.state, current.cas);
        } else {
          const exptime = memcachedExptime(stateTtl, now);
          ok = current === null ? await this.store(OP_ADD, keys.state, stateValue, exptime, 0) !== CONFLICT : await this.store(OP_SET, keys.state, stateValue, exptime, 0, current.cas) !== CONFLICT;
        }
        if (ok) return { written: true, previous };
        if (change !== null) await this.undoResult(keys.result, change);
      }
    } catch (err) {
      throw this.wrap(err, 'write', Math.max(stateValue.length, resultValue?.length ?? 0));
    } finally {
      // If our lock expired meanwhile, the CAS value no longer matches and another holder's lock stays.
      if (lock !== null && !this.closed) await this.casDelete(keys.lock, lock).catch(() => undefined);
    }
    throw new ConnectionError(`memcache backend: write of task ${w.state.id} gave up after ${MAX_WRITE_ATTEMPTS} contended attempts`);
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const key = memcacheKeys(this.prefix, id).state;
    let item: Item | null;
    try {
      item = await this.gets(key);
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
      items = await Promise.all(keys.map((k) => this.gets(k)));
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    return items.map((item, i) => (item === null ? null : parseTaskState(item.value.toString('utf8'), keys[i] as string)));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    try {
      const item = await this.gets(memcacheKeys(this.prefix, id).result);
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
        const r = await this.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), null, 1);
        if (r.status !== STATUS_OK && r.status !== STATUS_NOT_FOUND) throw this.statusError(r.status, 'delete', 0);
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
      const cas = await this.store(OP_ADD, key, token, LOCK_TTL_SECONDS, 0);
      if (cas !== CONFLICT) return cas as Buffer;
      if (Date.now() > deadline) throw new ConnectionError(`memcache backend: lock ${key} still held after ${LOCK_WAIT_MS} ms`);
      await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
    }
  }

  /** Step 2 of a write: stores (or deletes, `value` null) the result, CAS-guarded. */
  private async replaceResult(key: string, value: Buffer | null, exptime: number, expiresAt = 0): Promise<ResultChange> {
    for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
      const before = await this.gets(key);
      if (value === null) {
        if (before === null) return { ourCas: null, before: null };
        if (await this.casDelete(key, before.cas)) return { ourCas: null, before };
        continue;
      }
      const cas = before === null ? await this.store(OP_ADD, key, value, exptime, expiresAt) : await this.store(OP_SET, key, value, exptime, expiresAt, before.cas);
      if (cas !== CONFLICT) return { ourCas: cas as Buffer, before };
    }
    throw new ConnectionError(`memcache backend: result write at ${key} gave up after ${MAX_WRITE_ATTEMPTS} contended attempts`);
  }

  /** Puts back the result replaced by {@link replaceResult}, unless someone wrote it again since. */
  private async undoResult(key: string, change: ResultChange): Promise<void> {
    const { ourCas, before } = change;
    if (ourCas === null) {
      // We deleted it: put it back only if the key is still empty.
      if (before !== null) await this.store(OP_ADD, key, before.value, before.flags, before.flags);
      return;
    }
    if (before === null) {
      await this.casDelete(key, ourCas);
      return;
    }
    // flags hold the old result's absolute expiry (0: forever); memcached reads it as such.
    await this.store(OP_SET, key, before.value, before.flags, before.flags, ourCas);
  }

  /** GET with the CAS value and flags; null when absent. */
  private async gets(key: string): Promise<Item | null> {
    const r = await this.request(OP_GET, key, Buffer.alloc(0), Buffer.alloc(0), null);
    if (r.status === STATUS_NOT_FOUND) return null;
    if (r.status !== STATUS_OK) throw this.statusError(r.status, 'get', 0);
    return { value: r.value, flags: r.extras.length >= 4 ? r.extras.readUInt32BE(0) : 0, cas: r.cas };
  }

  /** SET/ADD (with an optional CAS value); returns the new item's CAS value, or CONFLICT when the CAS/add condition failed. */
  private async store(op: number, key: string, value: Buffer, exptime: number, flags: number, cas: Buffer | null = null): Promise<Buffer | Conflict> {
    const extras = Buffer.alloc(8);
    extras.writeUInt32BE(flags >>> 0, 0);
    extras.writeUInt32BE(exptime >>> 0, 4);
    const r = await this.request(op, key, extras, value, cas, 1);
    if (r.status === STATUS_OK) return r.cas;
    if (r.status === STATUS_EXISTS || r.status === STATUS_NOT_STORED || (r.status === STATUS_NOT_FOUND && cas !== null)) return CONFLICT;
    throw this.statusError(r.status, op === OP_ADD ? 'add' : 'set', value.length);
  }

  /** DELETE guarded by a CAS value; false when the item changed or vanished. */
  private async casDelete(key: string, cas: Buffer): Promise<boolean> {
    const r = await this.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), cas, 1);
    if (r.status === STATUS_OK) return true;
    if (r.status === STATUS_EXISTS || r.status === STATUS_NOT_FOUND) return false;
    throw this.statusError(r.status, 'delete', 0);
  }

  /**
   * Sends one binary-protocol request through memjs (`retries` 1: writes are not re-sent after a
   * failure, which could apply them twice; reads use memjs' default of 2 attempts).
   */
  private request(opcode: number, key: string, extras: Buffer, value: Buffer, cas: Buffer | null, retries?: number): Promise<Reply> {
    this.check();
    this.client.incrSeq();
    const seq = this.client.seq;
    const buf = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, seq);
    if (cas !== null) cas.copy(buf, 16, 0, 8);
    return new Promise<Reply>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, reply?: Reply): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(fail);
        if (err) reject(err);
        else resolve(reply as Reply);
      };
      const fail = (err: Error): void => finish(err);
      const timer = setTimeout(() => finish(new ConnectionError(`memcache backend: no answer within ${this.guardMs} ms`)), this.guardMs);
      this.pending.add(fail);
      this.client.perform(
        key,
        buf,
        seq,
        (err: Error | string | null, response?: MemjsResponse) => {
          if (err) return finish(err instanceof Error ? err : new Error(String(err)));
          if (!response) return finish(new Error('memcached sent no response'));
          finish(null, { status: response.header.status, value: response.val, extras: response.extras, cas: Buffer.from(response.header.cas) });
        },
        retries,
      );
    });
  }

  /** Sends VERSION to one server. */
  private ping(server: MemjsServer): Promise<void> {
    this.client.incrSeq();
    const seq = this.client.seq;
    const buf = memjs.Utils.makeRequestBuffer(OP_VERSION, '', '', '', seq);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from ${server.host}:${server.port}`)), this.guardMs);
      server.onResponse(seq, (response) => {
        clearTimeout(timer);
        if (response.header.status === STATUS_OK) resolve();
        else reject(this.statusError(response.header.status, 'version', 0));
      });
      server.onError(seq, (err: Error | string) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
      server.write(buf);
    });
  }

  private statusError(status: number, op: string, bytes: number): TasukiError {
    if (status === STATUS_TOO_LARGE) return new ValueTooLargeError(bytes, this.maxValueBytes);
    return new ConnectionError(`memcache backend: ${op} answered status 0x${status.toString(16)} (${STATUS_NAMES[status] ?? 'unknown'})`);
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

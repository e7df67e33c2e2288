/**
 * Binary-protocol calls of the Memcache backend (`./memcache.ts`) over memjs. memjs 1.3 has no CAS
 * API, but its binary protocol carries a CAS field in every request header: requests are built with
 * memjs' own `Utils.makeRequestBuffer`, the CAS value goes in header bytes 16–23 and they are sent
 * with `Client#perform`. {@link MemcacheCas} offers GET with the CAS value and flags, SET/ADD and
 * DELETE guarded by a CAS value, raw requests and a VERSION ping, with a guard timer on every request
 * and typed errors for memcached's status codes.
 */
import memjs from 'memjs';
import type { Client as MemjsClient, Response as MemjsResponse, Server as MemjsServer, ServerOptions as MemjsServerOptions } from 'memjs';
import { ClosedError, ConnectionError, TasukiError, ValueTooLargeError } from '../src/errors.js';

/** GET opcode. */
export const OP_GET = 0x00;
/** SET opcode. */
export const OP_SET = 0x01;
/** ADD opcode. */
export const OP_ADD = 0x02;
/** DELETE opcode. */
export const OP_DELETE = 0x04;
const OP_VERSION = 0x0b;

/** Status: no error. */
export const STATUS_OK = 0x00;
/** Status: key not found. */
export const STATUS_NOT_FOUND = 0x01;
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

/** One binary-protocol response. */
export interface Reply {
  /** Status code of the response header. */
  status: number;
  /** Value bytes. */
  value: Buffer;
  /** Extras bytes (the flags, for a GET). */
  extras: Buffer;
  /** CAS value of the item. */
  cas: Buffer;
}

/** A stored item read with its CAS value. */
export interface Item {
  /** Value bytes. */
  value: Buffer;
  /** Flags stored with the item. */
  flags: number;
  /** CAS value of the item. */
  cas: Buffer;
}

/** Type of {@link CONFLICT}. */
export class Conflict {}
/** What {@link MemcacheCas.store} returns when the CAS or `add` condition failed. */
export const CONFLICT = new Conflict();

/** Connection options of {@link MemcacheCas}. */
export interface MemcacheCasOptions {
  /** Servers, `host:port,host:port`. */
  servers: string;
  /** memjs `timeout`, in seconds. */
  timeout: number;
  /** SASL user name. */
  username?: string;
  /** SASL password. */
  password?: string;
  /** Largest value stored, in bytes (for `ValueTooLargeError`). */
  maxValueBytes: number;
}

/** Binary-protocol requests, with CAS values, over one memjs client. */
export class MemcacheCas {
  private readonly client: MemjsClient;
  private readonly pending = new Set<(err: Error) => void>();
  private readonly guardMs: number;
  private readonly maxValueBytes: number;
  private closed = false;

  /** @param options see {@link MemcacheCasOptions} */
  constructor(options: MemcacheCasOptions) {
    const timeout = options.timeout;
    this.maxValueBytes = options.maxValueBytes;
    // A request memjs never answers (its socket closed without an error) is failed after this long.
    this.guardMs = Math.max(2000, timeout * 4000);
    const serverOptions: MemjsServerOptions = { timeout };
    if (options.username !== undefined) serverOptions.username = options.username;
    if (options.password !== undefined) serverOptions.password = options.password;
    this.client = memjs.Client.create(options.servers, {
      ...serverOptions,
      // Failures reach callers as typed errors; memjs would also print them on the console.
      logger: { log: () => undefined },
      failover: false,
    });
  }

  /** Closes the client; requests still waiting fail with {@link ClosedError}. */
  close(): void {
    this.closed = true;
    this.client.close();
    const err = new ClosedError('memcache backend');
    for (const reject of [...this.pending]) reject(err);
    this.pending.clear();
  }

  /** Sends VERSION to every server; rejects when one does not answer OK. */
  ping(): Promise<void> {
    return Promise.all(this.client.servers.map((s) => this.pingServer(s))).then(() => undefined);
  }

  /** GET with the CAS value and flags; null when absent. */
  async gets(key: string): Promise<Item | null> {
    const r = await this.request(OP_GET, key, Buffer.alloc(0), Buffer.alloc(0), null);
    if (r.status === STATUS_NOT_FOUND) return null;
    if (r.status !== STATUS_OK) throw this.statusError(r.status, 'get', 0);
    return { value: r.value, flags: r.extras.length >= 4 ? r.extras.readUInt32BE(0) : 0, cas: r.cas };
  }

  /** SET/ADD (with an optional CAS value); returns the new item's CAS value, or CONFLICT when the CAS/add condition failed. */
  async store(op: number, key: string, value: Buffer, exptime: number, flags: number, cas: Buffer | null = null): Promise<Buffer | Conflict> {
    const extras = Buffer.alloc(8);
    extras.writeUInt32BE(flags >>> 0, 0);
    extras.writeUInt32BE(exptime >>> 0, 4);
    const r = await this.request(op, key, extras, value, cas, 1);
    if (r.status === STATUS_OK) return r.cas;
    if (r.status === STATUS_EXISTS || r.status === STATUS_NOT_STORED || (r.status === STATUS_NOT_FOUND && cas !== null)) return CONFLICT;
    throw this.statusError(r.status, op === OP_ADD ? 'add' : 'set', value.length);
  }

  /** DELETE guarded by a CAS value; false when the item changed or vanished. */
  async casDelete(key: string, cas: Buffer): Promise<boolean> {
    const r = await this.request(OP_DELETE, key, Buffer.alloc(0), Buffer.alloc(0), cas, 1);
    if (r.status === STATUS_OK) return true;
    if (r.status === STATUS_EXISTS || r.status === STATUS_NOT_FOUND) return false;
    throw this.statusError(r.status, 'delete', 0);
  }

  /**
   * Sends one binary-protocol request through memjs (`retries` 1: writes are not re-sent after a
   * failure, which could apply them twice; reads use memjs' default of 2 attempts).
   */
  request(opcode: number, key: string, extras: Buffer, value: Buffer, cas: Buffer | null, retries?: number): Promise<Reply> {
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
  private pingServer(server: MemjsServer): Promise<void> {
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

  /** The typed error of a failed status (`ValueTooLargeError` for too large, else `ConnectionError`). */
  statusError(status: number, op: string, bytes: number): TasukiError {
    if (status === STATUS_TOO_LARGE) return new ValueTooLargeError(bytes, this.maxValueBytes);
    return new ConnectionError(`memcache backend: ${op} answered status 0x${status.toString(16)} (${STATUS_NAMES[status] ?? 'unknown'})`);
  }

  private check(): void {
    if (this.closed) throw new ClosedError('memcache backend');
  }
}

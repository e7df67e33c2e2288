/**
 * The Redis result backend (ioredis 5).
 *
 * Key layout, for a task id `ID` and the prefix `P` (default `tasuki`):
 * - `P:{ID}:state`  — the task state, JSON text of a `TaskState`;
 * - `P:{ID}:result` — the result, superjson JSON text.
 *
 * Both keys of one task share the Cluster hash tag `{ID}`, so they live in one slot and the write
 * script may touch both. Characters `{`, `}` and `%` of an id are percent-encoded in keys (an id
 * such as `}x` would otherwise end the hash tag early or leave it empty); every other id is used as is.
 *
 * A write is one Lua script (`backends/redis-scripts.ts`) that checks the guard against the stored
 * state and sets state and result with their own expiries (`-1` → no expiry, `0` → key deleted,
 * `N` → `EX N`), so it is atomic on the server.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Backend, Expiry, StateWrite, WriteGuard, WriteOutcome } from '../src/backend.js';
import {
  ClosedError,
  ConnectionError,
  InvalidOptionError,
  TasukiError,
  ValueTooLargeError,
} from '../src/errors.js';
import { parseTaskState, type TaskState } from '../src/state.js';
import { WRITE_COMMAND, WRITE_MANY_COMMAND, WRITE_MANY_SCRIPT, WRITE_SCRIPT } from './redis-scripts.js';

/** Options of {@link RedisBackend}. */
export interface RedisBackendOptions {
  /**
   * Redis URL (`redis://user:pass@host:6379/0`, `rediss://…`) or ioredis options.
   * Default `redis://127.0.0.1:6379`. Options given here override tasuki's defaults (lazy connect,
   * auto-pipelining, capped exponential reconnect backoff).
   */
  connection?: string | RedisOptions;
  /** Prefix of every key (default `tasuki`); must not contain `{` or `}`. */
  prefix?: string;
  /** Called with connection errors as they happen (the client reconnects by itself); default: ignored. */
  onError?: (err: Error) => void;
}

/** Largest string Redis stores (512 MiB, the default `proto-max-bulk-len`). */
const REDIS_MAX_STRING = 512 * 1024 * 1024;

/** Reconnect delay in ms for the n-th attempt: 100, 200, 400 … capped at 3 s, with up to 20 % jitter. */
export function redisReconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 10), 3000);
  return Math.round(base * (1 - 0.2 * random()));
}

/** Encodes a task id for use inside a hash tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D`. */
export function encodeIdForKey(id: string): string {
  return id.replace(/[%{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** The two keys of a task: `prefix:{id}:state` and `prefix:{id}:result`. */
export function redisKeys(prefix: string, id: string): { state: string; result: string } {
  const tag = `${prefix}:{${encodeIdForKey(id)}}`;
  return { state: `${tag}:state`, result: `${tag}:result` };
}

/**
 * Checks an expiry (seconds; -1 forever; 0 not stored; N > 0) and returns it as a whole number of
 * seconds (fractions round up, so an entry never lives shorter than asked). Throws
 * {@link InvalidOptionError} for anything else.
 */
export function normalizeExpiry(ttl: Expiry, what: string): number {
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) throw new InvalidOptionError(`${what} must be a number of seconds, got ${String(ttl)}`);
  if (ttl === -1 || ttl === 0) return ttl;
  if (ttl > 0 && Number.isFinite(ttl)) return Math.ceil(ttl);
  if (ttl === Infinity) return -1;
  throw new InvalidOptionError(`${what} must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${ttl}`);
}


const GUARDS: ReadonlySet<WriteGuard> = new Set<WriteGuard>(['absent', 'notFinal', 'notSuccess']);

type WriteCommand = (stateKey: string, resultKey: string, ...args: string[]) => Promise<[number, string?]>;
type WriteManyCommand = (...keysAndArgs: Array<string | number>) => Promise<Array<number | string | null>>;

/** A write waiting for the end of the current tick, to travel with the others in one script call. */
interface PendingWrite {
  keys: { state: string; result: string };
  /** The six script arguments. */
  args: string[];
  resolve(reply: [number, string?]): void;
  reject(err: unknown): void;
}

/** Most writes sent in one script call. */
const MAX_WRITES_PER_CALL = 256;

/** Result backend on Redis (standalone, or any server reachable with one ioredis connection). */
export class RedisBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'redis';
  /** Key prefix in use. */
  readonly prefix: string;
  private readonly client: Redis;
  private readonly onError: ((err: Error) => void) | undefined;
  private closed = false;
  private connecting: Promise<void> | undefined;
  private lastError: Error | undefined;
  /** Writes issued in the current tick; sent together (one script call per {@link MAX_WRITES_PER_CALL}). */
  private pendingWrites: PendingWrite[] = [];

  /** @param options see {@link RedisBackendOptions} */
  constructor(options: RedisBackendOptions = {}) {
    this.prefix = options.prefix ?? 'tasuki';
    if (this.prefix.length === 0 || /[{}]/.test(this.prefix)) {
      throw new InvalidOptionError(`redis backend prefix must be non-empty and contain no "{" or "}", got ${JSON.stringify(this.prefix)}`);
    }
    this.onError = options.onError;
    const defaults: RedisOptions = {
      lazyConnect: true,
      enableAutoPipelining: true,
      retryStrategy: (times: number) => redisReconnectDelay(times),
    };
    const connection = options.connection ?? 'redis://127.0.0.1:6379';
    this.client = typeof connection === 'string' ? new Redis(connection, defaults) : new Redis({ ...defaults, ...connection });
    // ioredis emits 'error' on every failed (re)connection attempt; without a listener Node would
    // treat it as unhandled. Operations report failures through their own rejections.
    this.client.on('error', (err: Error) => {
      this.lastError = err;
      this.onError?.(err);
    });
    this.client.defineCommand(WRITE_COMMAND, { numberOfKeys: 2, lua: WRITE_SCRIPT });
    this.client.defineCommand(WRITE_MANY_COMMAND, { lua: WRITE_MANY_SCRIPT });
  }

  /** @inheritdoc */
  async connect(): Promise<void> {
    this.check();
    if (this.client.status === 'ready') return;
    if (this.client.status === 'wait') {
      this.connecting ??= this.client.connect().finally(() => {
        this.connecting = undefined;
      });
    }
    try {
      if (this.connecting) await this.connecting;
      // Not ready yet (connecting or reconnecting after a failure): a PING waits in the offline
      // queue until the connection is up, or fails after ioredis' per-request retry limit.
      if ((this.client.status as string) !== 'ready') await this.client.ping();
    } catch (err) {
      throw this.wrap(err, 'connect');
    }
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // fall through to a hard disconnect
      }
    }
    this.client.disconnect();
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    this.check();
    if (!GUARDS.has(w.guard)) throw new InvalidOptionError(`unknown write guard ${JSON.stringify(w.guard)}`);
    const stateTtl = normalizeExpiry(w.stateTtl, 'stateTtl');
    const hasResult = w.result !== undefined;
    if (hasResult && w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
    const resultTtl = hasResult ? normalizeExpiry(w.resultTtl as number, 'resultTtl') : 0;
    const stateText = JSON.stringify(w.state);
    for (const text of hasResult ? [stateText, w.result as string] : [stateText]) {
      // A UTF-16 code unit takes at most 3 UTF-8 bytes: short texts need no byte count.
      if (text.length * 3 <= REDIS_MAX_STRING) continue;
      const bytes = Buffer.byteLength(text);
      if (bytes > REDIS_MAX_STRING) throw new ValueTooLargeError(bytes, REDIS_MAX_STRING);
    }
    const keys = redisKeys(this.prefix, w.state.id);
    const args = [stateText, String(stateTtl), w.guard, hasResult ? '1' : '0', hasResult ? (w.result as string) : '', String(resultTtl)];
    let reply: [number, string?];
    try {
      reply = await new Promise<[number, string?]>((resolve, reject) => {
        this.pendingWrites.push({ keys, args, resolve, reject });
        if (this.pendingWrites.length === 1) process.nextTick(this.flushWrites);
      });
    } catch (err) {
      throw this.wrap(err, 'write', Buffer.byteLength(stateText) + (hasResult ? Buffer.byteLength(w.result as string) : 0));
    }
    const [written, prev] = reply;
    if (prev === undefined || prev === null) return { written: written === 1, previous: null };
    if (written !== 1) return { written: false, previous: parseTaskState(prev, keys.state) };
    // The previous state is parsed only when a caller reads it (a worker's successful writes never do).
    let previous: TaskState | undefined;
    return {
      written: true,
      get previous(): TaskState {
        return (previous ??= parseTaskState(prev, keys.state));
      },
    };
  }

  /**
   * Sends the writes of the tick: a lone write with the single-write script, several in one call of
   * the multi-write script (each write keeps its own guard and atomicity; a connection failure
   * rejects every write of the call, as it would have rejected each of them pipelined).
   */
  private readonly flushWrites = (): void => {
    const all = this.pendingWrites;
    this.pendingWrites = [];
    for (let i = 0; i < all.length; i += MAX_WRITES_PER_CALL) {
      const chunk = all.length <= MAX_WRITES_PER_CALL ? all : all.slice(i, i + MAX_WRITES_PER_CALL);
      if (chunk.length === 1) {
        const p = chunk[0] as PendingWrite;
        const run = (this.client as unknown as Record<string, WriteCommand>)[WRITE_COMMAND] as WriteCommand;
        run.call(this.client, p.keys.state, p.keys.result, ...p.args).then(p.resolve, p.reject);
        continue;
      }
      const keysAndArgs: Array<string | number> = [chunk.length * 2];
      for (const p of chunk) keysAndArgs.push(p.keys.state, p.keys.result);
      for (const p of chunk) for (const a of p.args) keysAndArgs.push(a);
      const run = (this.client as unknown as Record<string, WriteManyCommand>)[WRITE_MANY_COMMAND] as WriteManyCommand;
      run.call(this.client, ...keysAndArgs).then(
        (reply) => {
          chunk.forEach((p, j) => {
            const prev = reply[2 * j + 1];
            p.resolve(prev === null || prev === undefined ? [Number(reply[2 * j])] : [Number(reply[2 * j]), String(prev)]);
          });
        },
        (err: unknown) => {
          for (const p of chunk) p.reject(err);
        },
      );
    }
  };

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const key = redisKeys(this.prefix, id).state;
    let text: string | null;
    try {
      text = await this.client.get(key);
    } catch (err) {
      throw this.wrap(err, 'read');
    }
    return text === null ? null : parseTaskState(text, key);
  }

  /**
   * Reads many states. The GETs are issued together and travel in one pipeline (auto-pipelining),
   * which also works in Redis Cluster where one MGET cannot span slots.
   */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    if (ids.length === 0) return [];
    const keys = ids.map((id) => redisKeys(this.prefix, id).state);
    let texts: Array<string | null>;
    try {
      texts = await Promise.all(keys.map((k) => this.client.get(k)));
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    return texts.map((t, i) => (t === null ? null : parseTaskState(t, keys[i] as string)));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    try {
      return await this.client.get(redisKeys(this.prefix, id).result);
    } catch (err) {
      throw this.wrap(err, 'readResult');
    }
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    this.check();
    const keys = redisKeys(this.prefix, id);
    try {
      await this.client.del(keys.state, keys.result);
    } catch (err) {
      throw this.wrap(err, 'delete');
    }
  }

  private check(): void {
    if (this.closed) throw new ClosedError('redis backend');
  }

  private wrap(err: unknown, op: string, bytes?: number): TasukiError {
    if (err instanceof TasukiError) return err;
    if (this.closed) return new ClosedError('redis backend');
    const message = err instanceof Error ? err.message : String(err);
    if (bytes !== undefined && /proto-max-bulk-len|exceeds maximum allowed size|string exceeds/i.test(message)) {
      return new ValueTooLargeError(bytes, REDIS_MAX_STRING);
    }
    const last = this.lastError && this.lastError !== err ? ` (last connection error: ${this.lastError.message})` : '';
    return new ConnectionError(`redis backend: ${op} failed: ${message}${last}`, err);
  }
}

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
 * - `P:{ID}:final` — pub/sub channel: a write that stores a final state publishes its status there
 *   (see {@link RedisBackend.watchFinal}).
 *
 * A write is atomic on the server: the Lua script (`backends/redis-scripts.ts`) checks the guard
 * against the stored state and sets state and result with their own expiries (`-1` → no expiry,
 * `0` → key deleted, `N` → `EX N`). The writes of one event-loop tick travel in one script call; a
 * lone `absent` write of a state alone is the native `SET … NX GET` (same semantics, Redis ≥ 7.0;
 * older servers get the script).
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Backend, Expiry, FinalNotice, StateWrite, WriteOutcome } from '../src/backend.js';
import {
  ClosedError,
  ConnectionError,
  InvalidOptionError,
  TasukiError,
  ValueTooLargeError,
} from '../src/errors.js';
import { isFinalStatus, parseTaskState, type TaskState } from '../src/state.js';
import { WRITE_COMMAND, WRITE_SCRIPT, writeOp } from './redis-scripts.js';

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

/** How long (ms) an UNSUBSCRIBE of a channel no longer watched is deferred, to batch them. */
const UNSUBSCRIBE_DELAY_MS = 100;

/** Largest string Redis stores (512 MiB, the default `proto-max-bulk-len`). */
const REDIS_MAX_STRING = 512 * 1024 * 1024;

/** Throws {@link ValueTooLargeError} when `text` is longer than Redis stores. */
function checkSize(text: string): void {
  // A UTF-16 code unit takes at most 3 UTF-8 bytes: short texts need no byte count.
  if (text.length * 3 <= REDIS_MAX_STRING) return;
  const bytes = Buffer.byteLength(text);
  if (bytes > REDIS_MAX_STRING) throw new ValueTooLargeError(bytes, REDIS_MAX_STRING);
}

/** Reconnect delay in ms for the n-th attempt: 100, 200, 400 … capped at 3 s, with up to 20 % jitter. */
export function redisReconnectDelay(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(100 * 2 ** Math.min(Math.max(attempt - 1, 0), 10), 3000);
  return Math.round(base * (1 - 0.2 * random()));
}

/** Encodes a task id for use inside a hash tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D`. */
export function encodeIdForKey(id: string): string {
  // Most ids (UUIDs) have none of the three: no regex, no new string.
  if (id.indexOf('{') < 0 && id.indexOf('}') < 0 && id.indexOf('%') < 0) return id;
  return id.replace(/[%{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** The hash-tagged start of every key of a task: `prefix:{id}` (followed by `:state`, `:result`, `:final`). */
function taskTag(prefix: string, id: string): string {
  return `${prefix}:{${encodeIdForKey(id)}}`;
}

/** The two keys of a task: `prefix:{id}:state` and `prefix:{id}:result`. */
export function redisKeys(prefix: string, id: string): { state: string; result: string } {
  const tag = taskTag(prefix, id);
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


/** The pub/sub channel on which a task's final writes are announced: `prefix:{id}:final` (same hash tag). */
export function finalChannel(prefix: string, id: string): string {
  return `${taskTag(prefix, id)}:final`;
}

/** The write script as registered on the client: one array `[numkeys, ...keys, ...args]`. */
type WriteCommand = (keysAndArgs: Array<string | number>) => Promise<Array<number | string | null>>;

/** A write waiting for the end of the current tick, to travel with the others in one script call. */
class PendingWrite {
  resolve!: (outcome: WriteOutcome) => void;
  reject!: (err: unknown) => void;
  constructor(
    readonly stateKey: string,
    /** Result key, only when a result is written. */
    readonly resultKey: string | undefined,
    readonly stateText: string,
    /** The script's op argument (see `writeOp`). */
    readonly op: string,
    readonly result: string | undefined,
    /** Result expiry, normalised, as text. */
    readonly resultTtl: string,
    /** State expiry, normalised (seconds, -1), when this write can be one native `SET NX GET`; else 0. */
    readonly nativeTtl: number,
  ) {}

  /** Settles with the script's or the SET's reply: written or not, and the previous state text. */
  settle(written: boolean, prev: string | null | undefined): void {
    if (prev === undefined || prev === null) {
      this.resolve({ written, previous: null });
      return;
    }
    const key = this.stateKey;
    if (!written) {
      let previous: TaskState;
      try {
        previous = parseTaskState(prev, key);
      } catch (err) {
        this.reject(err);
        return;
      }
      this.resolve({ written: false, previous });
      return;
    }
    // The previous state is parsed only when a caller reads it (a worker's successful writes never do).
    let previous: TaskState | undefined;
    this.resolve({
      written: true,
      get previous(): TaskState {
        return (previous ??= parseTaskState(prev, key));
      },
    });
  }

  /** Bytes of the values written (for a size error). */
  bytes(): number {
    return Buffer.byteLength(this.stateText) + (this.result === undefined ? 0 : Buffer.byteLength(this.result));
  }
}

/** Up to this many reads of a tick are sent as plain GETs; more travel in one pipeline. */
const SMALL_READS = 4;

/** Most writes sent in one script call. */
const MAX_WRITES_PER_CALL = 256;

/** A GET waiting for the end of the current tick. */
interface PendingRead {
  key: string;
  resolve(value: string | null): void;
  reject(err: unknown): void;
}

/** The listeners of one watched task (one SUBSCRIBE shared by all of them). */
interface Watch {
  listeners: Set<(notice?: FinalNotice) => void>;
  /** Settles when Redis has acknowledged the SUBSCRIBE. */
  ready: Promise<void>;
}

/**
 * Parses a notice published by the write script (state JSON, then a newline and the result when the
 * write stored one); undefined when the message is not a readable notice (the listener is then
 * called without one and its caller reads the state).
 */
function parseNotice(message: string, channel: string): FinalNotice | undefined {
  if (typeof message !== 'string' || message.charCodeAt(0) !== 123) return undefined;
  const nl = message.indexOf('\n');
  try {
    const state = parseTaskState(nl < 0 ? message : message.slice(0, nl), channel);
    return { state, result: nl < 0 ? null : message.slice(nl + 1) };
  } catch {
    return undefined;
  }
}

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
  /** Reads issued in the current tick, sent together at its end (see {@link readKey}). */
  private pendingReads: PendingRead[] = [];
  /** Writes issued in the current tick, sent together at its end (see {@link flushWrites}). */
  private pendingWrites: PendingWrite[] = [];
  /**
   * Whether a lone `absent` state-only write is the native `SET … NX GET` (Redis ≥ 7.0) instead of a
   * script call. Turned off for good on the first syntax error (older servers).
   */
  private nativeSet = true;
  /** Subscriber connection of {@link watchFinal}, created on first use. */
  private subscriber: Redis | undefined;
  /** Watched channels and their listeners. */
  private readonly watches = new Map<string, Watch>();
  /** Channels no longer watched whose UNSUBSCRIBE is deferred (see {@link unsubscribeLater}). */
  private readonly unsubscribing = new Set<string>();
  private unsubscribeTimer: NodeJS.Timeout | undefined;

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
      // The backend coalesces its reads and writes itself (per tick): auto-pipelining them would only
      // add a setImmediate hop and make them wait for the pipeline in flight.
      autoPipeliningIgnoredCommands: [WRITE_COMMAND, 'set', 'get'],
      retryStrategy: (times: number) => redisReconnectDelay(times),
    };
    const connection = options.connection ?? 'redis://127.0.0.1:6379';
    this.client = typeof connection === 'string' ? new Redis(connection, defaults) : new Redis({ ...defaults, ...connection });
    // ioredis emits 'error' on every failed (re)connection attempt; without a listener Node would
    // treat it as unhandled. Operations report failures through their own rejections.
    this.client.on('error', this.onConnectionError);
    this.client.defineCommand(WRITE_COMMAND, { lua: WRITE_SCRIPT });
  }

  private readonly onConnectionError = (err: Error): void => {
    this.lastError = err;
    this.onError?.(err);
  };

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
    const sub = this.subscriber;
    this.subscriber = undefined;
    this.watches.clear();
    this.unsubscribing.clear();
    clearTimeout(this.unsubscribeTimer);
    this.unsubscribeTimer = undefined;
    sub?.disconnect();
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
  write(w: StateWrite): Promise<WriteOutcome> {
    let p: PendingWrite;
    try {
      p = this.prepare(w);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<WriteOutcome>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
      this.pendingWrites.push(p);
      if (this.pendingWrites.length === 1) process.nextTick(this.flushWrites);
    });
  }

  /** Validates a write and turns it into a {@link PendingWrite} (throws typed errors). */
  private prepare(w: StateWrite): PendingWrite {
    this.check();
    const guard = w.guard;
    if (guard !== 'absent' && guard !== 'notFinal' && guard !== 'notSuccess') {
      throw new InvalidOptionError(`unknown write guard ${JSON.stringify(guard)}`);
    }
    const stateTtl = normalizeExpiry(w.stateTtl, 'stateTtl');
    const result = w.result;
    let resultTtl = 0;
    if (result !== undefined) {
      if (w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
      resultTtl = normalizeExpiry(w.resultTtl, 'resultTtl');
      checkSize(result);
    }
    const state = w.state;
    const stateText = JSON.stringify(state);
    checkSize(stateText);
    const tag = taskTag(this.prefix, state.id);
    const status = state.status;
    const final = isFinalStatus(status);
    return new PendingWrite(
      tag + ':state',
      result === undefined ? undefined : tag + ':result',
      stateText,
      writeOp(guard, status, result !== undefined, stateTtl, w.previous !== 'refused'),
      result,
      String(resultTtl),
      guard === 'absent' && result === undefined && stateTtl !== 0 && !final ? stateTtl : 0,
    );
  }

  /**
   * `SET state NX GET [EX n]`: one native command with the `absent` guard's exact semantics (atomic;
   * refused when any value is stored, which it returns). Redis older than 7.0 answers with a syntax
   * error (NX and GET together) without effect: the write is then sent with the script, as every
   * later one.
   */
  private sendNative(p: PendingWrite): void {
    const set = (this.client as unknown as { set(...args: string[]): Promise<string | null> }).set;
    const reply =
      p.nativeTtl > 0
        ? set.call(this.client, p.stateKey, p.stateText, 'NX', 'GET', 'EX', String(p.nativeTtl))
        : set.call(this.client, p.stateKey, p.stateText, 'NX', 'GET');
    reply.then(
      (prev) => p.settle(prev === null, prev),
      (err: unknown) => {
        if (this.nativeSet && err instanceof Error && /syntax error/i.test(err.message)) {
          this.nativeSet = false;
          this.sendScript([p], 0, 1);
          return;
        }
        p.reject(this.wrap(err, 'write', p.bytes()));
      },
    );
  }

  /**
   * Sends the writes of the tick: a lone `absent` write of a state alone as one native SET, anything
   * else in script calls of up to {@link MAX_WRITES_PER_CALL} writes (each write keeps its own guard
   * and atomicity, in order; a connection failure rejects every write of the call, as it would have
   * rejected each of them pipelined). One script call of many writes costs less, in Node and in
   * Redis, than as many native commands (measured: the script does its `absent` checks with the same
   * native `SET NX GET`).
   */
  private readonly flushWrites = (): void => {
    const all = this.pendingWrites;
    this.pendingWrites = [];
    const first = all[0] as PendingWrite;
    if (all.length === 1 && this.nativeSet && first.nativeTtl !== 0) this.sendNative(first);
    else this.sendScript(all, 0, all.length);
  };

  /** Sends `all[from..to)` as script calls of at most {@link MAX_WRITES_PER_CALL} writes. */
  private sendScript(all: PendingWrite[], from: number, to: number): void {
    const run = (this.client as unknown as Record<string, WriteCommand>)[WRITE_COMMAND] as WriteCommand;
    for (let start = from; start < to; start += MAX_WRITES_PER_CALL) {
      const end = Math.min(to, start + MAX_WRITES_PER_CALL);
      let keys = 0;
      let args = 0;
      for (let i = start; i < end; i++) {
        const withResult = (all[i] as PendingWrite).resultKey !== undefined;
        keys += withResult ? 2 : 1;
        args += withResult ? 4 : 2;
      }
      // One array, passed as one argument: ioredis flattens it (no spread of thousands of arguments).
      const keysAndArgs = new Array<string | number>(1 + keys + args);
      keysAndArgs[0] = keys;
      let k = 1;
      let a = 1 + keys;
      for (let i = start; i < end; i++) {
        const p = all[i] as PendingWrite;
        keysAndArgs[k++] = p.stateKey;
        keysAndArgs[a++] = p.stateText;
        keysAndArgs[a++] = p.op;
        if (p.resultKey !== undefined) {
          keysAndArgs[k++] = p.resultKey;
          keysAndArgs[a++] = p.result as string;
          keysAndArgs[a++] = p.resultTtl;
        }
      }
      run.call(this.client, keysAndArgs).then(
        (reply) => {
          for (let i = start, j = 0; i < end; i++, j += 2) {
            const prev = reply[j + 1];
            (all[i] as PendingWrite).settle(reply[j] === 1, prev === null || prev === undefined ? null : String(prev));
          }
        },
        (err: unknown) => {
          for (let i = start; i < end; i++) {
            const p = all[i] as PendingWrite;
            p.reject(this.wrap(err, 'write', p.bytes()));
          }
        },
      );
    }
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    this.check();
    const key = `${taskTag(this.prefix, id)}:state`;
    let text: string | null;
    try {
      text = await this.readKey(key);
    } catch (err) {
      throw this.wrap(err, 'read');
    }
    return text === null ? null : parseTaskState(text, key);
  }

  /**
   * Reads many states. The GETs are issued together and travel in one pipeline (see {@link readKey}),
   * one GET per key (each key reports its own error, as a lone read would).
   */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    this.check();
    if (ids.length === 0) return [];
    const keys = ids.map((id) => `${taskTag(this.prefix, id)}:state`);
    let texts: Array<string | null>;
    try {
      texts = await Promise.all(keys.map((k) => this.readKey(k)));
    } catch (err) {
      throw this.wrap(err, 'readMany');
    }
    return texts.map((t, i) => (t === null ? null : parseTaskState(t, keys[i] as string)));
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    this.check();
    try {
      return await this.readKey(`${taskTag(this.prefix, id)}:result`);
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

  /**
   * Calls `listener` when a write of this backend's scripts stores a final state for `id` (they
   * publish on {@link finalChannel}). One subscriber connection per backend instance, created on
   * first use and closed by {@link close}; one SUBSCRIBE per watched id, shared by its listeners and
   * ended (UNSUBSCRIBE) when the last of them stops. Resolves once Redis has acknowledged the
   * SUBSCRIBE; rejects with a `TasukiError` when it cannot subscribe. After a reconnection ioredis
   * subscribes again by itself; a write made while the connection was down is not announced (callers
   * keep polling).
   */
  async watchFinal(id: string, listener: (notice?: FinalNotice) => void): Promise<() => void> {
    this.check();
    const channel = finalChannel(this.prefix, id);
    let watch = this.watches.get(channel);
    if (watch === undefined) {
      const sub = this.subscriberConnection();
      // Still subscribed (its UNSUBSCRIBE is deferred and not sent yet): no new SUBSCRIBE needed.
      const lingering = this.unsubscribing.delete(channel);
      const created: Watch = {
        listeners: new Set(),
        ready: lingering ? Promise.resolve() : sub.subscribe(channel).then(() => undefined),
      };
      // A failed SUBSCRIBE leaves nothing behind: the next watcher of the id tries again.
      created.ready.catch(() => {
        if (this.watches.get(channel) === created) this.watches.delete(channel);
      });
      this.watches.set(channel, created);
      watch = created;
    }
    const entry = (notice?: FinalNotice): void => listener(notice);
    watch.listeners.add(entry);
    const w = watch;
    let active = true;
    const stop = (): void => {
      if (!active) return;
      active = false;
      w.listeners.delete(entry);
      if (w.listeners.size > 0 || this.watches.get(channel) !== w) return;
      this.watches.delete(channel);
      if (!this.closed) this.unsubscribeLater(channel);
    };
    try {
      await w.ready;
    } catch (err) {
      stop();
      throw this.wrap(err, 'watchFinal');
    }
    if (this.closed) {
      stop();
      throw new ClosedError('redis backend');
    }
    return stop;
  }

  /**
   * Ends the subscription of `channel` a little later, together with the others ended meanwhile (one
   * UNSUBSCRIBE for many getResult calls instead of one each). A channel watched again before that
   * is left subscribed. Messages of a lingering channel find no listener and are dropped.
   */
  private unsubscribeLater(channel: string): void {
    this.unsubscribing.add(channel);
    if (this.unsubscribeTimer !== undefined) return;
    this.unsubscribeTimer = setTimeout(() => {
      this.unsubscribeTimer = undefined;
      const channels = [...this.unsubscribing];
      this.unsubscribing.clear();
      // Commands of one connection run in order: a later SUBSCRIBE of one of them follows this.
      if (channels.length > 0 && !this.closed) this.subscriber?.unsubscribe(...channels).catch(() => undefined);
    }, UNSUBSCRIBE_DELAY_MS);
    this.unsubscribeTimer.unref();
  }

  /** The subscriber connection (same server and options as the main one), created on first use. */
  private subscriberConnection(): Redis {
    if (this.subscriber !== undefined) return this.subscriber;
    const name = this.client.options.connectionName;
    const sub = this.client.duplicate({
      lazyConnect: true,
      enableAutoPipelining: false,
      ...(name ? { connectionName: `${name}-sub` } : {}),
    });
    sub.on('error', this.onConnectionError);
    sub.on('message', (channel: string, message: string) => {
      const watch = this.watches.get(channel);
      if (watch === undefined) return;
      for (const listener of watch.listeners) {
        try {
          // Each listener gets its own copy of the notice (normally there is one listener).
          listener(parseNotice(message, channel));
        } catch {
          // a listener's failure is its own; the others still get the hint
        }
      }
    });
    this.subscriber = sub;
    return sub;
  }

  /**
   * GET of one key. The reads of one tick are sent together at its end: a few as plain GETs (no
   * auto-pipelining hop and no pipeline object: the latency of `getResult` after a push hint, which
   * reads state and result), more in one pipeline (one write to the socket).
   */
  private readKey(key: string): Promise<string | null> {
    return new Promise<string | null>((resolve, reject) => {
      this.pendingReads.push({ key, resolve, reject });
      if (this.pendingReads.length === 1) process.nextTick(this.flushReads);
    });
  }

  private readonly flushReads = (): void => {
    const all = this.pendingReads;
    this.pendingReads = [];
    if (all.length <= SMALL_READS) {
      for (const r of all) this.client.get(r.key).then(r.resolve, r.reject);
      return;
    }
    const pipeline = this.client.pipeline();
    for (const r of all) pipeline.get(r.key);
    pipeline.exec().then(
      (replies) => {
        for (let i = 0; i < all.length; i++) {
          const r = all[i] as PendingRead;
          const reply = replies?.[i];
          if (reply === undefined) r.reject(new Error('no reply'));
          else if (reply[0] !== null) r.reject(reply[0]);
          else r.resolve(reply[1] as string | null);
        }
      },
      (err: unknown) => {
        for (const r of all) r.reject(err);
      },
    );
  };

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

/**
 * The Redis broker of tasuki (`tasuki/brokers/redis`), built on ioredis 5.
 *
 * Layout and Lua scripts are in `./redis-scripts.ts`. In short: a group's messages live in a ready
 * LIST of ids, a delayed ZSET (id → due time), a lease ZSET (delivery token → lease deadline) and a
 * body HASH; every multi-key step is one Lua script, so each operation is atomic and costs one round
 * trip. Expired leases and due delayed messages are moved by the fetch script itself (no reaper
 * process is needed: any fetching worker recovers the deliveries of a worker killed with SIGKILL).
 *
 * Connections: one shared command connection (publishes and acks of one tick coalesced into one
 * script call each) and, for idle fetches, blocking connections taken from a small pool — one per
 * fetch that is waiting at the same moment, normally one per group a worker runs. An idle fetch blocks with BLPOP on the group's wake list; its sleep is
 * bounded by the next delayed message or lease deadline, and ended precisely by a client-side timer
 * that sends `CLIENT UNBLOCK` (Redis itself resolves blocking timeouts only every 1/hz s).
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import { allKeys, groupKeys, registerScripts, type GroupKeys, type ScriptedRedis } from './redis-scripts.js';

/** Receives warnings of the Redis broker (connection errors, reconnects). Nothing is logged by default. */
export interface RedisBrokerLogger {
  /** Logs one warning with optional structured fields. */
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /**
   * Where Redis is: a `redis://` / `rediss://` URL or ioredis options. Default `redis://127.0.0.1:6379`.
   * A `retryStrategy` given here replaces the default reconnect backoff (50 ms doubling to 2 s).
   * `lazyConnect` and `connectionName` are set by the broker.
   */
  connection?: string | RedisOptions;
  /** First part of every key (`<prefix>:{<group>}:...`). Default `tasuki`. Must not contain `{` or `}`. */
  prefix?: string;
  /**
   * Client name of the broker's connections as shown by `CLIENT LIST`: `<name>:cmd` for the command
   * connection, `<name>:block` for blocking ones. Default `tasuki`.
   */
  connectionName?: string;
  /** Receives connection warnings. Default: none (nothing is logged). */
  logger?: RedisBrokerLogger;
}

/** A publish waiting for the end of the current tick. */
interface PendingPublish {
  at: number;
  body: string;
}

/** One item of a {@link TickBatches} and how to settle its caller's promise. */
interface Batched<T> {
  item: T;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Operations issued in one event-loop tick, grouped by queue, sent together at its end: `send` gets
 * up to `maxPerCall` items of one group per call, and each call's outcome settles its own items (a
 * failed call rejects only the items it carried, with the error `fail` makes of it).
 */
class TickBatches<T> {
  private pending = new Map<string, Array<Batched<T>>>();
  private scheduled = false;

  constructor(
    private readonly maxPerCall: number,
    private readonly send: (group: string, items: T[]) => Promise<unknown>,
    private readonly fail: (err: unknown) => unknown,
  ) {}

  /** Adds an item; resolves once the call that carries it succeeded. */
  add(group: string, item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let list = this.pending.get(group);
      if (list === undefined) this.pending.set(group, (list = []));
      list.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.pending;
    this.pending = new Map();
    for (const [group, list] of all) {
      for (let i = 0; i < list.length; i += this.maxPerCall) {
        const chunk = list.length <= this.maxPerCall ? list : list.slice(i, i + this.maxPerCall);
        this.send(
          group,
          chunk.map((b) => b.item),
        ).then(
          () => {
            for (const b of chunk) b.resolve();
          },
          (err: unknown) => {
            const e = this.fail(err);
            for (const b of chunk) b.reject(e);
          },
        );
      }
    }
  };
}

/** Most messages of coalesced single publishes sent in one script call. */
const MAX_PUBLISH_PER_CALL = 500;

/** A connection of the blocking pool. */
interface BlockingConn {
  readonly redis: Redis;
  /** `CLIENT ID` of the current connection (unknown until asked after each (re)connect). */
  clientId: number | undefined;
}

/** Default reconnect backoff: 50 ms, doubling, at most 2 s. */
const defaultRetryStrategy = (times: number): number => Math.min(50 * 2 ** Math.min(times - 1, 6), 2000);
/** Waits shorter than this sleep client-side instead of blocking on Redis. */
const MIN_BLOCK_MS = 20;
/** Extra time given to Redis' own BLPOP timeout; the client timer normally ends the wait first. */
const SERVER_TIMEOUT_SLACK_MS = 100;
/** A blocking connection whose BLPOP has not answered this long after its timeout is dropped. */
const HUNG_CONNECTION_MS = 10_000;
/** Pause after an unexpected blocking error with a healthy connection (no busy loop). */
const ERROR_PAUSE_MS = 250;
/** Least time a fetch waits for an unreachable Redis before it rejects with `ConnectionError`. */
const DISCONNECTED_WAIT_MS = 1000;
/** A drained-queue hint older than this (ms) is not used: the next fetch runs its script first. */
const DRAINED_HINT_MS = 1000;
/** Default page size of {@link RedisBroker.listDeadLetters}. */
const DEFAULT_DEAD_LETTER_LIMIT = 100;

const noop = (): void => undefined;

/**
 * Redis broker: at-least-once delivery with leases, delays and retries held in Redis, blocking fetch,
 * dead letters. Every key of a group shares the hash tag `{group}`, so it works on Redis Cluster
 * slots too (one group per slot). See the module comment for the design.
 */
export class RedisBroker implements Broker {
  /** @inheritdoc */
  readonly kind = 'redis';
  /** Key prefix of this broker. */
  readonly prefix: string;
  private readonly connectionName: string;
  private readonly logger: RedisBrokerLogger | undefined;
  private readonly url: string | undefined;
  private readonly baseOptions: RedisOptions;
  private readonly cmd: ScriptedRedis;
  /** Every blocking connection, and those currently free. */
  private readonly blocking = new Set<BlockingConn>();
  private readonly idle: BlockingConn[] = [];
  /** Ends every current wait (called on close). */
  private readonly wakers = new Set<() => void>();
  private closed = false;
  private closing: Promise<void> | undefined;
  /** Single publishes of the current tick, one script call per group (the script takes any number). */
  private readonly publishes = new TickBatches<PendingPublish>(
    MAX_PUBLISH_PER_CALL,
    (group, items) => {
      const k = this.keys(group);
      const args: Array<string | number> = [k.ready, k.delayed, k.body, k.wake, k.seq, items.length];
      for (const p of items) args.push(p.at, p.body);
      return this.cmd.tasukiPublish(...args);
    },
    (err) => this.failure('publish', err),
  );
  /** Acks of the current tick, one script call per group (each still removes only what its token holds). */
  private readonly acks = new TickBatches<string>(
    Number.MAX_SAFE_INTEGER,
    (group, tokens) => {
      const k = this.keys(group);
      return tokens.length === 1
        ? this.cmd.tasukiAck(k.lease, k.body, tokens[0] as string)
        : this.cmd.tasukiAckMany(k.lease, k.body, ...tokens);
    },
    (err) => this.failure('ack', err),
  );
  /** Groups whose last fetch drained the ready list, with what that fetch said about the next event. */
  private readonly drained = new Map<string, { at: number; nextEventMs: number }>();
  /** Key names by group (built once per group instead of once per operation). */
  private readonly keyCache = new Map<string, GroupKeys>();

  /** @param options connection, key prefix, connection names, logger */
  constructor(options: RedisBrokerOptions = {}) {
    const prefix = options.prefix ?? 'tasuki';
    if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) {
      throw new InvalidOptionError(`prefix must be a non-empty string without "{" or "}", got ${JSON.stringify(prefix)}`);
    }
    const connectionName = options.connectionName ?? 'tasuki';
    if (typeof connectionName !== 'string' || !/^[!-~]+$/.test(connectionName)) {
      throw new InvalidOptionError(`connectionName must be printable ASCII without spaces, got ${JSON.stringify(connectionName)}`);
    }
    this.prefix = prefix;
    this.connectionName = connectionName;
    this.logger = options.logger;
    const connection = options.connection ?? 'redis://127.0.0.1:6379';
    this.url = typeof connection === 'string' ? connection : undefined;
    this.baseOptions = typeof connection === 'string' ? {} : { ...connection };
    // No ioredis auto-pipelining by default: the broker already sends the publishes and acks of one
    // tick as one script call, and auto-pipelining's per-batch objects cost more than they save
    // (measured: about 20 % more processing throughput and a lower latency tail without it).
    this.cmd = registerScripts(
      this.newRedis('cmd', {
        enableAutoPipelining: this.baseOptions.enableAutoPipelining ?? false,
      }),
    );
  }

  /** Opens the command connection (blocking connections open when a fetch first waits). Idempotent. */
  async connect(): Promise<void> {
    this.assertOpen();
    const c = this.cmd;
    if (c.status === 'ready') return;
    await new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        c.off('ready', onReady);
        c.off('error', onError);
        c.off('end', onEnd);
      };
      const onReady = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new ConnectionError(`cannot connect to redis: ${err.message}`, err));
      };
      const onEnd = (): void => {
        cleanup();
        reject(this.closed ? new ClosedError('redis broker') : new ConnectionError('redis connection ended'));
      };
      c.once('ready', onReady);
      c.once('error', onError);
      c.once('end', onEnd);
      if (c.status === 'wait') c.connect().catch(noop);
    });
  }

  /** Closes every connection; waiting fetches resolve with `[]`, later calls reject with `ClosedError`. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.closing = (async () => {
        for (const wake of [...this.wakers]) wake();
        for (const conn of this.blocking) shutdown(conn.redis);
        this.blocking.clear();
        this.idle.length = 0;
        if (this.cmd.status === 'ready') {
          // QUIT lets replies of commands already sent arrive first.
          await Promise.race([this.cmd.quit().catch(noop), delay(2000)]);
        }
        shutdown(this.cmd);
      })();
    }
    return this.closing;
  }

  /** @inheritdoc */
  publish(group: string, body: string, options: PublishOptions = {}): Promise<void> {
    let at: number;
    try {
      this.assertOpen();
      assertName('group', group);
      if (typeof body !== 'string') throw new InvalidOptionError('message body must be a string');
      at = availableAtArg(options?.availableAt);
    } catch (err) {
      return Promise.reject(err);
    }
    // The publishes of one tick to one group travel in one atomic script call; each resolves once
    // Redis holds its message.
    return this.publishes.add(group, { at, body });
  }

  /** Publishes every item in one atomic script call (one round trip). */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    if (!Array.isArray(items)) throw new InvalidOptionError('publishBatch items must be an array');
    if (items.length === 0) return;
    const args: Array<string | number> = [items.length];
    for (const item of items) {
      if (typeof item?.body !== 'string') throw new InvalidOptionError('message body must be a string');
      args.push(availableAtArg(item.options?.availableAt), item.body);
    }
    const k = this.keys(group);
    await this.run('publish', () => this.cmd.tasukiPublish(k.ready, k.delayed, k.body, k.wake, k.seq, ...args));
  }

  /**
   * Takes up to `max` messages in one script call. When none is ready it blocks on the group's wake
   * list (no polling) until a publish wakes it, the next delayed message is due, a lease runs out,
   * `waitMs` passes or `signal` aborts. While Redis is unreachable it waits for the reconnect (up to
   * `waitMs`, at least 1 s) and then rejects with `ConnectionError`.
   */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.assertOpen();
    assertName('group', group);
    if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError(`fetch max must be an integer >= 1, got ${max}`);
    const leaseMs = positiveMs('leaseMs', options?.leaseMs);
    const waitMs = options?.waitMs;
    if (typeof waitMs !== 'number' || !(waitMs >= 0)) throw new InvalidOptionError(`waitMs must be a number >= 0, got ${waitMs}`);
    const { signal } = options;
    const k = this.keys(group);
    const deadline = Date.now() + waitMs;
    // The previous fetch of this group drained the ready list: block at once instead of running the
    // script for an empty answer (any publish since then left a wake marker; the sleep is bounded by
    // the next delayed message or lease deadline that script saw).
    const drained = this.drained.get(group);
    if (drained !== undefined) {
      this.drained.delete(group);
      const age = Date.now() - drained.at;
      if (waitMs > 0 && age < DRAINED_HINT_MS && this.cmd.status === 'ready') {
        const sleep = drained.nextEventMs >= 0 ? Math.max(0, drained.nextEventMs - age) + 1 : waitMs;
        await this.waitForWork(k.wake, Math.min(waitMs, sleep), signal);
      }
    }
    for (;;) {
      if (this.closed || signal?.aborted) return [];
      if (this.cmd.status !== 'ready') {
        // Waits at least DISCONNECTED_WAIT_MS, so that a caller looping on errors cannot spin.
        const up = await this.waitReady(this.cmd, Math.max(deadline - Date.now(), DISCONNECTED_WAIT_MS), signal);
        if (!up) {
          if (this.closed || signal?.aborted) return [];
          throw new ConnectionError(`redis is not reachable (status ${this.cmd.status})`);
        }
      }
      const reply = await this.run('fetch', () =>
        this.cmd.tasukiFetch(k.ready, k.delayed, k.lease, k.body, k.wake, k.seq, max, leaseMs),
      );
      const { deliveries, nextEventMs } = parseFetchReply(group, reply);
      if (deliveries.length > 0) {
        if (nextEventMs >= -1) this.drained.set(group, { at: Date.now(), nextEventMs });
        return deliveries;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      await this.waitForWork(k.wake, nextEventMs >= 0 ? Math.min(remaining, nextEventMs + 1) : remaining, signal);
    }
  }

  /**
   * Acks issued in the same tick for one group travel in one script call (each still removes only a
   * delivery its token holds).
   */
  ack(delivery: Delivery): Promise<void> {
    let group: string;
    try {
      this.assertOpen();
      group = deliveryGroup(delivery);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.acks.add(group, delivery.token);
  }

  /** @inheritdoc */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.assertOpen();
    const k = this.keys(deliveryGroup(delivery));
    if (typeof body !== 'string') throw new InvalidOptionError('message body must be a string');
    const at = availableAtArg(availableAt);
    await this.run('retry', () => this.cmd.tasukiRetry(k.lease, k.body, k.ready, k.delayed, k.wake, delivery.token, body, at));
  }

  /** @inheritdoc */
  async release(delivery: Delivery): Promise<void> {
    this.assertOpen();
    const k = this.keys(deliveryGroup(delivery));
    await this.run('release', () => this.cmd.tasukiRelease(k.lease, k.ready, k.wake, delivery.token));
  }

  /** Renews leases with one script call per group (all groups in parallel). */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.assertOpen();
    const ms = positiveMs('leaseMs', leaseMs);
    const byGroup = new Map<string, string[]>();
    for (const d of deliveries) {
      const g = deliveryGroup(d);
      const tokens = byGroup.get(g) ?? [];
      tokens.push(d.token);
      byGroup.set(g, tokens);
    }
    const lost = await Promise.all(
      [...byGroup].map(async ([g, tokens]) => {
        const reply = await this.run('extend', () => this.cmd.tasukiExtend(this.keys(g).lease, ms, ...tokens));
        return stringArray(reply, 'extend');
      }),
    );
    return lost.flat();
  }

  /** @inheritdoc */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.assertOpen();
    const k = this.keys(deliveryGroup(delivery));
    const json = JSON.stringify({ code: String(reason?.code ?? ''), message: String(reason?.message ?? '') });
    await this.run('deadLetter', () =>
      this.cmd.tasukiDeadLetter(k.lease, k.body, k.dead, k.deadBody, k.deadReason, delivery.token, json),
    );
  }

  /** Lists dead letters oldest first; `limit` defaults to 100. */
  async listDeadLetters(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    this.assertOpen();
    assertName('group', group);
    const offset = options.offset ?? 0;
    const limit = options.limit ?? DEFAULT_DEAD_LETTER_LIMIT;
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidOptionError(`offset must be an integer >= 0, got ${offset}`);
    if (!Number.isInteger(limit) || limit < 0) throw new InvalidOptionError(`limit must be an integer >= 0, got ${limit}`);
    if (limit === 0) return [];
    const k = this.keys(group);
    const reply = await this.run('listDeadLetters', () => this.cmd.tasukiListDead(k.dead, k.deadBody, k.deadReason, offset, limit));
    const flat = stringArray(reply, 'listDeadLetters');
    const out: DeadLetter[] = [];
    for (let i = 0; i + 3 < flat.length; i += 4) {
      out.push({
        id: flat[i] as string,
        group,
        at: Number(flat[i + 1]),
        body: flat[i + 2] as string,
        reason: parseReason(flat[i + 3] as string),
      });
    }
    return out;
  }

  /** @inheritdoc */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    assertName('group', group);
    const list = idList(ids);
    if (list && list.length === 0) return 0;
    const k = this.keys(group);
    const reply = await this.run('redriveDeadLetters', () =>
      this.cmd.tasukiRedriveDead(k.dead, k.deadBody, k.deadReason, k.body, k.ready, k.wake, ...(list ?? [])),
    );
    return Number(reply);
  }

  /** @inheritdoc */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    assertName('group', group);
    const list = idList(ids);
    if (list && list.length === 0) return 0;
    const k = this.keys(group);
    const reply = await this.run('deleteDeadLetters', () => this.cmd.tasukiDeleteDead(k.dead, k.deadBody, k.deadReason, ...(list ?? [])));
    return Number(reply);
  }

  /** Counts after moving expired leases and due delayed messages to ready. */
  async counts(group: string): Promise<QueueCounts> {
    this.assertOpen();
    assertName('group', group);
    const k = this.keys(group);
    const reply = await this.run('counts', () => this.cmd.tasukiCounts(k.ready, k.delayed, k.lease, k.dead, k.wake));
    if (!Array.isArray(reply) || reply.length !== 4) throw new ConnectionError('unexpected reply of the counts script');
    const [ready, delayed, inFlight, dead] = reply.map(Number) as [number, number, number, number];
    return { ready, delayed, inFlight, dead };
  }

  /** Deletes every key of the group (one DEL: all keys share one hash slot). */
  async purge(group: string): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    const keys = allKeys(this.keys(group));
    await this.run('purge', () => this.cmd.del(...keys));
  }

  // ---- internals ---------------------------------------------------------------------------------

  private keys(group: string): GroupKeys {
    let k = this.keyCache.get(group);
    if (k === undefined) {
      k = groupKeys(this.prefix, group);
      // Bounded: a worker touches a handful of groups; a client sending to very many is not cached past 1000.
      if (this.keyCache.size < 1000) this.keyCache.set(group, k);
    }
    return k;
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('redis broker');
  }

  /** Creates a lazily connecting ioredis client with error handlers attached. */
  private newRedis(role: 'cmd' | 'block', extra: RedisOptions): Redis {
    const options: RedisOptions = {
      retryStrategy: defaultRetryStrategy,
      ...this.baseOptions,
      ...extra,
      lazyConnect: true,
      connectionName: `${this.connectionName}:${role}`,
    };
    const redis = this.url === undefined ? new Redis(options) : new Redis(this.url, options);
    // Every concurrent wait adds (and removes) its own 'ready'/'close' listeners.
    redis.setMaxListeners(0);
    redis.on('error', (err: Error) => {
      if (!this.closed) this.logger?.warn('redis broker connection error', { connection: role, error: err.message });
    });
    redis.on('reconnecting', (ms: number) => {
      if (!this.closed) this.logger?.warn('redis broker reconnecting', { connection: role, inMs: ms });
    });
    return redis;
  }

  /** Runs one Redis operation, turning driver failures into `ConnectionError` (or `ClosedError`). */
  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  /** The typed error for a failed Redis operation. */
  private failure(what: string, err: unknown): TasukiError {
    if (err instanceof TasukiError) return err;
    if (this.closed) return new ClosedError('redis broker');
    const msg = err instanceof Error ? err.message : String(err);
    return new ConnectionError(`redis ${what} failed: ${msg}`, err);
  }

  /**
   * Resolves true once `conn` is ready, false after `ms`, on abort or on close. Never spins: it waits
   * for the connection's 'ready' event (ioredis reconnects with backoff meanwhile).
   */
  private waitReady(conn: Redis, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (conn.status === 'ready') return Promise.resolve(true);
    if (conn.status === 'wait') conn.connect().catch(noop);
    if (ms <= 0 || this.closed || signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        conn.off('ready', onReady);
        conn.off('end', onStop);
        signal?.removeEventListener('abort', onStop);
        this.wakers.delete(onStop);
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const onStop = (): void => done(false);
      const timer = setTimeout(onStop, ms);
      timer.unref();
      conn.once('ready', onReady);
      conn.once('end', onStop);
      signal?.addEventListener('abort', onStop, { once: true });
      this.wakers.add(onStop);
    });
  }

  /** Sleeps `ms` (abortable, ended by close). */
  private pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (ms <= 0 || this.closed || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      signal?.addEventListener('abort', done, { once: true });
      this.wakers.add(done);
    });
  }

  /**
   * Waits up to `ms` for a wake-up marker of the group (publish, retry, release, redrive), on a
   * blocking connection from the pool. Returns early on abort or close. Errors are swallowed: the
   * caller runs the fetch script again, which reports connection problems.
   */
  private async waitForWork(wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    if (ms < MIN_BLOCK_MS) return this.pause(ms, signal);
    const conn = this.acquire();
    let blocked = false;
    try {
      if (conn.redis.status !== 'ready') {
        await this.waitReady(conn.redis, ms, signal);
        return;
      }
      if (conn.clientId === undefined) {
        conn.clientId = Number(await conn.redis.client('ID'));
        if (this.closed || signal?.aborted) return;
      }
      blocked = true;
      await this.blockOn(conn, wakeKey, ms, signal);
    } catch (err) {
      if (this.closed || signal?.aborted) return;
      this.logger?.warn('redis broker blocking wait failed', { error: err instanceof Error ? err.message : String(err) });
      if (conn.redis.status === 'ready') await this.pause(Math.min(ms, ERROR_PAUSE_MS), signal);
      else await this.waitReady(conn.redis, ms, signal);
    } finally {
      if (!blocked) this.releaseConn(conn);
    }
  }

  /**
   * Issues BLPOP on `conn` and resolves when it returns, when `ms` passed, on abort, on close or when
   * the connection drops. On timeout/abort the BLPOP is ended with `CLIENT UNBLOCK` (the connection
   * goes back to the pool once Redis answered it).
   */
  private blockOn(conn: BlockingConn, wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const r = conn.redis;
    let returned = false;
    const hung = setTimeout(() => {
      // No answer long after the timeout: the TCP connection is dead without having closed.
      if (!returned) r.disconnect(true);
    }, ms + HUNG_CONNECTION_MS);
    hung.unref();
    const giveBack = (): void => {
      if (returned) return;
      returned = true;
      clearTimeout(hung);
      r.off('close', giveBack);
      this.releaseConn(conn);
    };
    // With autoResendUnfulfilledCommands off, a BLPOP cut by a disconnect never settles: 'close' frees the connection.
    r.once('close', giveBack);
    const call = r.blpop(wakeKey, (ms + SERVER_TIMEOUT_SLACK_MS) / 1000);
    call.then(giveBack, giveBack);
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (unblock: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        r.off('close', onClose);
        this.wakers.delete(onAbort);
        if (unblock && !returned) this.unblock(conn);
        resolve();
      };
      const onAbort = (): void => finish(true);
      const onClose = (): void => finish(false);
      const timer = setTimeout(() => finish(true), ms);
      timer.unref();
      call.then(
        () => finish(false),
        () => finish(false),
      );
      r.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.wakers.add(onAbort);
    });
  }

  /** Ends the BLPOP of `conn` now: `CLIENT UNBLOCK` through the command connection, else reconnect it. */
  private unblock(conn: BlockingConn): void {
    if (this.closed) return; // close() disconnects every blocking connection
    const id = conn.clientId;
    if (id !== undefined && this.cmd.status === 'ready') {
      this.cmd.client('UNBLOCK', id).catch(() => conn.redis.disconnect(true));
    } else {
      conn.redis.disconnect(true);
    }
  }

  /** Takes a free blocking connection or opens a new one. */
  private acquire(): BlockingConn {
    const free = this.idle.pop();
    if (free) return free;
    const redis = this.newRedis('block', {
      enableAutoPipelining: false,
      // A blocking command must not be replayed after a reconnect (it would eat a wake marker later).
      autoResendUnfulfilledCommands: false,
      // The broker bounds its own waits; never fail a queued command because of the retry count.
      maxRetriesPerRequest: null,
    });
    const conn: BlockingConn = { redis, clientId: undefined };
    redis.on('close', () => {
      conn.clientId = undefined;
    });
    this.blocking.add(conn);
    return conn;
  }

  /** Returns a blocking connection to the pool (or closes it when the broker is closed). */
  private releaseConn(conn: BlockingConn): void {
    if (this.closed || !this.blocking.has(conn)) {
      shutdown(conn.redis);
      return;
    }
    if (conn.redis.status === 'end') {
      this.blocking.delete(conn);
      return;
    }
    if (!this.idle.includes(conn)) this.idle.push(conn);
  }
}

/**
 * Disconnects a client for good unless it already ended. (Calling ioredis `disconnect` again on a
 * closed stream would start its 2 s destroy timer and hold the process open.)
 */
function shutdown(redis: Redis): void {
  if (redis.status === 'end' || redis.status === 'close') return;
  redis.disconnect();
}

/** Resolves after `ms` (unref'd timer). */
function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Validates a lease length and rounds it up to whole ms. */
function positiveMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a finite number > 0, got ${String(value)}`);
  }
  return Math.ceil(value);
}

/** `availableAt` as a script argument: whole epoch ms, 0 for "now". */
function availableAtArg(at: number | undefined): number {
  if (at === undefined) return 0;
  if (typeof at !== 'number' || !Number.isFinite(at)) throw new InvalidOptionError(`availableAt must be a finite number of epoch ms, got ${String(at)}`);
  return Math.max(0, Math.ceil(at));
}

/** The validated group of a delivery. */
function deliveryGroup(delivery: Delivery): string {
  const group = delivery?.group;
  assertName('group', group);
  if (typeof delivery.token !== 'string') throw new InvalidOptionError('delivery token must be a string');
  return group;
}

/** Validated dead letter ids, or undefined for "all". */
function idList(ids: ReadonlyArray<string> | undefined): string[] | undefined {
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids)) throw new InvalidOptionError('ids must be an array of strings');
  return ids.map((id) => {
    if (typeof id !== 'string') throw new InvalidOptionError('ids must be an array of strings');
    return id;
  });
}

/** A script reply expected to be an array of strings. */
function stringArray(reply: unknown, what: string): string[] {
  if (!Array.isArray(reply)) throw new ConnectionError(`unexpected reply of the ${what} script`);
  return reply.map((x) => String(x));
}

/** Parses the reply of the fetch script: `[nextEventMs, token, body, redelivered, ...]`. */
function parseFetchReply(group: string, reply: unknown): { deliveries: Delivery[]; nextEventMs: number } {
  if (!Array.isArray(reply) || reply.length < 1 || (reply.length - 1) % 3 !== 0) {
    throw new ConnectionError('unexpected reply of the fetch script');
  }
  const deliveries: Delivery[] = [];
  for (let i = 1; i < reply.length; i += 3) {
    deliveries.push({ group, token: String(reply[i]), body: String(reply[i + 1]), redelivered: Number(reply[i + 2]) === 1 });
  }
  return { deliveries, nextEventMs: Number(reply[0]) };
}

/** Parses a stored dead-letter reason (tolerates foreign or damaged values). */
function parseReason(json: string): DeadLetterReason {
  try {
    const v: unknown = JSON.parse(json);
    if (v !== null && typeof v === 'object') {
      const o = v as { code?: unknown; message?: unknown };
      return { code: String(o.code ?? ''), message: String(o.message ?? '') };
    }
  } catch {
    // fall through
  }
  return { code: '', message: json };
}

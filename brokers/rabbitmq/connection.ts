/**
 * The AMQP connection of a RabbitMQ broker instance: the (re)connect loop with exponential backoff
 * and jitter, waiting for a connection with a deadline, running an operation again after transport
 * failures, and the lazily opened channels that live and die with one connection.
 */
import { connect as amqpConnect } from 'amqplib';
import type { Channel, ChannelModel, Options } from 'amqplib';
import { ClosedError, ConnectionError, TasukiError } from '../../src/errors.js';
import { NOT_FOUND, amqpReplyCode } from '../rabbitmq-topology.js';
import { NAME, errText, noop, sleep } from './util.js';

/** Channels over which declarations and counts are spread. */
const TOPOLOGY_CHANNELS = 8;

/** A connection and the per-connection state that dies with it. */
export interface Conn {
  readonly model: ChannelModel;
  lost: boolean;
  /** Lazily opened channels by role: `pub` (a ConfirmChannel), `admin:i` (declarations), `check:i` (counts). */
  readonly channels: Map<string, Promise<Channel>>;
  /** Groups whose queues were declared on this connection (or are being declared). */
  readonly groups: Map<string, Promise<void>>;
}

/** Raised inside an attempt when RabbitMQ returned a mandatory message as unroutable. */
export class UnroutableError extends Error {}

/** What the connection tells its owner. */
export interface ConnectionEvents {
  /** A new connection is up (after the first connect or a reconnection). */
  connected(conn: Conn): void;
  /** The current connection was lost (every channel on it is gone). */
  lost(conn: Conn): void;
}

/** Settings of {@link RabbitConnection}. */
export interface ConnectionSettings {
  /** The nodes to connect to (one, or the nodes of a cluster); tried in turn. */
  readonly targets: ReadonlyArray<string | Options.Connect>;
  readonly socketOptions: Record<string, unknown>;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly operationTimeoutMs: number;
}

/** A connection waiter of {@link RabbitConnection.get}. */
interface ConnWaiter {
  resolve(conn: Conn): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Makes the frames amqplib writes in one tick (it writes each publish, ack and method frame on its
 * own) leave in one socket write: the socket is corked at the first write of a tick and uncorked
 * on the next `process.nextTick`. Fewer, larger writes cost this process and RabbitMQ much less per
 * message; nothing waits longer than the current tick. A stream without cork is left alone.
 */
function coalesceWrites(model: ChannelModel): void {
  const stream = (model as unknown as { connection?: { stream?: unknown } }).connection?.stream as
    | { write: (...args: unknown[]) => boolean; cork?: () => void; uncork?: () => void }
    | undefined;
  if (!stream || typeof stream.write !== 'function' || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') return;
  const write = stream.write.bind(stream);
  const cork = stream.cork.bind(stream);
  const uncork = stream.uncork.bind(stream);
  let corked = false;
  const release = (): void => {
    corked = false;
    uncork();
  };
  stream.write = (...args: unknown[]): boolean => {
    if (!corked) {
      corked = true;
      cork();
      process.nextTick(release);
    }
    return write(...args);
  };
}

/** Supervises one AMQP connection at a time; see the module comment. */
export class RabbitConnection {
  /** Set once {@link close} was called. */
  closed = false;
  /** The live connection, if any. */
  current: Conn | null = null;
  /** The last error seen on the connection or a channel (for error texts). */
  lastError: unknown;
  /** When the last connection was lost or the last attempt failed; null while connected or still on the first attempt. */
  downSince: number | null = null;

  private supervising = false;
  private backoffTimer: NodeJS.Timeout | null = null;
  private backoffWake: (() => void) | null = null;
  private readonly waiters = new Set<ConnWaiter>();
  /** Index into `targets` of the next attempt (starts at a random node). */
  private nextTarget: number;
  /** Index of the target of the current connection. */
  private currentTarget = 0;

  constructor(
    private readonly settings: ConnectionSettings,
    private readonly events: ConnectionEvents,
  ) {
    this.nextTarget = Math.floor(Math.random() * settings.targets.length);
  }

  /** Index into the targets of the live connection's node (for tests and logs); -1 while down. */
  get currentNode(): number {
    return this.current ? this.currentTarget : -1;
  }

  /** Throws `ClosedError` once closed. */
  assertOpen(): void {
    if (this.closed) throw new ClosedError(NAME);
  }

  /** The live connection, waiting up to `timeoutMs` (default `operationTimeoutMs`) for (re)connection. */
  get(timeoutMs = this.settings.operationTimeoutMs): Promise<Conn> {
    if (this.closed) return Promise.reject(new ClosedError(NAME));
    if (this.current) return Promise.resolve(this.current);
    this.supervise();
    return new Promise<Conn>((resolve, reject) => {
      const waiter: ConnWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new ConnectionError(`no connection to RabbitMQ within ${timeoutMs} ms: ${errText(this.lastError)}`, this.lastError));
        }, Math.max(0, timeoutMs)),
      };
      this.waiters.add(waiter);
    });
  }

  /**
   * Stops reconnecting and rejects waiters; closes `extra` channels first (a channel's close is
   * ordered after the acks sent on it, whereas amqplib may write the connection close ahead of
   * channel frames still buffered), then every channel of the connection, then the connection.
   */
  async close(extra: ReadonlyArray<Promise<Channel> | null>): Promise<void> {
    this.closed = true;
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffWake?.();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new ClosedError(NAME));
    }
    this.waiters.clear();
    const conn = this.current;
    this.current = null;
    const channels = [...extra];
    if (conn) channels.push(...conn.channels.values());
    await Promise.all(channels.map((p) => p?.then((ch) => ch.close()).catch(noop)));
    if (conn) {
      conn.lost = true;
      await conn.model.close().catch(noop);
    }
  }

  /** Starts the (re)connection loop unless it runs. */
  private supervise(): void {
    if (this.supervising || this.closed || this.current) return;
    this.supervising = true;
    void this.connectLoop();
  }

  private async connectLoop(): Promise<void> {
    let delay = this.settings.backoffInitialMs;
    const targets = this.settings.targets;
    let failedInRound = 0;
    try {
      while (!this.closed) {
        let model: ChannelModel | undefined;
        const index = this.nextTarget % targets.length;
        this.nextTarget = (index + 1) % targets.length;
        try {
          model = await amqpConnect(targets[index] as string | Options.Connect, this.settings.socketOptions);
        } catch (err) {
          this.lastError = err;
          this.downSince ??= Date.now();
        }
        if (model && this.closed) {
          await model.close().catch(noop);
          return;
        }
        if (model) {
          const conn = this.adopt(model);
          if (conn) {
            this.currentTarget = index;
            this.onConnected(conn);
            return;
          }
        }
        // Another node of the list first; back off once every node failed in this round.
        if (++failedInRound < targets.length) continue;
        failedInRound = 0;
        // Back off (jittered, cancellable by close) before the next attempt: no busy loop while down.
        const wait = Math.round(delay * (0.5 + Math.random() / 2));
        delay = Math.min(this.settings.backoffMaxMs, delay * 2);
        await new Promise<void>((resolve) => {
          this.backoffWake = resolve;
          this.backoffTimer = setTimeout(resolve, wait);
          this.backoffTimer.unref();
        });
        this.backoffTimer = null;
        this.backoffWake = null;
      }
    } finally {
      this.supervising = false;
    }
  }

  /** Wires a fresh connection; returns undefined if it already closed again. */
  private adopt(model: ChannelModel): Conn | undefined {
    const conn: Conn = { model, lost: false, channels: new Map(), groups: new Map() };
    coalesceWrites(model);
    model.on('error', (err: unknown) => {
      this.lastError = err;
    });
    model.on('close', (err?: unknown) => this.onClosed(conn, err));
    model.on('blocked', noop);
    model.on('unblocked', noop);
    if (conn.lost) return undefined;
    this.current = conn;
    this.downSince = null;
    return conn;
  }

  private onConnected(conn: Conn): void {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve(conn);
    }
    this.waiters.clear();
    this.events.connected(conn);
  }

  private onClosed(conn: Conn, err: unknown): void {
    conn.lost = true;
    if (err !== undefined) this.lastError = err;
    if (this.current !== conn) return;
    this.current = null;
    this.downSince = Date.now();
    this.events.lost(conn);
    if (!this.closed) this.supervise();
  }

  /** Whether an error of an attempt is worth another attempt (connection or channel gone, nack, unroutable). */
  isTransient(err: unknown, conn: Conn): boolean {
    if (conn.lost || err instanceof UnroutableError) return true;
    const code = amqpReplyCode(err);
    if (code !== undefined && code !== 320 && code !== 541) return false;
    return /channel (closed|ended|closing)|connection (closed|closing)|nacked|ECONNRESET|EPIPE/i.test(errText(err));
  }

  /**
   * Runs `op` on the live connection; on transport failures waits for reconnection and runs it again,
   * for up to `operationTimeoutMs`.
   */
  async run<T>(what: string, op: (conn: Conn) => Promise<T>): Promise<T> {
    const timeout = this.settings.operationTimeoutMs;
    const deadline = Date.now() + timeout;
    let lastErr: unknown;
    for (;;) {
      this.assertOpen();
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ConnectionError(`${what} did not complete within ${timeout} ms: ${errText(lastErr)}`, lastErr);
      }
      const conn = await this.get(remaining);
      try {
        return await op(conn);
      } catch (err) {
        if (this.closed) throw new ClosedError(NAME);
        if (err instanceof TasukiError) throw err;
        if (!this.isTransient(err, conn)) throw new ConnectionError(`${what} failed: ${errText(err)}`, err);
        lastErr = err;
        await sleep(Math.min(100, deadline - Date.now()));
      }
    }
  }

  /** The channel `key` of `conn`, opened by `create` on first use and forgotten when it closes. */
  lazyChannel(conn: Conn, key: string, create: () => Promise<Channel>): Promise<Channel> {
    const existing = conn.channels.get(key);
    if (existing) return existing;
    const p = create().then((ch) => {
      ch.on('error', (err: unknown) => {
        this.lastError = err;
        if (key === 'pub' && amqpReplyCode(err) === NOT_FOUND) {
          // A queue we believed declared is gone: declare again on the next attempt.
          conn.groups.clear();
        }
      });
      ch.on('close', () => {
        if (conn.channels.get(key) === p) conn.channels.delete(key);
      });
      return ch;
    });
    p.catch(() => {
      if (conn.channels.get(key) === p) conn.channels.delete(key);
    });
    conn.channels.set(key, p);
    return p;
  }

  /**
   * Runs `fn` on the channel `role:(slot % TOPOLOGY_CHANNELS)`. Declarations and checks are spread
   * over a few channels so that RabbitMQ handles them in parallel (amqplib runs one RPC at a time per
   * channel). When another operation made RabbitMQ close the shared channel (404, 406), `fn` is run
   * again on a fresh one.
   */
  async onChannel<T>(conn: Conn, role: 'admin' | 'check', slot: number, fn: (ch: Channel) => Promise<T>): Promise<T> {
    const key = `${role}:${slot % TOPOLOGY_CHANNELS}`;
    for (let attempt = 0; ; attempt++) {
      const ch = await this.lazyChannel(conn, key, () => conn.model.createChannel());
      try {
        return await fn(ch);
      } catch (err) {
        const collateral = amqpReplyCode(err) === undefined && /channel (ended|closed|closing)/i.test(errText(err));
        // Each round completes at least the operation that closed the channel, so this ends.
        if (attempt < 64 && collateral && !conn.lost) continue;
        throw err;
      }
    }
  }

  /** A private channel of `conn` whose errors are recorded (closing it is the caller's). */
  async privateChannel(conn: Conn): Promise<Channel> {
    const ch = await conn.model.createChannel();
    ch.on('error', (err: unknown) => {
      this.lastError = err;
    });
    return ch;
  }
}

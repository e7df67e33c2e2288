/**
 * The client: sends tasks, reads their state and results, aborts them, manages dead letters.
 */
import { randomUUID } from 'node:crypto';
import type { Backend, Expiry, FinalNotice, WriteOutcome } from './backend.js';
import type { Broker, DeadLetter } from './broker.js';
import { ClosedError, InvalidOptionError, ResultTimeoutError } from './errors.js';
import { consoleLogger, type Logger } from './logger.js';
import { decodeMessage, encodeMessage, type Backoff, type TaskMessage } from './message.js';
import { encodeValueFast } from './plain.js';
import { assertName } from './names.js';
import {
  DEFAULT_RETRY_COUNT,
  checkExpiry,
  checkMs,
  DEFAULT_EXPIRES,
  resolveBackoff,
  toEpoch,
  type ClientOptions,
  type SendOptions,
} from './options.js';
import { TaskResult } from './result.js';
import { isFinalStatus, type TaskState } from './state.js';
import type { TaskId, TaskRef } from './task.js';
import { getFlow, restartFlow, signalFlow, type FlowInfo, type RestartOptions } from './flow/client-ops.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';

const ID_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** Shared connection holder of a client and its `with()` views. */
interface ClientCore {
  broker: Broker;
  backend: Backend;
  logger: Logger;
  statusExpires: Expiry;
  resultExpires: Expiry;
  closed: boolean;
  /** Whether close() closes broker and backend (false when a server owns them). */
  ownsConnections: boolean;
}

/** Calls `fn`, ignoring what it throws (ending a push subscription must not fail a read). */
function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // ignored
  }
}

/** A sleep that a hint can end early (`wake`); `woken` tells whether a hint came since it was reset. */
class Waiter {
  /** True once {@link wake} was called since the caller last reset it. */
  woken = false;
  private resolve: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Ends the current wait (if any) and sets {@link woken}. Safe to call at any time. */
  readonly wake = (): void => {
    this.woken = true;
    this.end();
  };

  /** Resolves after `ms` or at the next {@link wake}, whichever first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(this.end, ms);
    });
  }

  /** Ends a pending wait and clears its timer. */
  cancel(): void {
    this.end();
  }

  private readonly end = (): void => {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  };
}

/** Sends tasks and reads their results. */
export class Client {
  private readonly core: ClientCore;
  private readonly defaults: SendOptions;

  /**
   * @param options broker, backend (defaults: new in-memory ones — only useful in the same process as
   *   a server built on the same instances), logger, expiries and send defaults.
   */
  constructor(options?: ClientOptions);
  /** @internal */
  constructor(options: ClientOptions, core: ClientCore);
  constructor(options: ClientOptions = {}, core?: ClientCore) {
    this.core = core ?? {
      broker: options.broker ?? new MemoryBroker(),
      backend: options.backend ?? new MemoryBackend(),
      logger: options.logger ?? consoleLogger('warn'),
      statusExpires: checkExpiry('statusExpires', options.statusExpires ?? DEFAULT_EXPIRES),
      resultExpires: checkExpiry('resultExpires', options.resultExpires ?? DEFAULT_EXPIRES),
      closed: false,
      ownsConnections: true,
    };
    this.defaults = { ...(options.sendDefaults ?? {}) };
    validateSendOptions(this.defaults);
  }

  /**
   * A view of this client whose sends use `options` (over this client's defaults), YTask's
   * `SetTaskCtl`: `client.with({ retryCount: 5, runAfter: 2000 }).send(add, 1, 2)`. Shares connections.
   */
  with(options: SendOptions): Client {
    validateSendOptions(options);
    return new Client({ sendDefaults: { ...this.defaults, ...options } }, this.core);
  }

  /** Sends a task by typed reference; arguments are type-checked. Resolves with the id once the broker holds the message. */
  send<A extends unknown[], R>(ref: TaskRef<A, R>, ...args: A): Promise<TaskId<R>>;
  /** Sends a task by group and name (untyped). */
  send(group: string, name: string, ...args: unknown[]): Promise<TaskId>;
  send(first: TaskRef | string, ...rest: unknown[]): Promise<TaskId> {
    if (typeof first === 'string') return this.sendOne(first, rest[0] as string, rest.slice(1), this.defaults);
    // Not a reference: the group check rejects it with a typed error.
    if (first === null || first === undefined) return this.sendOne(first as unknown as string, '', rest, this.defaults);
    return this.sendOne(first.group, first.name, rest, this.defaults);
  }

  /**
   * Sends many tasks of one kind in one broker round trip where the broker allows. Resolves with
   * their ids in order. The `id` send option cannot be used here (ids are generated).
   */
  async sendMany<A extends unknown[], R>(ref: TaskRef<A, R>, argsList: ReadonlyArray<A>): Promise<Array<TaskId<R>>> {
    this.checkOpen();
    if (this.defaults.id !== undefined) throw new InvalidOptionError('sendMany generates ids: do not set the id option');
    assertName('group', ref.group);
    assertName('task', ref.name);
    const now = Date.now();
    const backoff = resolveBackoff(this.defaults.backoff);
    const msgs = argsList.map((args, i) => this.buildMessage(ref.group, ref.name, args, this.defaults, randomUUID(), now, i, backoff));
    await this.core.broker.connect();
    await Promise.all([
      this.core.broker.publishBatch(
        ref.group,
        msgs.map((m) => ({ body: encodeMessage(m), options: m.runAt === null ? {} : { availableAt: m.runAt } })),
      ),
      ...msgs.map((m) => this.recordSent(m)),
    ]);
    return msgs.map((m) => m.id as TaskId<R>);
  }

  private async sendOne(group: string, name: string, args: unknown[], opts: SendOptions): Promise<TaskId> {
    this.checkOpen();
    assertName('group', group);
    assertName('task', name);
    const id = opts.id ?? randomUUID();
    const msg = this.buildMessage(group, name, args, opts, id, Date.now(), 0);
    const body = encodeMessage(msg);
    if (opts.id !== undefined) return this.sendIdempotent(msg, body);
    // A fresh id cannot collide: record `sent` and publish concurrently. The `absent` guard keeps a
    // worker's `running` (if it got there first) from being overwritten. Both are waited for; the
    // send fails only when the publish failed (the state write is best effort: the worker writes
    // the next state anyway).
    const publish = this.core.broker.publish(group, body, msg.runAt === null ? {} : { availableAt: msg.runAt });
    const record = this.recordSent(msg);
    let failure: { reason: unknown } | undefined;
    try {
      await publish;
    } catch (reason) {
      failure = { reason };
    }
    if (record !== null) {
      try {
        await record;
      } catch {
        // best effort, see above
      }
    }
    if (failure !== undefined) {
      await this.core.backend.delete(id).catch(() => undefined);
      throw failure.reason;
    }
    return id as TaskId;
  }

  /** Explicit id: claim it first; only the sender that created the state publishes. */
  private async sendIdempotent(msg: TaskMessage, body: string): Promise<TaskId> {
    if (this.core.statusExpires === 0) {
      throw new InvalidOptionError('an explicit id (idempotency key) needs stored states: statusExpires must not be 0');
    }
    const claim = await this.recordSent(msg);
    if (claim && !claim.written) {
      this.core.logger.debug('duplicate send ignored', { id: msg.id, status: claim.previous?.status });
      return msg.id;
    }
    try {
      await this.core.broker.publish(msg.group, body, msg.runAt === null ? {} : { availableAt: msg.runAt });
    } catch (err) {
      // The message is not in the broker: free the id so that a retried send can claim it again.
      await this.core.backend.delete(msg.id).catch(() => undefined);
      throw err;
    }
    return msg.id;
  }

  private buildMessage(
    group: string,
    name: string,
    args: unknown[],
    o: SendOptions,
    id: string,
    now: number,
    index: number,
    backoff: Backoff = resolveBackoff(o.backoff),
  ): TaskMessage {
    // Generated ids (UUIDs) are valid; a given one is checked.
    if (o.id !== undefined && !ID_PATTERN.test(id)) throw new InvalidOptionError('id must be 1 to 200 printable ASCII characters without spaces');
    const encoded = encodeValueFast(args, index === 0 ? 'arguments' : `arguments of task #${index}`);
    let runAt: number | null = null;
    if (o.runAt !== undefined) runAt = toEpoch('runAt', o.runAt);
    else if (o.runAfter !== undefined && o.runAfter > 0) runAt = now + o.runAfter;
    return {
      v: 1,
      id,
      group,
      name,
      args: encoded,
      retriesLeft: o.retryCount ?? DEFAULT_RETRY_COUNT,
      retriesUsed: 0,
      backoff,
      sentAt: now,
      runAt,
      expireAt: o.expireAt === undefined ? null : toEpoch('expireAt', o.expireAt),
      timeoutMs: o.timeout ?? null,
      firstUnknownAt: null,
    };
  }

  /** Writes the `sent` state of a new message (guard `absent`); `null` when states are not stored. */
  private recordSent(msg: TaskMessage): Promise<WriteOutcome> | null {
    if (this.core.statusExpires === 0) return null;
    const state: TaskState = {
      v: 1,
      id: msg.id,
      group: msg.group,
      name: msg.name,
      status: 'sent',
      retriesUsed: 0,
      retriesLeft: msg.retriesLeft,
      sentAt: msg.sentAt,
      updatedAt: msg.sentAt,
    };
    if (msg.runAt !== null) state.retryAt = msg.runAt;
    return this.core.backend.write({ state, stateTtl: this.core.statusExpires, previous: 'refused', guard: 'absent' });
  }

  /**
   * Waits until the task is finished and resolves with its result; rejects with `ResultTimeoutError`
   * (code ERR_RESULT_TIMEOUT) when `timeoutMs` passes first. A finished task that failed resolves
   * too: check `isSuccess()`.
   *
   * When the backend can push a hint on final writes (`watchFinal`, e.g. Redis pub/sub), the wait
   * subscribes first and re-reads as soon as a hint arrives, so the latency does not depend on the
   * poll interval. Polling goes on as the fallback (and is all there is without push): quickly at
   * first, then every `intervalMs` (default 300, as YTask's demo).
   */
  async getResult<R>(id: TaskId<R> | string, timeoutMs: number, intervalMs = 300): Promise<TaskResult<R>> {
    this.checkOpen();
    checkMs('timeout', timeoutMs, 0);
    checkMs('interval', intervalMs, 1);
    const deadline = Date.now() + timeoutMs;
    const waiter = new Waiter();
    const backend = this.core.backend;
    let hinted = false;
    // A notice carries the final write itself: no read is needed (states must be stored for it to
    // stand for what getStatus would read).
    let noticed: TaskResult<R> | undefined;
    const hint = (notice?: FinalNotice): void => {
      if (notice !== undefined && noticed === undefined && this.core.statusExpires !== 0) {
        const { state, result } = notice;
        if (state.id === id && isFinalStatus(state.status)) noticed = new TaskResult<R>(id, state, state.status === 'success' ? result : null);
      }
      hinted = true;
      waiter.wake();
    };
    let stop: (() => void) | undefined;
    let finished = false;
    // Subscribe first. The subscription's acknowledgement wakes the waiter too: the read that follows
    // it cannot miss a final write (a later write is announced). A rejection leaves plain polling.
    let watching: Promise<() => void> | undefined;
    try {
      watching = backend.watchFinal?.(id, hint);
    } catch (err) {
      watching = Promise.reject(err);
    }
    const push = watching !== undefined;
    watching?.then(
      (end) => {
        if (finished) safely(end);
        else stop = end;
        waiter.wake();
      },
      (err: unknown) => {
        this.core.logger.debug('getResult: no push hints, polling only', { id, error: err });
        waiter.wake();
      },
    );
    let wait = Math.min(2, intervalMs);
    try {
      // With push, the first read waits for the subscription (or the first poll delay, whichever first).
      if (push) await waiter.wait(Math.min(wait, timeoutMs));
      for (;;) {
        waiter.woken = false;
        if (noticed !== undefined) return noticed;
        // After a hint the task has most likely finished: read state and result in one round trip.
        const r = hinted ? await this.readFinished<R>(id) : await this.getStatus<R>(id);
        hinted = false;
        if (r?.isFinished()) return r;
        const left = deadline - Date.now();
        if (left <= 0) throw new ResultTimeoutError(id, timeoutMs);
        // A hint that arrived during the read means: read again at once.
        if (!waiter.woken) await waiter.wait(Math.min(wait, left));
        wait = Math.min(intervalMs, wait * 2);
      }
    } finally {
      finished = true;
      waiter.cancel();
      if (stop !== undefined) safely(stop);
    }
  }

  /**
   * Reads a task's current state (and value, when it succeeded) without waiting. `null` when nothing
   * is stored for the id (unknown, expired, or statuses/results not stored).
   */
  async getStatus<R>(id: TaskId<R> | string): Promise<TaskResult<R> | null> {
    this.checkOpen();
    const state = this.core.statusExpires === 0 ? null : await this.core.backend.read(id);
    if (state !== null && state.status !== 'success') return new TaskResult<R>(id, state, null);
    const result = await this.core.backend.readResult(id);
    if (state === null && result === null) return null;
    return new TaskResult<R>(id, state, result);
  }

  /**
   * {@link getStatus} with state and result read concurrently (one round trip where the backend
   * pipelines). The result read may run before the state read: when the state says success and no
   * result was seen, the result is read again (it was written together with that state).
   */
  private async readFinished<R>(id: TaskId<R> | string): Promise<TaskResult<R> | null> {
    if (this.core.statusExpires === 0) return this.getStatus<R>(id);
    this.checkOpen();
    const backend = this.core.backend;
    const resultRead = backend.readResult(id);
    let state: TaskState | null;
    try {
      state = await backend.read(id);
    } catch (err) {
      resultRead.catch(() => undefined);
      throw err;
    }
    if (state !== null && state.status !== 'success') {
      resultRead.catch(() => undefined);
      return new TaskResult<R>(id, state, null);
    }
    let result = await resultRead;
    if (result === null && state !== null) result = await backend.readResult(id);
    if (state === null && result === null) return null;
    return new TaskResult<R>(id, state, result);
  }

  /**
   * Aborts a task: if it has not started it never runs; if it is running, its `ctl.signal` fires
   * (within the workers' `abortPollMs`). Resolves `true` when the abort was recorded, `false` when
   * the task had already finished.
   */
  async abort(id: TaskId | string): Promise<boolean> {
    this.checkOpen();
    const current = await this.core.backend.read(id);
    const now = Date.now();
    const state: TaskState = {
      v: 1,
      id,
      group: current?.group ?? '',
      name: current?.name ?? '',
      status: 'aborted',
      retriesUsed: current?.retriesUsed ?? 0,
      retriesLeft: current?.retriesLeft ?? 0,
      error: { name: 'TaskAbortedError', message: 'task was aborted by a client', code: 'ERR_ABORTED' },
      finishedAt: now,
      updatedAt: now,
    };
    if (current?.sentAt !== undefined) state.sentAt = current.sentAt;
    if (current?.startedAt !== undefined) state.startedAt = current.startedAt;
    // The abort marker must outlive the message even when states are otherwise not stored.
    const ttl = this.core.statusExpires === 0 ? DEFAULT_EXPIRES : this.core.statusExpires;
    const out = await this.core.backend.write({ state, stateTtl: ttl, previous: 'refused', guard: 'notFinal' });
    return out.written;
  }

  /** Lists a group's dead letters, oldest first. */
  async deadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]> {
    this.checkOpen();
    assertName('group', group);
    return this.core.broker.listDeadLetters(group, options);
  }

  /** Moves dead letters (the given ids, or all) back to their queue. Resolves with how many moved. */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.checkOpen();
    assertName('group', group);
    // A dead-lettered task usually has a final failure state, which would make workers skip it: give
    // each decodable one a fresh `sent` state first (a stored success is kept: guard notSuccess).
    const wanted = ids === undefined ? undefined : new Set(ids);
    const page = 500;
    for (let offset = 0; ; offset += page) {
      const batch = await this.core.broker.listDeadLetters(group, { offset, limit: page });
      await Promise.all(
        batch.filter((d) => wanted === undefined || wanted.has(d.id)).map((d) => this.resetForRedrive(d.body)),
      );
      if (batch.length < page) break;
    }
    return this.core.broker.redriveDeadLetters(group, ids);
  }

  private async resetForRedrive(body: string): Promise<void> {
    if (this.core.statusExpires === 0) return;
    let msg: TaskMessage;
    try {
      msg = decodeMessage(body);
    } catch {
      return; // still undecodable: it will be dead-lettered again, with its reason
    }
    const now = Date.now();
    const state: TaskState = {
      v: 1, id: msg.id, group: msg.group, name: msg.name, status: 'sent',
      retriesUsed: msg.retriesUsed, retriesLeft: msg.retriesLeft, sentAt: msg.sentAt, updatedAt: now,
    };
    await this.core.backend.write({ state, stateTtl: this.core.statusExpires, previous: 'refused', guard: 'notSuccess' });
  }

  /** Deletes dead letters (the given ids, or all). Resolves with how many were deleted. */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.checkOpen();
    assertName('group', group);
    return this.core.broker.deleteDeadLetters(group, ids);
  }

  /** Sends signal `name` with `payload` to a durable flow (kept until its `flow.waitFor(name)`), and wakes it. */
  signal(id: TaskId | string, name: string, payload?: unknown): Promise<void> {
    return this.openThen(() => signalFlow(this.core, id, name, payload));
  }

  /** Reads a durable flow's state and journal (steps, signals, what it waits on); null when unknown. */
  getFlow(id: TaskId | string): Promise<FlowInfo | null> {
    return this.openThen(() => getFlow(this.core, id));
  }

  /** Runs a finished durable flow again from a step (`ERR_FLOW_RUNNING` while it runs). */
  restartFlow(id: TaskId | string, options?: RestartOptions): Promise<void> {
    return this.openThen(() => restartFlow(this.core, id, options));
  }

  private async openThen<T>(fn: () => Promise<T>): Promise<T> {
    this.checkOpen();
    return fn();
  }

  /** Closes the client's broker and backend (unless a server owns them). Idempotent. */
  async close(): Promise<void> {
    if (this.core.closed) return;
    this.core.closed = true;
    if (this.core.ownsConnections) await Promise.all([this.core.broker.close(), this.core.backend.close()]);
  }

  private checkOpen(): void {
    if (this.core.closed) throw new ClosedError('client');
  }
}

/** Validates per-send options at the call site (typed errors, nothing sent). */
export function validateSendOptions(o: SendOptions): void {
  if (o.retryCount !== undefined && (!Number.isInteger(o.retryCount) || o.retryCount < 0)) {
    throw new InvalidOptionError(`retryCount must be a whole number ≥ 0, got ${String(o.retryCount)}`);
  }
  if (o.runAfter !== undefined) checkMs('runAfter', o.runAfter, 0);
  if (o.runAt !== undefined) toEpoch('runAt', o.runAt);
  if (o.expireAt !== undefined) toEpoch('expireAt', o.expireAt);
  if (o.timeout !== undefined) checkMs('timeout', o.timeout, 1);
  if (o.backoff !== undefined) resolveBackoff(o.backoff);
  if (o.id !== undefined && (typeof o.id !== 'string' || !ID_PATTERN.test(o.id))) {
    throw new InvalidOptionError('id must be 1 to 200 printable ASCII characters without spaces');
  }
}

/** @internal Builds a client that shares a server's connections (closing it does not close them). */
export function clientOn(
  broker: Broker,
  backend: Backend,
  logger: Logger,
  statusExpires: Expiry,
  resultExpires: Expiry,
  sendDefaults: SendOptions,
): Client {
  return new Client({ sendDefaults }, { broker, backend, logger, statusExpires, resultExpires, closed: false, ownsConnections: false });
}

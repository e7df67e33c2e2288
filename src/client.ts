/**
 * The client: sends tasks, reads their state and results, aborts them, manages dead letters.
 */
import { randomUUID } from 'node:crypto';
import type { Backend, Expiry } from './backend.js';
import type { Broker, DeadLetter } from './broker.js';
import { ClosedError, InvalidOptionError } from './errors.js';
import { waitForResult } from './result-wait.js';
import { deliver, publishMany } from './deliver.js';
import { sendInTx, sendManyInTx } from './tx-send.js';
import { buildMessage, validateSendOptions } from './outgoing.js';
import { checkSendSupport } from './limits.js';
import { consoleLogger, type Logger } from './logger.js';
import { assertName } from './names.js';
import { checkExpiry, checkMs, DEFAULT_EXPIRES, resolveBackoff, type SendOptions } from './options.js';
import { resolveBounds, type ClientBounds, type ClientOptions } from './client-options.js';
import { TaskResult } from './result.js';
import { resolveInstrumentation, type Instrumentation, type SendDone } from './instrumentation.js';
import type { TaskState } from './state.js';
import type { TaskId, TaskRef } from './task.js';
import { Operations } from './ops/operations.js';
import { Schedules } from './schedule/api.js';
import { getFlow, restartFlow, signalFlow, wakeAbortedFlow, type FlowInfo, type RestartOptions } from './flow/client-ops.js';
import { getWorkflow, sendWorkflow } from './workflow/client-ops.js';
import { chain as chainOf, chord as chordOf, group as groupOf } from './workflow/build.js';
import type { CallbackCheck } from './workflow/build.js';
import type { ChainCheck, GroupOptions, GroupPolicy, GroupValue, ItemsCheck, LastOut, Step, StepOut, WorkflowInfo } from './workflow/types.js';
import { waitReasonOf } from './wait-reason.js';
import { redriveDeadLetters } from './redrive.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';

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
  /** Time bounds (see {@link ClientOptions}). */
  bounds: ClientBounds;
  /** Metrics and tracing hooks, when configured. */
  instrumentation?: Instrumentation | undefined;
}

/** Sends tasks and reads their results. */
export class Client {
  private readonly core: ClientCore;
  private readonly defaults: SendOptions;
  private opsInstance: Operations | undefined;

  /** The operations API: counts, task lists, workers, retry, purge, pause/resume (see `src/ops/`). */
  get ops(): Operations {
    const { broker, backend, statusExpires } = this.core;
    return (this.opsInstance ??= new Operations({ broker, backend, statusExpires, checkOpen: () => this.checkOpen() }));
  }
  private scheduleApi: Schedules | undefined;

  /**
   * @param options broker, backend, logger, expiries, send defaults and time bounds. Without a
   *   broker, a new in-memory one (and, without a backend, a new in-memory backend) is used — only
   *   useful in the same process as a server built on the same instances. A broker other than the
   *   in-memory one needs a backend: results live there, and a client-local memory backend would
   *   never see them (InvalidOptionError).
   */
  constructor(options?: ClientOptions);
  /** @internal */
  constructor(options: ClientOptions, core: ClientCore);
  constructor(options: ClientOptions = {}, core?: ClientCore) {
    if (core === undefined && options.backend === undefined && options.broker !== undefined && options.broker.kind !== 'memory') {
      throw new InvalidOptionError(
        `a client with the ${options.broker.kind} broker needs a backend (e.g. the one its workers write to); without one, results would be looked for in a private in-memory backend`,
      );
    }
    this.core = core ?? {
      broker: options.broker ?? new MemoryBroker(),
      backend: options.backend ?? new MemoryBackend(),
      logger: options.logger ?? consoleLogger('warn'),
      statusExpires: checkExpiry('statusExpires', options.statusExpires ?? DEFAULT_EXPIRES),
      resultExpires: checkExpiry('resultExpires', options.resultExpires ?? DEFAULT_EXPIRES),
      closed: false,
      ownsConnections: true,
      bounds: resolveBounds(options),
      instrumentation: resolveInstrumentation(options.instrumentation, options.logger ?? consoleLogger('warn')),
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

  /**
   * Named recurring schedules (cron in an IANA time zone, or intervals): upsert, list, pause,
   * resume, trigger, remove. Needs a backend with a schedule store (memory, Redis).
   */
  get schedules(): Schedules {
    this.scheduleApi ??= new Schedules(this, this.core.backend, this.core.statusExpires);
    return this.scheduleApi;
  }

  /** Sends a task by group and name (untyped). */
  send(group: string, name: string, ...args: unknown[]): Promise<TaskId>;
  /**
   * Sends a task by typed reference; arguments are type-checked. Resolves with the id once the broker
   * holds the message (bounded by `sendTimeoutMs`). (This overload comes last so that a wrong call
   * reports its error, not the untyped one's.)
   */
  send<A extends unknown[], R>(ref: TaskRef<A, R>, ...args: NoInfer<A>): Promise<TaskId<R>>;
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
  async sendMany<A extends unknown[], R>(ref: TaskRef<A, R>, argsList: ReadonlyArray<NoInfer<A>>): Promise<Array<TaskId<R>>> {
    this.checkOpen();
    if (this.defaults.id !== undefined) throw new InvalidOptionError('sendMany generates ids: do not set the id option');
    assertName('group', ref.group);
    assertName('task', ref.name);
    const now = Date.now();
    const backoff = resolveBackoff(this.defaults.backoff);
    checkSendSupport(this.core.broker, this.defaults.priority, this.defaults.key);
    const msgs = argsList.map((args, i) => buildMessage(ref.group, ref.name, args, this.defaults, randomUUID(), now, i, backoff));
    if (this.defaults.tx !== undefined) {
      await sendManyInTx(this.core, ref.group, msgs, this.defaults.tx);
      return msgs.map((m) => m.id as TaskId<R>);
    }
    const inst = this.core.instrumentation;
    if (inst !== undefined) {
      const done = msgs.map((m) => inst.send?.(m));
      await reported(publishMany(this.core, ref.group, msgs, now), (error) => done.forEach((d) => d?.(error)));
    } else {
      await publishMany(this.core, ref.group, msgs, now);
    }
    return msgs.map((m) => m.id as TaskId<R>);
  }

  private async sendOne(group: string, name: string, args: unknown[], opts: SendOptions): Promise<TaskId> {
    this.checkOpen();
    assertName('group', group);
    assertName('task', name);
    checkSendSupport(this.core.broker, opts.priority, opts.key);
    const id = opts.id ?? randomUUID();
    const msg = buildMessage(group, name, args, opts, id, Date.now(), 0);
    if (opts.tx !== undefined) return sendInTx(this.core, msg, opts.tx, opts.id !== undefined);
    const done = this.core.instrumentation?.send?.(msg);
    const explicitId = opts.id !== undefined;
    return done === undefined ? deliver(this.core, msg, explicitId) : reported(deliver(this.core, msg, explicitId), done);
  }

  /**
   * Waits until the task is finished and resolves with its result; rejects with `ResultTimeoutError`
   * (code ERR_RESULT_TIMEOUT) when `timeoutMs` passes first — also when a backend call hangs (each
   * read is raced against the time left). A finished task that failed resolves too: check
   * `isSuccess()`. When states are stored and nothing is stored for the id during `notFoundAfterMs`
   * (default 2 000), it rejects with `NotFoundError` (ERR_NOT_FOUND) instead of waiting the whole
   * timeout: the id was never sent, or its state expired. (With `statusExpires: 0` nothing tells an
   * unknown id from a task still running: it waits the whole timeout.)
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
    return waitForResult<R>(
      {
        backend: this.core.backend,
        logger: this.core.logger,
        statusExpires: this.core.statusExpires,
        notFoundAfterMs: this.core.bounds.notFoundAfterMs,
        read: (afterHint) => (afterHint ? this.readFinished<R>(id) : this.readStatus<R>(id)),
      },
      id,
      timeoutMs,
      intervalMs,
    );
  }

  /**
   * Reads a task's current state (and value, when it succeeded) without waiting. `null` when nothing
   * is stored for the id (unknown, expired, or statuses/results not stored). For a task not started
   * yet (`sent`, or `waiting-retry` past its retry time) that flow control holds back, `waiting` says
   * why (one more broker call, only for such tasks; see `src/wait-reason.ts`).
   */
  async getStatus<R>(id: TaskId<R> | string): Promise<TaskResult<R> | null> {
    const status = await this.readStatus<R>(id);
    if (status === null || status.state === null) return status;
    // A task not started yet: is flow control holding it back (TaskResult.waiting)?
    const waiting = await waitReasonOf(this.core.broker, this.core.backend, status.state);
    return waiting === undefined ? status : new TaskResult<R>(id, status.state, null, waiting);
  }

  /** {@link getStatus} without the flow-control look-up (getResult's polls). */
  private async readStatus<R>(id: TaskId<R> | string): Promise<TaskResult<R> | null> {
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
    if (this.core.statusExpires === 0) return this.readStatus<R>(id);
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
   * the task had already finished — or, when states are stored, when nothing is stored for the id
   * (never sent, or expired): then nothing is written, so a later send of that id runs normally.
   * (With `statusExpires: 0` an unknown id cannot be told apart: the abort marker is stored anyway.)
   */
  async abort(id: TaskId | string): Promise<boolean> {
    this.checkOpen();
    const current = await this.core.backend.read(id);
    if (current === null && this.core.statusExpires !== 0) return false;
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
    // A durable flow waiting on children is woken at once, so that it aborts them now.
    if (out.written && current !== null) await wakeAbortedFlow(this.core, current);
    return out.written;
  }

  /** Lists a group's dead letters, oldest first. */
  async deadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]> {
    this.checkOpen();
    assertName('group', group);
    return this.core.broker.listDeadLetters(group, options);
  }

  /** Moves dead letters (the given ids, or all) back to their queue, each with a fresh `sent` state (`./redrive.ts`). Resolves with how many moved. */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.checkOpen();
    assertName('group', group);
    return redriveDeadLetters(this.core.broker, this.core.backend, this.core.statusExpires, group, ids);
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

  /**
   * Sends a chain (YTask's workflow): each step gets the previous step's value as its last argument
   * (compile-time checked); one id, whose result is the last step's value. See README "Workflows".
   */
  chain<const S extends readonly [Step, ...Step[]]>(...steps: S & ChainCheck<S>): Promise<TaskId<LastOut<S>>> {
    return this.openThen(() => sendWorkflow<LastOut<S>>(this, this.core.backend, chainOf(...(steps as unknown as [Step]))));
  }

  /** Sends a group: its tasks run in parallel; one id, whose result is their values in order. */
  group<const S extends readonly Step[], P extends GroupPolicy = 'failFast'>(items: S & ItemsCheck<S>, options?: GroupOptions<P>): Promise<TaskId<GroupValue<S, P>>> {
    return this.openThen(() => sendWorkflow<GroupValue<S, P>>(this, this.core.backend, groupOf(items as readonly Step[], options)));
  }

  /** Sends a chord: a group whose array of values is passed to `callback`; one id, the callback's value. */
  chord<const S extends readonly Step[], C extends Step, P extends GroupPolicy = 'failFast'>(
    items: S & ItemsCheck<S>,
    callback: C & CallbackCheck<C, GroupValue<S, P>>,
    options?: GroupOptions<P>,
  ): Promise<TaskId<StepOut<C>>> {
    return this.openThen(() => sendWorkflow<StepOut<C>>(this, this.core.backend, chordOf(items as readonly Step[], callback as Step, options)));
  }

  /** Reads a workflow: its status and value or error, and every task's group, name, status, attempts, times, value | error. */
  getWorkflow(id: TaskId | string): Promise<WorkflowInfo | null> {
    return this.openThen(() => getWorkflow(this.core.backend, id));
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

/** Settles `work` and tells `done` how it went (with the error when it failed); resolves or rejects as `work`. */
async function reported<T>(work: Promise<T>, done: SendDone): Promise<T> {
  try {
    const out = await work;
    done();
    return out;
  } catch (err) {
    done(err instanceof Error ? err : new Error(String(err)));
    throw err;
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
  instrumentation?: Instrumentation,
): Client {
  return new Client(
    { sendDefaults },
    { broker, backend, logger, statusExpires, resultExpires, closed: false, ownsConnections: false, bounds: resolveBounds({}), instrumentation },
  );
}

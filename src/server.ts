/**
 * The server: registers task handlers into groups and runs workers for them (YTask's `Server`).
 */
import { EventEmitter } from 'node:events';
import type { Backend } from './backend.js';
import type { Broker } from './broker.js';
import { Client, clientOn } from './client.js';
import { validateSendOptions } from './outgoing.js';
import { ClosedError, InvalidOptionError, toError } from './errors.js';
import type { ServerEvents } from './events.js';
import { consoleLogger, type Logger } from './logger.js';
import { assertName } from './names.js';
import { checkMs, resolveServerSettings, type SendOptions, type ServerOptions, type ServerSettings } from './options.js';
import type { AddOptions, CtlHandler, PlainHandlerCheck, TaskRef } from './task.js';
import { GroupWorker, type Registration } from './worker.js';
import { ServerOps } from './ops/server-ops.js';
import { ScheduleTicks } from './schedule/tick.js';
import { assertFlowsRunnable, registerFlow } from './flow/registry.js';
import type { FlowHandler, FlowOptions } from './flow/types.js';
import { resolveInstrumentation, type Instrumentation } from './instrumentation.js';
import { checkGroupSupport, resolveGroupLimits, type GroupOptions } from './limits.js';
import { WorkflowFlows } from './workflow/flow.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';

/**
 * Registers handlers and runs workers. With no options it uses an in-memory broker and backend (one
 * process, no services): the embedded default for quick starts, unit tests and dry runs.
 *
 * Events (`server.on(...)`): `started`, `succeeded`, `retrying`, `failed`, `expired`, `aborted`,
 * `deadLettered` — see {@link ServerEvents}.
 */
export class Server extends EventEmitter<ServerEvents> {
  /** The broker this server fetches from. */
  readonly broker: Broker;
  /** The backend this server writes to. */
  readonly backend: Backend;
  /** The logger. */
  readonly logger: Logger;
  private readonly settings: ServerSettings;
  private readonly sendDefaults: SendOptions;
  private readonly registry = new Map<string, Registration>();
  private readonly workers = new Map<string, GroupWorker>();
  private state: 'open' | 'stopping' | 'closed' = 'open';
  private clientInstance: Client | undefined;
  /** Worker registry heartbeat, paused groups, counters and watchdog (`src/ops/server-ops.ts`). */
  private readonly ops: ServerOps;
  /** Tick handlers of schedules, looked up for every group this server runs. */
  private ticks: ScheduleTicks | undefined;
  private readonly instrumentation: Instrumentation | undefined;
  /** The built-in workflow flow (chain, group, chord), in every group this server runs. */
  private readonly workflows = new WorkflowFlows();

  /** @param options broker, backend, logger, expiries, leases... (see {@link ServerOptions}) */
  constructor(options: ServerOptions = {}) {
    super();
    this.settings = resolveServerSettings(options);
    if (options.backend === undefined && options.broker !== undefined && options.broker.kind !== 'memory') {
      throw new InvalidOptionError(
        `a server with the ${options.broker.kind} broker needs a backend (the one its clients read): without one, results would be written to a private in-memory backend no other process sees`,
      );
    }
    this.broker = options.broker ?? new MemoryBroker();
    this.backend = options.backend ?? new MemoryBackend();
    this.logger = options.logger ?? consoleLogger('warn');
    this.sendDefaults = { ...(options.sendDefaults ?? {}) };
    validateSendOptions(this.sendDefaults);
    this.ops = new ServerOps(
      {
        backend: this.backend,
        logger: this.logger,
        groups: () => [...this.workers.values()].map((w) => ({ group: w.group, concurrency: w.concurrency, running: w.running, paused: false })),
        abnormal: (group, tasks, at) => this.safeEmit('abnormal', { group, tasks, at }),
      },
      options,
    );
    this.instrumentation = resolveInstrumentation(options.instrumentation, this.logger);
    this.instrumentation?.server?.(this);
  }

  /**
   * Registers a handler that receives the task control object first. Returns a typed reference for
   * `client.send(ref, ...args)`.
   */
  add<A extends unknown[], R>(group: string, name: string, fn: CtlHandler<A, R>, options: AddOptions & { ctl: true }): TaskRef<A, Awaited<R>>;
  /**
   * Registers a handler. Returns a typed reference for `client.send(ref, ...args)`. A handler whose
   * first parameter is a `TaskCtl` does not compile here: it needs `{ ctl: true }`.
   */
  add<A extends unknown[], R>(group: string, name: string, fn: PlainHandlerCheck<A, R>, options?: AddOptions & { ctl?: false }): TaskRef<A, Awaited<R>>;
  add(group: string, name: string, fn: (...args: never[]) => unknown, options: AddOptions = {}): TaskRef {
    assertName('group', group);
    assertName('task', name);
    if (typeof fn !== 'function') throw new InvalidOptionError(`handler of "${group}/${name}" must be a function`);
    if (options.timeout !== undefined) checkMs('timeout', options.timeout, 1);
    const key = `${group}\u0000${name}`;
    if (this.registry.has(key)) throw new InvalidOptionError(`task "${name}" is already registered in group "${group}"`);
    this.registry.set(key, { group, name, fn, options: { ...options } });
    return Object.freeze({ group, name });
  }

  /**
   * Registers a durable flow (see README "Flows"): `fn(flow, ...args)` is run again from the top
   * after every suspension or crash, its `flow.step`/`sleep`/`call`/`waitFor` results replayed from
   * the backend's journal. Sent like any task; returns a typed reference.
   */
  flow<A extends unknown[], R>(group: string, name: string, fn: FlowHandler<A, R>, options: FlowOptions<Awaited<R>> = {}): TaskRef<A, Awaited<R>> {
    return registerFlow((marker, o) => this.add(group, name, marker as () => unknown, o), fn, options);
  }

  /**
   * Starts a worker for `group` with at most `concurrency` handlers running at once. Several groups
   * may run in one process; each group once. Resolves when the broker and backend are connected.
   * `options`: flow control of the group (rate limits, per-key concurrency, see {@link GroupOptions});
   * one the broker cannot enforce natively rejects with `UnsupportedError` (ERR_UNSUPPORTED).
   */
  async run(group: string, concurrency = 1, options?: GroupOptions): Promise<void> {
    this.checkOpen();
    assertName('group', group);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`concurrency must be a whole number ≥ 1, got ${concurrency}`);
    if (this.workers.has(group)) throw new InvalidOptionError(`group "${group}" is already running in this server`);
    const ticks = (this.ticks ??= new ScheduleTicks({ backend: this.backend, logger: this.logger, client: () => this.client(), emit: (e, ...a) => this.safeEmit(e, ...a) }));
    assertFlowsRunnable(this.registry.values(), group, this.backend, this.settings.statusExpires);
    const flow = resolveGroupLimits(options);
    checkGroupSupport(this.broker, group, flow, this.backend);
    const worker = new GroupWorker(
      {
        broker: this.broker,
        backend: this.backend,
        logger: this.logger,
        settings: this.settings,
        lookup: (g, n) => this.registry.get(`${g}\u0000${n}`) ?? ticks.lookup(g, n) ?? this.workflows.lookup(g, n),
        emit: (event, ...args) => {
          this.ops.count(event);
          this.safeEmit(event, ...args);
        },
        listens: (event) => this.ops.counts(event) || this.listenerCount(event) > 0,
        paused: (g) => this.ops.isPaused(g),
        instrumentation: this.instrumentation,
      },
      group,
      concurrency,
      flow,
    );
    this.workers.set(group, worker);
    await Promise.all([this.broker.connect(), this.backend.connect()]);
    await this.ops.start();
    if (this.state !== 'open') return;
    worker.start();
    void this.ops.heartbeat();
    this.logger.info('worker started', { group, concurrency, broker: this.broker.kind, backend: this.backend.kind });
  }

  /**
   * A client sharing this server's broker, backend and settings (YTask's `GetClient()`). Closing it
   * does not close the server's connections.
   */
  client(): Client {
    this.clientInstance ??= clientOn(
      this.broker,
      this.backend,
      this.logger,
      this.settings.statusExpires,
      this.settings.resultExpires,
      this.sendDefaults,
      this.instrumentation,
    );
    return this.clientInstance;
  }

  /** The registered tasks (group and name of each), in registration order. */
  registered(): Array<TaskRef> {
    return [...this.registry.values()].map((r) => Object.freeze({ group: r.group, name: r.name }));
  }

  /** Concurrency slots of each running group: `busy` (handlers holding a slot) of `total` (its concurrency). */
  slots(): Array<{ group: string; busy: number; total: number }> {
    return [...this.workers.values()].map((w) => ({ group: w.group, busy: w.running, total: w.concurrency }));
  }

  /** Number of handlers running now, over all groups. */
  get running(): number {
    let n = 0;
    for (const w of this.workers.values()) n += w.running;
    return n;
  }

  /**
   * Graceful shutdown: stops fetching, lets running tasks finish until `deadlineMs` from now (default
   * 30 000), hands unfinished ones back to the broker so another worker takes them, then closes the
   * broker and backend. Idempotent; called again with `deadlineMs` 0 while it runs, it stops waiting and hands the running tasks back now.
   */
  async shutdown(deadlineMs = 30_000): Promise<void> {
    if (this.state !== 'open') {
      // A second call with deadline 0 during a graceful shutdown cuts its wait short (a second Ctrl-C).
      if (this.state === 'stopping' && deadlineMs === 0) for (const w of this.workers.values()) w.hurry();
      return;
    }
    this.state = 'stopping';
    const deadline = Date.now() + deadlineMs;
    this.logger.info('shutting down', { groups: [...this.workers.keys()], running: this.running });
    await Promise.all([...this.workers.values()].map((w) => w.stop(deadline)));
    await this.ops.stop();
    await Promise.all([
      this.broker.close().catch((err: unknown) => this.logger.warn('broker close failed', { error: toError(err) })),
      this.backend.close().catch((err: unknown) => this.logger.warn('backend close failed', { error: toError(err) })),
    ]);
    this.state = 'closed';
    this.logger.info('shut down');
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new ClosedError('server');
  }

  private safeEmit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: ServerEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.logger.error('an event listener threw', { event, error: toError(err) });
    }
  }
}

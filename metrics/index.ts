/**
 * `tasuki/metrics`: Prometheus metrics of tasuki servers and clients, on `prom-client` (an optional
 * peer dependency: only this module loads it; importing `tasuki` never does).
 *
 * ```ts
 * import { createServer } from 'node:http';
 * import { Server } from 'tasuki';
 * import { TasukiMetrics } from 'tasuki/metrics';
 * const metrics = new TasukiMetrics();
 * const server = new Server({ instrumentation: metrics });  // its clients count their sends too
 * createServer(metrics.handler).listen(9464);               // GET /metrics
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Broker } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import type { Instrumentation, ProcessScope, SendDone } from '../src/instrumentation.js';
import type { TaskMessage } from '../src/message.js';
import type { Server } from '../src/server.js';
import type { TaskRef } from '../src/task.js';
import { DepthReader, type DepthResult } from './depth.js';
import { TaskLabels, type LabelPair } from './labels.js';

export { UNKNOWN_LABEL, OTHER_LABEL, type LabelPair } from './labels.js';

/** Default buckets of `tasuki_task_run_seconds` (seconds). */
export const RUN_BUCKETS: ReadonlyArray<number> = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Default buckets of `tasuki_task_wait_seconds` (seconds). */
export const WAIT_BUCKETS: ReadonlyArray<number> = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600];

/** Options of {@link TasukiMetrics}. */
export interface MetricsOptions {
  /** Registry to register the metrics in (default: a new one, {@link TasukiMetrics.registry}). */
  registry?: Registry;
  /**
   * Tasks to label by name besides those registered on attached servers — for a process that only
   * sends (typed references or `{ group, name }`).
   */
  tasks?: ReadonlyArray<Pick<TaskRef, 'group' | 'name'>>;
  /** Sent (group, task) pairs neither registered nor declared that still get their own labels (default 100); the rest count as `_other`. */
  maxUndeclaredTasks?: number;
  /** Longest wait in ms for one group's `broker.counts()` during a scrape (default 1 000). */
  countsTimeoutMs?: number;
  /** Buckets of `tasuki_task_run_seconds` (default {@link RUN_BUCKETS}). */
  runBuckets?: ReadonlyArray<number>;
  /** Buckets of `tasuki_task_wait_seconds` (default {@link WAIT_BUCKETS}). */
  waitBuckets?: ReadonlyArray<number>;
}

/** The counters of one (group, task), resolved once (the hot path does a map lookup and an increment). */
interface Series {
  sent: Counter.Internal;
  started: Counter.Internal;
  succeeded: Counter.Internal;
  failed: Counter.Internal;
  retried: Counter.Internal;
  expired: Counter.Internal;
  aborted: Counter.Internal;
  deadLettered: Counter.Internal;
  run: Histogram.Internal<'group' | 'task'>;
  wait: Histogram.Internal<'group' | 'task'>;
}

type CounterName = Exclude<keyof Series, 'run' | 'wait'>;

/**
 * Metrics of tasuki as an {@link Instrumentation}: pass it as the `instrumentation` option of a
 * `Server` (tasks started, finished, retried..., run and wait times, slots, queue depths) and of a
 * `Client` (sends). Serve {@link handler} at `/metrics`, or scrape {@link registry} yourself.
 */
export class TasukiMetrics implements Instrumentation {
  /** The registry holding every tasuki metric. */
  readonly registry: Registry;
  private readonly labels: TaskLabels;
  private readonly depth: DepthReader;
  private readonly servers: Server[] = [];
  private readonly counters: Record<CounterName, Counter<'group' | 'task'>>;
  private readonly runSeconds: Histogram<'group' | 'task'>;
  private readonly waitSeconds: Histogram<'group' | 'task'>;
  private readonly series = new Map<string, Series>();

  /** @param options registry, declared tasks, label cap, counts timeout, buckets */
  constructor(options: MetricsOptions = {}) {
    const maxUndeclared = options.maxUndeclaredTasks ?? 100;
    if (!Number.isInteger(maxUndeclared) || maxUndeclared < 0) throw new InvalidOptionError(`maxUndeclaredTasks must be a whole number ≥ 0, got ${String(maxUndeclared)}`);
    const countsTimeoutMs = options.countsTimeoutMs ?? 1000;
    if (typeof countsTimeoutMs !== 'number' || !(countsTimeoutMs >= 1 && countsTimeoutMs <= 600_000)) {
      throw new InvalidOptionError(`countsTimeoutMs must be from 1 to 600 000 ms, got ${String(countsTimeoutMs)}`);
    }
    this.registry = options.registry ?? new Registry();
    this.labels = new TaskLabels(options.tasks ?? [], maxUndeclared);
    this.depth = new DepthReader(countsTimeoutMs);
    const registers = [this.registry];
    const labelNames = ['group', 'task'] as const;
    const counter = (name: string, help: string): Counter<'group' | 'task'> => new Counter({ name, help, labelNames, registers });
    this.counters = {
      sent: counter('tasuki_tasks_sent_total', 'Tasks sent by clients of this process.'),
      started: counter('tasuki_tasks_started_total', 'Handler runs started.'),
      succeeded: counter('tasuki_tasks_succeeded_total', 'Tasks that succeeded (result stored).'),
      failed: counter('tasuki_tasks_failed_total', 'Tasks that failed for good.'),
      retried: counter('tasuki_tasks_retried_total', 'Failed runs for which a retry was scheduled.'),
      expired: counter('tasuki_tasks_expired_total', 'Tasks whose expireAt passed before they ran.'),
      aborted: counter('tasuki_tasks_aborted_total', 'Tasks aborted by a client.'),
      deadLettered: counter('tasuki_tasks_dead_lettered_total', 'Messages moved to the dead letters.'),
    };
    this.runSeconds = new Histogram({ name: 'tasuki_task_run_seconds', help: 'Handler run time (start to end of the run), every run.', labelNames, registers, buckets: [...(options.runBuckets ?? RUN_BUCKETS)] });
    this.waitSeconds = new Histogram({
      name: 'tasuki_task_wait_seconds',
      help: 'Time from send (or the scheduled runAt) to the start of the first run.',
      labelNames,
      registers,
      buckets: [...(options.waitBuckets ?? WAIT_BUCKETS)],
    });
    // One depth read per scrape, shared by the depth gauge and the error counter (the registry
    // collects metrics concurrently): the errors are counted before either reports.
    let reading: Promise<DepthResult[]> | undefined;
    const readDepth = (): Promise<DepthResult[]> =>
      (reading ??= this.depth
        .read()
        .then((results) => {
          for (const r of results) if ('error' in r) depthErrors.inc({ group: r.group, reason: r.error });
          return results;
        })
        .finally(() => (reading = undefined)));
    const depthErrors: Counter<'group' | 'reason'> = new Counter({
      name: 'tasuki_queue_depth_errors_total',
      help: "Scrapes in which a group's broker counts failed or timed out.",
      labelNames: ['group', 'reason'] as const,
      registers,
      async collect() {
        await readDepth();
      },
    });
    new Gauge({
      name: 'tasuki_queue_depth',
      help: 'Messages of a group by state (ready, delayed, in_flight, dead), read from the broker at scrape time.',
      labelNames: ['group', 'state'] as const,
      registers,
      async collect() {
        const results = await readDepth();
        this.reset();
        for (const r of results) {
          if ('error' in r) continue;
          const { ready, delayed, inFlight, dead } = r.counts;
          this.set({ group: r.group, state: 'ready' }, ready);
          this.set({ group: r.group, state: 'delayed' }, delayed);
          this.set({ group: r.group, state: 'in_flight' }, inFlight);
          this.set({ group: r.group, state: 'dead' }, dead);
        }
      },
    });
    const servers = this.servers;
    const slots = (name: string, help: string, pick: (s: { busy: number; total: number }) => number): Gauge<'group'> =>
      new Gauge({
        name,
        help,
        labelNames: ['group'] as const,
        registers,
        collect() {
          this.reset();
          const sum = new Map<string, number>();
          for (const server of servers) for (const s of server.slots()) sum.set(s.group, (sum.get(s.group) ?? 0) + pick(s));
          for (const [group, n] of sum) this.set({ group }, n);
        },
      });
    slots('tasuki_worker_slots_busy', 'Concurrency slots held by running handlers, per group.', (s) => s.busy);
    slots('tasuki_worker_slots_total', 'Concurrency slots (the concurrency of running groups), per group.', (s) => s.total);
  }

  /**
   * Watches the queue depth of `groups` on `broker` (for a process that runs no worker of them).
   * The groups of attached servers are watched on their broker already.
   */
  watchQueues(broker: Broker, groups: ReadonlyArray<string>): this {
    const list = [...groups];
    this.depth.watch({ broker, groups: () => list });
    return this;
  }

  /** The text exposition of every metric in {@link registry}. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The content type of {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * An `http` request handler serving `GET /metrics` (404 for other paths, 405 for other methods):
   * `createServer(metrics.handler).listen(9464)`.
   */
  readonly handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    this.registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': this.registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  };

  /** @inheritdoc — subscribes to the server's task events and watches its groups' queues and slots. */
  server(server: Server): void {
    this.servers.push(server);
    this.labels.addSource(() => server.registered());
    this.depth.watch({ broker: server.broker, groups: () => server.slots().map((s) => s.group) });
    const count = (what: CounterName) => (e: { group: string; name?: string }): void => this.of(this.labels.worker(e.group, e.name))[what].inc();
    server.on('started', count('started'));
    server.on('succeeded', count('succeeded'));
    server.on('failed', count('failed'));
    server.on('retrying', count('retried'));
    server.on('expired', count('expired'));
    server.on('aborted', count('aborted'));
    server.on('deadLettered', count('deadLettered'));
  }

  /** @inheritdoc — counts the send once it succeeded. */
  send(msg: TaskMessage): SendDone | undefined {
    const series = this.of(this.labels.send(msg.group, msg.name));
    return (error) => {
      if (error === undefined) series.sent.inc();
    };
  }

  /** @inheritdoc — observes the wait of a first run, and the run time. */
  process(msg: TaskMessage): ProcessScope | undefined {
    const series = this.of(this.labels.worker(msg.group, msg.name));
    const start = Date.now();
    if (msg.retriesUsed === 0) series.wait.observe(Math.max(0, start - Math.max(msg.sentAt, msg.runAt ?? 0)) / 1000);
    return {
      ran: () => series.run.observe((Date.now() - start) / 1000),
    };
  }

  /** The resolved series of a label pair. */
  private of(labels: LabelPair): Series {
    const key = `${labels.group}\u0000${labels.task}`;
    let s = this.series.get(key);
    if (s === undefined) {
      const c = this.counters;
      s = {
        sent: c.sent.labels(labels),
        started: c.started.labels(labels),
        succeeded: c.succeeded.labels(labels),
        failed: c.failed.labels(labels),
        retried: c.retried.labels(labels),
        expired: c.expired.labels(labels),
        aborted: c.aborted.labels(labels),
        deadLettered: c.deadLettered.labels(labels),
        run: this.runSeconds.labels(labels),
        wait: this.waitSeconds.labels(labels),
      };
      this.series.set(key, s);
    }
    return s;
  }
}

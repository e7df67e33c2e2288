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
import { Counter, Gauge, Registry } from 'prom-client';
import type { Broker } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import type { Instrumentation, ProcessScope, SendDone } from '../src/instrumentation.js';
import type { TaskMessage } from '../src/message.js';
import type { Server } from '../src/server.js';
import type { TaskRef } from '../src/task.js';
import { DepthReader, type DepthResult } from './depth.js';
import { TaskLabels, type LabelPair } from './labels.js';
import { LocalHistogram, type Buckets } from './local.js';

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

/** The counts of one (group, task) label pair, kept locally and exported on scrape. */
interface Series {
  labels: LabelPair;
  counts: Record<CounterName, number>;
  run: Buckets;
  wait: Buckets;
  /** The send hook's callback for this series (one per series, not per send). */
  sentDone: SendDone;
}

/** The metrics scope of one run: observes its run time. */
class RunScope implements ProcessScope {
  constructor(
    private readonly runTime: Buckets,
    private readonly start: number,
  ) {}

  /** Observes the run time. */
  ran(): void {
    this.runTime.observe((Date.now() - this.start) / 1000);
  }
}

/** The counters, in export order. */
const COUNTERS = ['sent', 'started', 'succeeded', 'failed', 'retried', 'expired', 'aborted', 'deadLettered'] as const;

type CounterName = (typeof COUNTERS)[number];

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
  private readonly runSeconds: LocalHistogram;
  private readonly waitSeconds: LocalHistogram;
  /** Series by label pair (bounded by the labels). */
  private readonly series = new Map<string, Series>();
  /** Series by raw names that are their own labels, as read by workers (registered or declared names only). */
  private readonly byName = new Map<string, Map<string, Series>>();
  /** The same for sends (also the undeclared names within the cap). */
  private readonly sentByName = new Map<string, Map<string, Series>>();

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
    const all = this.series;
    const counter = (what: CounterName, name: string, help: string): Counter<'group' | 'task'> =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const s of all.values()) if (s.counts[what] > 0) this.inc(s.labels, s.counts[what]);
        },
      });
    counter('sent', 'tasuki_tasks_sent_total', 'Tasks sent by clients of this process.');
    counter('started', 'tasuki_tasks_started_total', 'Handler runs started.');
    counter('succeeded', 'tasuki_tasks_succeeded_total', 'Tasks that succeeded (result stored).');
    counter('failed', 'tasuki_tasks_failed_total', 'Tasks that failed for good.');
    counter('retried', 'tasuki_tasks_retried_total', 'Failed runs for which a retry was scheduled.');
    counter('expired', 'tasuki_tasks_expired_total', 'Tasks whose expireAt passed before they ran.');
    counter('aborted', 'tasuki_tasks_aborted_total', 'Tasks aborted by a client.');
    counter('deadLettered', 'tasuki_tasks_dead_lettered_total', 'Messages moved to the dead letters.');
    this.runSeconds = new LocalHistogram('tasuki_task_run_seconds', 'Handler run time (start to end of the run), every run.', options.runBuckets ?? RUN_BUCKETS, this.registry);
    this.waitSeconds = new LocalHistogram(
      'tasuki_task_wait_seconds',
      'Time from send (or the scheduled runAt) to the start of the first run.',
      options.waitBuckets ?? WAIT_BUCKETS,
      this.registry,
    );
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
    const count = (what: CounterName) => (e: { group: string; name?: string }): void => {
      this.worker(e.group, e.name).counts[what]++;
    };
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
    const series = this.sentByName.get(msg.group)?.get(msg.name) ?? this.of(this.labels.send(msg.group, msg.name), msg.group, msg.name, this.sentByName);
    return series.sentDone;
  }

  /** @inheritdoc — observes the wait of a first run, and the run time. */
  process(msg: TaskMessage): ProcessScope | undefined {
    const series = this.worker(msg.group, msg.name);
    const start = Date.now();
    if (msg.retriesUsed === 0) series.wait.observe(Math.max(0, start - Math.max(msg.sentAt, msg.runAt ?? 0)) / 1000);
    return new RunScope(series.run, start);
  }

  /** The series of a name read by a worker. */
  private worker(group: string, name: string | undefined): Series {
    return (name === undefined ? undefined : this.byName.get(group)?.get(name)) ?? this.of(this.labels.worker(group, name), group, name, this.byName);
  }

  /**
   * The series of a label pair (created on first use). When the labels are the names themselves, it
   * is remembered under them in `byName`, so that the next lookup is two map reads.
   */
  private of(labels: LabelPair, group: string, name: string | undefined, byName: Map<string, Map<string, Series>>): Series {
    const key = `${labels.group}\u0000${labels.task}`;
    let s = this.series.get(key);
    if (s === undefined) {
      const counts = {} as Record<CounterName, number>;
      for (const c of COUNTERS) counts[c] = 0;
      const sentDone: SendDone = (error) => {
        if (error === undefined) counts.sent++;
      };
      s = { labels, counts, run: this.runSeconds.add(labels), wait: this.waitSeconds.add(labels), sentDone };
      this.series.set(key, s);
    }
    if (name !== undefined && labels.group === group && labels.task === name) {
      let names = byName.get(group);
      if (names === undefined) byName.set(group, (names = new Map()));
      names.set(name, s);
    }
    return s;
  }
}

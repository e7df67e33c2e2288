/**
 * The systems under benchmark, behind one small adapter interface. Each adapter is loaded only in
 * the child process that runs its round (so that one system's modules never weigh on another's RSS).
 */
import { Redis } from 'ioredis';

/**
 * Where tasuki is loaded from: the compiled package (`dist/`, what users run; `npm run bench` builds
 * it first), or the TypeScript sources through tsx when `TASUKI_BENCH_SOURCE=1`.
 */
export const TASUKI_ROOT = process.env.TASUKI_BENCH_SOURCE === '1' ? '..' : '../dist';

/**
 * Another build of tasuki to compare against in the same run (`TASUKI_BENCH_BASELINE`: the absolute
 * path of its `dist/` directory, e.g. an earlier commit built elsewhere); its rows are "tasuki (baseline)".
 */
export const TASUKI_BASELINE = process.env.TASUKI_BENCH_BASELINE;

/** Loads a tasuki module by its path in the repository (`src/index.js`, `brokers/redis.js`...), from `root`. */
export function loadTasuki<T>(path: string, root = TASUKI_ROOT): Promise<T> {
  return import(`${root}/${path}`) as Promise<T>;
}
const loadFrom = loadTasuki;

/** Where the benchmark's Redis is (`TASUKI_BENCH_REDIS_PORT`: the cost bench's private server). */
export const REDIS_HOST = '127.0.0.1';
export const REDIS_PORT = Number(process.env.TASUKI_BENCH_REDIS_PORT ?? 6379);

/** The task every system runs: a no-op that returns the payload length (so a stored result can be checked). */
export const EXPECTED_RESULT = 64;

/** Outcome of a verification pass. */
export interface Verification {
  /** Jobs found completed. */
  completed: number;
  /** Jobs whose result was read back and is the expected value (null: the system stores no results). */
  resultsStored: number | null;
  /** Jobs found failed. */
  failed: number;
}

/** One system under benchmark. Queue names are plain identifiers; the adapter adds its key prefix. */
export interface BenchSystem {
  readonly system: string;
  readonly broker: string;
  readonly backend: string;
  /** Note printed beside the system in the table. */
  readonly note?: string;
  /** Longest a timed scenario may take, when the round's default (60 s or 5 ms per job) is too short. */
  readonly limitMs?: number;
  /** Percentiles of send-call-to-handler-start over the latency round trips, where the system measures it. */
  startLatency?(): { p50: number; p99: number } | undefined;
  /** Sends one job; resolves when the system holds it. */
  sendOne(queue: string, payload: string): Promise<string>;
  /** Sends many jobs with the system's bulk API. */
  sendBulk(queue: string, payloads: string[]): Promise<string[]>;
  /** Jobs waiting in a queue that has no worker (to verify an enqueue run). */
  waiting(queue: string): Promise<number>;
  /** Starts a worker with `concurrency` on `queue`; calls `onDone` once per finished job. */
  startWorker(queue: string, concurrency: number, onDone: (ok: boolean, err?: unknown) => void): Promise<void>;
  /** Stops every worker started so far. */
  stopWorkers(): Promise<void>;
  /** Verifies that the jobs `ids` all completed (and their results are stored, where the system stores them). */
  verify(queue: string, ids: string[]): Promise<Verification>;
  /** Prepares `queue` for latency round trips (event listeners...). */
  prepareLatency(queue: string): Promise<void>;
  /** Sends one job and resolves once its result is visible to a reader; rejects when it failed. */
  roundTrip(queue: string, payload: string): Promise<void>;
  /** Closes every connection. */
  close(): Promise<void>;
}

/** Calls `each` with every batch of keys starting with `prefix` (SCAN); returns the sum of its results. */
async function scanKeys(prefix: string, each: (redis: Redis, keys: string[]) => Promise<number>): Promise<number> {
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT, lazyConnect: true });
  await redis.connect();
  let cursor = '0';
  let n = 0;
  try {
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) n += await each(redis, keys);
    } while (cursor !== '0');
  } finally {
    await redis.quit();
  }
  return n;
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK). Returns how many were deleted. */
export function deleteKeys(prefix: string): Promise<number> {
  return scanKeys(prefix, (redis, keys) => redis.unlink(...keys));
}

/** Counts keys starting with `prefix`. */
export function countKeys(prefix: string): Promise<number> {
  return scanKeys(prefix, async (_redis, keys) => keys.length);
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---- tasuki ---------------------------------------------------------------------------------------

/**
 * tasuki on Redis broker + Redis backend, RabbitMQ broker + Redis backend, memory + memory, or
 * RabbitMQ broker + memory backend (`rabbitmq-memory`: the producer and the workers of the process
 * on one in-process store; what the RabbitMQ path costs without the backend's Redis writes).
 */
export async function tasukiSystem(
  kind: 'redis' | 'rabbitmq' | 'memory' | 'rabbitmq-memory',
  prefix: string,
  withMetrics = false,
  root = TASUKI_ROOT,
  /** The Redis backend without its task index (`index: false`): the "tasuki (index off)" row. */
  noIndex = false,
  /** The Redis backend on its broker's connection (`shareConnection`): the "tasuki (one connection)" row. */
  oneConnection = false,
): Promise<BenchSystem> {
  const loadTasuki = <T>(path: string): Promise<T> => loadFrom<T>(path, root);
  const { Server, Client, silentLogger, decodeValueText } = await loadTasuki<typeof import('../src/index.js')>('src/index.js');
  // With metrics: one `tasuki/metrics` instance for the producer and the workers (as in one app).
  const metrics = withMetrics ? new (await loadTasuki<typeof import('../metrics/index.js')>('metrics/index.js')).TasukiMetrics() : undefined;
  type BrokerT = import('../src/broker.js').Broker;
  type BackendT = import('../src/backend.js').Backend;
  type ServerT = InstanceType<typeof Server>;
  type ClientT = InstanceType<typeof Client>;

  let makeBroker: () => Promise<BrokerT>;
  let makeBackend: (broker: BrokerT) => Promise<BackendT>;
  if (kind === 'memory') {
    const { MemoryBroker } = await loadTasuki<typeof import('../brokers/memory.js')>('brokers/memory.js');
    const { MemoryBackend } = await loadTasuki<typeof import('../backends/memory.js')>('backends/memory.js');
    const broker = new MemoryBroker();
    const backend = new MemoryBackend();
    // One process: producer and worker must share the in-memory instances.
    makeBroker = async () => broker;
    makeBackend = async () => backend;
  } else if (kind === 'rabbitmq-memory') {
    const { MemoryBackend, MemoryBackendStore } = await loadTasuki<typeof import('../backends/memory.js')>('backends/memory.js');
    const store = new MemoryBackendStore();
    makeBackend = async () => new MemoryBackend({ store });
    const { RabbitMQBroker } = (await loadTasuki<unknown>('brokers/rabbitmq.js')) as { RabbitMQBroker: new (o: { prefix: string }) => BrokerT };
    makeBroker = async () => new RabbitMQBroker({ prefix });
  } else {
    const { RedisBackend } = await loadTasuki<typeof import('../backends/redis.js')>('backends/redis.js');
    // TASUKI_BENCH_DELTA=1: the Redis backend with `deltaWrites` on (this build's tasuki rows; an older build ignores it).
    const delta = process.env.TASUKI_BENCH_DELTA === '1' && root === TASUKI_ROOT ? { deltaWrites: true } : {};
    makeBackend = async (broker) =>
      oneConnection
        ? new RedisBackend({ prefix, shareConnection: broker as InstanceType<typeof import('../brokers/redis.js').RedisBroker>, ...delta })
        : new RedisBackend({ prefix, connection: { host: REDIS_HOST, port: REDIS_PORT }, ...(noIndex ? { index: false as const } : {}), ...delta });
    if (kind === 'redis') {
      const { RedisBroker } = await loadTasuki<typeof import('../brokers/redis.js')>('brokers/redis.js');
      makeBroker = async () => new RedisBroker({ prefix, connection: { host: REDIS_HOST, port: REDIS_PORT } });
    } else {
      // Loaded dynamically: another engineer may still be finishing this broker.
      const { RabbitMQBroker } = (await loadTasuki<unknown>('brokers/rabbitmq.js')) as { RabbitMQBroker: new (o: { prefix: string }) => BrokerT };
      makeBroker = async () => new RabbitMQBroker({ prefix });
    }
  }
  const shared = kind === 'memory';
  const producerBroker = await makeBroker();
  const producerBackend = await makeBackend(producerBroker);
  const client: ClientT = new Client({ broker: producerBroker, backend: producerBackend, logger: silentLogger, instrumentation: metrics });
  const servers: ServerT[] = [];
  const refs = new Map<string, { group: string; name: string }>();
  const ref = (queue: string): { group: string; name: string } => {
    let r = refs.get(queue);
    if (!r) refs.set(queue, (r = { group: queue, name: 'noop' }));
    return r;
  };
  const usedQueues = new Set<string>();

  return {
    system: kind === 'memory' ? 'tasuki (in-process)' : metrics ? 'tasuki + metrics' : root !== TASUKI_ROOT ? 'tasuki (baseline)' : noIndex ? 'tasuki (index off)' : oneConnection ? 'tasuki (one connection)' : 'tasuki',
    broker: kind,
    backend: kind === 'memory' || kind === 'rabbitmq-memory' ? 'memory' : 'redis',
    async sendOne(queue, payload) {
      usedQueues.add(queue);
      return client.send(queue, 'noop', payload);
    },
    async sendBulk(queue, payloads) {
      usedQueues.add(queue);
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const chunk = payloads.slice(i, i + 1000).map((p) => [p] as [string]);
        ids.push(...(await client.sendMany(ref(queue) as never, chunk as never)));
      }
      return ids;
    },
    async waiting(queue) {
      const c = await producerBroker.counts(queue);
      return c.ready + c.delayed;
    },
    async startWorker(queue, concurrency, onDone) {
      usedQueues.add(queue);
      const workerBroker = shared ? producerBroker : await makeBroker();
      const server = new Server({
        broker: workerBroker,
        backend: shared ? producerBackend : await makeBackend(workerBroker),
        logger: silentLogger,
        instrumentation: metrics,
      });
      server.add(queue, 'noop', (payload: string) => payload.length);
      server.on('succeeded', () => onDone(true));
      server.on('failed', (e) => onDone(false, e.error));
      server.on('deadLettered', (e) => onDone(false, e.reason));
      servers.push(server);
      await server.run(queue, concurrency);
    },
    async stopWorkers() {
      // In memory, a server's shutdown would close the instances the client shares: those servers
      // are shut down in close() instead (an idle in-memory worker costs nothing).
      if (shared) return;
      await Promise.all(servers.splice(0).map((s) => s.shutdown(5000)));
    },
    async verify(_queue, ids) {
      let completed = 0;
      let failed = 0;
      let resultsStored = 0;
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        const [states, results] = await Promise.all([
          producerBackend.readMany(chunk),
          Promise.all(chunk.map((id) => producerBackend.readResult(id))),
        ]);
        states.forEach((s, j) => {
          if (s?.status === 'success') completed++;
          else if (s?.status === 'failure') failed++;
          const r = results[j];
          if (r != null && decodeValueText(r) === EXPECTED_RESULT) resultsStored++;
        });
      }
      return { completed, resultsStored, failed };
    },
    async prepareLatency() {},
    async roundTrip(queue, payload) {
      const id = await client.send(queue, 'noop', payload);
      // As a user calls it: the backend's push notice ends the wait (the default 300 ms poll is the fallback).
      const r = await client.getResult(id, 10_000);
      if (!r.isSuccess() || r.value !== EXPECTED_RESULT) throw new Error(`task ${id} ended ${r.status}`);
    },
    async close() {
      await Promise.all(servers.splice(0).map((s) => s.shutdown(5000)));
      if (!shared) {
        for (const q of usedQueues) await producerBroker.purge(q).catch(() => undefined);
      }
      // The RabbitMQ delay exchanges are shared by every group of a prefix: remove them too.
      const withExchanges = producerBroker as BrokerT & { deleteDelayExchanges?: () => Promise<void> };
      if (kind === 'rabbitmq' || kind === 'rabbitmq-memory') await withExchanges.deleteDelayExchanges?.().catch(() => undefined);
      await client.close();
      if (shared) {
        await producerBroker.close();
        await producerBackend.close();
      }
    },
  };
}

// ---- BullMQ ---------------------------------------------------------------------------------------

export async function bullmqSystem(prefix: string): Promise<BenchSystem> {
  const { Queue, Worker, QueueEvents } = await import('bullmq');
  const connection = { host: REDIS_HOST, port: REDIS_PORT };
  type QueueT = import('bullmq').Queue;
  type WorkerT = import('bullmq').Worker;
  type EventsT = import('bullmq').QueueEvents;
  const queues = new Map<string, QueueT>();
  const workers: WorkerT[] = [];
  const events = new Map<string, EventsT>();
  const q = (name: string): QueueT => {
    let queue = queues.get(name);
    if (!queue) queues.set(name, (queue = new Queue(name, { connection, prefix })));
    return queue;
  };
  return {
    system: 'bullmq',
    broker: 'redis',
    backend: 'redis',
    async sendOne(queue, payload) {
      const job = await q(queue).add('noop', payload);
      return job.id as string;
    },
    async sendBulk(queue, payloads) {
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const jobs = await q(queue).addBulk(payloads.slice(i, i + 1000).map((p) => ({ name: 'noop', data: p })));
        for (const j of jobs) ids.push(j.id as string);
      }
      return ids;
    },
    async waiting(queue) {
      return q(queue).getWaitingCount();
    },
    async startWorker(queue, concurrency, onDone) {
      const worker = new Worker(queue, async (job) => (job.data as string).length, { connection, prefix, concurrency });
      worker.on('completed', () => onDone(true));
      worker.on('failed', (_job, err) => onDone(false, err));
      worker.on('error', () => undefined);
      workers.push(worker);
      await worker.waitUntilReady();
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.close()));
    },
    async verify(queue, ids) {
      const counts = await q(queue).getJobCounts('completed', 'failed');
      const want = new Set(ids);
      let resultsStored = 0;
      const total = counts.completed ?? 0;
      for (let i = 0; i < total; i += 1000) {
        const jobs = await q(queue).getJobs(['completed'], i, i + 999, true);
        for (const j of jobs) if (j && want.has(j.id as string) && j.returnvalue === EXPECTED_RESULT) resultsStored++;
      }
      return { completed: total, resultsStored, failed: counts.failed ?? 0 };
    },
    async prepareLatency(queue) {
      const qe = new QueueEvents(queue, { connection, prefix });
      events.set(queue, qe);
      await qe.waitUntilReady();
    },
    async roundTrip(queue, payload) {
      const job = await q(queue).add('noop', payload);
      const value: unknown = await job.waitUntilFinished(events.get(queue) as EventsT, 10_000);
      if (value !== EXPECTED_RESULT) throw new Error(`job ${job.id} returned ${String(value)}`);
    },
    async close() {
      await Promise.all(workers.splice(0).map((w) => w.close()));
      await Promise.all([...events.values()].map((e) => e.close()));
      for (const queue of queues.values()) {
        await queue.obliterate({ force: true }).catch(() => undefined);
        await queue.close();
      }
    },
  };
}

export { withTimeout };

/**
 * One benchmark round of one system, run in its own child process by `bench/run.ts` (so that the
 * peak RSS measured is this system's alone). Scenarios, in order:
 * 1. enqueue: `jobs` individual sends with up to 1000 in flight into a queue without workers; then
 *    the same number with the system's bulk API into a second queue; then `latencyJobs` sends one at
 *    a time (1 in flight) into a third. Each verified by counting.
 * 2. process: a worker with `concurrency` starts on the prefilled bulk queue; timed from worker
 *    start to the last job finished; then every job is verified completed with its result stored.
 * 3. latency: `latencyJobs` jobs sent one at a time, each waited for until its result is visible.
 * Finally every key of the round's prefix is deleted. The result goes to the parent over IPC.
 */
import { fileURLToPath } from 'node:url';
import { rawRedisSystem } from './raw-redis.js';
import { beeQueueSystem } from './bee-queue.js';
import { bullmqSystem, deleteKeys, tasukiSystem, TASUKI_BASELINE, withTimeout, type BenchSystem } from './systems.js';

/** The PostgreSQL rows (bench/postgres-systems.ts), each round in its own schema. */
export type PostgresSystem = 'tasuki-postgres' | 'pg-boss' | 'graphile-worker';

export interface RoundConfig {
  system: 'tasuki' | 'tasuki-baseline' | 'tasuki-noindex' | 'tasuki-shared' | 'tasuki-metrics' | 'tasuki-rabbitmq' | 'tasuki-memory' | 'bullmq' | 'bee-queue' | 'raw-redis' | PostgresSystem;
  jobs: number;
  concurrency: number;
  latencyJobs: number;
  prefix: string;
}

export interface RoundResult {
  system: string;
  broker: string;
  backend: string;
  jobs: number;
  concurrency: number;
  enqueue_per_s: number;
  enqueue_bulk_per_s: number;
  /** Individual sends, each awaited before the next (1 in flight). */
  enqueue_serial_per_s: number;
  process_per_s: number;
  latency_p50_ms: number;
  latency_p99_ms: number;
  peak_rss_mb: number;
  results_stored: boolean;
  note?: string;
  /** Send call to handler start over the latency jobs (systems that measure it: tasuki on PostgreSQL). */
  start_latency_p50_ms?: number;
  start_latency_p99_ms?: number;
}

/** A 64-byte payload (64 ASCII characters). */
export const PAYLOAD = 'tasuki-benchmark-payload:'.padEnd(64, '0123456789');

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

function fail(msg: string): never {
  throw new Error(msg);
}

/** The adapter of a round's system. */
export async function makeSystem(cfg: Pick<RoundConfig, 'system' | 'prefix'>): Promise<BenchSystem> {
  switch (cfg.system) {
    case 'tasuki':
      return tasukiSystem('redis', cfg.prefix);
    case 'tasuki-baseline':
      if (TASUKI_BASELINE === undefined) throw new Error('tasuki-baseline needs TASUKI_BENCH_BASELINE (the dist/ directory of the build to compare against)');
      return tasukiSystem('redis', cfg.prefix, false, TASUKI_BASELINE);
    case 'tasuki-noindex':
      return tasukiSystem('redis', cfg.prefix, false, undefined, true);
    case 'tasuki-shared':
      return tasukiSystem('redis', cfg.prefix, false, undefined, false, true);
    case 'tasuki-metrics':
      return tasukiSystem('redis', cfg.prefix, true);
    case 'tasuki-rabbitmq':
      return tasukiSystem('rabbitmq', cfg.prefix);
    case 'tasuki-memory':
      return tasukiSystem('memory', cfg.prefix);
    case 'bullmq':
      return bullmqSystem(cfg.prefix);
    case 'bee-queue':
      return beeQueueSystem(cfg.prefix);
    case 'raw-redis':
      return rawRedisSystem(cfg.prefix);
    case 'tasuki-postgres':
      return (await import('./postgres-systems.js')).tasukiPostgresSystem(cfg.prefix);
    case 'pg-boss':
      return (await import('./postgres-systems.js')).pgBossSystem(cfg.prefix);
    case 'graphile-worker':
      return (await import('./postgres-systems.js')).graphileWorkerSystem(cfg.prefix);
  }
}

export async function runRound(cfg: RoundConfig): Promise<RoundResult> {
  if (PAYLOAD.length !== 64) fail('payload must be 64 bytes');
  const { jobs, concurrency } = cfg;
  const sys = await makeSystem(cfg);
  const limit = Math.max(60_000, jobs * 5, sys.limitMs ?? 0);
  try {
    // 1a. Individual sends, at most 1000 in flight.
    let next = 0;
    const t0 = performance.now();
    await withTimeout(
      Promise.all(
        Array.from({ length: Math.min(1000, jobs) }, async () => {
          while (next < jobs) {
            next++;
            await sys.sendOne('enqueue', PAYLOAD);
          }
        }),
      ),
      limit,
      'enqueue',
    );
    const enqueueS = (performance.now() - t0) / 1000;
    const waitingOne = await sys.waiting('enqueue');
    if (waitingOne !== jobs) fail(`${sys.system}: ${waitingOne} of ${jobs} individually sent jobs are in the queue`);

    // 1b. Bulk sends (these prefill the process scenario's queue).
    const payloads = new Array<string>(jobs).fill(PAYLOAD);
    const t1 = performance.now();
    const ids = await withTimeout(sys.sendBulk('process', payloads), limit, 'bulk enqueue');
    const bulkS = (performance.now() - t1) / 1000;
    const waitingBulk = await sys.waiting('process');
    if (waitingBulk !== jobs || ids.length !== jobs) fail(`${sys.system}: ${waitingBulk} of ${jobs} bulk-sent jobs are in the queue`);

    // 1c. Individual sends, 1 in flight.
    const serial = cfg.latencyJobs;
    const t3 = performance.now();
    for (let i = 0; i < serial; i++) await sys.sendOne('serial', PAYLOAD);
    const serialS = (performance.now() - t3) / 1000;
    const waitingSerial = await sys.waiting('serial');
    if (waitingSerial !== serial) fail(`${sys.system}: ${waitingSerial} of ${serial} jobs sent one at a time are in the queue`);

    // 2. Processing a prefilled queue.
    let done = 0;
    let failed = 0;
    let firstError: unknown;
    let finish!: () => void;
    const allDone = new Promise<void>((r) => (finish = r));
    const t2 = performance.now();
    let t2end = 0;
    await sys.startWorker('process', concurrency, (ok, err) => {
      if (ok) done++;
      else {
        failed++;
        firstError ??= err;
      }
      if (done + failed === jobs) {
        t2end = performance.now();
        finish();
      }
    });
    await withTimeout(allDone, limit, 'processing');
    const processS = (t2end - t2) / 1000;
    await sys.stopWorkers();
    if (failed > 0) fail(`${sys.system}: ${failed} job(s) failed: ${String(firstError)}`);
    const v = await sys.verify('process', ids);
    if (v.completed !== jobs || v.failed !== 0) fail(`${sys.system}: verification found ${v.completed} completed, ${v.failed} failed of ${jobs}`);
    if (v.resultsStored !== null && v.resultsStored !== jobs) fail(`${sys.system}: only ${v.resultsStored} of ${jobs} results stored`);

    // 3. Latency, one job at a time.
    await sys.startWorker('latency', concurrency, () => undefined);
    await sys.prepareLatency('latency');
    const lat: number[] = [];
    for (let i = 0; i < cfg.latencyJobs; i++) {
      const s = performance.now();
      await sys.roundTrip('latency', PAYLOAD);
      lat.push(performance.now() - s);
    }
    lat.sort((a, b) => a - b);

    const result: RoundResult = {
      system: sys.system,
      broker: sys.broker,
      backend: sys.backend,
      jobs,
      concurrency,
      enqueue_per_s: Math.round(jobs / enqueueS),
      enqueue_bulk_per_s: Math.round(jobs / bulkS),
      enqueue_serial_per_s: Math.round(serial / serialS),
      process_per_s: Math.round(jobs / processS),
      latency_p50_ms: round2(percentile(lat, 50)),
      latency_p99_ms: round2(percentile(lat, 99)),
      peak_rss_mb: 0,
      results_stored: v.resultsStored !== null,
    };
    if (sys.note) result.note = sys.note;
    const started = sys.startLatency?.();
    if (started) {
      result.start_latency_p50_ms = round2(started.p50);
      result.start_latency_p99_ms = round2(started.p99);
    }
    return result;
  } finally {
    await sys.close().catch(() => undefined);
    if (cfg.system !== 'tasuki-memory') await deleteKeys(cfg.prefix);
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

// Child entry point: `node --import tsx bench/round.ts '<config json>'` (not when imported).
if (process.send !== undefined && process.argv[2] !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as RoundConfig;
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  runRound(cfg).then(
    (r) => {
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);
      r.peak_rss_mb = round2(peak / 1024 / 1024);
      process.send?.({ ok: true, result: r });
      process.exitCode = 0;
      setTimeout(() => process.exit(0), 200).unref();
    },
    (err: unknown) => {
      clearInterval(sampler);
      process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) });
      setTimeout(() => process.exit(1), 200).unref();
    },
  );
}

/**
 * `npm run bench`: tasuki against BullMQ and bee-queue on the same local Redis.
 *
 * Every round of every system runs in its own child process (`bench/round.ts`), in alternation
 * (A B C A B C ...), with the same job count, 64-byte payload and concurrency; the parent prints
 * medians over the rounds as a markdown table, then one JSON line per system.
 *
 * Options: --jobs N (20000) --concurrency C (50) --runs R (3) --latency-jobs L (2000) --json
 * --only NAME[,NAME] (tasuki | tasuki-shared | tasuki-metrics | tasuki-rabbitmq | tasuki-memory | bullmq | bee-queue | raw-redis;
 * `tasuki` alone selects every tasuki row; tasuki-metrics is tasuki on Redis with `tasuki/metrics` on)
 * TASUKI_BENCH_BASELINE=/abs/path/to/other/dist adds "tasuki (baseline)" rows (Redis, and in the cost
 * table) for another build, for before/after ratios within one run.
 * raw-redis is a plain ioredis loop doing the same work (`bench/raw-redis.ts`), the floor.
 * Afterwards the cost-per-task table (`bench/cost.ts`: commands, bytes and memory per task from a
 * private redis-server's INFO) for the Redis systems; --no-cost leaves it out, --cost-tasks N (5000)
 * and --cost-waiting W (100000) size it.
 * --leak-check (afterwards: 100 000 tasuki tasks, heap before/after GC)
 * --leak-jobs N --flows (afterwards: the flows scenario of `bench/flows.ts`) --workflows (`bench/workflows.ts`; also part of every run without --only, as is `bench/limits.ts`).
 * A full run (no --only) ends with the limits scenario of `bench/limits.ts`.
 * --cluster (afterwards: `bench/cluster.ts`, one group with 1 and 3 shards on a private local Redis Cluster).
 * PostgreSQL rows (tasuki-postgres, pg-boss, graphile-worker; bench/postgres-systems.ts) run only when
 * asked: `--pg` adds them to the selection, `--only postgres` (or `--only pg`) selects just them, and
 * each can be named in `--only`. With them runs the outbox's commit-to-start latency (bench/outbox-latency.ts).
 */
import { fork, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { COST_SYSTEMS, costTable, measureCost } from './cost.js';
import type { CostResult } from './cost-round.js';
import { NoRedisServerError } from './private-redis.js';
import { countKeys, TASUKI_ROOT } from './systems.js';
import type { RoundConfig, RoundResult } from './round.js';

const here = dirname(fileURLToPath(import.meta.url));
const ALL: Array<RoundConfig['system']> = [
  'tasuki',
  // With TASUKI_BENCH_BASELINE (another build's dist/): the same rows for that build, alternating with this one.
  ...(process.env.TASUKI_BENCH_BASELINE ? (['tasuki-baseline'] as const) : []),
  // The Redis backend on the broker's connection (`shareConnection`).
  'tasuki-shared',
  'tasuki-metrics',
  'bullmq',
  'bee-queue',
  'raw-redis',
  'tasuki-rabbitmq',
  'tasuki-memory',
];
/** The PostgreSQL rows: not in the default run (it would take minutes longer); `--pg` or `--only postgres`. */
const PG: Array<RoundConfig['system']> = ['tasuki-postgres', 'pg-boss', 'graphile-worker'];
const KEY_PREFIX = 'tasuki-bench';

interface Options {
  jobs: number;
  concurrency: number;
  runs: number;
  latencyJobs: number;
  json: boolean;
  only: string[] | null;
  leakCheck: boolean;
  /** Also run the flows scenario (`bench/flows.ts`). */
  flows: boolean;
  /** Also run the workflows scenario (`bench/workflows.ts`). */
  workflows: boolean;
  /** Also run the Redis Cluster scenario (`bench/cluster.ts`). */
  cluster: boolean;
  leakJobs: number;
  pg: boolean;
  /** Measure the cost-per-task table (default on). */
  cost: boolean;
  costTasks: number;
  costWaiting: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { jobs: 20_000, concurrency: 50, runs: 3, latencyJobs: 2000, json: false, only: null, leakCheck: false, leakJobs: 100_000, flows: false, workflows: false, cluster: false, pg: false, cost: true, costTasks: 5000, costWaiting: 100_000 };
  const int = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a whole number >= 1, got ${String(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--jobs':
        o.jobs = int(flag, value());
        break;
      case '--concurrency':
        o.concurrency = int(flag, value());
        break;
      case '--runs':
        o.runs = int(flag, value());
        break;
      case '--latency-jobs':
        o.latencyJobs = int(flag, value());
        break;
      case '--json':
        o.json = true;
        break;
      case '--only':
        o.only = (value() ?? '').split(',').filter(Boolean);
        break;
      case '--workflows':
        o.workflows = true;
        break;
      case '--cluster':
        o.cluster = true;
        break;
      case '--flows':
        o.flows = true;
        break;
      case '--leak-check':
        o.leakCheck = true;
        break;
      case '--pg':
        o.pg = true;
        break;
      case '--no-cost':
        o.cost = false;
        break;
      case '--cost-tasks':
        o.costTasks = int(flag, value());
        break;
      case '--cost-waiting':
        o.costWaiting = int(flag, value());
        break;
      case '--leak-jobs':
        o.leakJobs = int(flag, value());
        break;
      case '--help':
        console.log('usage: npm run bench -- [--jobs N] [--concurrency C] [--runs R] [--latency-jobs L] [--json] [--only tasuki,bullmq,...|postgres] [--pg] [--flows] [--cluster] [--leak-check] [--leak-jobs N] [--no-cost] [--cost-tasks N] [--cost-waiting W]');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  return o;
}

function selected(o: Options): Array<RoundConfig['system']> {
  const pgAsked = o.only?.some((x) => x === 'postgres' || x === 'pg') === true;
  const pool = o.pg || pgAsked || o.only?.some((x) => PG.includes(x as RoundConfig['system'])) === true ? [...ALL, ...PG] : ALL;
  let systems = pool.filter((s) => o.only === null || (pgAsked && PG.includes(s)) || o.only.some((x) => s === x || s.startsWith(`${x}-`)));
  if (o.only !== null && !o.pg && !pgAsked && o.only.includes('tasuki')) systems = systems.filter((s) => !PG.includes(s) || o.only?.includes(s));
  if (systems.length === 0) throw new Error(`--only matches no system (known: ${[...ALL, ...PG].join(', ')}, postgres)`);
  if (!existsSync(join(here, '..', 'brokers', 'rabbitmq.ts'))) systems = systems.filter((s) => s !== 'tasuki-rabbitmq');
  return systems;
}

type ChildOutcome = { ok: true; result: RoundResult } | { ok: false; error: string };

/** Runs one child script and collects the message it sends. */
function runChild(script: string, args: string[], execArgv: string[], timeoutMs: number): Promise<ChildOutcome & { code: number | null }> {
  return new Promise((resolve) => {
    const child = fork(join(here, script), args, { execArgv: ['--import', 'tsx', ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let outcome: ChildOutcome = { ok: false, error: 'child exited without a result' };
    const timer = setTimeout(() => {
      outcome = { ok: false, error: `timed out after ${timeoutMs} ms` };
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (m) => (outcome = m as ChildOutcome));
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (outcome.ok && code !== 0) outcome = { ok: false, error: `child exited with code ${code}` };
      resolve({ ...outcome, code });
    });
  });
}

function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

const METRICS = ['enqueue_per_s', 'enqueue_bulk_per_s', 'enqueue_serial_per_s', 'process_per_s', 'latency_p50_ms', 'latency_p99_ms', 'peak_rss_mb'] as const;

function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return digits === 0 ? Math.round(n).toLocaleString('en-US') : n.toFixed(digits);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const systems = selected(o);
  if (TASUKI_ROOT !== '..' && !existsSync(join(here, TASUKI_ROOT, 'src', 'index.js'))) {
    throw new Error('tasuki is not built: run `npm run build` first (or use `npm run bench`, which builds), or set TASUKI_BENCH_SOURCE=1 to run the TypeScript sources');
  }
  const log = (s: string): void => {
    if (!o.json) console.log(s);
  };
  log(`tasuki loaded from ${TASUKI_ROOT === '..' ? 'the TypeScript sources (tsx)' : 'the compiled package (dist/)'}`);
  log(`tasuki benchmark: ${o.jobs} jobs, 64-byte payload, concurrency ${o.concurrency}, ${o.runs} alternating round(s), ${o.latencyJobs} latency jobs; systems: ${systems.join(', ')}`);
  const results = new Map<string, RoundResult[]>();
  const skipped = new Map<string, string>();
  const failures: string[] = [];
  const started = Date.now();
  for (let r = 1; r <= o.runs; r++) {
    for (const system of systems) {
      if (skipped.has(system)) continue;
      const cfg: RoundConfig = { system, jobs: o.jobs, concurrency: o.concurrency, latencyJobs: o.latencyJobs, prefix: `${KEY_PREFIX}-${process.pid}-${r}-${system}` };
      const t = Date.now();
      const out = await runChild('round.ts', [JSON.stringify(cfg)], [], Math.max(300_000, o.jobs * 20));
      if (out.ok) {
        const list = results.get(system) ?? [];
        list.push(out.result);
        results.set(system, list);
        log(
          `  round ${r} ${system.padEnd(16)} enqueue ${fmt(out.result.enqueue_per_s)}/s  bulk ${fmt(out.result.enqueue_bulk_per_s)}/s  1-in-flight ${fmt(out.result.enqueue_serial_per_s)}/s  process ${fmt(out.result.process_per_s)}/s  ` +
            `p50 ${fmt(out.result.latency_p50_ms, 2)} ms  p99 ${fmt(out.result.latency_p99_ms, 2)} ms  rss ${fmt(out.result.peak_rss_mb, 1)} MB  (${((Date.now() - t) / 1000).toFixed(1)} s)`,
        );
      } else if (system === 'tasuki-rabbitmq') {
        skipped.set(system, out.error);
        log(`  round ${r} ${system}: SKIPPED (RabbitMQ broker not usable here: ${out.error})`);
      } else {
        failures.push(`${system} round ${r}: ${out.error}`);
        log(`  round ${r} ${system}: FAILED: ${out.error}`);
      }
    }
  }

  const rows: RoundResult[] = [];
  for (const system of systems) {
    const list = results.get(system);
    if (!list || list.length === 0) continue;
    const first = list[0] as RoundResult;
    const row: RoundResult = { ...first };
    for (const m of METRICS) row[m] = Math.round(median(list.map((x) => x[m])) * 100) / 100;
    for (const m of ['start_latency_p50_ms', 'start_latency_p99_ms'] as const) {
      if (first[m] !== undefined) row[m] = Math.round(median(list.map((x) => x[m] ?? NaN)) * 100) / 100;
    }
    const notes = [...new Set(list.map((x) => x.note).filter((x): x is string => !!x))];
    if (notes.length > 0) row.note = notes.join('; ');
    else delete row.note;
    rows.push(row);
  }

  if (!o.json) {
    console.log('');
    console.log(`Medians of ${o.runs} alternating round(s); ${o.jobs} jobs, 64-byte payload, concurrency ${o.concurrency}; latency over ${o.latencyJobs} jobs sent one at a time.`);
    console.log('');
    console.log('| system | broker | backend | enqueue/s (single) | enqueue/s (bulk) | enqueue/s (1 in flight) | process/s | latency p50 ms | latency p99 ms | peak RSS MB | results verified |');
    console.log('|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|');
    for (const x of rows) {
      const verified = x.results_stored ? `every result read back${x.note ? ` (${x.note})` : ''}` : `completion count only${x.note ? ` (${x.note})` : ''}`;
      console.log(
        `| ${x.system} | ${x.broker} | ${x.backend} | ${fmt(x.enqueue_per_s)} | ${fmt(x.enqueue_bulk_per_s)} | ${fmt(x.enqueue_serial_per_s)} | ${fmt(x.process_per_s)} | ${fmt(x.latency_p50_ms, 2)} | ${fmt(x.latency_p99_ms, 2)} | ${fmt(x.peak_rss_mb, 1)} | ${verified} |`,
      );
    }
    for (const [s, why] of skipped) console.log(`\nNote: ${s} skipped: ${why}`);
    const plain = rows.find((x) => x.system === 'tasuki' && x.broker === 'redis');
    const metered = rows.find((x) => x.system === 'tasuki + metrics');
    if (plain && metered) {
      const cost = (1 - metered.process_per_s / plain.process_per_s) * 100;
      console.log(`\nMetrics cost (tasuki/metrics on vs off, Redis): process ${cost.toFixed(1)} % (goal < 5 %), enqueue ${((1 - metered.enqueue_per_s / plain.enqueue_per_s) * 100).toFixed(1)} %`);
    }
    const t = rows.find((x) => x.system === 'tasuki' && x.broker === 'redis');
    const b = rows.find((x) => x.system === 'bullmq');
    const q = rows.find((x) => x.system === 'bee-queue');
    if (t && (b || q)) {
      console.log('\nTargets (tasuki on Redis, this run):');
      const check = (label: string, ok: boolean, detail: string): void => console.log(`- ${ok ? 'MET    ' : 'NOT MET'} ${label}: ${detail}`);
      if (b) check('process ≥ 2× BullMQ', t.process_per_s >= 2 * b.process_per_s, `${(t.process_per_s / b.process_per_s).toFixed(2)}×`);
      if (q) check('process ≥ 1.2× bee-queue', t.process_per_s >= 1.2 * q.process_per_s, `${(t.process_per_s / q.process_per_s).toFixed(2)}×`);
      if (q) check('enqueue (single) ≥ bee-queue', t.enqueue_per_s >= q.enqueue_per_s, `${(t.enqueue_per_s / q.enqueue_per_s).toFixed(2)}×`);
      if (q) check('enqueue (bulk) ≥ bee-queue', t.enqueue_bulk_per_s >= q.enqueue_bulk_per_s, `${(t.enqueue_bulk_per_s / q.enqueue_bulk_per_s).toFixed(2)}×`);
      if (q) check('enqueue (1 in flight) ≥ bee-queue', t.enqueue_serial_per_s >= q.enqueue_serial_per_s, `${(t.enqueue_serial_per_s / q.enqueue_serial_per_s).toFixed(2)}×`);
      if (q) check('latency p50 ≤ bee-queue', t.latency_p50_ms <= q.latency_p50_ms, `${fmt(t.latency_p50_ms, 2)} ms vs ${fmt(q.latency_p50_ms, 2)} ms`);
      if (b) check('latency p99 ≤ BullMQ', t.latency_p99_ms <= b.latency_p99_ms, `${fmt(t.latency_p99_ms, 2)} ms vs ${fmt(b.latency_p99_ms, 2)} ms`);
      if (b) check('peak RSS ≤ BullMQ', t.peak_rss_mb <= b.peak_rss_mb, `${fmt(t.peak_rss_mb, 1)} MB vs ${fmt(b.peak_rss_mb, 1)} MB`);
    }
    const base = rows.find((x) => x.system === 'tasuki (baseline)');
    if (t && base) {
      const r = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
      console.log(
        `\nThis build against the baseline (same run): enqueue ${r(t.enqueue_per_s, base.enqueue_per_s)}, bulk ${r(t.enqueue_bulk_per_s, base.enqueue_bulk_per_s)}, ` +
          `1 in flight ${r(t.enqueue_serial_per_s, base.enqueue_serial_per_s)}, process ${r(t.process_per_s, base.process_per_s)}, latency p50 ${r(t.latency_p50_ms, base.latency_p50_ms)}, p99 ${r(t.latency_p99_ms, base.latency_p99_ms)}, peak RSS ${r(t.peak_rss_mb, base.peak_rss_mb)}`,
      );
    }
    const tp = rows.find((x) => x.system === 'tasuki' && x.broker === 'postgres');
    const boss = rows.find((x) => x.system === 'pg-boss');
    const gw = rows.find((x) => x.system === 'graphile-worker');
    if (tp) {
      console.log('\nTargets (tasuki on PostgreSQL, this run):');
      const check = (label: string, ok: boolean, detail: string): void => console.log(`- ${ok ? 'MET    ' : 'NOT MET'} ${label}: ${detail}`);
      if (boss) check('process ≥ 2× pg-boss', tp.process_per_s >= 2 * boss.process_per_s, `${(tp.process_per_s / boss.process_per_s).toFixed(2)}×`);
      if (gw) check('process ≥ graphile-worker (unbatched)', tp.process_per_s >= gw.process_per_s, `${(tp.process_per_s / gw.process_per_s).toFixed(2)}×`);
      if (tp.start_latency_p99_ms !== undefined) {
        check('commit-to-start p99 < 50 ms (measured from the send call, which includes its commit)', tp.start_latency_p99_ms < 50, `${fmt(tp.start_latency_p99_ms, 2)} ms (p50 ${fmt(tp.start_latency_p50_ms ?? NaN, 2)} ms)`);
      }
      check('round trip p99 < 50 ms (send to result read back)', tp.latency_p99_ms < 50, `${fmt(tp.latency_p99_ms, 2)} ms`);
    }
  }
  for (const x of rows) console.log(JSON.stringify(x));

  if (o.cost) {
    // The index-off row goes with the tasuki row (it is measured in the cost table only).
    const costSystems = COST_SYSTEMS.filter((s) => systems.includes(s) || (s === 'tasuki-noindex' && systems.includes('tasuki')));
    if (costSystems.length > 0) {
      const co = { tasks: o.costTasks, waiting: o.costWaiting, concurrency: o.concurrency, systems: costSystems };
      log('\nCost per task (private redis-server)…');
      try {
        const costs = await measureCost(co, log);
        log('');
        for (const l of costTable(costs, co)) log(l);
        costTargets(costs, log);
        for (const c of costs) console.log(JSON.stringify({ cost: c }));
      } catch (err) {
        if (err instanceof NoRedisServerError) log(`Cost per task SKIPPED: ${err.message}`);
        else failures.push(`cost per task: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  let leakFailed = false;
  if (o.leakCheck) {
    log(`\nLeak check: ${o.leakJobs} tasuki tasks on Redis, heap compared after forced GC…`);
    const out = await runChild('leak.ts', [JSON.stringify({ jobs: o.leakJobs, concurrency: o.concurrency, prefix: `${KEY_PREFIX}-${process.pid}-leak` })], ['--expose-gc'], 600_000);
    if (!out.ok) {
      leakFailed = true;
      failures.push(`leak check: ${out.error}`);
    }
  }

  if (o.flows) {
    log('\nFlows: 1 000 flows × 10 steps, and a fan-out of 100 children beside BullMQ FlowProducer…');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'flows.ts')], { stdio: 'inherit' });
    if (r.status !== 0) failures.push('flows scenario failed');
  }
  if (o.cluster) {
    log('\nRedis Cluster: one group with 1 and 3 shards, 1 and 2 worker processes, on a private local cluster…');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'cluster.ts'), '--jobs', String(Math.min(o.jobs, 5000))], { stdio: 'inherit' });
    if (r.status !== 0) failures.push('cluster scenario failed');
  }
  if (o.workflows || o.only === null) {
    log('\nWorkflows: a chord of 1 000 children + callback beside BullMQ FlowProducer…');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'workflows.ts')], { stdio: 'inherit' });
    if (r.status !== 0) failures.push('workflows scenario failed');
  }

  if (o.only === null) {
    log('\nLimits: priorities, keys and keyConcurrency on the broker, and a plain group with vs without the flow-control check (bench/limits.ts)…');
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'limits.ts'), '--jobs', String(o.jobs), '--prefix', `${KEY_PREFIX}-${process.pid}-limits`], { stdio: 'inherit' });
    if (r.status !== 0) failures.push('limits scenario failed');
  }
  if (systems.includes('tasuki-rabbitmq') && !skipped.has('tasuki-rabbitmq')) failures.push(...(await (await import('./rabbitmq.js')).runRabbitMQBench({ jobs: o.jobs, concurrency: o.concurrency, runs: o.runs, log })));
  const left = await countKeys(`${KEY_PREFIX}-${process.pid}-`);
  if (left > 0) failures.push(`${left} benchmark key(s) left in Redis`);
  if (systems.some((s) => PG.includes(s))) {
    log('\nOutbox: transactional send through PostgreSQL to Redis, commit to handler start (bench/outbox-latency.ts)…');
    const ob = spawnSync(process.execPath, ['--import', 'tsx', join(here, 'outbox-latency.ts'), '--tasks', String(Math.min(o.jobs, 1000))], { stdio: 'inherit' });
    if (ob.status !== 0) failures.push('outbox latency scenario failed');
    const { countSchemas } = await import('./postgres-systems.js');
    const schemas = await countSchemas(process.pid);
    if (schemas > 0) failures.push(`${schemas} benchmark schema(s) left in PostgreSQL`);
    log(`PostgreSQL schemas left behind by this run: ${schemas}.`);
  }
  log(`\nRedis keys left behind by this run: ${left}. Total time ${((Date.now() - started) / 1000).toFixed(0)} s.`);
  if (failures.length > 0 || leakFailed) {
    console.error(`\nBENCHMARK FAILED:\n- ${failures.join('\n- ')}`);
    process.exit(1);
  }
}

/** The cost goals of issue 16 (tasuki on Redis), checked on this run's cost table. */
function costTargets(costs: CostResult[], log: (s: string) => void): void {
  const t = costs.find((c) => c.system === 'tasuki');
  const b = costs.find((c) => c.system === 'bullmq');
  if (!t) return;
  const check = (label: string, ok: boolean, detail: string): void => log(`- ${ok ? 'MET    ' : 'NOT MET'} ${label}: ${detail}`);
  log('\nTargets (cost per task, tasuki on Redis):');
  const bytes = t.enqueue_bytes_in + t.process_bytes_in;
  check('bytes to Redis per task ≤ 700', bytes <= 700, `${bytes} B`);
  if (b) check('memory per waiting task ≤ BullMQ', t.memory_per_waiting_task <= b.memory_per_waiting_task, `${t.memory_per_waiting_task} B vs ${b.memory_per_waiting_task} B`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});

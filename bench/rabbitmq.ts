/**
 * RabbitMQ broker (+ Redis backend) against raw amqplib doing the same work, in one run.
 *
 * Rows, each round of each in its own child process, in alternation (raw, broker, tasuki, tasuki-mem, raw ...):
 * - raw: `jobs` confirmed publishes (persistent, durable classic queue) with `concurrency` in flight
 *   on one confirm channel, each awaited for its own confirm; then a consumer with prefetch
 *   `concurrency` on the prefilled queue that stores each result in Redis (`SET`) and acks after
 *   the write (at-least-once, as tasuki); every result is read back.
 * - broker: the tasuki `RabbitMQBroker` alone doing the raw row's work (`publish` of the same
 *   payload with `concurrency` in flight; `fetch` keeping `concurrency` held, Redis `SET`, `ack`):
 *   what the broker itself costs over amqplib, without the core's states.
 * - tasuki: `client.send` with `concurrency` in flight (the `sent` state is written too), then a
 *   worker with `concurrency` on a queue prefilled with `client.sendMany`; every state and result is
 *   read back from the backend.
 * - tasuki-mem: the tasuki row with the memory backend (one in-process store for the client and the
 *   worker): the broker and the core without the backend's Redis writes.
 * Like for like: every row connects and declares its queue before the enqueue timing (one warm-up
 * publish or send to the timed queue, counted), and the processing rate runs from the first task
 * done to the last in every row (connection and consumer setup left out). What still differs, and
 * belongs to tasuki: its publishes are `mandatory` with a `messageId`, its body is the ~280-byte
 * wire message carrying the 64-byte payload, and its consumer prefetches `concurrency` + the
 * worker's `prefetch` (default `concurrency`) where the raw consumer holds `concurrency`.
 * Prints the medians and the ratios to raw (goals for tasuki: ≥ 0.8 for both).
 *
 * `npx tsx bench/rabbitmq.ts [--jobs N] [--concurrency C] [--runs R]` (TASUKI_BENCH_SOURCE=1 for the
 * sources, otherwise `dist/`); `bench/run.ts` calls {@link runRabbitMQBench}. For profiling:
 * TASUKI_BENCH_CPU=<beam pid>,<redis pid> prints CPU and system calls per task of each phase,
 * TASUKI_BENCH_REDIS_STATS=1 the Redis commands (use a private redis-server on
 * TASUKI_BENCH_REDIS_PORT, e.g. as `bench/private-redis.ts` starts one, for exact counts),
 * TASUKI_BENCH_PROF=<dir> writes a CPU profile of each timed phase. One round alone:
 * `npx tsx bench/rabbitmq.ts --round '{"kind":"tasuki","jobs":20000,"concurrency":50,"prefix":"p"}'`.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { connect } from 'amqplib';
import { EXPECTED_RESULT, REDIS_HOST, REDIS_PORT, deleteKeys, loadTasuki, tasukiSystem } from './systems.js';
import { CPU_PIDS, cpuNow, cpuReport, profStart, statsNow, statsReport } from './rabbitmq-probes.js';

const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
/** The 64-byte payload of `bench/round.ts` (not imported: that module runs a round when forked). */
const PAYLOAD = 'tasuki-benchmark-payload:'.padEnd(64, '0123456789');
const here = fileURLToPath(import.meta.url);

/** Settings of one benchmark run. */
export interface RabbitBenchOptions {
  jobs: number;
  concurrency: number;
  runs: number;
  /** Where progress lines go (default console.log). */
  log?: (line: string) => void;
}

/** The rows: raw amqplib, the tasuki RabbitMQ broker alone (no core, same work as raw), tasuki. */
const KINDS = ['raw', 'broker', 'tasuki', 'tasuki-mem'] as const;
type Kind = (typeof KINDS)[number];
const LABEL: Record<Kind, string> = {
  raw: 'raw amqplib',
  broker: 'RabbitMQBroker alone',
  tasuki: 'tasuki (client, worker)',
  'tasuki-mem': 'tasuki, memory backend',
};

/** One round's figures. */
interface RoundFigures {
  enqueue_per_s: number;
  process_per_s: number;
}

interface RoundArgs {
  kind: Kind;
  jobs: number;
  concurrency: number;
  prefix: string;
}

/**
 * Tasks processed per second from the first task done to the last (every row alike): the setup
 * before the first task (the raw consumer's `basic.consume`, tasuki's worker connecting to the
 * broker and the backend) is left out of every row.
 */
function processRate(jobs: number, firstDone: number, lastDone: number): number {
  return Math.round((jobs - 1) / ((lastDone - firstDone) / 1000));
}

/** Runs `work` with `n` loops pulling from one counter of `jobs`. */
async function inFlight(jobs: number, n: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, jobs) }, async () => {
      while (next < jobs) await work(next++);
    }),
  );
}

async function rawRound(a: RoundArgs): Promise<RoundFigures> {
  const conn = await connect(AMQP_URL);
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
  const queues = [`${a.prefix}.enqueue`, `${a.prefix}.process`];
  try {
    const pub = await conn.createConfirmChannel();
    for (const q of queues) await pub.assertQueue(q, { durable: true });
    const body = Buffer.from(PAYLOAD);
    const publish = (queue: string): Promise<void> =>
      new Promise((resolve, reject) => {
        pub.publish('', queue, body, { persistent: true }, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
      });
    await profStart();
    const s0 = await statsNow();
    const c0 = cpuNow();
    const t0 = performance.now();
    await inFlight(a.jobs, a.concurrency, () => publish(queues[0] as string));
    const enqueueS = (performance.now() - t0) / 1000;
    cpuReport('raw enqueue', c0, a.jobs);
    await statsReport('raw enqueue', s0, a.jobs);
    if ((await pub.checkQueue(queues[0] as string)).messageCount !== a.jobs) throw new Error('raw enqueue: count mismatch');
    // Prefill for processing (not timed).
    await inFlight(a.jobs, 1000, () => publish(queues[1] as string));

    const ch = await conn.createChannel();
    await ch.prefetch(a.concurrency, false);
    let done = 0;
    let finish!: () => void;
    let fail!: (e: unknown) => void;
    const allDone = new Promise<void>((resolve, reject) => ((finish = resolve), (fail = reject)));
    await profStart();
    const s1 = await statsNow();
    const c1 = cpuNow();
    let t1first = 0;
    let t1end = 0;
    let seq = 0;
    await ch.consume(queues[1] as string, (msg) => {
      if (!msg) return;
      const result = msg.content.toString('utf8').length;
      redis.set(`${a.prefix}:r:${seq++}`, String(result)).then(() => {
        ch.ack(msg);
        if (++done === 1) t1first = performance.now();
        if (done === a.jobs) {
          t1end = performance.now();
          finish();
        }
      }, fail);
    });
    await allDone;
    cpuReport('raw process', c1, a.jobs);
    await statsReport('raw process', s1, a.jobs);
    let stored = 0;
    for (let i = 0; i < a.jobs; i += 1000) {
      const keys = Array.from({ length: Math.min(1000, a.jobs - i) }, (_, j) => `${a.prefix}:r:${i + j}`);
      stored += (await redis.mget(...keys)).filter((v) => v === String(EXPECTED_RESULT)).length;
    }
    if (stored !== a.jobs) throw new Error(`raw process: ${stored} of ${a.jobs} results stored`);
    return { enqueue_per_s: Math.round(a.jobs / enqueueS), process_per_s: processRate(a.jobs, t1first, t1end) };
  } finally {
    const ch = await conn.createChannel();
    for (const q of queues) await ch.deleteQueue(q).catch(() => undefined);
    await conn.close().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    await deleteKeys(a.prefix);
  }
}

async function brokerRound(a: RoundArgs): Promise<RoundFigures> {
  type BrokerT = import('../src/broker.js').Broker;
  const { RabbitMQBroker } = (await loadTasuki<unknown>('brokers/rabbitmq.js')) as { RabbitMQBroker: new (o: { prefix: string }) => BrokerT };
  const broker = new RabbitMQBroker({ prefix: a.prefix });
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
  try {
    // Connected and the group declared before the timing, as the raw row's queue is.
    await broker.publish('enqueue', PAYLOAD);
    await profStart();
    const s0 = await statsNow();
    const c0 = cpuNow();
    const t0 = performance.now();
    await inFlight(a.jobs, a.concurrency, () => broker.publish('enqueue', PAYLOAD));
    const enqueueS = (performance.now() - t0) / 1000;
    cpuReport('broker enqueue', c0, a.jobs);
    await statsReport('broker enqueue', s0, a.jobs);
    const waiting = await broker.counts('enqueue');
    if (waiting.ready !== a.jobs + 1) throw new Error(`broker enqueue: ${waiting.ready} of ${a.jobs + 1} in the queue`);
    for (let i = 0; i < a.jobs; i += 1000) await broker.publishBatch('process', Array.from({ length: Math.min(1000, a.jobs - i) }, () => ({ body: PAYLOAD })));

    await profStart();
    const s1 = await statsNow();
    const c1 = cpuNow();
    let t1first = 0;
    let t1end = 0;
    let held = 0;
    let done = 0;
    let seq = 0;
    let slotFreed: (() => void) | null = null;
    let failure: unknown;
    while (done < a.jobs && failure === undefined) {
      if (held >= a.concurrency || seq >= a.jobs) {
        // Every slot busy, or every job fetched: wait for an ack.
        await new Promise<void>((r) => (slotFreed = r));
        continue;
      }
      const got = await broker.fetch('process', a.concurrency - held, { leaseMs: 60_000, waitMs: 1000 });
      held += got.length;
      for (const d of got) {
        redis
          .set(`${a.prefix}:r:${seq++}`, String(d.body.length))
          .then(() => broker.ack(d))
          .then(
            () => {
              if (++done === 1) t1first = performance.now();
              if (done === a.jobs) t1end = performance.now();
              held--;
              const wake = slotFreed;
              slotFreed = null;
              wake?.();
            },
            (err: unknown) => {
              failure = err;
              slotFreed?.();
            },
          );
      }
    }
    if (failure !== undefined) throw failure;
    cpuReport('broker process', c1, a.jobs);
    await statsReport('broker process', s1, a.jobs);
    let stored = 0;
    for (let i = 0; i < seq; i += 1000) {
      const keys = Array.from({ length: Math.min(1000, seq - i) }, (_, j) => `${a.prefix}:r:${i + j}`);
      stored += (await redis.mget(...keys)).filter((v) => v === String(EXPECTED_RESULT)).length;
    }
    if (stored !== a.jobs) throw new Error(`broker process: ${stored} of ${a.jobs} results stored`);
    return { enqueue_per_s: Math.round(a.jobs / enqueueS), process_per_s: processRate(a.jobs, t1first, t1end) };
  } finally {
    for (const g of ['enqueue', 'process']) await broker.purge(g).catch(() => undefined);
    await broker.close().catch(() => undefined);
    await redis.quit().catch(() => undefined);
    await deleteKeys(a.prefix);
  }
}

async function tasukiRound(a: RoundArgs): Promise<RoundFigures> {
  const sys = await tasukiSystem(a.kind === 'tasuki-mem' ? 'rabbitmq-memory' : 'rabbitmq', a.prefix);
  try {
    // Connected (broker and backend) and the group declared before the timing, as the raw row's queue is.
    await sys.sendOne('enqueue', PAYLOAD);
    await profStart();
    const s0 = await statsNow();
    const c0 = cpuNow();
    const t0 = performance.now();
    let firstSent = 0;
    await inFlight(a.jobs, a.concurrency, async () => {
      await sys.sendOne('enqueue', PAYLOAD);
      firstSent ||= performance.now() - t0;
    });
    const enqueueS = (performance.now() - t0) / 1000;
    if (CPU_PIDS.length > 0) console.error(`    ${a.kind} enqueue: first send resolved after ${firstSent.toFixed(0)} ms`);
    cpuReport(`${a.kind} enqueue`, c0, a.jobs);
    await statsReport(`${a.kind} enqueue`, s0, a.jobs);
    if ((await sys.waiting('enqueue')) !== a.jobs + 1) throw new Error('tasuki enqueue: count mismatch');
    const ids = await sys.sendBulk('process', new Array<string>(a.jobs).fill(PAYLOAD));
    let done = 0;
    let failed = 0;
    let finish!: () => void;
    const allDone = new Promise<void>((r) => (finish = r));
    let t1end = 0;
    await profStart();
    const s1 = await statsNow();
    const c1 = cpuNow();
    const t1 = performance.now();
    let t1first = 0;
    await sys.startWorker('process', a.concurrency, (ok) => {
      t1first ||= performance.now();
      if (ok) done++;
      else failed++;
      if (done + failed === a.jobs) {
        t1end = performance.now();
        finish();
      }
    });
    const started = performance.now() - t1;
    await allDone;
    if (CPU_PIDS.length > 0) console.error(`    ${a.kind} process: worker started after ${started.toFixed(0)} ms, first task done after ${(t1first - t1).toFixed(0)} ms`);
    cpuReport(`${a.kind} process`, c1, a.jobs);
    await statsReport(`${a.kind} process`, s1, a.jobs);
    await sys.stopWorkers();
    const v = await sys.verify('process', ids);
    if (failed > 0 || v.completed !== a.jobs || v.resultsStored !== a.jobs) throw new Error(`tasuki process: ${v.completed} completed, ${String(v.resultsStored)} results of ${a.jobs}`);
    return { enqueue_per_s: Math.round(a.jobs / enqueueS), process_per_s: processRate(a.jobs, t1first, t1end) };
  } finally {
    await sys.close().catch(() => undefined);
    await deleteKeys(a.prefix);
  }
}

function runChild(args: RoundArgs): Promise<RoundFigures> {
  return new Promise((resolve, reject) => {
    const child = fork(here, ['--round', JSON.stringify(args)], { execArgv: ['--import', 'tsx'] });
    let got: { ok: true; figures: RoundFigures } | { ok: false; error: string } | undefined;
    child.on('message', (m) => (got = m as typeof got));
    child.on('exit', (code) => {
      if (got?.ok) resolve(got.figures);
      else reject(new Error(`${args.kind} round failed (exit ${String(code)}): ${got && !got.ok ? got.error : 'no result'}`));
    });
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Runs the raw and tasuki rounds in alternation and prints medians and ratios; returns the failures
 * (empty when every round verified, whatever the ratios).
 */
export async function runRabbitMQBench(o: RabbitBenchOptions): Promise<string[]> {
  const log = o.log ?? ((line: string) => console.log(line));
  const figures: Record<Kind, RoundFigures[]> = { raw: [], broker: [], tasuki: [], 'tasuki-mem': [] };
  const failures: string[] = [];
  log(`\nRabbitMQ: raw amqplib vs the RabbitMQ broker alone vs tasuki (RabbitMQ broker + Redis backend), ${o.jobs} jobs, 64-byte payload, concurrency ${o.concurrency}, ${o.runs} alternating round(s)`);
  for (let r = 1; r <= o.runs; r++) {
    for (const kind of KINDS) {
      try {
        const f = await runChild({ kind, jobs: o.jobs, concurrency: o.concurrency, prefix: `tasuki-bench-${process.pid}-rmq-${r}-${kind}` });
        figures[kind].push(f);
        log(`  round ${r} ${kind.padEnd(10)} enqueue ${f.enqueue_per_s}/s  process ${f.process_per_s}/s`);
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
        log(`  round ${r} ${kind}: FAILED: ${failures[failures.length - 1] ?? ''}`);
      }
    }
  }
  if (KINDS.some((k) => figures[k].length === 0)) return failures;
  const med = (k: Kind, m: keyof RoundFigures): number => median(figures[k].map((f) => f[m]));
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  log('');
  log(`| figure (medians of ${o.runs}, ${o.concurrency} in flight) | ${KINDS.map((k) => LABEL[k]).join(' | ')} | broker / raw | tasuki / raw | tasuki (memory backend) / raw |`);
  log(`|---|${KINDS.map(() => '--:').join('|')}|--:|--:|--:|`);
  for (const [label, m] of [
    ['enqueue, confirmed (/s)', 'enqueue_per_s'],
    ['process: consume, result to Redis, ack (/s)', 'process_per_s'],
  ] as const) {
    const ratio = (k: Kind): number => med(k, m) / med('raw', m);
    log(`| ${label} | ${KINDS.map((k) => fmt(med(k, m))).join(' | ')} | ${ratio('broker').toFixed(2)} | ${ratio('tasuki').toFixed(2)} ${ratio('tasuki') >= 0.8 ? '(goal ≥ 0.8 met)' : '(goal ≥ 0.8 NOT met)'} | ${ratio('tasuki-mem').toFixed(2)} |`);
  }
  const json: Record<string, RoundFigures> = {};
  for (const k of KINDS) json[k] = { enqueue_per_s: med(k, 'enqueue_per_s'), process_per_s: med(k, 'process_per_s') };
  log(JSON.stringify({ rabbitmq: json }));
  return failures;
}

function intArg(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a whole number >= 1`);
  return n;
}

if (process.argv[1] === here) {
  const argv = process.argv.slice(2);
  if (argv[0] === '--round') {
    const args = JSON.parse(argv[1] ?? '{}') as RoundArgs;
    (args.kind === 'raw' ? rawRound(args) : args.kind === 'broker' ? brokerRound(args) : tasukiRound(args)).then(
      (figures) => {
        if (process.send) process.send({ ok: true, figures });
        else console.log(JSON.stringify(figures));
        setTimeout(() => process.exit(0), 100).unref();
      },
      (err: unknown) => {
        process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) });
        setTimeout(() => process.exit(1), 100).unref();
      },
    );
  } else {
    runRabbitMQBench({ jobs: intArg(argv, '--jobs', 20_000), concurrency: intArg(argv, '--concurrency', 50), runs: intArg(argv, '--runs', 3) }).then(
      (failures) => {
        if (failures.length > 0) {
          console.error(`\nBENCHMARK FAILED:\n- ${failures.join('\n- ')}`);
          process.exit(1);
        }
      },
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  }
}

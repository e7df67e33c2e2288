/**
 * `npm run build && npx tsx bench/metrics-cost.ts [--jobs N] [--rounds R] [--concurrency C] [--broker memory|redis] [--otel]`:
 * the cost of `tasuki/metrics` (and with `--otel`, `tasuki/otel` without an SDK) on process throughput.
 * In one process, rounds alternate off / on: each publishes N no-op tasks, then starts a fresh
 * server (with or without the instrumentation) and times until all are processed and acked. Prints
 * the median throughput and CPU time per task of each mode and the cost in percent (CPU time is
 * the steadier figure on a shared machine: it does not count time other processes ran).
 */
import { randomUUID } from 'node:crypto';
import type * as Core from '../src/index.js';
import type * as MemoryBrokerModule from '../brokers/memory.js';
import type * as MemoryBackendModule from '../backends/memory.js';
import type * as RedisBrokerModule from '../brokers/redis.js';
import type * as RedisBackendModule from '../backends/redis.js';
import type * as MetricsModule from '../metrics/index.js';
import type * as OtelModule from '../otel/index.js';
import { deleteKeys, loadTasuki } from './systems.js';

// The compiled package (`npm run build` first), as users run it; TASUKI_BENCH_SOURCE=1: the sources.
const { Client, Server, silentLogger } = await loadTasuki<typeof Core>('src/index.js');
const { MemoryBroker } = await loadTasuki<typeof MemoryBrokerModule>('brokers/memory.js');
const { MemoryBackend } = await loadTasuki<typeof MemoryBackendModule>('backends/memory.js');
const { RedisBroker } = await loadTasuki<typeof RedisBrokerModule>('brokers/redis.js');
const { RedisBackend } = await loadTasuki<typeof RedisBackendModule>('backends/redis.js');
const { TasukiMetrics } = await loadTasuki<typeof MetricsModule>('metrics/index.js');
const { TasukiTracing } = await loadTasuki<typeof OtelModule>('otel/index.js');
type Broker = Core.Broker;
type Backend = Core.Backend;
type Instrumentation = Core.Instrumentation;

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const jobs = Number(arg('jobs', '20000'));
const rounds = Number(arg('rounds', '6'));
const concurrency = Number(arg('concurrency', '50'));
const kind = arg('broker', 'memory');
const otel = process.argv.includes('--otel');
const prefix = `tasuki-metrics-cost-${randomUUID().slice(0, 8)}`;

function connections(): { broker: Broker; backend: Backend } {
  if (kind === 'redis') return { broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }) };
  return { broker: new MemoryBroker(), backend: new MemoryBackend() };
}

/** One round: N tasks queued first, then processed by a fresh server; tasks per second and CPU µs per task. */
async function round(on: boolean): Promise<{ rate: number; cpu: number }> {
  const { broker, backend } = connections();
  const group = `cost-${randomUUID().slice(0, 8)}`;
  const client = new Client({ broker, backend, logger: silentLogger });
  const ref = { group, name: 'noop' } as const;
  for (let i = 0; i < jobs; i += 1000) {
    await client.sendMany<[number], number>(ref, Array.from({ length: Math.min(1000, jobs - i) }, (_, k) => [i + k]));
  }
  const instrumentation: Instrumentation[] = on ? [new TasukiMetrics()] : [];
  if (on && otel) instrumentation.push(new TasukiTracing());
  const server = new Server({ broker, backend, logger: silentLogger, instrumentation });
  let done = 0;
  let all: () => void = () => undefined;
  const finished = new Promise<void>((r) => (all = r));
  server.add(group, 'noop', (x: number) => {
    if (++done === jobs) all();
    return x;
  });
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  await server.run(group, concurrency);
  await finished;
  for (;;) {
    const c = await broker.counts(group);
    if (c.ready === 0 && c.inFlight === 0) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  const secs = (performance.now() - t0) / 1000;
  const c1 = process.cpuUsage(c0);
  await broker.purge(group);
  await server.shutdown(5000);
  await client.close();
  if (kind === 'redis') await Promise.all([broker.close(), backend.close()]);
  return { rate: jobs / secs, cpu: (c1.user + c1.system) / jobs };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const off: Array<{ rate: number; cpu: number }> = [];
const on: Array<{ rate: number; cpu: number }> = [];
await round(false); // warm-up (JIT), not counted
await round(true);
for (let r = 0; r < rounds; r++) {
  // Alternate the order within each pair so that neither mode always runs second.
  const order = r % 2 === 0 ? [false, true] : [true, false];
  for (const mode of order) (mode ? on : off).push(await round(mode));
}
const show = (xs: Array<{ rate: number; cpu: number }>): string =>
  `${median(xs.map((x) => x.rate)).toFixed(0)} tasks/s (rounds: ${xs.map((x) => x.rate.toFixed(0)).join(' ')}), ${median(xs.map((x) => x.cpu)).toFixed(2)} CPU µs/task`;
const pct = (a: number, b: number): string => `${(((a - b) / a) * 100).toFixed(1)} %`;
console.log(`broker ${kind}, ${jobs} jobs, concurrency ${concurrency}, ${rounds} alternating pairs, instrumentation: metrics${otel ? ' + otel (no SDK)' : ''}`);
console.log(`off: ${show(off)}`);
console.log(`on:  ${show(on)}`);
const rateOff = median(off.map((x) => x.rate));
const rateOn = median(on.map((x) => x.rate));
const cpuOff = median(off.map((x) => x.cpu));
const cpuOn = median(on.map((x) => x.cpu));
console.log(`cost: throughput ${pct(rateOff, rateOn)}, CPU per task ${(((cpuOn - cpuOff) / cpuOff) * 100).toFixed(1)} %`);
// The task states and results of every round live under this run's prefix: remove them.
if (kind === 'redis') await deleteKeys(prefix);

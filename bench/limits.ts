/**
 * `npx tsx bench/limits.ts [--jobs N] [--redis URL]`: the broker cost of priorities and keys. On the
 * Redis and the memory broker, N messages are published (1 000 per batch), then fetched 50 at a
 * time and acked, in four scenarios: plain (no flow data), priorities (random 0..9), keys (100 keys,
 * fair dispatch), and keys with keyConcurrency 10. Prints messages/s of the fetch+ack phase per
 * scenario (median of 3 alternating rounds). Broker only: no backend, no handlers.
 */
import { RedisBroker } from '../brokers/redis.js';
import { MemoryBroker } from '../brokers/memory.js';
import type { Broker, FetchLimits, PublishOptions } from '../src/broker.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] as string) : dflt;
};
const jobs = Number(arg('--jobs', '20000'));
const url = arg('--redis', 'redis://127.0.0.1:6379');

interface Scenario {
  name: string;
  options(i: number): PublishOptions;
  flow?: FetchLimits;
}
const scenarios: Scenario[] = [
  { name: 'plain', options: () => ({}) },
  { name: 'priorities 0..9', options: (i) => ({ priority: (i * 7) % 10 }) },
  { name: '100 keys', options: (i) => ({ key: `k${i % 100}` }) },
  { name: '100 keys, keyConcurrency 10', options: (i) => ({ key: `k${i % 100}` }), flow: { keyConcurrency: 10 } },
];

async function round(b: Broker, s: Scenario): Promise<number> {
  const group = `bench-flow-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  for (let i = 0; i < jobs; i += 1000) {
    await b.publishBatch(group, Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ body: `m${i + j}`, options: s.options(i + j) })));
  }
  const t0 = performance.now();
  let done = 0;
  while (done < jobs) {
    const ds = await b.fetch(group, 50, { leaseMs: 30_000, waitMs: 100, ...(s.flow ? { flow: s.flow } : {}) });
    await Promise.all(ds.map((d) => b.ack(d)));
    done += ds.length;
  }
  const rate = jobs / ((performance.now() - t0) / 1000);
  await b.purge(group);
  return rate;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const redis = new RedisBroker({ prefix: 'tasuki-bench-flow', connection: url });
const memory = new MemoryBroker();
const results = new Map<string, number[]>();
for (let r = 0; r < 3; r++) {
  for (const [kind, b] of [['redis', redis], ['memory', memory]] as const) {
    for (const s of scenarios) {
      const key = `${kind}|${s.name}`;
      results.set(key, [...(results.get(key) ?? []), await round(b, s)]);
    }
  }
}
console.log(`fetch 50 + ack, ${jobs} messages, median of 3 rounds (messages/s)\n`);
console.log('| broker | scenario | messages/s |\n|---|---|--:|');
for (const [key, xs] of results) {
  const [kind, name] = key.split('|');
  console.log(`| ${kind} | ${name} | ${Math.round(median(xs)).toLocaleString('en-US')} |`);
}
await redis.close();
await memory.close();

/**
 * `npx tsx bench/limits.ts [--jobs N] [--redis URL] [--prefix P]` (also run by `npm run bench`): the
 * broker cost of priorities and keys, and the proof that a plain group does not pay for them.
 *
 * On the Redis and the memory broker, N messages are published (1 000 per batch), then fetched 50 at
 * a time and acked, in four scenarios: plain (no flow data), priorities (random 0..9), keys (100
 * keys, fair dispatch), and keys with keyConcurrency 10. Then, on Redis, a plain group on the broker
 * as shipped against the same broker whose fetch script has the flow-control check cut out (the
 * plain path alone, as before flow control existed): fetched 50 at a time, and one at a time (N/10
 * messages; the worst case, one check per message). Rounds alternate; medians of 3 (6 for the
 * plain comparison, the order rotating) and the ratio shipped / cut out, within this one run,
 * beside the noise floor: shipped / a second broker as shipped, measured the same way. Broker only: no backend, no handlers.
 */
import { RedisBroker } from '../brokers/redis.js';
import { MemoryBroker } from '../brokers/memory.js';
import { FETCH } from '../brokers/redis-lane-scripts.js';
import type { Broker, FetchLimits, PublishOptions } from '../src/broker.js';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] as string) : dflt;
};
const jobs = Number(arg('--jobs', '20000'));
const url = arg('--redis', 'redis://127.0.0.1:6379');
const prefix = arg('--prefix', 'tasuki-bench-flow');

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

async function round(b: Broker, s: Scenario, n = jobs, batch = 50): Promise<number> {
  const group = `bench-flow-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  for (let i = 0; i < n; i += 1000) {
    await b.publishBatch(group, Array.from({ length: Math.min(1000, n - i) }, (_, j) => ({ body: `m${i + j}`, options: s.options(i + j) })));
  }
  const t0 = performance.now();
  let done = 0;
  while (done < n) {
    const ds = await b.fetch(group, batch, { leaseMs: 30_000, waitMs: 100, ...(s.flow ? { flow: s.flow } : {}) });
    await Promise.all(ds.map((d) => b.ack(d)));
    done += ds.length;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  await b.purge(group);
  return rate;
}

/**
 * A Redis broker whose fetch script is the plain path alone: the flow-control check (`EXISTS` of
 * the group's flow keys, the limit argument) is cut out. Bench only: it reaches into the broker's
 * connection to redefine the one script.
 */
function withoutFlowCheck(b: RedisBroker): RedisBroker {
  const check = "local flow_on = redis.call('EXISTS', base .. 'meta', base .. 'kidle') > 0\nif not flow_on and tonumber(ARGV[3] or '0') == 0 then";
  if (!FETCH.includes(check)) throw new Error('bench/limits.ts: the fetch script changed; update withoutFlowCheck');
  const cmd = (b as unknown as { cmd: { defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void } & Record<string, unknown> }).cmd;
  cmd.defineCommand('tasukiFetchPlainOnly', { numberOfKeys: 7, lua: FETCH.replace(check, 'local flow_on = false\nif true then') });
  cmd.tasukiFetch = cmd.tasukiFetchPlainOnly;
  return b;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const fmt = (x: number): string => Math.round(x).toLocaleString('en-US');
const redis = new RedisBroker({ prefix, connection: url });
const twin = new RedisBroker({ prefix, connection: url });
const baseline = withoutFlowCheck(new RedisBroker({ prefix, connection: url }));
const memory = new MemoryBroker();
const results = new Map<string, number[]>();
const add = (key: string, x: number): void => void results.set(key, [...(results.get(key) ?? []), x]);
for (let r = 0; r < 3; r++) {
  for (const [kind, b] of [['redis', redis], ['memory', memory]] as const) {
    for (const s of scenarios) add(`${kind}|${s.name}`, await round(b, s));
  }
}
const plain = scenarios[0] as Scenario;
const cost = new Map<string, number[]>();
for (let r = 0; r < 6; r++) {
  // Which one goes first rotates too (a round's position must not favour any). The twin is a second
  // broker as shipped: shipped / twin is the noise floor of this machine, in this run.
  const trio = [['shipped', redis], ['cut out', baseline], ['twin', twin]] as const;
  for (const [label, b] of [...trio.slice(r % 3), ...trio.slice(0, r % 3)]) {
    cost.set(`50|${label}`, [...(cost.get(`50|${label}`) ?? []), await round(b, plain)]);
    cost.set(`1|${label}`, [...(cost.get(`1|${label}`) ?? []), await round(b, plain, Math.max(100, Math.floor(jobs / 10)), 1)]);
  }
}
console.log(`fetch 50 + ack, ${jobs} messages, median of 3 rounds (messages/s)\n`);
console.log('| broker | scenario | messages/s |\n|---|---|--:|');
for (const [key, xs] of results) {
  const [kind, name] = key.split('|');
  console.log(`| ${kind} | ${name} | ${fmt(median(xs))} |`);
}
console.log('\nA plain group does not pay: Redis, fetch + ack of a plain group, broker as shipped vs its fetch script without the flow-control check (median of 6 alternating rounds, the order rotating; the last column compares two identical brokers)\n');
console.log('| fetch size | shipped msg/s | check cut out msg/s | shipped / cut out | noise floor: shipped / a second shipped broker |\n|--:|--:|--:|--:|--:|');
for (const size of ['50', '1']) {
  const a = median(cost.get(`${size}|shipped`) ?? []);
  const c = median(cost.get(`${size}|cut out`) ?? []);
  const t = median(cost.get(`${size}|twin`) ?? []);
  console.log(`| ${size} | ${fmt(a)} | ${fmt(c)} | ${(a / c).toFixed(3)} | ${(a / t).toFixed(3)} |`);
}
await redis.close();
await baseline.close();
await twin.close();
await memory.close();

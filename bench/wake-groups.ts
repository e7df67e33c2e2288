/**
 * `npx tsx bench/wake-groups.ts`: the Redis broker's idle-fetch waits, this build against another
 * (TASUKI_BENCH_BASELINE=/abs/path/to/other/dist), on a private redis-server, rounds alternating
 * (A B A B …), each round in its own child process.
 *
 * - latency: one group, one task in flight: send → result p50/p99 over --latency-jobs (1000), with
 *   --idle-groups K (0) more groups idle in the same server.
 * - groups: one server running N groups (--groups 1,10,100,1000): the broker connections it holds
 *   (CLIENT LIST, by connection name), the commands Redis ran while all groups sat idle for
 *   --idle-ms (5000; fetchWaitMs 5000), and the time to serve one task per group sent at once.
 *
 * Options: --runs R (3, latency rounds) --group-runs G (1) --latency-jobs L --idle-groups K
 * --groups LIST (empty: none) --idle-ms MS.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { countersDelta, readCounters, startPrivateRedis } from './private-redis.js';

const here = fileURLToPath(import.meta.url);
const CURRENT = fileURLToPath(new URL('../dist', import.meta.url));

interface LatencyResult {
  p50: number;
  p99: number;
}
interface GroupsResult {
  groups: number;
  cmdConnections: number;
  blockConnections: number;
  idleCommands: Record<string, number>;
  burstMs: number;
  /** BLPOP, EVAL (the hub's sweep) and CLIENT (UNBLOCK) calls Redis ran during the burst. */
  burstCommands: Record<string, number>;
}

async function load(root: string): Promise<{ index: typeof import('../src/index.js'); broker: typeof import('../brokers/redis.js'); backend: typeof import('../backends/redis.js') }> {
  return {
    index: (await import(`${root}/src/index.js`)) as typeof import('../src/index.js'),
    broker: (await import(`${root}/brokers/redis.js`)) as typeof import('../brokers/redis.js'),
    backend: (await import(`${root}/backends/redis.js`)) as typeof import('../backends/redis.js'),
  };
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
};

/** One round in this (child) process. */
async function child(root: string, port: number, mode: string, n: number, idleMs: number, idleGroups: number): Promise<LatencyResult | GroupsResult> {
  const { index, broker, backend } = await load(root);
  const prefix = `wake-bench-${process.pid}`;
  const name = `wake-bench-${process.pid}`;
  const connection = { host: '127.0.0.1', port };
  const server = new index.Server({
    broker: new broker.RedisBroker({ connection, prefix, connectionName: name }),
    backend: new backend.RedisBackend({ connection, prefix }),
    logger: index.silentLogger,
    fetchWaitMs: 5000,
  });
  const client = new index.Client({ broker: new broker.RedisBroker({ connection, prefix, connectionName: `${name}-client` }), backend: new backend.RedisBackend({ connection, prefix }), logger: index.silentLogger });
  // Latency: g0 plus `idleGroups` groups that stay idle (their waits share the hub with g0's).
  const groups = Array.from({ length: mode === 'latency' ? 1 + idleGroups : n }, (_, i) => `g${i}`);
  for (const g of groups) server.add(g, 'echo', (x: number) => x);
  for (const g of groups) await server.run(g, 1);
  const admin = new Redis({ ...connection, connectionName: 'wake-bench-admin' });
  try {
    await client.getResult(await client.send('g0', 'echo', 0), 10_000); // warm up
    if (mode === 'latency') {
      const ms: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await client.getResult(await client.send('g0', 'echo', i), 10_000);
        ms.push(performance.now() - t);
      }
      return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99) };
    }
    await new Promise((r) => setTimeout(r, 500));
    const before = await readCounters(admin);
    await new Promise((r) => setTimeout(r, idleMs));
    const after = await readCounters(admin);
    const list = String(await admin.call('CLIENT', 'LIST'));
    const names = list.split('\n').map((l) => /(?:^|\s)name=(\S*)/.exec(l)?.[1] ?? '');
    const burstBefore = await readCounters(admin);
    const t = performance.now();
    const ids = await Promise.all(groups.map((g, i) => client.send(g, 'echo', i)));
    await Promise.all(ids.map((id) => client.getResult(id, 60_000)));
    const burstMs = performance.now() - t;
    const burst = countersDelta(burstBefore, await readCounters(admin)).byName;
    const burstCommands = Object.fromEntries(Object.entries(burst).filter(([k]) => k === 'blpop' || k === 'eval' || k.startsWith('client')));
    return {
      groups: n,
      cmdConnections: names.filter((x) => x === `${name}:cmd`).length,
      blockConnections: names.filter((x) => x === `${name}:block`).length,
      idleCommands: Object.fromEntries(Object.entries(countersDelta(before, after).byName).filter(([k]) => k !== 'info')),
      burstMs,
      burstCommands,
    };
  } finally {
    await server.shutdown(5000);
    await client.close();
    admin.disconnect();
  }
}

function runChild(root: string, port: number, mode: string, n: number, idleMs: number, idleGroups = 0): Promise<LatencyResult | GroupsResult> {
  return new Promise((resolve, reject) => {
    const c = fork(here, ['--child', root, String(port), mode, String(n), String(idleMs), String(idleGroups)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    c.once('message', (m) => resolve(m as LatencyResult | GroupsResult));
    c.once('exit', (code) => reject(new Error(`child exited ${String(code)}`)));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const [, root, port, mode, n, idleMs, idleGroups] = args as [string, string, string, string, string, string, string];
    const out = await child(root, Number(port), mode, Number(n), Number(idleMs), Number(idleGroups));
    process.send?.(out);
    process.exit(0);
  }
  const opt = (k: string, d: string): string => {
    const i = args.indexOf(k);
    return i >= 0 ? (args[i + 1] as string) : d;
  };
  const runs = Number(opt('--runs', '3'));
  const jobs = Number(opt('--latency-jobs', '1000'));
  const groupCounts = opt('--groups', '1,10,100,1000').split(',').filter(Boolean).map(Number);
  const idleMs = Number(opt('--idle-ms', '5000'));
  const idleGroups = Number(opt('--idle-groups', '0'));
  const builds: Array<[string, string]> = [['this build', CURRENT]];
  if (process.env.TASUKI_BENCH_BASELINE) builds.push(['baseline', process.env.TASUKI_BENCH_BASELINE]);
  const redis = await startPrivateRedis();
  try {
    const lat = new Map<string, LatencyResult[]>(builds.map(([b]) => [b, []]));
    for (let r = 0; r < runs; r++) {
      for (const [label, root] of r % 2 === 0 ? builds : [...builds].reverse()) (lat.get(label) as LatencyResult[]).push((await runChild(root, redis.port, 'latency', jobs, 0, idleGroups)) as LatencyResult);
    }
    if (runs > 0) {
      console.log(`| build (one group, 1 in flight, ${idleGroups} other groups idle) | send→result p50 ms (median of rounds) | p99 ms | rounds p50 |`);
      console.log('|---|---|---|---|');
      for (const [label, rs] of lat) {
        console.log(`| ${label} | ${quantile(rs.map((x) => x.p50), 0.5).toFixed(3)} | ${quantile(rs.map((x) => x.p99), 0.5).toFixed(3)} | ${rs.map((x) => x.p50.toFixed(3)).join(' ')} |`);
      }
    }
    if (groupCounts.length > 0) {
      console.log('\n| build | groups | cmd conns | block conns | commands while idle (per s) | burst: one task per group, ms | burst: blocking commands (first round) |');
      console.log('|---|---|---|---|---|---|---|');
    }
    const groupRuns = Number(opt('--group-runs', '1'));
    for (const n of groupCounts) {
      const rounds = new Map<string, GroupsResult[]>(builds.map(([b]) => [b, []]));
      for (let r = 0; r < groupRuns; r++) {
        for (const [label, root] of r % 2 === 0 ? builds : [...builds].reverse()) (rounds.get(label) as GroupsResult[]).push((await runChild(root, redis.port, 'groups', n, idleMs)) as GroupsResult);
      }
      for (const [label, rs] of rounds) {
        const g = rs[0] as GroupsResult;
        const idle = Object.entries(g.idleCommands)
          .map(([k, v]) => `${k} ${((v * 1000) / idleMs).toFixed(1)}`)
          .join(', ');
        const burst = rs.map((x) => x.burstMs);
        const cmds = Object.entries(g.burstCommands)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
        console.log(`| ${label} | ${n} | ${g.cmdConnections} | ${g.blockConnections} | ${idle} | ${quantile(burst, 0.5).toFixed(0)} (${burst.map((x) => x.toFixed(0)).join(' ')}) | ${cmds} |`);
      }
    }
  } finally {
    await redis.stop();
  }
}

await main();

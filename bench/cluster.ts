/**
 * `npm run bench -- --cluster` (or `npx tsx bench/cluster.ts`): tasuki on a private local Redis
 * Cluster (3 masters + 3 replicas started by `test/helpers/redis-cluster.ts`, stopped at the end).
 *
 * 1. Throughput of one group: worker processes (`test/fixtures/worker.ts`, concurrency 50) wait on
 *    an empty group, this process sends N tasks (`sendMany` in batches of 500) and the clock runs
 *    from the first send until the group is drained; with 1 and 3 shards, 1 and 2 worker processes.
 * 2. What each task costs the servers: `INFO commandstats` (calls, µs) and network bytes summed over
 *    the masters, per task; from the µs, how many tasks per second one master core could take.
 * 3. The cost of `waitReplicas` (WAIT 1): sends per second with and without it.
 *
 * Every node, the workers and this process share this machine's cores (2 on the reference machine):
 * the figures show overhead, not scale-out. Options: --jobs N (5000) --json.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client, silentLogger, taskRef } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { haveRedisCluster, startRedisCluster, type PrivateCluster } from '../test/helpers/redis-cluster.js';
import { killAll, startWorker, type WorkerProcess } from '../test/helpers/processes.js';

const argv = process.argv.slice(2);
const jobsArg = argv.indexOf('--jobs');
const JOBS = jobsArg >= 0 ? Number(argv[jobsArg + 1]) : 5000;
const JSON_OUT = argv.includes('--json');

interface ServerCost {
  calls: number;
  usec: number;
  bytesIn: number;
  bytesOut: number;
}

/** Commandstats and network bytes summed over the masters (after a CONFIG RESETSTAT each). */
async function masterStats(cluster: PrivateCluster, reset: boolean): Promise<ServerCost> {
  const out: ServerCost = { calls: 0, usec: 0, bytesIn: 0, bytesOut: 0 };
  for (const p of cluster.processes) {
    if (!p.alive()) continue;
    const c = new Redis({ port: p.port, host: '127.0.0.1', lazyConnect: true });
    c.on('error', () => undefined);
    try {
      const role = await c.info('replication');
      if (!/role:master/.test(role)) continue;
      if (reset) {
        await c.config('RESETSTAT');
        continue;
      }
      const cmd = await c.info('commandstats');
      for (const m of cmd.matchAll(/calls=(\d+),usec=(\d+)/g)) {
        out.calls += Number(m[1]);
        out.usec += Number(m[2]);
      }
      const stats = await c.info('stats');
      out.bytesIn += Number(/total_net_input_bytes:(\d+)/.exec(stats)?.[1] ?? 0);
      out.bytesOut += Number(/total_net_output_bytes:(\d+)/.exec(stats)?.[1] ?? 0);
    } finally {
      c.disconnect();
    }
  }
  return out;
}

/** One throughput round: `workers` worker processes, a group of `shards` shards. */
async function throughput(cluster: PrivateCluster, shards: number, workers: number): Promise<{ perSec: number; cost: ServerCost }> {
  const prefix = `tasuki-bench-cl-${randomUUID().slice(0, 8)}`;
  const group = `bench-${randomUUID().slice(0, 8)}`;
  const where = { cluster: { nodes: cluster.nodes } };
  const procs: WorkerProcess[] = [];
  const broker = new RedisBroker({ prefix, ...where, shards });
  const client = new Client({ broker, backend: new RedisBackend({ prefix, ...where }), logger: silentLogger });
  try {
    for (let i = 0; i < workers; i++) {
      procs.push(await startWorker({
        TASUKI_PREFIX: prefix, TASUKI_GROUP: group, TASUKI_BROKER: 'redis', TASUKI_BACKEND: 'redis', TASUKI_CONCURRENCY: '50',
        TASUKI_REDIS_CLUSTER: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), TASUKI_SHARDS: String(shards),
      }));
    }
    const work = taskRef<[number, number], unknown>(group, 'work');
    await masterStats(cluster, true);
    const t0 = performance.now();
    for (let i = 0; i < JOBS; i += 500) {
      await client.sendMany(work, Array.from({ length: Math.min(500, JOBS - i) }, (_, j) => [i + j, 0] as [number, number]));
    }
    for (;;) {
      const c = await broker.counts(group);
      if (c.ready + c.inFlight + c.delayed === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const cost = await masterStats(cluster, false);
    await broker.purge(group);
    return { perSec: JOBS / seconds, cost };
  } finally {
    await killAll(procs);
    await client.close();
    await cluster.sweep(`${prefix}:*`);
  }
}

/** Sends per second (50 in flight) with or without waitReplicas on the broker and backend. */
async function sendRate(cluster: PrivateCluster, wait: boolean): Promise<number> {
  const prefix = `tasuki-bench-clw-${randomUUID().slice(0, 8)}`;
  const group = `bench-${randomUUID().slice(0, 8)}`;
  const w = wait ? { waitReplicas: { replicas: 1, timeoutMs: 5000 } } : {};
  const where = { cluster: { nodes: cluster.nodes } };
  const broker = new RedisBroker({ prefix, ...where, ...w });
  const client = new Client({ broker, backend: new RedisBackend({ prefix, ...where, ...w }), logger: silentLogger });
  const work = taskRef<[number, number], unknown>(group, 'work');
  const n = Math.min(JOBS, 3000);
  try {
    await client.send(work, -1, 0);
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 50 }, async () => {
      while (next < n) {
        const i = next++;
        await client.send(work, i, 0);
      }
    }));
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await broker.purge(group).catch(() => undefined);
    await client.close();
    await cluster.sweep(`${prefix}:*`);
  }
}

async function main(): Promise<void> {
  if (!haveRedisCluster) {
    console.log('cluster bench skipped: redis-server or redis-cli not found');
    return;
  }
  const cluster = await startRedisCluster();
  try {
    const rows: Array<Record<string, number | string>> = [];
    for (const [shards, workers] of [[1, 1], [3, 1], [1, 2], [3, 2]] as const) {
      const r = await throughput(cluster, shards, workers);
      rows.push({
        scenario: `${shards} shard(s), ${workers} worker process(es)`,
        tasksPerSec: Math.round(r.perSec),
        serverCallsPerTask: +(r.cost.calls / JOBS).toFixed(2),
        serverUsecPerTask: +(r.cost.usec / JOBS).toFixed(1),
        bytesInPerTask: Math.round(r.cost.bytesIn / JOBS),
        bytesOutPerTask: Math.round(r.cost.bytesOut / JOBS),
        // One master core spends usec per task on the commands (command time only, no I/O).
        tasksPerSecPerMasterCore: Math.round(1e6 / (r.cost.usec / JOBS)),
      });
    }
    const plain = await sendRate(cluster, false);
    const waited = await sendRate(cluster, true);
    if (JSON_OUT) {
      for (const r of rows) console.log(JSON.stringify(r));
      console.log(JSON.stringify({ scenario: 'sends/s', plain: Math.round(plain), waitReplicas1: Math.round(waited) }));
      return;
    }
    console.log(`\nRedis Cluster, 3 masters + 3 replicas on this machine (all nodes, workers and the sender share its cores), ${JOBS} tasks per row:\n`);
    console.log('| scenario | tasks/s | server calls/task | server µs/task | bytes in/task | bytes out/task | tasks/s one master core could take |');
    console.log('|---|---|---|---|---|---|---|');
    for (const r of rows) console.log(`| ${r.scenario} | ${r.tasksPerSec} | ${r.serverCallsPerTask} | ${r.serverUsecPerTask} | ${r.bytesInPerTask} | ${r.bytesOutPerTask} | ${r.tasksPerSecPerMasterCore} |`);
    console.log(`\nsend (50 in flight): ${Math.round(plain)} sends/s without WAIT, ${Math.round(waited)} sends/s with waitReplicas 1 (${((1 - waited / plain) * 100).toFixed(0)} % fewer)`);
  } finally {
    await cluster.stop();
  }
}

await main();

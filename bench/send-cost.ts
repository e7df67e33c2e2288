/**
 * What one send and one send → result cost, on a private redis-server (`./private-redis.ts`):
 * per operation, 1 in flight, the wall time, this process's CPU time (user + system), the server's
 * CPU time, the Redis commands (those run inside scripts included) and the read events the server
 * processed (about one per socket write that reached it). CPU times and counts are far less noisy
 * than wall times on a shared machine; the counts are exact.
 *
 * Systems: tasuki (this build's sources, Redis broker + Redis backend), tasuki (one connection:
 * each backend with `shareConnection` on its broker), tasuki (baseline) with
 * `--baseline /abs/path/to/dist` (another build, e.g. main), and bee-queue; measured in alternating
 * rounds in one process, medians printed.
 *
 * `--timeline` instead prints where the time of one tasuki send → result goes: every Redis command
 * issued and answered (connection, command; scripts by their number of keys), the handler's start,
 * the send and getResult settling, as median µs from the send() call over the round trips that
 * took the most common order.
 *
 * `--root DIST` loads tasuki from a build (e.g. `dist` after `npm run build`) instead of the sources:
 * compare a baseline build with a build, not with the sources (tsx adds helpers of its own).
 *
 * Usage: `npx tsx bench/send-cost.ts [--ops N (3000)] [--rounds R (3)] [--root DIST] [--baseline DIST] [--timeline]`
 */
import { Redis } from 'ioredis';
import { countersDelta, readCounters, startPrivateRedis } from './private-redis.js';
import { PAYLOAD } from './round.js';
import { onRedisCommand } from './redis-command-hook.js';
import { EXPECTED_RESULT } from './systems.js';

/** One system's two operations. */
interface CostSystem {
  name: string;
  send(): Promise<unknown>;
  roundTrip(): Promise<void>;
  close(): Promise<void>;
}

/** One measurement, per operation. */
interface Cost {
  wallUs: number;
  cpuUs: number;
  redisCpuUs: number;
  commands: number;
  reads: number;
}

function option(name: string, fallback: string | undefined): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function serverCpu(redis: Redis): Promise<number> {
  const text = await redis.info('cpu');
  let s = 0;
  for (const m of text.matchAll(/^used_cpu_(?:user|sys):([\d.]+)/gm)) s += Number(m[1]);
  return s;
}

/** Events of the round trip being traced (`--timeline`), or null when not tracing. */
let trace: Array<[number, string]> | null = null;
const mark = (what: string): void => void trace?.push([performance.now(), what]);

/** Records every command of every ioredis connection (issued, answered) while {@link trace} is set. */
function traceCommands(): void {
  onRedisCommand((connection, cmd) => {
    if (trace === null || cmd.name === 'info') return;
    const what = `${connection.options.connectionName ?? '?'} ${cmd.name === 'evalsha' ? `script(${String(cmd.args[1])} keys)` : cmd.name}`;
    const t = trace;
    t.push([performance.now(), `>> ${what}`]);
    cmd.promise.then(() => void t.push([performance.now(), `<< ${what}`]), () => undefined);
  });
}

async function timeline(port: number, trips: number): Promise<void> {
  traceCommands();
  type Index = typeof import('../src/index.js');
  const { Client, Server, silentLogger } = (await import('../src/index.js')) as Index;
  const { RedisBroker } = await import('../brokers/redis.js');
  const { RedisBackend } = await import('../backends/redis.js');
  const connection = { host: '127.0.0.1', port };
  const named = (connectionName: string): { host: string; port: number; connectionName: string } => ({ ...connection, connectionName });
  const client = new Client({ broker: new RedisBroker({ prefix: 'tt', connection, connectionName: 'client-broker' }), backend: new RedisBackend({ prefix: 'tt', connection: named('client-backend') }), logger: silentLogger });
  const server = new Server({ broker: new RedisBroker({ prefix: 'tt', connection, connectionName: 'worker-broker' }), backend: new RedisBackend({ prefix: 'tt', connection: named('worker-backend') }), logger: silentLogger });
  server.add('latency', 'noop', (p: string) => {
    mark('   handler runs');
    return p.length;
  });
  await server.run('latency', 50);
  const traces: Array<{ t0: number; events: Array<[number, string]> }> = [];
  try {
    for (let i = 0; i < trips; i++) {
      const events: Array<[number, string]> = [];
      if (i >= trips / 2) trace = events;
      const t0 = performance.now();
      const id = await client.send('latency', 'noop', PAYLOAD);
      mark('   send resolved, getResult called');
      await client.getResult(id, 10_000);
      mark('   getResult resolved');
      trace = null;
      if (i >= trips / 2) traces.push({ t0, events });
    }
    // Replies that came after getResult settled (the worker's ack...) are in their trip's list by now.
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    await server.shutdown(5000);
    await client.close();
  }
  const orders = new Map<string, Array<Array<[number, string]>>>();
  for (const { t0, events } of traces) {
    const sorted = events.map(([t, w]): [number, string] => [t - t0, w]).sort((a, b) => a[0] - b[0]);
    const key = sorted.map(([, w]) => w).join('|');
    orders.set(key, [...(orders.get(key) ?? []), sorted]);
  }
  const [, common] = [...orders].sort((a, b) => b[1].length - a[1].length)[0] as [string, Array<Array<[number, string]>>];
  console.log(`tasuki send → result, ${common.length} of ${traces.length} round trips in this order; median µs from send():`);
  (common[0] as Array<[number, string]>).forEach(([, what], i) => console.log(`${median(common.map((e) => (e[i] as [number, string])[0] * 1000)).toFixed(0).padStart(7)}  ${what}`));
}

/** tasuki on Redis from `root`; with `oneConnection`, each backend on its broker's connection (`shareConnection`). */
async function tasuki(name: string, root: string, port: number, prefix: string, oneConnection = false): Promise<CostSystem> {
  type Index = typeof import('../src/index.js');
  const { Client, Server, silentLogger } = (await import(`${root}/src/index.js`)) as Index;
  const { RedisBroker } = (await import(`${root}/brokers/redis.js`)) as typeof import('../brokers/redis.js');
  const { RedisBackend } = (await import(`${root}/backends/redis.js`)) as typeof import('../backends/redis.js');
  const connection = { host: '127.0.0.1', port };
  const pair = (): { broker: InstanceType<typeof RedisBroker>; backend: InstanceType<typeof RedisBackend> } => {
    const broker = new RedisBroker({ prefix, connection });
    return { broker, backend: oneConnection ? new RedisBackend({ prefix, shareConnection: broker }) : new RedisBackend({ prefix, connection }) };
  };
  const client = new Client({ ...pair(), logger: silentLogger });
  const server = new Server({ ...pair(), logger: silentLogger });
  server.add('latency', 'noop', (p: string) => p.length);
  await server.run('latency', 50);
  return {
    name,
    send: () => client.send('serial', 'noop', PAYLOAD),
    async roundTrip() {
      const id = await client.send('latency', 'noop', PAYLOAD);
      const r = await client.getResult(id, 10_000);
      if (!r.isSuccess() || r.value !== EXPECTED_RESULT) throw new Error(`task ${id} ended ${r.status}`);
    },
    async close() {
      await server.shutdown(5000);
      await client.close();
    },
  };
}

async function beeQueue(port: number): Promise<CostSystem> {
  const BeeQueue = (await import('bee-queue')).default;
  const redis = { host: '127.0.0.1', port };
  const serial = new BeeQueue<string>('serial', { prefix: 'bq', redis, isWorker: false, storeJobs: false });
  const producer = new BeeQueue<string>('latency', { prefix: 'bq', redis, isWorker: false, getEvents: true, storeJobs: true });
  const worker = new BeeQueue<string>('latency', { prefix: 'bq', redis, isWorker: true, getEvents: false, sendEvents: true });
  await Promise.all([serial.ready(), producer.ready(), worker.ready()]);
  void worker.process(50, async (job) => job.data.length);
  return {
    name: 'bee-queue',
    send: () => serial.createJob(PAYLOAD).save(),
    async roundTrip() {
      const job = await producer.createJob(PAYLOAD).save();
      await new Promise<void>((resolve, reject) => {
        job.on('succeeded', (value: unknown) => (value === EXPECTED_RESULT ? resolve() : reject(new Error(`job ${job.id} returned ${String(value)}`))));
        job.on('failed', reject);
      });
    },
    async close() {
      await worker.close(5000);
      await producer.close();
      await serial.close();
    },
  };
}

async function measure(info: Redis, n: number, op: () => Promise<unknown>): Promise<Cost> {
  for (let i = 0; i < Math.min(500, n); i++) await op();
  const c0 = await readCounters(info);
  const s0 = await serverCpu(info);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await op();
  const wall = performance.now() - t0;
  const u = process.cpuUsage(u0);
  const s1 = await serverCpu(info);
  const c1 = await readCounters(info);
  const d = countersDelta(c0, c1);
  // The INFO cpu call between the two counter reads is one command and one read of its own.
  return { wallUs: (wall * 1000) / n, cpuUs: (u.user + u.system) / n, redisCpuUs: ((s1 - s0) * 1e6) / n, commands: (d.commands - 1) / n, reads: (d.reads - 1) / n };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function main(): Promise<void> {
  const ops = Number(option('--ops', '3000'));
  const rounds = Number(option('--rounds', '3'));
  const baseline = option('--baseline', undefined);
  const server = await startPrivateRedis();
  const info = new Redis({ host: '127.0.0.1', port: server.port });
  const systems: CostSystem[] = [];
  try {
    if (process.argv.includes('--timeline')) {
      await timeline(server.port, ops);
      return;
    }
    // The sources run through tsx unless --root names a build (compare builds with builds: tsx adds helpers).
    const root = option('--root', '..') as string;
    systems.push(await tasuki('tasuki', root, server.port, 'tc'));
    systems.push(await tasuki('tasuki (one connection)', root, server.port, 'ts', true));
    if (baseline !== undefined) systems.push(await tasuki('tasuki (baseline)', baseline, server.port, 'tb'));
    systems.push(await beeQueue(server.port));
    const results = new Map<string, Cost[]>();
    for (let r = 0; r < rounds; r++) {
      for (const s of systems) {
        for (const [label, op] of [['send', s.send], ['send → result', s.roundTrip]] as const) {
          const key = `${s.name}|${label}`;
          const list = results.get(key) ?? [];
          list.push(await measure(info, ops, op));
          results.set(key, list);
        }
      }
    }
    console.log(`Medians of ${rounds} alternating round(s) of ${ops} operations, 1 in flight, private redis-server; per operation:\n`);
    console.log('| system | operation | wall µs | node CPU µs | redis CPU µs | Redis commands | server read events |');
    console.log('|---|---|--:|--:|--:|--:|--:|');
    for (const [key, list] of results) {
      const [name, label] = key.split('|');
      const f = (k: keyof Cost, digits = 0): string => median(list.map((c) => c[k])).toFixed(digits);
      console.log(`| ${name} | ${label} | ${f('wallUs')} | ${f('cpuUs')} | ${f('redisCpuUs')} | ${f('commands', 2)} | ${f('reads', 2)} |`);
    }
  } finally {
    for (const s of systems) await s.close().catch(() => undefined);
    info.disconnect();
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

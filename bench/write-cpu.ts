/**
 * Redis server cost of the Redis backend's guarded state writes, per write, on a private
 * redis-server: the three writes of a task run (the client's `sent`, an `absent` write; the
 * worker's claim, `notFinal` with the sent state as its basis; its final `success` with a result,
 * `notSuccess` with the claim as its basis), for `--tasks` tasks in calls of `--batch` concurrent
 * writes (one script call each). Per phase: Redis CPU (user + sys from INFO cpu; noisy, the median
 * of alternating rounds), microseconds inside script calls (commandstats), and the exact commands
 * (those the scripts run included) and bytes to Redis per write.
 *
 * Builds compared in alternating rounds: this tree's sources (tsx) and, with `--baseline DIST`,
 * another build's `dist/` directory (an earlier commit built elsewhere).
 *
 * Usage: `npx tsx bench/write-cpu.ts [--tasks 2000] [--batch 50] [--rounds 6] [--baseline DIST] [--cap N] [--json]`
 */
import { Redis } from 'ioredis';
import { countersDelta, readCounters, startPrivateRedis } from './private-redis.js';

interface Options {
  tasks: number;
  batch: number;
  rounds: number;
  baseline: string | undefined;
  cap: number | undefined;
  json: boolean;
}

function parse(argv: string[]): Options {
  const o: Options = { tasks: 2000, batch: 50, rounds: 6, baseline: undefined, cap: undefined, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--tasks') o.tasks = Number(argv[++i]);
    else if (a === '--batch') o.batch = Number(argv[++i]);
    else if (a === '--rounds') o.rounds = Number(argv[++i]);
    else if (a === '--baseline') o.baseline = argv[++i];
    else if (a === '--cap') o.cap = Number(argv[++i]);
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${String(a)}`);
  }
  return o;
}

const PHASES = ['sent', 'claim', 'final'] as const;
type Phase = (typeof PHASES)[number];

/** One phase's figures per write. */
interface PhaseFigures {
  cpuUsec: number;
  scriptUsec: number;
  commands: number;
  bytesIn: number;
  byName: Record<string, number>;
}

interface BackendLike {
  write(w: unknown): Promise<unknown>;
  close(): Promise<void>;
}

const per = (n: number, d: number): number => Math.round((n / d) * 100) / 100;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return Math.round((s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2) * 10) / 10;
};

async function round(root: string, prefix: string, port: number, info: Redis, o: Options): Promise<Record<Phase, PhaseFigures>> {
  const { RedisBackend } = (await import(`${root}/backends/redis.js`)) as { RedisBackend: new (opts: object) => BackendLike };
  const b = new RedisBackend({ prefix, connection: { host: '127.0.0.1', port }, ...(o.cap === undefined ? {} : { index: { cap: o.cap } }) });
  const now = 1796137376867;
  const sent = (id: string): object => ({ v: 1, id, group: 'bench', name: 'noop', status: 'sent', retriesUsed: 0, retriesLeft: 3, sentAt: now, updatedAt: now });
  const running = (id: string): object => ({ ...sent(id), status: 'running', startedAt: now + 100, updatedAt: now + 100 });
  const success = (id: string): object => ({ ...sent(id), status: 'success', startedAt: now + 100, finishedAt: now + 110, updatedAt: now + 110 });
  const ids = Array.from({ length: o.tasks }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const write = (phase: Phase, id: string): Promise<unknown> =>
    phase === 'sent'
      ? b.write({ state: sent(id), stateTtl: 86400, guard: 'absent', previous: 'refused' })
      : phase === 'claim'
        ? b.write({ state: running(id), basis: sent(id), stateTtl: 86400, guard: 'notFinal', previous: 'refused' })
        : b.write({ state: success(id), basis: running(id), stateTtl: 86400, guard: 'notSuccess', previous: 'refused', result: '{"json":64}', resultTtl: 86400 });
  await b.write({ state: sent('warm-up'), stateTtl: 60, guard: 'absent' });
  const out = {} as Record<Phase, PhaseFigures>;
  for (const phase of PHASES) {
    const c0 = await readCounters(info);
    for (let i = 0; i < ids.length; i += o.batch) await Promise.all(ids.slice(i, i + o.batch).map((id) => write(phase, id)));
    const c1 = await readCounters(info);
    const d = countersDelta(c0, c1);
    const byName: Record<string, number> = {};
    for (const [k, v] of Object.entries(d.byName)) byName[k] = per(v, o.tasks);
    out[phase] = { cpuUsec: per(d.cpuUsec, o.tasks), scriptUsec: per(d.scriptUsec, o.tasks), commands: per(d.commands, o.tasks), bytesIn: per(d.netInput, o.tasks), byName };
  }
  await b.close();
  const keys = await info.keys(`${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await info.del(...keys.slice(i, i + 500));
  return out;
}

const o = parse(process.argv.slice(2));
const builds: Array<[string, string]> = [['this tree', '..']];
if (o.baseline !== undefined) builds.push(['baseline', o.baseline]);
const redis = await startPrivateRedis();
const info = new Redis({ host: '127.0.0.1', port: redis.port });
const all = new Map<string, Array<Record<Phase, PhaseFigures>>>();
try {
  for (let r = 0; r < o.rounds; r++) {
    // Alternating order, so neither build always runs first.
    const order = r % 2 === 0 ? builds : [...builds].reverse();
    for (const [name, root] of order) {
      const fig = await round(root, `wcpu-${process.pid}-${r}-${name === 'baseline' ? 'b' : 't'}`, redis.port, info, o);
      (all.get(name) ?? all.set(name, []).get(name))?.push(fig);
    }
  }
} finally {
  info.disconnect();
  await redis.stop();
}
console.log(`${o.tasks} tasks, calls of ${o.batch} writes, ${o.rounds} rounds (medians of Redis CPU and script µs; commands and bytes are exact)`);
console.log('| build | phase | Redis CPU µs/write | script µs/write | commands/write | bytes in/write | commands by name |');
console.log('|---|---|--:|--:|--:|--:|---|');
for (const [name, rounds] of all) {
  for (const phase of PHASES) {
    const figs = rounds.map((x) => x[phase]);
    const last = figs[figs.length - 1] as PhaseFigures;
    const names = Object.entries(last.byName).map(([k, v]) => `${k} ${v}`).join(', ');
    console.log(`| ${name} | ${phase} | ${median(figs.map((f) => f.cpuUsec))} | ${median(figs.map((f) => f.scriptUsec))} | ${last.commands} | ${last.bytesIn} | ${names} |`);
  }
  if (o.json) console.log(JSON.stringify({ build: name, rounds }));
}
process.exit(0);

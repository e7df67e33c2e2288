/**
 * Profiling probes of `bench/rabbitmq.ts`, each off unless its environment variable is set:
 * TASUKI_BENCH_CPU (CPU and system calls per task of RabbitMQ, Redis and the bench process, from
 * `/proc`), TASUKI_BENCH_PROF (a CPU profile of each timed phase), TASUKI_BENCH_REDIS_STATS (Redis
 * commands per task from INFO commandstats).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { Redis } from 'ioredis';
import { REDIS_HOST, REDIS_PORT } from './systems.js';

/**
 * Pids whose CPU is read (TASUKI_BENCH_CPU=<beam pid>,<redis pid>): CPU ms of RabbitMQ, Redis and
 * this process per phase, and the read/write system calls of this process and of Redis per task;
 * empty: the CPU probe is off.
 */
export const CPU_PIDS = (process.env.TASUKI_BENCH_CPU ?? '').split(',').filter(Boolean);
/** CPU ms so far of the watched processes and this one, then the system calls of {@link ioNow}. */
export function cpuNow(): number[] {
  const ticks = CPU_PIDS.map((pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  });
  const u = process.cpuUsage();
  return [...ticks, (u.user + u.system) / 1000, ...ioNow(), u.system / 1000];
}
/** Read and write system calls and bytes written of this process and of Redis so far (`/proc/PID/io`). */
function ioNow(): number[] {
  const of = (pid: string): number[] => {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    return ['syscr', 'syscw', 'wchar'].map((k) => Number(new RegExp(`^${k}: (\\d+)`, 'm').exec(io)?.[1] ?? 0));
  };
  return [...of('self'), ...(CPU_PIDS[1] ? of(CPU_PIDS[1]) : [0, 0, 0])];
}
/** With TASUKI_BENCH_PROF=<dir>: a CPU profile of each timed phase, written there. */
const PROF_DIR = process.env.TASUKI_BENCH_PROF;
let session: Session | undefined;
/** Starts the CPU profile of a phase. */
export async function profStart(): Promise<void> {
  if (!PROF_DIR) return;
  session ??= new Session();
  session.connect();
  const post = (m: string): Promise<void> => new Promise((res) => session?.post(m, () => res()));
  await post('Profiler.enable');
  await post('Profiler.start');
}
async function profStop(what: string): Promise<void> {
  if (!PROF_DIR || !session) return;
  const s = session;
  await new Promise<void>((res) =>
    s.post('Profiler.stop', (err, r) => {
      if (!err) writeFileSync(`${PROF_DIR}/${what}.cpuprofile`, JSON.stringify(r.profile));
      s.disconnect();
      res();
    }),
  );
}
/** Ends the phase `what` begun at `since`: writes its profile and prints its CPU per task. */
export function cpuReport(what: string, since: number[], jobs: number): void {
  void profStop(what);
  if (CPU_PIDS.length === 0) return;
  const d = cpuNow().map((x, i) => ((x - (since[i] ?? 0)) / jobs) * 1000);
  const per = (i: number): string => ((d[i] ?? 0) / 1000).toFixed(2);
  console.error(
    `    ${what}: CPU ms per 1000 tasks: rabbitmq ${d[0]?.toFixed(0)} redis ${d[1]?.toFixed(0)} node ${d[2]?.toFixed(0)} (system ${d[9]?.toFixed(0)}); system calls per task: node ${per(3)} reads ${per(4)} writes (${per(5)} bytes written), redis ${per(6)} reads ${per(7)} writes (${per(8)} bytes)`,
  );
}

/**
 * With TASUKI_BENCH_REDIS_STATS=1: the Redis commands of each timed phase per task, with Redis's
 * own time in them (INFO commandstats of the bench's Redis before and after: exact when nothing
 * else uses that server, e.g. a private one on TASUKI_BENCH_REDIS_PORT).
 */
const REDIS_STATS = process.env.TASUKI_BENCH_REDIS_STATS === '1';
/** Calls and µs per command name. */
export type CommandStats = Map<string, { calls: number; usec: number }>;
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);
/** The server's command counters now (empty when off). */
export async function statsNow(): Promise<CommandStats> {
  const stats: CommandStats = new Map();
  if (!REDIS_STATS) return stats;
  const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
  try {
    const info = await redis.info('commandstats');
    for (const m of info.matchAll(/^cmdstat_(\S+):calls=(\d+),usec=(\d+)/gm)) stats.set(m[1] as string, { calls: Number(m[2]), usec: Number(m[3]) });
  } finally {
    await redis.quit();
  }
  return stats;
}
/** Prints the Redis commands per task of the phase `what` begun at `since`. */
export async function statsReport(what: string, since: CommandStats, jobs: number): Promise<void> {
  if (!REDIS_STATS) return;
  const now = await statsNow();
  const parts: string[] = [];
  let scriptUs = 0;
  let otherUs = 0;
  for (const [cmd, v] of now) {
    const calls = v.calls - (since.get(cmd)?.calls ?? 0);
    const us = v.usec - (since.get(cmd)?.usec ?? 0);
    if (cmd === 'info' || cmd === 'quit' || calls === 0) continue;
    // A script's time includes the commands it runs, which are counted under their own names too.
    if (SCRIPT_COMMANDS.has(cmd)) scriptUs += us;
    else otherUs += us;
    parts.push(`${cmd} ${calls} (${(us / jobs).toFixed(1)} µs/task)`);
  }
  console.error(
    `    ${what}: Redis commands: ${parts.join(', ') || 'none'}; per task ${(scriptUs / jobs).toFixed(1)} µs in scripts, ${(otherUs / jobs).toFixed(1)} µs in other commands (those scripts run included)`,
  );
}

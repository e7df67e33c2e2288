/**
 * One system's cost per task, in its own child process of `bench/cost.ts`, against the private
 * redis-server whose port is in `TASUKI_BENCH_REDIS_PORT`. Reads the server's INFO around:
 * 1. enqueue: `tasks` individual sends, one at a time (no batching helps);
 * 2. process: a worker with `concurrency` runs them (timed to the last one finished);
 * 3. memory: `waiting` tasks sent with the bulk API into a queue without workers (used_memory delta).
 * Sends the figures to the parent over IPC.
 */
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { countersDelta, readCounters } from './private-redis.js';
import { makeSystem, PAYLOAD, type RoundConfig } from './round.js';
import { REDIS_HOST, REDIS_PORT, deleteKeys, withTimeout } from './systems.js';

/** What the parent asks for. */
export interface CostConfig {
  system: RoundConfig['system'];
  prefix: string;
  tasks: number;
  waiting: number;
  concurrency: number;
}

/** Per-task figures of one system. */
export interface CostResult {
  system: string;
  enqueue_commands: number;
  process_commands: number;
  enqueue_bytes_in: number;
  process_bytes_in: number;
  bytes_out: number;
  /** Server read events per task (enqueue + process): about the socket writes clients made. */
  socket_writes: number;
  /** Commands of enqueue + process by name, per task (those called inside scripts included). */
  by_name: Record<string, number>;
  memory_per_waiting_task: number;
  /** Microseconds per task in script calls (commandstats usec of EVAL/EVALSHA/FCALL), enqueue + process. */
  script_usec: number;
  /** Redis server CPU (user + system) per task, microseconds, enqueue + process (noisier: includes I/O). */
  server_cpu_usec: number;
}

const per = (n: number, tasks: number): number => Math.round((n / tasks) * 10) / 10;

async function settle(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

export async function runCost(cfg: CostConfig): Promise<CostResult> {
  const info = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
  const sys = await makeSystem(cfg);
  try {
    const c0 = await readCounters(info);
    for (let i = 0; i < cfg.tasks; i++) await sys.sendOne('cost', PAYLOAD);
    await settle(50);
    const c1 = await readCounters(info);
    let done = 0;
    let failure: unknown;
    let finish!: () => void;
    const allDone = new Promise<void>((r) => (finish = r));
    await sys.startWorker('cost', cfg.concurrency, (ok, err) => {
      if (!ok) failure ??= err ?? 'failed';
      if (++done === cfg.tasks) finish();
    });
    await withTimeout(allDone, 120_000, 'cost processing');
    if (failure !== undefined) throw new Error(`${sys.system}: a task failed: ${String(failure)}`);
    await settle(50);
    const c2 = await readCounters(info);
    await sys.stopWorkers();
    const enqueue = countersDelta(c0, c1);
    const process = countersDelta(c1, c2);
    const byName: Record<string, number> = {};
    for (const d of [enqueue.byName, process.byName]) {
      for (const [k, v] of Object.entries(d)) byName[k] = (byName[k] ?? 0) + v;
    }
    for (const k of Object.keys(byName)) byName[k] = per(byName[k] as number, cfg.tasks);

    // Memory per waiting task: bulk sends into a queue nobody serves.
    await settle(100);
    const m0 = (await readCounters(info)).usedMemory;
    const payloads = new Array<string>(cfg.waiting).fill(PAYLOAD);
    await withTimeout(sys.sendBulk('waiting', payloads), 300_000, 'bulk enqueue for memory');
    await settle(100);
    const m1 = (await readCounters(info)).usedMemory;
    return {
      system: sys.system,
      enqueue_commands: per(enqueue.commands, cfg.tasks),
      process_commands: per(process.commands, cfg.tasks),
      enqueue_bytes_in: Math.round(enqueue.netInput / cfg.tasks),
      process_bytes_in: Math.round(process.netInput / cfg.tasks),
      bytes_out: Math.round((enqueue.netOutput + process.netOutput) / cfg.tasks),
      socket_writes: per(enqueue.reads + process.reads, cfg.tasks),
      by_name: byName,
      memory_per_waiting_task: Math.round((m1 - m0) / cfg.waiting),
      script_usec: per(enqueue.scriptUsec + process.scriptUsec, cfg.tasks),
      server_cpu_usec: per(enqueue.cpuUsec + process.cpuUsec, cfg.tasks),
    };
  } finally {
    await sys.close().catch(() => undefined);
    await deleteKeys(cfg.prefix);
    info.disconnect();
  }
}

// Child entry point: `node --import tsx bench/cost-round.ts '<config json>'` (port in TASUKI_BENCH_REDIS_PORT).
if (process.send !== undefined && process.argv[2] !== undefined && process.argv[1] === fileURLToPath(import.meta.url)) {
  runCost(JSON.parse(process.argv[2]) as CostConfig).then(
    (result) => {
      process.send?.({ ok: true, result });
      setTimeout(() => process.exit(0), 200).unref();
    },
    (err: unknown) => {
      process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) });
      setTimeout(() => process.exit(1), 200).unref();
    },
  );
}

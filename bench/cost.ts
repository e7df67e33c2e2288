/**
 * Cost per task (`npm run bench` prints it after the rounds; alone: `npx tsx bench/cost.ts`): Redis
 * commands and bytes per task for enqueue + process, and Redis memory per waiting task, for each
 * Redis system. Figures come from the INFO counters of a private redis-server started for this run
 * (free port, killed by PID), so they do not depend on machine noise. Each system runs in its own
 * child process (`bench/cost-round.ts`), one after the other, each under its own key prefix.
 *
 * Options (standalone): --tasks N (5000) --waiting W (100000) --concurrency C (50) --only a,b --json
 */
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CostConfig, CostResult } from './cost-round.js';
import { startPrivateRedis } from './private-redis.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The systems whose cost is measured (all on Redis). */
export const COST_SYSTEMS: Array<CostConfig['system']> = [
  'tasuki',
  ...(process.env.TASUKI_BENCH_BASELINE ? (['tasuki-baseline'] as const) : []),
  // The Redis backend without its task index (`index: false`: no `client.ops` listing or counts).
  'tasuki-noindex',
  // The Redis backend on the broker's connection (`shareConnection`).
  'tasuki-shared',
  'bullmq',
  'bee-queue',
  'raw-redis',
];

/** Options of a cost run. */
export interface CostOptions {
  tasks: number;
  waiting: number;
  concurrency: number;
  systems: Array<CostConfig['system']>;
}

function runChild(cfg: CostConfig, port: number): Promise<CostResult> {
  return new Promise((resolve, reject) => {
    const child = fork(join(here, 'cost-round.ts'), [JSON.stringify(cfg)], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, TASUKI_BENCH_REDIS_PORT: String(port) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let outcome: { ok: true; result: CostResult } | { ok: false; error: string } = { ok: false, error: 'child exited without a result' };
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.on('message', (m) => (outcome = m as typeof outcome));
    child.on('exit', () => {
      clearTimeout(timer);
      if (outcome.ok) resolve(outcome.result);
      else reject(new Error(`${cfg.system}: ${outcome.error}`));
    });
  });
}

/** Runs every system against one private redis-server; returns their figures in order. */
export async function measureCost(o: CostOptions, log: (s: string) => void = () => undefined): Promise<CostResult[]> {
  const redis = await startPrivateRedis();
  const out: CostResult[] = [];
  try {
    for (const [i, system] of o.systems.entries()) {
      const t = Date.now();
      // Prefixes of one length: key names (in every command's bytes) cost every system the same.
      const r = await runChild({ system, prefix: `cost-${process.pid}-${i}`, tasks: o.tasks, waiting: o.waiting, concurrency: o.concurrency }, redis.port);
      log(`  cost ${system.padEnd(12)} ${r.enqueue_commands + r.process_commands} commands, ${r.enqueue_bytes_in + r.process_bytes_in} B in per task, ${r.memory_per_waiting_task} B per waiting task, ${r.script_usec} µs in scripts, ${r.server_cpu_usec} µs Redis CPU per task (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      out.push(r);
    }
  } finally {
    await redis.stop();
  }
  return out;
}

/** The cost table as markdown lines. */
export function costTable(rows: CostResult[], o: CostOptions): string[] {
  const lines = [
    `Cost per task, from the INFO counters of a private redis-server: ${o.tasks} tasks sent one at a time, then processed with concurrency ${o.concurrency}; memory per task at ${o.waiting.toLocaleString('en-US')} waiting tasks (bulk sent, used_memory delta). Commands include those run inside scripts; socket writes are the server's read events.`,
    '',
    '| system | Redis commands per task (enqueue + process) | bytes to Redis per task (enqueue + process) | bytes from Redis per task | client socket writes per task | memory per waiting task (B) |',
    '|---|--:|--:|--:|--:|--:|',
  ];
  for (const r of rows) {
    const cmds = Math.round((r.enqueue_commands + r.process_commands) * 10) / 10;
    lines.push(`| ${r.system} | ${cmds} (${r.enqueue_commands} + ${r.process_commands}) | ${r.enqueue_bytes_in + r.process_bytes_in} (${r.enqueue_bytes_in} + ${r.process_bytes_in}) | ${r.bytes_out} | ${r.socket_writes} | ${r.memory_per_waiting_task} |`);
  }
  return lines;
}

function parse(argv: string[]): CostOptions & { json: boolean } {
  const o = { tasks: 5000, waiting: 100_000, concurrency: 50, systems: COST_SYSTEMS, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const n = (): number => Number(argv[++i]);
    if (a === '--tasks') o.tasks = n();
    else if (a === '--waiting') o.waiting = n();
    else if (a === '--concurrency') o.concurrency = n();
    else if (a === '--only') o.systems = (argv[++i] ?? '').split(',') as CostOptions['systems'];
    else if (a === '--json') o.json = true;
    else throw new Error(`unknown option ${String(a)}`);
  }
  return o;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const o = parse(process.argv.slice(2));
  measureCost(o, o.json ? undefined : console.log).then(
    (rows) => {
      if (!o.json) for (const l of ['', ...costTable(rows, o)]) console.log(l);
      for (const r of rows) console.log(JSON.stringify(r));
    },
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    },
  );
}

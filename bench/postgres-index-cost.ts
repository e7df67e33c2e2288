/**
 * `npx tsx bench/postgres-index-cost.ts [--tasks N] [--rounds R] [--concurrency C] [--prefill P] [--async-commit]`
 * (`npm run build` first, or TASUKI_BENCH_SOURCE=1 for the sources): what the PostgreSQL task
 * index costs a state write. Rounds alternate index on / `index: false`, each in a fresh schema
 * holding P rows already; a round runs N task lifecycles of three guarded writes each (`sent` with
 * `absent`, `running` with `notFinal`, `success` with a result and `notSuccess`), C at a time
 * through the backend's pool. Prints the median writes per second of each mode, the cost in
 * percent, and the size of the states table's indexes after a round. `--async-commit` runs the
 * writes with `synchronous_commit = off`, leaving out the wait for the WAL flush (the larger and
 * noisier part of a commit on a shared machine) so that the statement's own work shows.
 * Then, steadier than throughput on a shared machine, the work of the write statement itself as
 * PostgreSQL reports it (`EXPLAIN (ANALYZE, BUFFERS, WAL)` of the same lifecycles): WAL bytes,
 * buffers touched and execution time per write.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type * as PostgresBackendModule from '../backends/postgres.js';
import { loadTasuki } from './systems.js';
import { writeSql } from '../backends/postgres-sql.js';
import { PG_URL, SCHEMA_PREFIX } from './postgres-systems.js';

const { PostgresBackend } = await loadTasuki<typeof PostgresBackendModule>('backends/postgres.js');

const arg = (name: string, dflt: string): number => {
  const i = process.argv.indexOf(`--${name}`);
  return Number(i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt);
};
const tasks = arg('tasks', '3000');
const rounds = arg('rounds', '6');
const concurrency = arg('concurrency', '16');
const prefill = arg('prefill', '50000');
const asyncCommit = process.argv.includes('--async-commit');

const admin = new pg.Pool({ connectionString: PG_URL, max: 2 });

/** One round: resolves with writes per second and the index sizes (bytes) of the states table. */
async function round(indexed: boolean, n: number): Promise<{ perSecond: number; indexBytes: number }> {
  const schema = `${SCHEMA_PREFIX}${process.pid}_ix_${n}`;
  const backend = new PostgresBackend({ connection: { connectionString: PG_URL, max: concurrency, ...(asyncCommit ? { options: '-c synchronous_commit=off' } : {}) }, schema, sweepIntervalMs: 0, ...(indexed ? {} : { index: false as const }) });
  try {
    await backend.connect();
    const s = `"${schema}"`;
    // Rows already there (finished tasks of 10 groups), indexed or not like the round's own writes.
    await admin.query(`
      INSERT INTO ${s}.states (id, status, state, expires_at, grp, name, updated_at)
      SELECT 'old-' || i, 'success', '{}', ${s}.now_ms() + 86400000,
        CASE WHEN $1::boolean THEN 'g' || (i % 10) END, CASE WHEN $1::boolean THEN 'job' END, CASE WHEN $1::boolean THEN ${s}.now_ms() - i END
      FROM generate_series(1, $2::int) AS i`, [indexed, prefill]);
    await admin.query(`VACUUM ANALYZE ${s}.states`);
    const group = `g${n % 10}`;
    let next = 0;
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < tasks) {
          const id = `${randomUUID()}-${next++}`;
          const base = { v: 1 as const, id, group, name: 'job', retriesUsed: 0, retriesLeft: 3 };
          await backend.write({ state: { ...base, status: 'sent', updatedAt: Date.now() }, stateTtl: 3600, guard: 'absent', previous: 'refused' });
          await backend.write({ state: { ...base, status: 'running', updatedAt: Date.now() }, stateTtl: 3600, guard: 'notFinal', previous: 'refused' });
          await backend.write({ state: { ...base, status: 'success', updatedAt: Date.now() }, stateTtl: 3600, result: '{"json":1}', resultTtl: 3600, guard: 'notSuccess', previous: 'refused' });
        }
      }),
    );
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const size = await admin.query<{ b: string }>(`SELECT pg_indexes_size($1::regclass) AS b`, [`${s}.states`]);
    return { perSecond: (tasks * 3) / seconds, indexBytes: Number(size.rows[0]?.b ?? 0) };
  } finally {
    await backend.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

const median = (xs: number[]): number => {
  const a = [...xs].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 === 1 ? (a[m] as number) : ((a[m - 1] as number) + (a[m] as number)) / 2;
};

const on: number[] = [];
const off: number[] = [];
const sizes = { on: 0, off: 0 };
for (let r = 0; r < rounds; r++) {
  // Alternate which mode goes first, so a drift of the machine's load hits both alike.
  for (const indexed of r % 2 === 0 ? [true, false] : [false, true]) {
    const res = await round(indexed, r * 2 + (indexed ? 0 : 1));
    (indexed ? on : off).push(res.perSecond);
    sizes[indexed ? 'on' : 'off'] = res.indexBytes;
    console.log(`round ${r + 1} index ${indexed ? 'on ' : 'off'}: ${res.perSecond.toFixed(0)} writes/s, states indexes ${(res.indexBytes / 1024 / 1024).toFixed(1)} MiB`);
  }
}

/** One mode's statement work per write, from EXPLAIN (ANALYZE, BUFFERS, WAL) of `n` lifecycles. */
async function statementWork(indexed: boolean, n: number): Promise<{ wal: number; buffers: number; ms: number }> {
  const schema = `${SCHEMA_PREFIX}${process.pid}_ex_${indexed ? 'on' : 'off'}`;
  const backend = new PostgresBackend({ connection: PG_URL, schema, sweepIntervalMs: 0 });
  const sum = { wal: 0, buffers: 0, ms: 0 };
  try {
    await backend.connect();
    const s = `"${schema}"`;
    await admin.query(`
      INSERT INTO ${s}.states (id, status, state, expires_at, grp, name, updated_at)
      SELECT 'old-' || i, 'success', '{}', ${s}.now_ms() + 86400000,
        CASE WHEN $1::boolean THEN 'g' || (i % 10) END, CASE WHEN $1::boolean THEN 'job' END, CASE WHEN $1::boolean THEN ${s}.now_ms() - i END
      FROM generate_series(1, $2::int) AS i`, [indexed, prefill]);
    await admin.query(`VACUUM ANALYZE ${s}.states`);
    const sql = `EXPLAIN (ANALYZE, BUFFERS, WAL, FORMAT JSON) ${writeSql(s)}`;
    type Plan = { Plan: { 'WAL Bytes'?: number; 'Shared Hit Blocks'?: number; 'Shared Read Blocks'?: number; 'Shared Dirtied Blocks'?: number }; 'Execution Time': number };
    for (let i = 0; i < n; i++) {
      const id = `${randomUUID()}`;
      for (const [status, guard, result] of [['sent', 'absent', null], ['running', 'notFinal', null], ['success', 'notSuccess', '{"json":1}']] as const) {
        const now = Date.now();
        const state = JSON.stringify({ v: 1, id, group: 'g1', name: 'job', status, retriesUsed: 0, retriesLeft: 3, updatedAt: now });
        const idx = indexed ? ['g1', 'job', now] : [null, null, null];
        const res = await admin.query<{ 'QUERY PLAN': Plan[] }>(sql, [id, status, state, 3600, result !== null, result, result === null ? 0 : 3600, guard, null, 'bench', ...idx]);
        const plan = res.rows[0]?.['QUERY PLAN'][0] as Plan;
        // The top node's counters include its children's (the CTE's INSERT ... ON CONFLICT).
        sum.wal += plan.Plan['WAL Bytes'] ?? 0;
        sum.buffers += (plan.Plan['Shared Hit Blocks'] ?? 0) + (plan.Plan['Shared Read Blocks'] ?? 0);
        sum.ms += plan['Execution Time'];
      }
    }
    return { wal: sum.wal / (n * 3), buffers: sum.buffers / (n * 3), ms: sum.ms / (n * 3) };
  } finally {
    await backend.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

const workOn = await statementWork(true, 500);
const workOff = await statementWork(false, 500);
await admin.end();
const mOn = median(on);
const mOff = median(off);
console.log(`\n${tasks} tasks x 3 writes per round, concurrency ${concurrency}, ${prefill} rows already stored, ${rounds} rounds per mode${asyncCommit ? ', synchronous_commit off' : ''}`);
console.log(`index off: ${mOff.toFixed(0)} writes/s (median)`);
console.log(`index on:  ${mOn.toFixed(0)} writes/s (median)`);
console.log(`cost of the index: ${(((mOff - mOn) / mOff) * 100).toFixed(1)} % of write throughput`);
console.log(`states indexes after a round: on ${(sizes.on / 1024 / 1024).toFixed(1)} MiB, off ${(sizes.off / 1024 / 1024).toFixed(1)} MiB`);
const pct = (a: number, b: number): string => `${(((a - b) / b) * 100).toFixed(0)} %`;
console.log(`\nper write statement (EXPLAIN ANALYZE of 500 lifecycles = 1500 writes per mode):`);
console.log(`  WAL bytes        on ${workOn.wal.toFixed(0)}, off ${workOff.wal.toFixed(0)} (+${pct(workOn.wal, workOff.wal)})`);
console.log(`  buffers touched  on ${workOn.buffers.toFixed(1)}, off ${workOff.buffers.toFixed(1)} (+${pct(workOn.buffers, workOff.buffers)})`);
console.log(`  execution ms     on ${workOn.ms.toFixed(3)}, off ${workOff.ms.toFixed(3)} (+${pct(workOn.ms, workOff.ms)})`);

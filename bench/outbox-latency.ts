/**
 * Commit-to-start latency of the transactional send through the PostgreSQL outbox
 * (`tasuki/brokers/postgres-outbox`) to the Redis broker: each task is sent with `tx` in its own
 * transaction that also inserts a business row; the clock starts when COMMIT has returned and stops
 * when the handler starts in the server (relay woken by NOTIFY, publish to Redis, fetch). Redis is a
 * private `redis-server` (no persistence), PostgreSQL the local one (`TASUKI_PG_URL`); the round's
 * schema is dropped afterwards. Goal of issue 15: p99 under 50 ms.
 *
 *   npx tsx bench/outbox-latency.ts [--tasks N] [--inflight K]     (also part of `npm run bench -- --pg`)
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Server, silentLogger } from '../src/index.js';
import { PostgresOutbox } from '../brokers/postgres-outbox.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { startPrivateRedis } from './private-redis.js';

const PG_URL = process.env.TASUKI_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Figures of one outbox round. */
export interface OutboxLatency {
  tasks: number;
  inflight: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** Sends `tasks` tasks through the outbox, `inflight` transactions at a time, and measures commit → handler start. */
export async function outboxLatency(tasks = 1000, inflight = 1): Promise<OutboxLatency> {
  const redis = await startPrivateRedis();
  const schema = `tasuki_bench_ob_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const pool = new pg.Pool({ connectionString: PG_URL, max: inflight + 2 });
  const connection = { host: '127.0.0.1', port: redis.port };
  const server = new Server({
    broker: new PostgresOutbox({ broker: new RedisBroker({ connection, prefix: 'ob' }), connection: PG_URL, schema }),
    backend: new RedisBackend({ connection, prefix: 'ob' }),
    logger: silentLogger,
  });
  const committed = new Map<number, number>();
  const started = new Map<number, number>();
  let allStarted: () => void = () => undefined;
  const done = new Promise<void>((r) => (allStarted = r));
  const task = server.add('ob', 'mail', (i: number) => {
    started.set(i, performance.now());
    if (started.size === tasks) allStarted();
  });
  try {
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".orders (id integer PRIMARY KEY)`);
    await server.run('ob', 50);
    const client = server.client();
    let next = 0;
    const sender = async (): Promise<void> => {
      for (let i = next++; i < tasks; i = next++) {
        const tx = await pool.connect();
        try {
          await tx.query('BEGIN');
          await tx.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, [i]);
          await client.with({ tx }).send(task, i);
          await tx.query('COMMIT');
          committed.set(i, performance.now());
        } finally {
          tx.release();
        }
      }
    };
    await Promise.all(Array.from({ length: inflight }, sender));
    await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error(`${tasks - started.size} tasks not started after 60 s`)), 60_000).unref())]);
    const ms = [...committed].map(([i, at]) => (started.get(i) ?? NaN) - at).sort((a, b) => a - b);
    return { tasks, inflight, p50_ms: quantile(ms, 0.5), p99_ms: quantile(ms, 0.99), max_ms: ms[ms.length - 1] ?? NaN };
  } finally {
    await server.shutdown(5000);
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await pool.end();
    await redis.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(name);
    return i < 0 ? fallback : Number(process.argv[i + 1]);
  };
  const r = await outboxLatency(arg('--tasks', 1000), arg('--inflight', 1));
  console.log(`outbox to redis, ${r.tasks} tasks, ${r.inflight} in flight: commit to handler start p50 ${r.p50_ms.toFixed(2)} ms, p99 ${r.p99_ms.toFixed(2)} ms, max ${r.max_ms.toFixed(2)} ms`);
  console.log(`- ${r.p99_ms < 50 ? 'MET    ' : 'NOT MET'} outbox commit-to-start p99 < 50 ms: ${r.p99_ms.toFixed(2)} ms`);
  console.log(JSON.stringify({ outbox: r }));
}

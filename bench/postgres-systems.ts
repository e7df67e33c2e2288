/**
 * The PostgreSQL systems under benchmark (same {@link BenchSystem} interface and workload as the
 * Redis rows): tasuki with the Postgres broker and backend, pg-boss 10 and graphile-worker 0.16 in
 * its default (unbatched) mode, all on the local PostgreSQL (`TASUKI_PG_URL`, default
 * postgres://postgres@127.0.0.1:5432/test). Each round works in its own schema, dropped at close.
 * Loaded only by the child process of a PostgreSQL round.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { EXPECTED_RESULT, loadTasuki, type BenchSystem, type Verification } from './systems.js';

/** The benchmark's PostgreSQL. */
export const PG_URL = process.env.TASUKI_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Prefix of every schema a benchmark run creates (`<prefix><pid>_...`). */
export const SCHEMA_PREFIX = 'tasuki_bench_';

/** The schema of one round, from its key prefix (`tasuki-bench-<pid>-<round>-<system>`). */
export function schemaOf(prefix: string): string {
  return prefix.toLowerCase().replace(/[^a-z0-9]+/g, '_').slice(0, 47);
}

/** Counts the schemas left behind by the run with this pid. */
export async function countSchemas(pid: number): Promise<number> {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    const res = await admin.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE $1', [`${SCHEMA_PREFIX}${pid}_%`]);
    return res.rows[0]?.n ?? 0;
  } finally {
    await admin.end();
  }
}

async function dropSchema(schema: string): Promise<void> {
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolvers of latency round trips of systems without a result backend, keyed by a payload key. */
class Waiters {
  private readonly map = new Map<string, () => void>();
  wait(key: string, ms: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.map.delete(key);
        reject(new Error(`job ${key} not finished after ${ms} ms`));
      }, ms);
      this.map.set(key, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
  done(key: string | undefined): void {
    if (key === undefined) return;
    const f = this.map.get(key);
    this.map.delete(key);
    f?.();
  }
}

// ---- tasuki on PostgreSQL -------------------------------------------------------------------------

/** tasuki with the Postgres broker and the Postgres backend (one schema). */
export async function tasukiPostgresSystem(prefix: string): Promise<BenchSystem> {
  const { Server, Client, silentLogger, decodeValueText } = await loadTasuki<typeof import('../src/index.js')>('src/index.js');
  const { PostgresBroker } = await loadTasuki<typeof import('../brokers/postgres.js')>('brokers/postgres.js');
  const { PostgresBackend } = await loadTasuki<typeof import('../backends/postgres.js')>('backends/postgres.js');
  type ServerT = InstanceType<typeof Server>;
  const schema = schemaOf(prefix);
  const broker = new PostgresBroker({ connection: PG_URL, schema });
  const backend = new PostgresBackend({ connection: PG_URL, schema });
  const client = new Client({ broker, backend, logger: silentLogger });
  const servers: ServerT[] = [];
  // Send call → handler start of the latency jobs (worker and client share this process's clock).
  const sentAt = new Map<string, number>();
  const startDelays: number[] = [];
  let latencyKey = 0;
  return {
    system: 'tasuki',
    broker: 'postgres',
    backend: 'postgres',
    async sendOne(queue, payload) {
      return client.send(queue, 'noop', payload);
    },
    async sendBulk(queue, payloads) {
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const chunk = payloads.slice(i, i + 1000).map((p) => [p] as [string]);
        ids.push(...(await client.sendMany({ group: queue, name: 'noop' } as never, chunk as never)));
      }
      return ids;
    },
    async waiting(queue) {
      const c = await broker.counts(queue);
      return c.ready + c.delayed;
    },
    async startWorker(queue, concurrency, onDone) {
      const server = new Server({ broker: new PostgresBroker({ connection: PG_URL, schema }), backend: new PostgresBackend({ connection: PG_URL, schema }), logger: silentLogger });
      server.add(queue, 'noop', (payload: string) => payload.length);
      server.on('succeeded', () => onDone(true));
      server.on('started', (e) => {
        const t = sentAt.get(e.id);
        if (t !== undefined) {
          sentAt.delete(e.id);
          startDelays.push(performance.now() - t);
        }
      });
      server.on('failed', (e) => onDone(false, e.error));
      server.on('deadLettered', (e) => onDone(false, e.reason));
      servers.push(server);
      await server.run(queue, concurrency);
    },
    async stopWorkers() {
      await Promise.all(servers.splice(0).map((s) => s.shutdown(5000)));
    },
    async verify(_queue, ids) {
      let completed = 0;
      let failed = 0;
      let resultsStored = 0;
      for (let i = 0; i < ids.length; i += 1000) {
        const chunk = ids.slice(i, i + 1000);
        const [states, results] = await Promise.all([backend.readMany(chunk), Promise.all(chunk.map((id) => backend.readResult(id)))]);
        states.forEach((s, j) => {
          if (s?.status === 'success') completed++;
          else if (s?.status === 'failure') failed++;
          const r = results[j];
          if (r != null && decodeValueText(r) === EXPECTED_RESULT) resultsStored++;
        });
      }
      return { completed, resultsStored, failed };
    },
    async prepareLatency() {},
    startLatency() {
      if (startDelays.length === 0) return undefined;
      const s = [...startDelays].sort((a, b) => a - b);
      const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
      return { p50: at(50), p99: at(99) };
    },
    async roundTrip(queue, payload) {
      // An explicit id, so that the send time is known before the worker can start it.
      const id = `lat-${process.pid}-${++latencyKey}`;
      sentAt.set(id, performance.now());
      await client.with({ id }).send(queue, 'noop', payload);
      const r = await client.getResult(id, 10_000);
      if (!r.isSuccess() || r.value !== EXPECTED_RESULT) throw new Error(`task ${id} ended ${r.status}`);
    },
    async close() {
      await Promise.all(servers.splice(0).map((s) => s.shutdown(5000)));
      await client.close();
      await dropSchema(schema);
    },
  };
}

// ---- pg-boss --------------------------------------------------------------------------------------

/**
 * pg-boss 10: `concurrency` calls of `work()` (batchSize 1, so each job's output is stored), polling
 * at its minimum interval of 0.5 s; maintenance and cron off.
 */
export async function pgBossSystem(prefix: string): Promise<BenchSystem> {
  const { default: PgBoss } = await import('pg-boss');
  const schema = schemaOf(prefix);
  const boss = new PgBoss({ connectionString: PG_URL, schema, supervise: false, schedule: false });
  boss.on('error', () => undefined);
  await boss.start();
  const created = new Set<string>();
  const queue = async (name: string): Promise<string> => {
    if (!created.has(name)) {
      await boss.createQueue(name);
      created.add(name);
    }
    return name;
  };
  const waiters = new Waiters();
  const sql = new pg.Pool({ connectionString: PG_URL, max: 2 });
  type Data = { p: string; k?: string };
  return {
    system: 'pg-boss',
    broker: 'postgres',
    backend: 'postgres',
    note: 'counted when the handler returns (pg-boss records completion right after, without awaiting it); latency: until the handler ran, seen in process',
    limitMs: 900_000, // its workers wait the polling interval between fetches even when busy
    async sendOne(name, payload) {
      const id = await boss.send(await queue(name), { p: payload });
      if (id === null) throw new Error('pg-boss send returned null');
      return id;
    },
    async sendBulk(name, payloads) {
      await queue(name);
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const jobs = payloads.slice(i, i + 1000).map((p) => ({ id: randomUUID(), name, data: { p } }));
        await boss.insert(jobs);
        ids.push(...jobs.map((j) => j.id));
      }
      return ids;
    },
    async waiting(name) {
      return boss.getQueueSize(await queue(name));
    },
    async startWorker(name, concurrency, onDone) {
      await queue(name);
      for (let i = 0; i < concurrency; i++) {
        await boss.work<Data>(name, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async (jobs) => {
          const job = jobs[0];
          const value = job?.data.p.length;
          onDone(value === 64);
          waiters.done(job?.data.k);
          return value;
        });
      }
    },
    async stopWorkers() {
      for (const name of created) await boss.offWork(name);
    },
    async verify(_name, ids) {
      // Completions are written without being awaited: wait (bounded) for the last ones to land.
      let v: Verification = { completed: 0, resultsStored: 0, failed: 0 };
      for (let i = 0; i < 300; i++) {
        const res = await sql.query<{ completed: number; stored: number; failed: number }>(
          `SELECT count(*) FILTER (WHERE state = 'completed')::int AS completed,
                  count(*) FILTER (WHERE state = 'completed' AND output->>'value' = $2)::int AS stored,
                  count(*) FILTER (WHERE state = 'failed')::int AS failed
           FROM "${schema}".job WHERE id = ANY($1::uuid[])`,
          [ids, String(EXPECTED_RESULT)],
        );
        const row = res.rows[0] ?? { completed: 0, stored: 0, failed: 0 };
        v = { completed: row.completed, resultsStored: row.stored, failed: row.failed };
        if (v.completed + v.failed >= ids.length) break;
        await sleep(100);
      }
      return v;
    },
    async prepareLatency() {},
    async roundTrip(name, payload) {
      const k = randomUUID();
      const done = waiters.wait(k, 10_000);
      await boss.send(name, { p: payload, k });
      await done;
    },
    async close() {
      await boss.stop({ graceful: true, wait: true, timeout: 5000 }).catch(() => undefined);
      await sql.end();
      await dropSchema(schema);
    },
  };
}

// ---- graphile-worker ------------------------------------------------------------------------------

/** graphile-worker 0.16 in its default mode (one job per fetch, one completion per job), LISTEN/NOTIFY. */
export async function graphileWorkerSystem(prefix: string): Promise<BenchSystem> {
  const { run, makeWorkerUtils, Logger } = await import('graphile-worker');
  type RunnerT = Awaited<ReturnType<typeof run>>;
  const schema = schemaOf(prefix);
  const logger = new Logger(() => () => undefined);
  const utils = await makeWorkerUtils({ connectionString: PG_URL, schema, logger });
  await utils.migrate();
  const runners: RunnerT[] = [];
  const waiters = new Waiters();
  const s = `"${schema}"`;
  type Data = { p: string; k?: string };
  const pending = (identifier: string): Promise<{ n: number; failed: number }> =>
    utils.withPgClient(async (c) => {
      const res = await c.query<{ n: number; failed: number }>(
        `SELECT count(*)::int AS n, count(*) FILTER (WHERE j.last_error IS NOT NULL)::int AS failed
         FROM ${s}._private_jobs j JOIN ${s}._private_tasks t ON t.id = j.task_id WHERE t.identifier = $1`,
        [identifier],
      );
      return res.rows[0] ?? { n: 0, failed: 0 };
    });
  return {
    system: 'graphile-worker',
    broker: 'postgres',
    backend: 'none',
    note: 'no stored results: a completed job is deleted, so completion = its row gone with no error; latency: until the job was completed, seen in process',
    async sendOne(queue, payload) {
      const job = await utils.addJob(queue, { p: payload });
      return String(job.id);
    },
    async sendBulk(queue, payloads) {
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const chunk = payloads.slice(i, i + 1000).map((p) => JSON.stringify({ p }));
        const res = await utils.withPgClient((c) =>
          c.query<{ id: string }>(
            `SELECT (j).id::text AS id FROM (SELECT ${s}.add_jobs(array(SELECT ($1::text, x::json, NULL, NULL, NULL, NULL, NULL, NULL)::${s}.job_spec FROM unnest($2::text[]) AS x)) AS j) q`,
            [queue, chunk],
          ),
        );
        ids.push(...res.rows.map((r) => r.id));
      }
      return ids;
    },
    async waiting(queue) {
      return (await pending(queue)).n;
    },
    async startWorker(queue, concurrency, onDone) {
      const runner = await run({
        connectionString: PG_URL,
        schema,
        concurrency,
        noHandleSignals: true,
        logger,
        taskList: {
          [queue]: async (payload) => {
            if ((payload as Data).p.length !== EXPECTED_RESULT) throw new Error('bad payload');
          },
        },
      });
      runner.events.on('job:complete', ({ job, error }) => {
        onDone(error === undefined || error === null, error);
        waiters.done((job.payload as Data | undefined)?.k);
      });
      runners.push(runner);
    },
    async stopWorkers() {
      await Promise.all(runners.splice(0).map((r) => r.stop()));
    },
    async verify(queue, ids) {
      const left = await pending(queue);
      return { completed: ids.length - left.n, resultsStored: null, failed: left.failed };
    },
    async prepareLatency() {},
    async roundTrip(queue, payload) {
      const k = randomUUID();
      const done = waiters.wait(k, 10_000);
      await utils.addJob(queue, { p: payload, k });
      await done;
    },
    async close() {
      await Promise.all(runners.splice(0).map((r) => r.stop()));
      await utils.release();
      await dropSchema(schema);
    },
  };
}

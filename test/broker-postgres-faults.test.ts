/**
 * Faults on the PostgreSQL broker and backend: a worker SIGKILLed mid-task (lease expiry), the
 * workers' connections cut with pg_terminate_backend during a run, a restart of a private
 * PostgreSQL server during a run, and malformed rows inserted by hand (dead-lettered). Nothing lost.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { Client, Server, silentLogger, type TaskId, type TaskState } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { until } from './core/suite.js';
import { PG_URL, adminPool, dropSchema, schemaName, startPrivatePostgres, type PrivatePostgres } from './helpers/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const fixture = fileURLToPath(new URL('./fixtures/postgres-worker.ts', import.meta.url));

interface Proc {
  child: ChildProcess;
  exited: Promise<unknown>;
}

/** Starts a worker process on the given server/schema/group and waits for "ready". */
async function startWorker(env: Record<string, string>): Promise<Proc> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await until(() => out.includes('ready\n') || child.exitCode !== null, 30_000, 'worker start');
  if (!out.includes('ready\n')) throw new Error(`worker failed:\n${out}`);
  return { child, exited };
}

/** Polls states until every id is final (tolerating a backend that is down for a while). */
async function allFinal(backend: PostgresBackend, ids: string[], ms = 60_000): Promise<TaskState[]> {
  return until(
    async () => {
      const states = await backend.readMany(ids).catch(() => null);
      if (states === null) return null;
      return states.every((s) => s !== null && ['success', 'failure', 'expired', 'aborted'].includes(s.status)) ? (states as TaskState[]) : null;
    },
    ms,
    'every task final',
  );
}

describe('postgres faults', () => {
  let admin: pg.Pool;
  let schema: string;
  let group: string;
  const procs: Proc[] = [];
  const closers: Array<() => Promise<unknown>> = [];

  beforeEach(() => {
    admin = adminPool();
    schema = schemaName('flt');
    group = `flt-${randomUUID().slice(0, 8)}`;
  });

  afterEach(async () => {
    for (const p of procs.splice(0)) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await p.exited;
    }
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await dropSchema(admin, schema);
    await admin.end();
  });

  const clientOn = (url: string): { client: Client; backend: PostgresBackend; broker: PostgresBroker } => {
    const broker = new PostgresBroker({ connection: url, schema });
    const backend = new PostgresBackend({ connection: url, schema });
    const client = new Client({ broker, backend, logger: silentLogger });
    closers.push(() => client.close());
    return { client, backend, broker };
  };

  it('a worker SIGKILLed mid-task: its lease runs out and another worker runs the task', async () => {
    const env = { TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_GROUP: group, TASUKI_LEASE_MS: '1500' };
    const first = await startWorker(env);
    procs.push(first);
    const { client } = clientOn(PG_URL);
    const id = await client.send(group, 'work', 7, 4000);
    await until(async () => (await client.getStatus(id))?.status === 'running', 20_000, 'running');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await startWorker(env);
    procs.push(second);
    const r = await client.getResult<{ value: number; pid: number }>(id as TaskId<{ value: number; pid: number }>, 30_000);
    expect(r.status).toBe('success');
    expect(r.value).toEqual({ value: 7, pid: second.child.pid });
  });

  it('pg_terminate_backend of the workers\u2019 connections during a run loses nothing', async () => {
    const app = `tasuki-flt-${randomUUID().slice(0, 8)}`;
    const connection = { connectionString: PG_URL, application_name: app };
    const server = new Server({
      broker: new PostgresBroker({ connection, schema }),
      backend: new PostgresBackend({ connection, schema }),
      logger: silentLogger,
      leaseMs: 2000,
      fetchWaitMs: 500,
      sendDefaults: { backoff: { type: 'fixed', delayMs: 20 } },
    });
    closers.push(() => server.shutdown(2000));
    const work = server.add(group, 'work', async (value: number) => {
      await sleep(5);
      return value;
    });
    await server.run(group, 8);
    const { client, backend } = clientOn(PG_URL);
    const n = 300;
    const ids = await client.sendMany(work, Array.from({ length: n }, (_, i) => [i] as [number]));
    let cuts = 0;
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      const res = await admin.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1`, [app]);
      cuts += res.rowCount ?? 0;
    }
    const states = await allFinal(backend, ids);
    expect(cuts).toBeGreaterThan(0);
    expect(states.map((s) => s.status)).toEqual(ids.map(() => 'success'));
    const results = await Promise.all(ids.map((id) => client.getResult(id, 10_000)));
    expect(results.map((r) => r.value)).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  describe('with a private PostgreSQL server', () => {
    let pgServer: PrivatePostgres | undefined;
    afterEach(async () => {
      await pgServer?.destroy();
      pgServer = undefined;
    });

    it('a restart of the server during a run pauses work and loses nothing', async () => {
      pgServer = await startPrivatePostgres();
      const url = pgServer.url;
      const server = new Server({
        broker: new PostgresBroker({ connection: url, schema }),
        backend: new PostgresBackend({ connection: url, schema }),
        logger: silentLogger,
        leaseMs: 2000,
        fetchWaitMs: 500,
        sendDefaults: { backoff: { type: 'fixed', delayMs: 50 } },
      });
      closers.push(() => server.shutdown(2000));
      const work = server.add(group, 'work', async (value: number) => {
        await sleep(10);
        return value;
      });
      const { client, backend } = clientOn(url);
      const n = 200;
      const ids = await client.sendMany(work, Array.from({ length: n }, (_, i) => [i] as [number]));
      const delayed = await client.with({ runAfter: 1500 }).send(work, -1);
      await server.run(group, 4);
      await sleep(200);
      await pgServer.stop('SIGQUIT'); // immediate shutdown, as a crash
      await sleep(1000);
      await pgServer.start();
      const states = await allFinal(backend, [...ids, delayed]);
      expect(states.map((s) => s.status)).toEqual([...ids, delayed].map(() => 'success'));
      const results = await Promise.all([...ids, delayed].map((id) => client.getResult(id, 10_000)));
      expect(results.map((r) => r.value)).toEqual([...Array.from({ length: n }, (_, i) => i), -1]);
    });
  });

  it('malformed rows inserted by hand are dead-lettered, and the worker goes on', async () => {
    const server = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    closers.push(() => server.shutdown(1000));
    const add = server.add(group, 'add', (a: number, b: number) => a + b);
    await server.run(group, 2);
    const client = server.client();
    expect((await client.getResult(await client.send(add, 1, 2), 10_000)).value).toBe(3); // schema exists
    const bodies = ['not json at all', '{"v":1,"id":"x"}', '[1,2,3]', ''];
    for (const body of bodies) {
      await admin.query(`INSERT INTO "${schema}".messages (grp, body, run_at) VALUES ($1, $2, 0)`, [group, body]);
    }
    await until(async () => (await server.broker.counts(group)).dead === bodies.length, 20_000, 'dead letters');
    const dead = await client.deadLetters(group);
    expect(dead.map((d) => d.body).sort()).toEqual([...bodies].sort());
    for (const d of dead) expect(d.reason.code).toBe('ERR_DECODE');
    expect((await client.getResult(await client.send(add, 2, 3), 10_000)).value).toBe(5);
  });
});

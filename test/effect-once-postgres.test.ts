/**
 * The "effect once" handler pattern on PostgreSQL (README, PostgreSQL → Handler writes and results):
 * the business write and a marker keyed by `ctl.id` commit in the handler's own transaction. A worker
 * SIGKILLed right after that commit (before tasuki wrote the result) leaves the task to run again;
 * the second run finds the marker and returns the first run's stored result, so the business write
 * happened once. A run that fails before its commit leaves neither, and the retry writes once.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Client, Server, silentLogger, type TaskId } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { chargeOnce, type Charge } from './fixtures/postgres-effect-handler.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const fixture = fileURLToPath(new URL('./fixtures/postgres-effect-worker.ts', import.meta.url));

describe('effect once: a handler\u2019s business write and its marker in one transaction', () => {
  let admin: pg.Pool;
  let pool: pg.Pool;
  let schema: string;
  let shop: string;
  let group: string;
  const closers: Array<() => Promise<unknown>> = [];

  beforeEach(async () => {
    admin = adminPool();
    pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
    schema = schemaName('eff');
    shop = schemaName('shop');
    group = `eff-${randomUUID().slice(0, 8)}`;
    await admin.query(`CREATE SCHEMA "${shop}"`);
    await admin.query(`CREATE TABLE "${shop}".charges (id serial PRIMARY KEY, order_id integer NOT NULL)`);
    await admin.query(`CREATE TABLE "${shop}".task_effects (task_id text PRIMARY KEY, result jsonb)`);
  });

  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
    await pool.end();
    await dropSchema(admin, schema);
    await dropSchema(admin, shop);
    await admin.end();
  });

  const charges = async (): Promise<number> => ((await admin.query(`SELECT count(*)::int AS n FROM "${shop}".charges`)).rows[0] as { n: number }).n;
  const newServer = (options: { failFirstRun?: boolean } = {}): Server => {
    const server = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      leaseMs: 1500,
      fetchWaitMs: 300,
      sendDefaults: { backoff: { type: 'fixed', delayMs: 20 } },
    });
    server.add(group, 'charge', chargeOnce(pool, shop, options), { ctl: true });
    closers.push(() => server.shutdown(2000));
    return server;
  };

  it('a worker killed right after its commit: the re-run returns the stored result, one charge', async () => {
    const client = new Client({ broker: new PostgresBroker({ connection: PG_URL, schema }), backend: new PostgresBackend({ connection: PG_URL, schema }), logger: silentLogger });
    closers.push(() => client.close());
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_SHOP: shop, TASUKI_GROUP: group },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    closers.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const id = (await client.send(group, 'charge', 42)) as TaskId<Charge>;
    expect(await exited, out).toBe('SIGKILL'); // killed itself right after COMMIT
    expect(await charges()).toBe(1);
    expect((await client.getStatus(id))?.status).not.toBe('success'); // tasuki never got the result

    await newServer().run(group, 1);
    const r = await client.getResult(id, 30_000);
    expect(r.status).toBe('success');
    expect(r.value).toEqual({ chargeId: expect.any(Number), pid: child.pid }); // the first run's result
    expect(await charges()).toBe(1);
  });

  it('a run that fails before its commit leaves no charge and no marker; the retry charges once', async () => {
    const server = newServer({ failFirstRun: true });
    await server.run(group, 1);
    const client = server.client();
    const id = await client.send(group, 'charge', 7);
    const r = await client.getResult(id as TaskId<Charge>, 10_000);
    expect(r.status).toBe('success');
    expect(r.value).toEqual({ chargeId: expect.any(Number), pid: process.pid });
    expect(await charges()).toBe(1);
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${shop}".task_effects`)).rows[0]).toEqual({ n: 1 });
  });
});

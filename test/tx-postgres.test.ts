/**
 * Transactional send (GTA's RunWithTx) on PostgreSQL: `client.with({ tx }).send(...)` writes the task
 * and its `sent` state in the caller's transaction. Commit → it runs; rollback or a crash of the
 * sending process before commit → it never runs and leaves no state.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { Client, Server, silentLogger, type TaskId } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { MemoryBroker } from '../brokers/memory.js';
import { redisNamespace } from './helpers/redis.js';
import { until } from './core/suite.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const EMPTY = { ready: 0, delayed: 0, inFlight: 0, dead: 0 };

describe('transactional send on PostgreSQL', () => {
  let admin: pg.Pool;
  let schema: string;
  let group: string;
  let servers: Server[];
  const emailed: number[] = [];

  const newServer = (backend: 'postgres' | 'redis' = 'postgres', prefix = ''): Server => {
    const server = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: backend === 'postgres' ? new PostgresBackend({ connection: PG_URL, schema }) : new RedisBackend({ prefix }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    servers.push(server);
    return server;
  };

  /** Runs `fn` in a transaction on a client of the admin pool and ends it with `end`. */
  const inTx = async <T>(end: 'COMMIT' | 'ROLLBACK', fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> => {
    const tx = await admin.connect();
    try {
      await tx.query('BEGIN');
      const out = await fn(tx);
      await tx.query(end);
      return out;
    } catch (err) {
      await tx.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      tx.release();
    }
  };

  beforeEach(async () => {
    admin = adminPool();
    schema = schemaName('tx');
    group = `tx-${randomUUID().slice(0, 8)}`;
    servers = [];
    emailed.length = 0;
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".orders (id integer PRIMARY KEY, item text NOT NULL)`);
  });

  afterEach(async () => {
    for (const s of servers) await s.shutdown(1000);
    await dropSchema(admin, schema);
    await admin.end();
  });

  const register = (server: Server) =>
    server.add(group, 'email', (orderId: number) => {
      emailed.push(orderId);
      return `mailed ${orderId}`;
    });

  it('commit: the order row and its task appear together; the task runs once', async () => {
    const server = newServer();
    const email = register(server);
    const client = server.client();
    await server.run(group, 2);
    await client.send(email, 0).then((id) => client.getResult(id, 10_000)); // schema ready, worker warm
    const id = await inTx('COMMIT', async (tx) => {
      await tx.query(`INSERT INTO "${schema}".orders (id, item) VALUES (1, 'book')`);
      const sent = await client.with({ tx }).send(email, 1);
      // Not visible outside the transaction: no state, no message.
      expect(await client.getStatus(sent)).toBeNull();
      expect((await server.broker.counts(group)).ready).toBe(0);
      return sent;
    });
    const r = await client.getResult(id, 10_000);
    expect(r.value).toBe('mailed 1');
    expect(emailed).toEqual([0, 1]);
  });

  it('rollback: neither the order row nor the task nor its state exist, and it never runs', async () => {
    const server = newServer();
    const email = register(server);
    await server.run(group, 2);
    const client = server.client();
    let rolledBack: TaskId<string> | undefined;
    await inTx('ROLLBACK', async (tx) => {
      await tx.query(`INSERT INTO "${schema}".orders (id, item) VALUES (2, 'lamp')`);
      rolledBack = await client.with({ tx, runAfter: 0 }).send(email, 2);
    });
    // A task sent after it runs to the end: the rolled-back one, had it existed, was ahead of it.
    const later = await client.send(email, 3);
    expect((await client.getResult(later, 10_000)).value).toBe('mailed 3');
    await sleep(300);
    expect(emailed).toEqual([3]);
    expect(await client.getStatus(rolledBack as TaskId<string>)).toBeNull();
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0]).toEqual({ n: 0 });
    // The last task's ack may still be on its way after its result was written.
    await until(async () => JSON.stringify(await server.broker.counts(group)) === JSON.stringify(EMPTY), 10_000, 'empty queue');
  });

  it('a crash of the sending process before commit leaves nothing', async () => {
    const server = newServer();
    const email = register(server);
    const client = server.client();
    await server.broker.connect();
    const fixture = fileURLToPath(new URL('./fixtures/postgres-tx-sender.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_GROUP: group },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    for (let i = 0; i < 600 && !out.includes('sent '); i++) await sleep(50);
    const id = /sent (\S+)/.exec(out)?.[1];
    expect(id, out).toBeDefined();
    child.kill('SIGKILL');
    await exited;
    await server.run(group, 1);
    const later = await client.send(email, 9);
    expect((await client.getResult(later, 10_000)).value).toBe('mailed 9');
    // PostgreSQL rolls back the transaction of the lost connection; wait for that backend to be gone.
    for (let i = 0; i < 100; i++) {
      const busy = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'idle in transaction' AND query LIKE '%orders%'`);
      if ((busy.rows[0] as { n: number }).n === 0) break;
      await sleep(50);
    }
    expect(emailed).toEqual([9]);
    expect(await client.getStatus(id as string)).toBeNull();
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0]).toEqual({ n: 0 });
    await until(async () => JSON.stringify(await server.broker.counts(group)) === JSON.stringify(EMPTY), 10_000, 'empty queue');
  });

  it('an explicit id in a transaction is an idempotency key; sendMany joins the transaction too', async () => {
    const server = newServer();
    const email = register(server);
    await server.run(group, 2);
    const client = server.client();
    const key = `order-${randomUUID()}`;
    const ids = await inTx('COMMIT', async (tx) => {
      const a = await client.with({ tx, id: key }).send(email, 10);
      const b = await client.with({ tx, id: key }).send(email, 10);
      expect(b).toBe(a);
      return [a, ...(await client.with({ tx }).sendMany(email, [[11], [12]]))];
    });
    const rolled = await inTx('ROLLBACK', (tx) => client.with({ tx }).sendMany(email, [[13], [14]]));
    for (const id of ids) expect((await client.getResult(id, 10_000)).isSuccess()).toBe(true);
    expect(emailed.sort()).toEqual([10, 11, 12]);
    for (const id of rolled) expect(await client.getStatus(id)).toBeNull();
  });

  it('with a Redis backend the message still waits for the commit; no sent state is written early', async () => {
    const ns = redisNamespace('tx');
    try {
      const server = newServer('redis', ns.prefix);
      const email = register(server);
      const client = server.client();
      await server.run(group, 1);
      const id = await inTx('COMMIT', async (tx) => {
        const sent = await client.with({ tx }).send(email, 20);
        await sleep(200);
        expect(await client.getStatus(sent)).toBeNull();
        expect(emailed).toEqual([]);
        return sent;
      });
      expect((await client.getResult(id, 10_000)).value).toBe('mailed 20');
      await expect(inTx('COMMIT', (tx) => client.with({ tx, id: 'x-1' }).send(email, 21))).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    } finally {
      await ns.sweep();
      await ns.quit();
    }
  });

  it('a broker that cannot join a transaction refuses tx with ERR_INVALID_OPTION, sending nothing', async () => {
    const ns = redisNamespace('tx');
    const broker = new RedisBroker({ prefix: ns.prefix });
    const memory = new Client({ broker: new MemoryBroker(), logger: silentLogger });
    const client = new Client({ broker, backend: new PostgresBackend({ connection: PG_URL, schema }), logger: silentLogger });
    try {
      await inTx('ROLLBACK', async (tx) => {
        await expect(client.with({ tx }).send(group, 'email', 1)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
        await expect(memory.with({ tx }).send(group, 'email', 1)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      });
      expect(await broker.counts(group)).toEqual(EMPTY);
    } finally {
      await client.close();
      await memory.close();
      await ns.sweep();
      await ns.quit();
    }
  });
});

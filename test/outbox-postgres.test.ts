/**
 * Transactional send through the PostgreSQL outbox to the Redis and RabbitMQ brokers: commit → the
 * relay publishes the task and it runs; rollback → nothing anywhere; a relay that fails between its
 * publish and its delete leaves the rows, which are published again, and the task's final state keeps
 * the duplicate from running twice in effect.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { Server, silentLogger, type Client, type TaskId } from '../src/index.js';
import type { Broker } from '../src/broker.js';
import { PostgresOutbox } from '../brokers/postgres-outbox.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { until } from './core/suite.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('transactional send through the postgres outbox', () => {
  let admin: pg.Pool;
  let schema: string;
  let group: string;
  let servers: Server[];
  const cleanups: Array<() => Promise<void>> = [];

  beforeEach(() => {
    admin = adminPool();
    schema = schemaName('ob');
    group = `ob-${randomUUID().slice(0, 8)}`;
    servers = [];
  });

  afterEach(async () => {
    for (const s of servers) {
      await s.broker.purge(group).catch(() => undefined);
      await s.shutdown(1000);
    }
    for (const c of cleanups.splice(0)) await c();
    await dropSchema(admin, schema);
    await admin.end();
  });

  const inTx = async <T>(end: 'COMMIT' | 'ROLLBACK', fn: (tx: pg.PoolClient) => Promise<T>): Promise<T> => {
    const tx = await admin.connect();
    try {
      await tx.query('BEGIN');
      const out = await fn(tx);
      await tx.query(end);
      return out;
    } finally {
      tx.release();
    }
  };

  const scenario = async (inner: () => Broker, backend: () => PostgresBackend | RedisBackend): Promise<void> => {
    const runs: number[] = [];
    const server = new Server({ broker: new PostgresOutbox({ broker: inner(), connection: PG_URL, schema }), backend: backend(), logger: silentLogger, fetchWaitMs: 300 });
    servers.push(server);
    const email = server.add(group, 'email', (order: number) => {
      runs.push(order);
      return order;
    });
    await server.run(group, 2);
    const client = server.client();
    const outbox = server.broker as PostgresOutbox;
    const committed = await inTx('COMMIT', async (tx) => {
      const id = await client.with({ tx }).send(email, 1);
      await sleep(100);
      expect(runs).toEqual([]); // not before the commit
      return id;
    });
    const rolledBack = await inTx('ROLLBACK', (tx) => client.with({ tx }).send(email, 2));
    expect((await client.getResult(committed, 10_000)).value).toBe(1);
    const after = await client.send(email, 3); // direct send, not through the outbox
    expect((await client.getResult(after, 10_000)).value).toBe(3);
    await sleep(200);
    expect(runs.sort()).toEqual([1, 3]);
    expect(await client.getStatus(rolledBack)).toBeNull();
    expect(await outbox.pending()).toBe(0);
  };

  it('to the Redis broker (Redis backend): commit runs, rollback leaves nothing', async () => {
    const ns = redisNamespace('ob');
    cleanups.push(async () => {
      await ns.sweep();
      await ns.quit();
    });
    await scenario(
      () => new RedisBroker({ prefix: ns.prefix }),
      () => new RedisBackend({ prefix: ns.prefix }),
    );
  });

  it('to the RabbitMQ broker (Postgres backend): commit runs, rollback leaves nothing', async () => {
    const rabbit = rabbitNamespace('ob');
    cleanups.push(() => rabbit.sweep());
    await scenario(
      () => new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }),
      () => new PostgresBackend({ connection: PG_URL, schema }),
    );
  });

  it('a crash of the sending process before its commit leaves nothing: no outbox row, no message, no state', async () => {
    const ns = redisNamespace('ob');
    cleanups.push(async () => {
      await ns.sweep();
      await ns.quit();
    });
    const runs: number[] = [];
    const server = new Server({
      broker: new PostgresOutbox({ broker: new RedisBroker({ prefix: ns.prefix }), connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    servers.push(server);
    const email = server.add(group, 'email', (order: number) => {
      runs.push(order);
      return order;
    });
    await server.broker.connect();
    await admin.query(`CREATE TABLE "${schema}".orders (id integer PRIMARY KEY, item text NOT NULL)`);
    const fixture = fileURLToPath(new URL('./fixtures/postgres-tx-sender.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_GROUP: group, TASUKI_OUTBOX_PREFIX: ns.prefix },
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
    // PostgreSQL rolls back the transaction of the lost connection once it notices the socket closed.
    await until(
      async () => ((await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND query LIKE $1`, [`%${schema}%`])).rows[0] as { n: number }).n === 0,
      10_000,
      'the sender transaction ended',
    );
    await server.run(group, 1);
    const client = server.client();
    const later = await client.send(email, 9); // straight to Redis
    expect((await client.getResult(later, 10_000)).value).toBe(9);
    await sleep(300);
    expect(runs).toEqual([9]);
    expect(await client.getStatus(id as string)).toBeNull();
    expect(await (server.broker as PostgresOutbox).pending()).toBe(0);
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0]).toEqual({ n: 0 });
  });

  it('a relay that fails after publishing and before deleting publishes again; the task runs once in effect', async () => {
    const ns = redisNamespace('ob');
    cleanups.push(async () => {
      await ns.sweep();
      await ns.quit();
    });
    const redis = new RedisBroker({ prefix: ns.prefix });
    let failNext = 2;
    let calls = 0;
    let client: Client | undefined;
    let id: TaskId<number> | undefined;
    // The wrapped broker confirms the publish, then the relay "dies" (its transaction rolls back).
    // Its publishes again wait until the first run's success is stored: duplicates of a finished task
    // are what its id absorbs (two copies running at once are at-least-once delivery, not this test).
    const flaky: Broker = Object.assign(Object.create(redis) as RedisBroker, {
      async publishBatch(g: string, items: ReadonlyArray<{ body: string }>) {
        if (calls++ > 0) {
          await until(async () => id !== undefined && client !== undefined && (await client.getStatus(id))?.status === 'success', 20_000, 'first run stored');
        }
        await redis.publishBatch(g, items);
        if (failNext-- > 0) throw new Error('relay crashed after the publish');
      },
    });
    const runs: number[] = [];
    const server = new Server({
      broker: new PostgresOutbox({ broker: flaky, connection: PG_URL, schema, pollMs: 200 }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    servers.push(server);
    const email = server.add(group, 'email', (order: number) => {
      runs.push(order);
      return order;
    });
    await server.run(group, 1);
    client = server.client();
    const c = client;
    id = await inTx('COMMIT', (tx) => c.with({ tx }).send(email, 7));
    expect((await client.getResult(id, 20_000)).value).toBe(7);
    await until(async () => (await (server.broker as PostgresOutbox).pending()) === 0, 20_000, 'outbox drained');
    await until(async () => (await server.broker.counts(group)).ready + (await server.broker.counts(group)).inFlight === 0, 20_000, 'duplicates consumed');
    expect(failNext).toBeLessThan(0); // it did fail twice, so the message was published three times
    expect(runs).toEqual([7]);
    expect((await client.getStatus(id))?.status).toBe('success');
  });

  it('a relay process SIGKILLed between the broker confirmation and its delete: every committed task runs, none twice', async () => {
    const ns = redisNamespace('ob');
    cleanups.push(async () => {
      await ns.sweep();
      await ns.quit();
    });
    // The sending side runs no relay; the fixture process does, and gets stuck after its publish.
    const sender = new PostgresOutbox({ broker: new RedisBroker({ prefix: ns.prefix }), connection: PG_URL, schema, relay: false });
    const backend = new PostgresBackend({ connection: PG_URL, schema });
    const { Client } = await import('../src/index.js');
    const client = new Client({ broker: sender, backend, logger: silentLogger });
    cleanups.push(() => client.close());
    await sender.connect();
    const fixture = fileURLToPath(new URL('./fixtures/postgres-outbox-relay.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      env: { ...process.env, TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_PREFIX: ns.prefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    await until(() => out.includes('ready\n') || child.exitCode !== null, 30_000, 'relay start');
    const n = 20;
    const ids = await inTx('COMMIT', async (tx) => {
      const list: Array<TaskId<number>> = [];
      for (let i = 0; i < n; i++) list.push(await client.with({ tx }).send(group, 'email', i) as TaskId<number>);
      return list;
    });
    await until(() => out.includes('published'), 30_000, 'relay publish');
    child.kill('SIGKILL');
    await exited;
    expect(await sender.pending()).toBe(n); // the relay's delete never committed

    const runs: number[] = [];
    const server = new Server({
      broker: new PostgresOutbox({ broker: new RedisBroker({ prefix: ns.prefix }), connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    servers.push(server);
    server.add(group, 'email', (order: number) => {
      runs.push(order);
      return order;
    });
    await server.run(group, 1);
    const results = await Promise.all(ids.map((id) => client.getResult(id, 30_000)));
    expect(results.map((r) => r.value)).toEqual(Array.from({ length: n }, (_, i) => i));
    await until(async () => (await sender.pending()) === 0, 20_000, 'outbox drained');
    await until(async () => {
      const c = await server.broker.counts(group);
      return c.ready + c.inFlight + c.delayed === 0;
    }, 20_000, 'duplicates consumed');
    expect(runs.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
  });
});

/**
 * The dashboard's API on the other broker / backend pairs: RabbitMQ + Redis and PostgreSQL +
 * PostgreSQL, with a real worker in process. Counts equal `client.ops.counts`; task lists work
 * where the backend keeps an index and otherwise answer ERR_UNSUPPORTED with the overview saying
 * so; dead letters are listed and redriven.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Server } from '../src/server.js';
import { silentLogger } from '../src/logger.js';
import type { Backend } from '../src/backend.js';
import type { Broker } from '../src/broker.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { dashboard, type WireDeadPage, type WireOverview } from '../dashboard/index.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const TOKEN = 'pairs-test-token-0123456789';
const headers = { authorization: `Bearer ${TOKEN}` };
const redis = redisNamespace('dash-pairs');
const rabbit = rabbitNamespace('dash-pairs');
const schema = schemaName('dash');
const admin = adminPool();

afterAll(async () => {
  await rabbit.sweep();
  await redis.sweep();
  await redis.quit();
  await dropSchema(admin, schema);
  await admin.end();
});

async function check(broker: Broker, backend: Backend): Promise<void> {
  const group = `pairs-${randomUUID().slice(0, 8)}`;
  const server = new Server({ broker, backend, logger: silentLogger });
  server.add(group, 'add', (a: number, b: number) => a + b);
  server.add(group, 'boom', () => {
    throw new Error('boom');
  });
  await server.run(group, 2);
  const client = server.client();
  let http: HttpServer | undefined;
  try {
    const handler = dashboard({ client, auth: { token: TOKEN }, logger: silentLogger });
    http = createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => http?.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    expect((await client.getResult(await client.send(group, 'add', 1, 2), 30_000)).value).toBe(3);
    expect((await client.getResult(await client.with({ retryCount: 0 }).send(group, 'boom'), 30_000)).status).toBe('failure');
    const deadTask = await client.send(group, 'add'); // missing arguments: a dead letter
    const deadList = async (): Promise<WireDeadPage> => (await (await fetch(`${base}/api/dead?group=${group}`, { headers })).json()) as WireDeadPage;
    const end = Date.now() + 30_000;
    while ((await deadList()).items.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect((await deadList()).items.map((d) => d.task)).toEqual([deadTask]);

    const ov = (await (await fetch(`${base}/api/overview?group=${group}`, { headers })).json()) as WireOverview;
    const row = ov.groups.find((g) => g.group === group);
    const counts = await client.ops.counts(group);
    expect(row).toMatchObject({ ready: counts.ready, delayed: counts.delayed, inFlight: counts.inFlight, dead: 1, statuses: counts.statuses });
    const list = await fetch(`${base}/api/tasks?group=${group}&status=failure`, { headers });
    if (backend.index !== undefined) {
      expect(list.status).toBe(200);
      expect(((await list.json()) as { items: unknown[] }).items.length).toBeGreaterThanOrEqual(1);
    } else {
      expect(list.status).toBe(501);
      expect(ov.notes.join(' ')).toMatch(/no task index/);
    }
    const redriven = await fetch(`${base}/api/dead/redrive`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'x-tasuki-dashboard': '1' }, body: JSON.stringify({ group, all: true }) });
    expect(((await redriven.json()) as { message: string }).message).toBe(`1 dead letter(s) moved back to ${group}`);
  } finally {
    await new Promise((r) => (http === undefined ? r(undefined) : http.close(r)));
    await client.ops.purge(group).catch(() => undefined);
    await server.shutdown(2000);
  }
}

describe('dashboard API on other pairs', () => {
  it('RabbitMQ broker + Redis backend', () => check(new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }), new RedisBackend({ prefix: redis.prefix, logger: { warn: () => undefined } })), 90_000);
  it('PostgreSQL broker + PostgreSQL backend', () => check(new PostgresBroker({ connection: PG_URL, schema }), new PostgresBackend({ connection: PG_URL, schema })), 90_000);
});

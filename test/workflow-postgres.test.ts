/**
 * The workflow suite with the PostgreSQL broker (Redis backend: the Postgres backend has no flow
 * journal storage, so workflows on it are refused with ERR_UNSUPPORTED — checked here too).
 */
import { afterAll, expect, it } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBackend } from '../backends/redis.js';
import { Server, silentLogger, task } from '../src/index.js';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
const ns = redisNamespace('wf-pg');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  const left = await admin.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tasuki_wf%'`);
  expect(left.rows).toEqual([]);
  await admin.end();
});

workflowSuite('postgres broker + redis backend', () => {
  const schema = schemaName('wf');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new RedisBackend({ prefix: ns.prefix }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

it('refuses workflows on the Postgres backend (no journal storage) with ERR_UNSUPPORTED, before sending', async () => {
  const schema = schemaName('wf');
  const server = new Server({ backend: new PostgresBackend({ connection: PG_URL, schema }), logger: silentLogger });
  const add = server.add('wf-pg-refused', 'add', (a: number, b: number) => a + b);
  const double = server.add('wf-pg-refused', 'double', (n: number) => n * 2);
  await expect(server.client().chain(task(add, 1, 2), task(double))).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  await expect(server.client().group([task(add, 1, 2)])).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  await server.shutdown(100);
  await dropSchema(admin, schema);
});

/**
 * The flow suite with the PostgreSQL broker (Redis backend: the Postgres backend has no journal
 * storage yet, so flows on it are refused with ERR_UNSUPPORTED — checked here too).
 */
import { afterAll, expect, it } from 'vitest';
import { flowSuite } from './flow/suite.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBackend } from '../backends/redis.js';
import { Server, silentLogger } from '../src/index.js';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
const ns = redisNamespace('flow-pg');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  const left = await admin.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tasuki_flow%'`);
  expect(left.rows).toEqual([]);
  await admin.end();
});

flowSuite('postgres broker + redis backend', () => {
  const schema = schemaName('flow');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new RedisBackend({ prefix: ns.prefix }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

it('refuses flows on the Postgres backend (no journal storage) with ERR_UNSUPPORTED', async () => {
  const server = new Server({ backend: new PostgresBackend({ connection: PG_URL, schema: schemaName('flow') }), logger: silentLogger });
  server.flow('flow-pg-refused', 'f', async () => 1);
  await expect(server.run('flow-pg-refused', 1)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  await server.shutdown(100);
});

/**
 * The flow suite on PostgreSQL: Postgres broker + Redis backend, Postgres broker + Postgres backend
 * (journal in `<schema>.journals`), Redis broker + Postgres backend. Every test gets its own schema,
 * dropped afterwards.
 */
import { afterAll, expect } from 'vitest';
import { flowSuite } from './flow/suite.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
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

flowSuite('postgres broker + postgres backend', () => {
  const schema = schemaName('flow');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

flowSuite('redis broker + postgres backend', () => {
  const schema = schemaName('flow');
  return {
    broker: () => new RedisBroker({ prefix: ns.prefix }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

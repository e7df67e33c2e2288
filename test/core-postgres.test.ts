/**
 * The core behaviour suite on PostgreSQL: Postgres broker + Postgres backend, Postgres broker + Redis
 * backend, Redis broker + Postgres backend. Every test gets its own schema, dropped afterwards.
 */
import { afterAll, expect } from 'vitest';
import { coreSuite } from './core/suite.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
const ns = redisNamespace('core-pg');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  const left = await admin.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tasuki_core%'`);
  expect(left.rows).toEqual([]);
  await admin.end();
});

coreSuite('postgres broker + postgres backend', () => {
  const schema = schemaName('core');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

coreSuite('postgres broker + redis backend', () => {
  const schema = schemaName('core');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new RedisBackend({ prefix: ns.prefix }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

coreSuite('redis broker + postgres backend', () => {
  const schema = schemaName('core');
  return {
    broker: () => new RedisBroker({ prefix: ns.prefix }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

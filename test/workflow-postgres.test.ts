/**
 * The workflow suite on PostgreSQL: Postgres broker + Redis backend, and Postgres broker + Postgres
 * backend (flow journals in `<schema>.journals`). Every test gets its own schema, dropped afterwards.
 */
import { afterAll, expect } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { RedisBackend } from '../backends/redis.js';
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

workflowSuite('postgres broker + postgres backend', () => {
  const schema = schemaName('wf');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

/**
 * The workflow suite on Redis broker + PostgreSQL backend (flow journals in `<schema>.journals`).
 * Every test gets its own Redis prefix and schema, both removed afterwards.
 */
import { afterAll, expect } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { RedisBroker } from '../brokers/redis.js';
import { PostgresBackend } from '../backends/postgres.js';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
const ns = redisNamespace('wf-rpg');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  const left = await admin.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tasuki_wfrpg%'`);
  expect(left.rows).toEqual([]);
  await admin.end();
});

workflowSuite('redis broker + postgres backend', () => {
  const schema = schemaName('wfrpg');
  return {
    broker: () => new RedisBroker({ prefix: ns.prefix }),
    // Expired rows are ignored on read; the sweep deletes them (often enough for the expiry test).
    backend: () => new PostgresBackend({ connection: PG_URL, schema, sweepIntervalMs: 500 }),
    teardown: async () => {
      await dropSchema(admin, schema);
      await ns.sweep();
    },
  };
});

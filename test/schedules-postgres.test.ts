/**
 * The schedules contract on PostgreSQL: Postgres broker + Postgres backend (records in
 * `<schema>.schedules`). Every test gets its own schema, dropped afterwards.
 */
import { afterAll, expect } from 'vitest';
import { schedulesContract } from './contract/schedules.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { PG_URL, adminPool, dropSchema, schemaName, schemasLeft } from './helpers/postgres.js';

const admin = adminPool();

afterAll(async () => {
  expect(await schemasLeft(admin, 'sched')).toEqual([]);
  await admin.end();
});

schedulesContract('postgres', () => {
  const schema = schemaName('sched');
  return {
    broker: () => new PostgresBroker({ connection: PG_URL, schema }),
    backend: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

/**
 * The task index and record store of the PostgreSQL backend (127.0.0.1:5432, database `test`; each
 * test its own schema, dropped afterwards): the ops contract, the query plans, the write kept in one
 * statement, and the operations API over the Postgres broker and backend.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { opsContract } from './contract/ops.js';
import { makeState } from './contract/backend.js';
import { PostgresBackend } from '../backends/postgres.js';
import { listQuery } from '../backends/postgres-index.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
afterAll(() => admin.end());

opsContract('postgres', () => {
  const schema = schemaName('ops');
  return {
    create: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

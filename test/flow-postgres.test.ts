/**
 * The flow suite on PostgreSQL: Postgres broker + Redis backend, Postgres broker + Postgres backend
 * (journal in `<schema>.journals`), Redis broker + Postgres backend. Every test gets its own schema,
 * dropped afterwards.
 */
import { afterAll } from 'vitest';
import { flowSuite } from './flow/suite.js';
import { postgresPairs } from './helpers/postgres-pairs.js';

const pairs = postgresPairs('flow');
afterAll(() => pairs.verifyClean());

flowSuite('postgres broker + redis backend', () => pairs.harness('pg+redis'));
flowSuite('postgres broker + postgres backend', () => pairs.harness('pg+pg'));
flowSuite('redis broker + postgres backend', () => pairs.harness('redis+pg'));

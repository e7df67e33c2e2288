/**
 * The core behaviour suite on PostgreSQL: Postgres broker + Postgres backend, Postgres broker + Redis
 * backend, Redis broker + Postgres backend. Every test gets its own schema, dropped afterwards.
 */
import { afterAll } from 'vitest';
import { coreSuite } from './core/suite.js';
import { postgresPairs } from './helpers/postgres-pairs.js';

const pairs = postgresPairs('core');
afterAll(() => pairs.verifyClean());

coreSuite('postgres broker + postgres backend', () => pairs.harness('pg+pg'));
coreSuite('postgres broker + redis backend', () => pairs.harness('pg+redis'));
coreSuite('redis broker + postgres backend', () => pairs.harness('redis+pg'));

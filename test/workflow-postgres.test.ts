/**
 * The workflow suite on PostgreSQL: Postgres broker + Redis backend, and Postgres broker + Postgres
 * backend (flow journals in `<schema>.journals`). Every test gets its own schema, dropped afterwards.
 */
import { afterAll } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { postgresPairs } from './helpers/postgres-pairs.js';

const pairs = postgresPairs('wf');
afterAll(() => pairs.verifyClean());

workflowSuite('postgres broker + redis backend', () => pairs.harness('pg+redis'));
workflowSuite('postgres broker + postgres backend', () => pairs.harness('pg+pg'));

/**
 * The workflow suite on Redis broker + PostgreSQL backend (flow journals in `<schema>.journals`).
 * Every test gets its own Redis prefix and schema, both removed afterwards.
 */
import { afterAll } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { postgresPairs } from './helpers/postgres-pairs.js';

const pairs = postgresPairs('wfrpg');
afterAll(() => pairs.verifyClean());

// Expired rows are ignored on read; the sweep deletes them (often enough for the expiry test).
workflowSuite('redis broker + postgres backend', () => pairs.harness('redis+pg', { sweepIntervalMs: 500 }));

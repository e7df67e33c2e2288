/**
 * The broker + backend pairs with PostgreSQL that the behaviour suites (core, flows, workflows) run
 * on: each harness gets its own schema (`tasuki_<label>_…`), dropped at its teardown, and shares one
 * Redis key prefix swept there too; `verifyClean` (for `afterAll`) checks that no key and no schema
 * of the file is left, and closes the connections.
 */
import { expect } from 'vitest';
import type { Broker } from '../../src/broker.js';
import type { Backend } from '../../src/backend.js';
import { PostgresBroker } from '../../brokers/postgres.js';
import { PostgresBackend, type PostgresBackendOptions } from '../../backends/postgres.js';
import { RedisBroker } from '../../brokers/redis.js';
import { RedisBackend } from '../../backends/redis.js';
import { redisNamespace } from './redis.js';
import { PG_URL, adminPool, dropSchema, schemaName, schemasLeft } from './postgres.js';

/** Which side is PostgreSQL: `pg+pg` both, `pg+redis` the broker, `redis+pg` the backend. */
export type PostgresPair = 'pg+pg' | 'pg+redis' | 'redis+pg';

/** A suite harness (the shape of the core, flow and workflow suites' harnesses). */
export interface PairHarness {
  broker(): Broker;
  backend(): Backend;
  teardown(): Promise<void>;
}

/** Harnesses of the PostgreSQL pairs for one test file, named by `label` (lower case, a few letters). */
export function postgresPairs(label: string): {
  /** A harness of `pair` on a fresh schema; `backend` adds options of the PostgreSQL backend. */
  harness(pair: PostgresPair, backend?: Omit<PostgresBackendOptions, 'connection' | 'schema'>): PairHarness;
  /** For `afterAll`: no Redis key and no schema of this file left; connections closed. */
  verifyClean(): Promise<void>;
} {
  const admin = adminPool();
  const ns = redisNamespace(`${label}-pg`);
  return {
    harness(pair, backendOptions = {}) {
      const schema = schemaName(label);
      return {
        broker: () => (pair === 'redis+pg' ? new RedisBroker({ prefix: ns.prefix }) : new PostgresBroker({ connection: PG_URL, schema })),
        backend: () => (pair === 'pg+redis' ? new RedisBackend({ prefix: ns.prefix }) : new PostgresBackend({ ...backendOptions, connection: PG_URL, schema })),
        teardown: async () => {
          await dropSchema(admin, schema);
          await ns.sweep();
        },
      };
    },
    async verifyClean() {
      await ns.sweep();
      expect(await ns.keys()).toEqual([]);
      await ns.quit();
      expect(await schemasLeft(admin, label)).toEqual([]);
      await admin.end();
    },
  };
}

/**
 * Test helpers for PostgreSQL (127.0.0.1:5432, trust auth, database `test`): a unique schema per
 * test or file, and an admin pool that drops it afterwards.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** Connection string of the shared test server (override with TASUKI_PG_URL). */
export const PG_URL = process.env.TASUKI_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A fresh schema name (lower case, within the 48-character limit). */
export function schemaName(label = 't'): string {
  return `tasuki_${label}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
}

/** An admin pool for assertions and clean-up. */
export function adminPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4, application_name: 'tasuki-test-admin' });
  pool.on('error', () => undefined);
  return pool;
}

/** Drops a schema and everything in it. */
export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** True when the schema exists. */
export async function schemaExists(pool: pg.Pool, schema: string): Promise<boolean> {
  const res = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return res.rowCount === 1;
}

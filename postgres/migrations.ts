/**
 * Versioned migrations of tasuki's PostgreSQL schema, applied at connect by the broker and the
 * backend alike. All of them run in one transaction that first takes a transaction-level advisory
 * lock for the schema, so processes starting at once apply each migration exactly once (the others
 * wait, then find it recorded). Nothing outside the schema is created or changed.
 */
import type pg from 'pg';
import { mapError } from './connection.js';

/** One schema change; `sql` receives the quoted schema name. */
interface Migration {
  readonly version: number;
  readonly name: string;
  sql(s: string): string;
}

/** Every migration, in order. Never edit a released one: add the next version instead. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'messages, dead letters, states',
    sql: (s) => `
      CREATE FUNCTION ${s}.now_ms() RETURNS bigint LANGUAGE sql VOLATILE PARALLEL SAFE
        AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

      -- A message is ready when run_at <= now_ms(). A lease sets lease_token and moves run_at to
      -- the lease deadline, so an expired lease is simply ready again.
      CREATE TABLE ${s}.messages (
        id bigserial PRIMARY KEY,
        grp text NOT NULL,
        body text NOT NULL,
        run_at bigint NOT NULL,
        lease_token uuid,
        deliveries integer NOT NULL DEFAULT 0,
        enqueued_at bigint NOT NULL DEFAULT ${s}.now_ms()
      );
      CREATE INDEX messages_due ON ${s}.messages (grp, run_at, id);

      CREATE TABLE ${s}.dead_letters (
        id bigserial PRIMARY KEY,
        grp text NOT NULL,
        body text NOT NULL,
        code text NOT NULL,
        message text NOT NULL,
        at bigint NOT NULL
      );
      CREATE INDEX dead_letters_grp ON ${s}.dead_letters (grp, id);

      -- state NULL: not stored (stateTtl 0); expires_at NULL: forever. Same for the result.
      CREATE TABLE ${s}.states (
        id text PRIMARY KEY,
        status text,
        state text,
        expires_at bigint,
        result text,
        result_expires_at bigint
      );
      CREATE INDEX states_expiry ON ${s}.states (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
  {
    version: 2,
    name: 'watches',
    // Who waits for which task (watchFinal): a final write sends its NOTIFY only when someone does,
    // since notifying transactions commit one at a time. Unlogged: no WAL, emptied by a crash (the
    // watchers register again when their LISTEN connection comes back).
    sql: (s) => `
      CREATE UNLOGGED TABLE ${s}.watches (
        id text NOT NULL,
        token uuid NOT NULL,
        until bigint NOT NULL,
        PRIMARY KEY (id, token)
      );
      CREATE INDEX watches_until ON ${s}.watches (until);
    `,
  },
  {
    version: 3,
    name: 'outbox',
    // Messages sent in a caller's transaction for another broker (Redis, RabbitMQ), relayed after commit.
    sql: (s) => `
      CREATE TABLE ${s}.outbox (
        id bigserial PRIMARY KEY,
        grp text NOT NULL,
        body text NOT NULL,
        available_at bigint,
        created_at bigint NOT NULL DEFAULT ${s}.now_ms()
      );
    `,
  },
  {
    version: 4,
    name: 'flow journals, schedules',
    // One journal document per flow (JSON text), written by compare-and-set on v; expires_at NULL:
    // forever (removed by the backend's sweep once past). One schedule record per name, by
    // compare-and-set on rev; never expires.
    sql: (s) => `
      CREATE TABLE ${s}.journals (
        flow_id text PRIMARY KEY,
        v bigint NOT NULL,
        doc text NOT NULL,
        expires_at bigint
      );
      CREATE INDEX journals_expiry ON ${s}.journals (expires_at) WHERE expires_at IS NOT NULL;

      CREATE TABLE ${s}.schedules (
        name text PRIMARY KEY,
        rev integer NOT NULL,
        data text NOT NULL
      );
    `,
  },
  {
    version: 5,
    name: 'task index, records',
    // The task index is three columns of the state row, written by the same statement as the state
    // (NULL grp: not indexed — no state stored, the index turned off, or a row not written since
    // this migration). One partial index serves lists newest first (backward scans, keyset
    // pagination on (updated_at, id); a list of every status merges one scan per status), counts by
    // status and the list of groups; ids compare bytewise (COLLATE "C").
    // Records: the operations layer's small shared records (worker registry, paused groups,
    // watchdog claims); expires_at NULL: never.
    sql: (s) => `
      ALTER TABLE ${s}.states ADD COLUMN grp text, ADD COLUMN name text, ADD COLUMN updated_at bigint;
      CREATE INDEX states_ix ON ${s}.states (grp, status, updated_at, id COLLATE "C") INCLUDE (expires_at) WHERE grp IS NOT NULL;

      CREATE TABLE ${s}.records (
        kind text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        expires_at bigint,
        PRIMARY KEY (kind, key)
      );
      CREATE INDEX records_expiry ON ${s}.records (expires_at) WHERE expires_at IS NOT NULL;
    `,
  },
];

/** The newest schema version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

/** Stable advisory-lock keys of a schema's migration lock (two int4 keys: namespace, schema). */
const LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtext('tasuki.migrate'), hashtext($1))`;

/**
 * Creates the schema and applies the migrations it lacks, under the advisory lock. Returns the
 * schema version found afterwards (may be newer than {@link SCHEMA_VERSION} when a newer tasuki
 * migrated it; this code then uses only what it knows).
 */
export async function migrate(pool: pg.Pool, schema: string, quoted: string): Promise<number> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw mapError(err, 'connect');
  }
  let failed: unknown;
  try {
    await client.query('BEGIN');
    await client.query(LOCK_SQL, [schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoted}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${quoted}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const res = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${quoted}.migrations`);
    let current = res.rows[0]?.v ?? 0;
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql(quoted));
      await client.query(`INSERT INTO ${quoted}.migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      current = m.version;
    }
    await client.query('COMMIT');
    return current;
  } catch (err) {
    failed = err;
    await client.query('ROLLBACK').catch(() => undefined);
    throw mapError(err, 'migration');
  } finally {
    client.release(failed instanceof Error ? failed : undefined);
  }
}

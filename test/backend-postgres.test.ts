/**
 * The PostgreSQL backend against a real PostgreSQL (127.0.0.1:5432, database `test`): the backend
 * contract suite (each test in its own schema, dropped afterwards) plus Postgres specifics.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PostgresBackend } from '../backends/postgres.js';
import { backendContract, makeState } from './contract/backend.js';
import { journalContract, makeEntry } from './contract/journal.js';
import { encodeValueText } from '../src/message.js';
import { PG_URL, adminPool, dropSchema, schemaExists, schemaName } from './helpers/postgres.js';

const run = promisify(execFile);
const admin = adminPool();
afterAll(() => admin.end());

backendContract('postgres', () => {
  const schema = schemaName('bc');
  return {
    create: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

journalContract('postgres', () => {
  const schema = schemaName('jc');
  return {
    create: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

describe('postgres backend specifics', () => {
  const schemas: string[] = [];
  const backends: PostgresBackend[] = [];
  const make = (options: ConstructorParameters<typeof PostgresBackend>[0] = {}): PostgresBackend => {
    const schema = options.schema ?? schemaName('be');
    if (!schemas.includes(schema)) schemas.push(schema);
    const b = new PostgresBackend({ connection: PG_URL, schema, ...options });
    backends.push(b);
    return b;
  };
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
    for (const s of schemas.splice(0)) await dropSchema(admin, s);
  });

  it('creates its schema at connect and records the migration once, even with many instances at once', async () => {
    const schema = schemaName('mig');
    const many = Array.from({ length: 6 }, () => make({ schema }));
    await Promise.all(many.map((b) => b.connect()));
    const res = await admin.query(`SELECT version FROM "${schema}".migrations`);
    expect(res.rows).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }]);
    const tables = await admin.query(`SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1`, [schema]);
    expect(tables.rows.map((r: { tablename: string }) => r.tablename)).toEqual(['dead_letters', 'journals', 'messages', 'migrations', 'outbox', 'records', 'schedules', 'states', 'watches']);
  });

  it('two processes starting at once on a new schema both connect; each migration is applied once', async () => {
    const schema = schemaName('mig');
    schemas.push(schema);
    const fixture = fileURLToPath(new URL('./fixtures/postgres-migrate-race.ts', import.meta.url));
    const env = { ...process.env, TASUKI_PG_URL: PG_URL, TASUKI_SCHEMA: schema, TASUKI_START_AT: String(Date.now() + 3000) };
    const outs = await Promise.all([0, 1].map(() => run(process.execPath, ['--import', 'tsx', fixture], { env, timeout: 60_000 })));
    for (const { stdout } of outs) expect(stdout).toBe('migrated\n');
    const res = await admin.query(`SELECT version FROM "${schema}".migrations ORDER BY version`);
    expect(res.rows).toEqual([{ version: 1 }, { version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }]);
  });

  it('uses a pg.Pool given to it and never ends it', async () => {
    const { Pool } = (await import('pg')).default;
    const pool = new Pool({ connectionString: PG_URL, max: 3 });
    try {
      const b = make({ connection: pool });
      const id = randomUUID();
      await b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'notFinal' });
      expect((await b.read(id))?.status).toBe('running');
      await b.close();
      expect(pool.ended).toBe(false);
      expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('rejects an invalid schema name with a typed error', () => {
    expect(() => new PostgresBackend({ schema: 'Bad; DROP' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it('a refused connection is a ConnectionError without the credentials in message or cause', async () => {
    const b = new PostgresBackend({ connection: 'postgres://someone:s3cret-pw@127.0.0.1:1/test', schema: schemaName('x') });
    try {
      const err = (await b.read('x').catch((e: unknown) => e)) as Error & { code: string; cause?: Error };
      expect(err.code).toBe('ERR_CONNECTION');
      expect(err.message).not.toContain('s3cret-pw');
      expect(String(err.cause?.message)).not.toContain('s3cret-pw');
      expect(JSON.stringify(err.cause)).not.toContain('s3cret-pw');
    } finally {
      await b.close();
    }
  });

  it('the sweep deletes rows whose state and result expired, and only those', async () => {
    const b = make({ sweepIntervalMs: 0 });
    const [gone, kept, resultKept] = [randomUUID(), randomUUID(), randomUUID()];
    await b.write({ state: makeState(gone, 'success'), stateTtl: 1, result: encodeValueText(1), resultTtl: 1, guard: 'notSuccess' });
    await b.write({ state: makeState(kept, 'success'), stateTtl: -1, guard: 'notSuccess' });
    await b.write({ state: makeState(resultKept, 'success'), stateTtl: 1, result: encodeValueText(2), resultTtl: 60, guard: 'notSuccess' });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await b.sweep()).toBe(1);
    const rows = await admin.query(`SELECT id FROM "${b.schema}".states ORDER BY id`);
    expect(rows.rows.map((r: { id: string }) => r.id).sort()).toEqual([kept, resultKept].sort());
  });

  it('one sweep deletes at most sweepLimit rows; the next ones take the rest', async () => {
    const b = make({ sweepIntervalMs: 0, sweepLimit: 2 });
    for (let i = 0; i < 5; i++) await b.write({ state: makeState(randomUUID(), 'success'), stateTtl: 1, guard: 'notSuccess' });
    await new Promise((r) => setTimeout(r, 1200));
    expect([await b.sweep(), await b.sweep(), await b.sweep(), await b.sweep()]).toEqual([2, 2, 1, 0]);
  });

  it('the sweep deletes flow journals whose expiry passed, and only those', async () => {
    const b = make({ sweepIntervalMs: 0 });
    const [gone, kept, forever] = [randomUUID(), randomUUID(), randomUUID()];
    await b.journal.put(gone, makeEntry('a#0', 'done'), 'absent', 1);
    await b.journal.put(kept, makeEntry('a#0', 'done'), 'absent', 60);
    await b.journal.put(forever, makeEntry('a#0', 'done'), 'absent', -1);
    await new Promise((r) => setTimeout(r, 1200));
    await b.sweep();
    const rows = await admin.query(`SELECT flow_id FROM "${b.schema}".journals`);
    expect(rows.rows.map((r: { flow_id: string }) => r.flow_id).sort()).toEqual([kept, forever].sort());
    expect((await b.journal.read(kept)).entries.map((e) => e.key)).toEqual(['a#0']);
  });

  it('writes in the caller transaction exist only if it commits', async () => {
    const b = make();
    await b.connect();
    const [committed, rolledBack] = [randomUUID(), randomUUID()];
    for (const [id, end] of [
      [committed, 'COMMIT'],
      [rolledBack, 'ROLLBACK'],
    ] as const) {
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        expect((await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent', tx: client })).written).toBe(true);
        expect(await b.read(id)).toBeNull(); // not visible outside the transaction yet
        await client.query(end);
      } finally {
        client.release();
      }
    }
    expect((await b.read(committed))?.status).toBe('sent');
    expect(await b.read(rolledBack)).toBeNull();
  });

  it('a final write notifies only while the task is watched somewhere; a stopped watch ends its row', async () => {
    const watcher = make();
    const writer = make({ schema: watcher.schema });
    const [watched, unwatched] = [randomUUID(), randomUUID()];
    const seen: string[] = [];
    const stop = await watcher.watchFinal(watched, (n) => seen.push(n?.state.id ?? 'hint'));
    const rows = async (): Promise<number> => ((await admin.query(`SELECT count(*)::int AS n FROM "${watcher.schema}".watches`)).rows[0] as { n: number }).n;
    expect(await rows()).toBe(1);
    const listen = await admin.connect();
    const heard: string[] = [];
    try {
      listen.on('notification', (m) => heard.push(JSON.parse(m.payload as string).id as string));
      await listen.query(`LISTEN "tasuki:${watcher.schema}:final"`);
      await writer.write({ state: makeState(unwatched, 'success'), stateTtl: 60, guard: 'notSuccess' });
      await writer.write({ state: makeState(watched, 'success'), stateTtl: 60, guard: 'notSuccess' });
      for (let i = 0; i < 200 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual([watched]);
    } finally {
      await listen.query('UNLISTEN *').catch(() => undefined);
      listen.release();
    }
    expect(seen).toEqual([watched]);
    stop();
    for (let i = 0; i < 200 && (await rows()) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await rows()).toBe(0);
  });

  it('touches nothing outside its schema: close leaves the schema, drop removes everything', async () => {
    const b = make();
    await b.connect();
    expect(await schemaExists(admin, b.schema)).toBe(true);
    const other = await admin.query(`SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relname IN ('states', 'messages', 'migrations')`);
    expect(other.rows[0]).toEqual({ n: 0 });
  });
});

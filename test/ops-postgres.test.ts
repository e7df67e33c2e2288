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
import { MIGRATIONS } from '../postgres/migrations.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { Server } from '../src/server.js';
import { silentLogger } from '../src/logger.js';
import type { AbnormalTask } from '../src/ops/types.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

const admin = adminPool();
afterAll(() => admin.end());

opsContract('postgres', () => {
  const schema = schemaName('ops');
  return {
    create: () => new PostgresBackend({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

type Plan = { 'Node Type': string; 'Index Name'?: string; 'Scan Direction'?: string; Plans?: Plan[] };
/** Every node of a plan tree. */
const nodes = (p: Plan): Plan[] => [p, ...(p.Plans ?? []).flatMap(nodes)];

describe('postgres task index specifics', () => {
  const schemas: string[] = [];
  const backends: PostgresBackend[] = [];
  const make = (options: ConstructorParameters<typeof PostgresBackend>[0] = {}): PostgresBackend => {
    const schema = options.schema ?? schemaName('opx');
    if (!schemas.includes(schema)) schemas.push(schema);
    const b = new PostgresBackend({ connection: PG_URL, schema, ...options });
    backends.push(b);
    return b;
  };
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.close()));
    for (const s of schemas.splice(0)) await dropSchema(admin, s);
  });

  it('every index query is an index scan: newest first without a sort, keyset pages, counts and groups', async () => {
    const b = make();
    await b.connect();
    const s = `"${b.schema}"`;
    // 40 000 indexed rows over 8 groups (5 000 each, 1 000 per status in the first five), then fresh
    // statistics. (Where a filter matches only a few hundred rows, the planner may rightly prefer
    // reading them all through the same index and sorting them: not what this test is about.)
    await admin.query(`
      INSERT INTO ${s}.states (id, status, state, expires_at, grp, name, updated_at)
      SELECT id, status, json_build_object('v', 1, 'id', id, 'group', grp, 'name', name, 'status', status, 'retriesUsed', 0, 'retriesLeft', 0, 'updatedAt', at)::text,
        CASE WHEN i % 2 = 0 THEN NULL ELSE ${s}.now_ms() + 3600000 END, grp, name, at
      FROM (SELECT i, 'id-' || i AS id, (ARRAY['sent','running','success','failure','expired'])[1 + (i / 8) % 5] AS status,
        'g' || (i % 8) AS grp, 'n' || (i % 3) AS name, 1700000000000 + i AS at FROM generate_series(1, 40000) AS i) AS x`);
    await admin.query(`ANALYZE ${s}.states`);
    const explain = async (text: string, values: unknown[]): Promise<Plan[]> => {
      const res = await admin.query<{ 'QUERY PLAN': Array<{ Plan: Plan }> }>(`EXPLAIN (FORMAT JSON) ${text}`, values);
      return nodes((res.rows[0]?.['QUERY PLAN'][0] as { Plan: Plan }).Plan);
    };
    const cursor = Buffer.from('1700000030003:id-30003', 'utf8').toString('base64url');
    const cases: Array<Parameters<typeof listQuery>[1]> = [
      { group: 'g3', limit: 50 },
      { group: 'g3', status: 'failure', limit: 50 },
      { group: 'g3', status: 'failure', since: 1700000001000, until: 1700000039000, cursor, limit: 50 },
      { group: 'g3', name: 'n1', cursor, limit: 50 },
    ];
    for (const q of cases) {
      const plan = await explain(listQuery(s, q).text, listQuery(s, q).values);
      const scans = plan.filter((n) => n['Node Type'].includes('Scan') && n['Node Type'] !== 'Subquery Scan');
      // One scan per status without a status filter (merged in order), else one.
      expect(scans.length, JSON.stringify(q)).toBe(q.status === undefined ? 7 : 1);
      for (const scan of scans) expect(scan, JSON.stringify(q)).toMatchObject({ 'Node Type': 'Index Scan', 'Index Name': 'states_ix', 'Scan Direction': 'Backward' });
      expect(plan.map((n) => n['Node Type']), JSON.stringify(q)).not.toContain('Sort');
    }
    const counts = await explain(`SELECT a.status, count(*)::int AS n FROM ${s}.states a WHERE a.grp = $1 AND (a.expires_at IS NULL OR a.expires_at > ${s}.now_ms()) GROUP BY a.status`, ['g3']);
    expect(counts.some((n) => n['Index Name'] === 'states_ix'), JSON.stringify(counts)).toBe(true);
    expect(counts.map((n) => n['Node Type'])).not.toContain('Seq Scan');
    const groups = await explain((b.index as unknown as { sql: { groups: string } }).sql.groups, []);
    expect(groups.some((n) => n['Index Name'] === 'states_ix'), JSON.stringify(groups)).toBe(true);
    expect(groups.map((n) => n['Node Type'])).not.toContain('Seq Scan');
    // The answers themselves, on the same rows.
    const page = await b.index?.list({ group: 'g3', status: 'failure', limit: 3, cursor });
    expect(page?.items).toHaveLength(3);
    expect(await b.index?.groups()).toEqual(['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7']);
    const all = await b.index?.statusCounts('g3');
    expect(Object.values(all ?? {}).reduce((x, y) => x + y, 0)).toBe(5000);
  });

  it('a write is still one statement, and its index entry commits or rolls back with it (tx)', async () => {
    const { Pool } = (await import('pg')).default;
    const pool = new Pool({ connectionString: PG_URL, max: 2 });
    try {
      const b = make({ connection: pool });
      await b.connect();
      const group = `g-${randomUUID().slice(0, 8)}`;
      let statements = 0;
      const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
      (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        statements++;
        return query(...args);
      };
      await b.write({ state: makeState('one', 'failure', { group, name: 'job' }), stateTtl: 60, guard: 'notSuccess' });
      expect(statements).toBe(1);
      const row = await admin.query(`SELECT grp, name, updated_at FROM "${b.schema}".states WHERE id = 'one'`);
      expect(row.rows[0]).toMatchObject({ grp: group, name: 'job' });
      // In the caller's transaction: rolled back, no entry; committed, listed.
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await b.write({ state: makeState('two', 'sent', { group }), stateTtl: 60, guard: 'absent', tx: client });
        await client.query('ROLLBACK');
        expect((await b.index?.list({ group, limit: 10 }))?.items.map((x) => x.id)).toEqual(['one']);
        await client.query('BEGIN');
        await b.write({ state: makeState('two', 'sent', { group, updatedAt: Date.now() + 1000 }), stateTtl: 60, guard: 'absent', tx: client });
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      expect((await b.index?.list({ group, limit: 10 }))?.items.map((x) => x.id)).toEqual(['two', 'one']);
      // Not stored (stateTtl 0): leaves the index.
      await b.write({ state: makeState('one', 'success', { group }), stateTtl: 0, result: '1', resultTtl: 60, guard: 'notSuccess' });
      expect((await b.index?.list({ group, limit: 10 }))?.items.map((x) => x.id)).toEqual(['two']);
    } finally {
      await Promise.all(backends.splice(0).map((x) => x.close()));
      await pool.end();
    }
  });

  it('keyset pages stay stable while newer tasks arrive (no repeats, no gaps)', async () => {
    const b = make();
    const group = 'stable';
    const t0 = Date.now() - 60_000;
    const made: string[] = [];
    for (let i = 0; i < 9; i++) {
      const id = `s-${i}`;
      made.push(id);
      // Equal times in pairs: the id breaks the tie.
      await b.write({ state: makeState(id, 'failure', { group, updatedAt: t0 + Math.floor(i / 2) }), stateTtl: 60, guard: 'notSuccess' });
    }
    const first = await b.index?.list({ group, limit: 4 });
    const seen = first?.items.map((x) => x.id) ?? [];
    for (let i = 0; i < 5; i++) await b.write({ state: makeState(`new-${i}`, 'failure', { group }), stateTtl: 60, guard: 'notSuccess' });
    let cursor = first?.cursor ?? null;
    while (cursor !== null) {
      const page = await b.index?.list({ group, limit: 4, cursor });
      seen.push(...(page?.items.map((x) => x.id) ?? []));
      cursor = page?.cursor ?? null;
    }
    expect(seen).toEqual(['s-8', 's-7', 's-6', 's-5', 's-4', 's-3', 's-2', 's-1', 's-0']);
    await expect(b.index?.list({ group, limit: 4, cursor: '!!' })).rejects.toMatchObject({ code: 'ERR_DECODE' });
  });

  it('index: false writes no index columns and has no index; records still work', async () => {
    const b = make({ index: false });
    expect(b.index).toBeUndefined();
    await b.write({ state: makeState('noix', 'sent', { group: 'noix' }), stateTtl: 60, guard: 'absent' });
    const row = await admin.query(`SELECT grp, name, updated_at FROM "${b.schema}".states WHERE id = 'noix'`);
    expect(row.rows[0]).toEqual({ grp: null, name: null, updated_at: null });
    await b.records.put('paused', 'noix', '{}', null);
    expect(await b.records.get('paused', 'noix')).toBe('{}');
    expect(() => make({ index: true as unknown as false })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it('upgrades a version 4 schema in place: its rows stay readable and are listed from their next write on', async () => {
    const schema = schemaName('opu');
    schemas.push(schema);
    const s = `"${schema}"`;
    await admin.query(`CREATE SCHEMA ${s}`);
    await admin.query(`CREATE TABLE ${s}.migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const m of MIGRATIONS.filter((x) => x.version <= 4)) {
      await admin.query(m.sql(s));
      await admin.query(`INSERT INTO ${s}.migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
    const old = makeState('old', 'failure', { group: 'up' });
    await admin.query(`INSERT INTO ${s}.states (id, status, state, expires_at) VALUES ('old', 'failure', $1, NULL)`, [JSON.stringify(old)]);
    const b = make({ schema });
    expect(await b.read('old')).toEqual(old);
    expect((await admin.query(`SELECT max(version) AS v FROM ${s}.migrations`)).rows[0]).toEqual({ v: 5 });
    expect((await b.index?.list({ group: 'up', limit: 10 }))?.items).toEqual([]);
    await b.write({ state: { ...old, updatedAt: Date.now() }, stateTtl: 60, guard: 'notSuccess' });
    expect((await b.index?.list({ group: 'up', status: 'failure', limit: 10 }))?.items.map((x) => x.id)).toEqual(['old']);
  });

  it('the sweep removes expired records', async () => {
    const b = make({ sweepIntervalMs: 0 });
    await b.records.put('test', 'short', 'x', 1);
    await b.records.put('test', 'kept', 'y', null);
    await new Promise((r) => setTimeout(r, 20));
    await b.sweep();
    const rows = await admin.query(`SELECT key FROM "${b.schema}".records ORDER BY key`);
    expect(rows.rows).toEqual([{ key: 'kept' }]);
  });
});

describe('operations API on the postgres broker + postgres backend', () => {
  const schemas: string[] = [];
  const servers: Server[] = [];
  const make = (schema: string, extra: ConstructorParameters<typeof Server>[0] = {}): Server => {
    if (!schemas.includes(schema)) schemas.push(schema);
    const s = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      pausePollMs: 50,
      heartbeatMs: 50,
      ...extra,
    });
    servers.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.shutdown(2000)));
    for (const s of schemas.splice(0)) await dropSchema(admin, s);
  });

  it('lists and counts a failed task, retries it, pauses and resumes the group, lists the worker', async () => {
    const server = make(schemaName('opa'));
    let calls = 0;
    const flaky = server.add('ops', 'flaky', (n: number) => {
      calls++;
      if (calls === 1) throw new Error(`boom ${n}`);
      return n * 2;
    });
    await server.run('ops', 2);
    const client = server.client();
    const id = await client.with({ retryCount: 0 }).send(flaky, 21);
    expect((await client.getResult(id, 10_000)).status).toBe('failure');
    const page = await client.ops.list('ops', { status: 'failure', since: Date.now() - 60_000 });
    expect(page.items.map((s) => s.id)).toEqual([id]);
    expect(page.items[0]?.error?.message).toBe('boom 21');
    const counts = await client.ops.counts('ops');
    expect(counts).toMatchObject({ group: 'ops', ready: 0, paused: false, redelivered: 0 });
    expect(counts.statuses?.failure).toBe(1);
    expect(await client.ops.groups()).toContain('ops');
    expect((await client.ops.retry(id)).retried).toEqual([id]);
    expect((await client.getResult<number>(id, 10_000)).value).toBe(42);
    expect((await client.ops.list('ops', { status: 'failure' })).items).toEqual([]);
    expect((await client.ops.list('ops', { status: 'success', name: 'flaky' })).items.map((s) => s.id)).toEqual([id]);
    await until(async () => (await client.ops.workers())[0]?.succeeded === 1);
    expect((await client.ops.workers())[0]).toMatchObject({ pid: process.pid, groups: [{ group: 'ops', concurrency: 2 }] });
    await client.ops.pause('ops');
    expect(await client.ops.paused()).toEqual(['ops']);
    await sleep(300); // past pausePollMs: the worker has seen the pause
    const held = await client.send(flaky, 1);
    await sleep(400);
    expect((await client.getStatus(held))?.status).toBe('sent');
    expect((await client.ops.counts('ops')).paused).toBe(true);
    await client.ops.resume('ops');
    expect((await client.getResult<number>(held, 10_000)).value).toBe(2);
  });

  it('watchdog: a task not started in time is reported once per interval though two servers watch', async () => {
    const schema = schemaName('opw');
    const events: Array<{ group: string; tasks: AbnormalTask[]; at: number }> = [];
    const watchdog = { sentTimeoutMs: 100, intervalMs: 300 };
    const a = make(schema, { watchdog });
    const b = make(schema, { watchdog });
    for (const s of [a, b]) {
      s.add('wd', 'never', () => 1);
      s.on('abnormal', (e) => events.push(e as (typeof events)[number]));
    }
    await Promise.all([a.run('wd', 1), b.run('wd', 1)]);
    const client = a.client();
    await client.ops.pause('wd');
    await sleep(300);
    const waiting = await client.send('wd', 'never');
    await until(() => events.some((e) => e.tasks.some((t) => t.state.id === waiting && t.kind === 'not-started')), 10_000);
    await sleep(1000);
    const buckets = events.map((e) => Math.floor(e.at / 300));
    expect(new Set(buckets).size).toBe(buckets.length);
    await client.ops.resume('wd');
  });
});

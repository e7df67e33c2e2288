/**
 * The task index and the record store of the PostgreSQL backend.
 *
 * The index is three columns of the state row (`grp`, `name`, `updated_at`; migration 5), set by the
 * backend's one guarded write statement together with the state — no extra statement, no second
 * structure to keep in step: an entry moves with each write and leaves with its row's expiry or
 * deletion (expired rows are skipped by every query until the sweep removes them). It is bounded by
 * the stored states themselves, so no per-group cap applies. One partial btree index serves it,
 * `(grp, status, updated_at, id) INCLUDE (expires_at)`: a list of one status is one backward index
 * scan with keyset pagination (`(updated_at, id) < cursor`), ids compared bytewise (`COLLATE "C"`);
 * a list of every status merges one such scan per status (no sort); counts and groups read the same index.
 * (A second index on `(grp, updated_at, id)` would spare the merge but cost every write another
 * index entry: see `bench/postgres-index-cost.ts`.)
 *
 * Records live in `<schema>.records` (`kind`, `key`, `value`, `expires_at`; NULL: never).
 */
import type { IndexPage, IndexQuery, RecordStore, StoredRecord, TaskIndex } from '../src/backend.js';
import { decodeCursor, encodeCursor } from '../src/ops/index-query.js';
import { parseTaskState, TASK_STATUSES, type TaskState, type TaskStatus } from '../src/state.js';
import { run, type Queryable } from '../postgres/connection.js';

/** Attempts of statements that are safe to repeat after a lost connection. */
const ATTEMPTS = 3;

/** Live-row condition on alias `a` (an indexed row always holds a state). */
const live = (s: string): string => `(a.expires_at IS NULL OR a.expires_at > ${s}.now_ms())`;

/** The index columns of a written state: group (NULL: not indexed), name, updatedAt as whole ms. */
export function indexColumns(state: TaskState, stored: boolean, indexed: boolean): [string | null, string | null, number | null] {
  if (!stored || !indexed) return [null, null, null];
  return [state.group, state.name, Math.floor(state.updatedAt)];
}

/**
 * The SELECT of one {@link IndexQuery} with its parameters (exported for the EXPLAIN test). With a
 * status it is one backward scan of the index; without, one such scan per status, each cut at the
 * page size and merged in order (PostgreSQL's Merge Append reads each only as far as the page
 * needs, no sort): the price of keeping a single index.
 */
export function listQuery(s: string, q: IndexQuery): { text: string; values: unknown[] } {
  const values: unknown[] = [q.group];
  const param = (v: unknown): string => {
    values.push(v);
    return `$${values.length}`;
  };
  const where: string[] = [];
  if (q.name !== undefined) where.push(`a.name = ${param(q.name)}`);
  // Whole ms in the column: t >= 10.5 is t >= 11, t < 10.5 is t < 11.
  if (q.since !== undefined) where.push(`a.updated_at >= ${param(Math.ceil(q.since))}::bigint`);
  if (q.until !== undefined) where.push(`a.updated_at < ${param(Math.ceil(q.until))}::bigint`);
  if (q.cursor !== undefined) {
    const after = decodeCursor(q.cursor);
    where.push(`(a.updated_at, a.id COLLATE "C") < (${param(Math.floor(after.at))}::bigint, ${param(after.id)}::text COLLATE "C")`);
  }
  where.push(live(s));
  const limit = `${param(q.limit + 1)}::int`;
  const order = 'ORDER BY updated_at DESC, id COLLATE "C" DESC';
  const branch = (status: string): string =>
    `SELECT a.id, a.state, a.updated_at FROM ${s}.states a WHERE a.grp = $1 AND a.status = ${status} AND ${where.join(' AND ')} ${order} LIMIT ${limit}`;
  if (q.status !== undefined) return { text: branch(param(q.status)), values };
  const statuses = param([...TASK_STATUSES]);
  const branches = TASK_STATUSES.map((_, i) => `(${branch(`(${statuses}::text[])[${i + 1}]`)})`);
  return { text: `SELECT id, state, updated_at FROM (${branches.join(' UNION ALL ')}) m ${order} LIMIT ${limit}`, values };
}

/** {@link TaskIndex} on the index columns of `<schema>.states`. */
export class PostgresTaskIndex implements TaskIndex {
  private readonly sql: Record<'counts' | 'groups', string>;

  /**
   * @param pool where statements run (the backend's pool)
   * @param s the quoted schema name
   * @param ready resolves once the backend is connected (schema migrated); rejects when closed
   */
  constructor(
    private readonly pool: Queryable,
    private readonly s: string,
    private readonly ready: () => Promise<void>,
  ) {
    this.sql = {
      counts: `SELECT a.status, count(*)::int AS n FROM ${s}.states a WHERE a.grp = $1 AND ${live(s)} GROUP BY a.status`,
      // A loose index scan: one index probe per group instead of reading every row.
      groups: `
WITH RECURSIVE g(grp) AS (
  (SELECT a.grp FROM ${s}.states a WHERE a.grp > '' AND ${live(s)} ORDER BY a.grp LIMIT 1)
  UNION ALL
  SELECT (SELECT a.grp FROM ${s}.states a WHERE a.grp > g.grp AND ${live(s)} ORDER BY a.grp LIMIT 1) FROM g WHERE g.grp IS NOT NULL
)
SELECT grp FROM g WHERE grp IS NOT NULL`,
    };
  }

  /** @inheritdoc One indexed statement per page. */
  async list(q: IndexQuery): Promise<IndexPage> {
    await this.ready();
    const { text, values } = listQuery(this.s, q);
    const res = await run<{ id: string; state: string; updated_at: string }>(this.pool, 'index list', text, values, ATTEMPTS);
    const rows = res.rows.slice(0, q.limit);
    const items = rows.map((r) => parseTaskState(r.state, `${this.s}.states ${r.id}`));
    const last = rows[rows.length - 1];
    // The cursor holds the row's own column values, so the next page starts exactly after it.
    const cursor = res.rows.length > q.limit && last !== undefined ? encodeCursor({ updatedAt: Number(last.updated_at), id: last.id }) : null;
    return { items, cursor };
  }

  /** @inheritdoc */
  async groups(): Promise<string[]> {
    await this.ready();
    const res = await run<{ grp: string }>(this.pool, 'index groups', this.sql.groups, [], ATTEMPTS);
    return res.rows.map((r) => r.grp).sort();
  }

  /** @inheritdoc */
  async statusCounts(group: string): Promise<Partial<Record<TaskStatus, number>>> {
    await this.ready();
    const res = await run<{ status: TaskStatus; n: number }>(this.pool, 'index counts', this.sql.counts, [group], ATTEMPTS);
    const out: Partial<Record<TaskStatus, number>> = {};
    for (const r of res.rows) out[r.status] = r.n;
    return out;
  }
}

/** SQL that removes up to $1 expired records (run by the backend's sweep). */
export const recordSweepSql = (s: string): string =>
  `DELETE FROM ${s}.records WHERE (kind, key) IN (SELECT kind, key FROM ${s}.records WHERE expires_at <= ${s}.now_ms() LIMIT $1)`;

/** {@link RecordStore} on `<schema>.records`. */
export class PostgresRecordStore implements RecordStore {
  private readonly sql: Record<'put' | 'get' | 'list' | 'remove' | 'claim', string>;

  /**
   * @param pool where statements run (the backend's pool)
   * @param s the quoted schema name
   * @param ready resolves once the backend is connected (schema migrated); rejects when closed
   */
  constructor(
    private readonly pool: Queryable,
    s: string,
    private readonly ready: () => Promise<void>,
  ) {
    const until = `CASE WHEN $4::double precision IS NULL THEN NULL ELSE ${s}.now_ms() + greatest(1, ceil($4::double precision))::bigint END`;
    const liveRecord = `(r.expires_at IS NULL OR r.expires_at > ${s}.now_ms())`;
    this.sql = {
      put: `INSERT INTO ${s}.records AS r (kind, key, value, expires_at) VALUES ($1, $2, $3, ${until})
        ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
      get: `SELECT r.value FROM ${s}.records r WHERE r.kind = $1 AND r.key = $2 AND ${liveRecord}`,
      list: `SELECT r.key, r.value FROM ${s}.records r WHERE r.kind = $1 AND ${liveRecord}`,
      remove: `DELETE FROM ${s}.records WHERE kind = $1 AND key = $2`,
      // A concurrent claim of the same key waits for the first insert, then finds a live row: refused.
      claim: `INSERT INTO ${s}.records AS r (kind, key, value, expires_at) VALUES ($1, $2, $3, ${until})
        ON CONFLICT (kind, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
        WHERE r.expires_at IS NOT NULL AND r.expires_at <= ${s}.now_ms()
        RETURNING 1 AS won`,
    };
  }

  /** @inheritdoc Repeated after a lost connection (a replacing write is safe to run twice). */
  async put(kind: string, key: string, value: string, ttlMs: number | null): Promise<void> {
    await this.ready();
    await run(this.pool, 'record put', this.sql.put, [kind, key, value, ttlMs], ATTEMPTS);
  }

  /** @inheritdoc */
  async get(kind: string, key: string): Promise<string | null> {
    await this.ready();
    const res = await run<{ value: string }>(this.pool, 'record get', this.sql.get, [kind, key], ATTEMPTS);
    return res.rows[0]?.value ?? null;
  }

  /** @inheritdoc */
  async list(kind: string): Promise<StoredRecord[]> {
    await this.ready();
    const res = await run<StoredRecord>(this.pool, 'record list', this.sql.list, [kind], ATTEMPTS);
    return res.rows.map((r) => ({ key: r.key, value: r.value }));
  }

  /** @inheritdoc */
  async remove(kind: string, key: string): Promise<void> {
    await this.ready();
    await run(this.pool, 'record remove', this.sql.remove, [kind, key], ATTEMPTS);
  }

  /** @inheritdoc Not repeated after a lost connection (a claim that did commit would then be refused by itself). */
  async claim(kind: string, key: string, value: string, ttlMs: number): Promise<boolean> {
    await this.ready();
    const res = await run(this.pool, 'record claim', this.sql.claim, [kind, key, value, ttlMs]);
    return res.rowCount === 1;
  }
}

/**
 * Flow journal storage of the PostgreSQL backend: one row per flow in `<schema>.journals`
 * (`flow_id`, version `v`, `doc`: JSON text of the journal document, `expires_at` epoch ms or NULL
 * for never). Every change is one compare-and-set statement on `v` (`INSERT ... ON CONFLICT DO
 * NOTHING` when absent, `UPDATE ... WHERE v = $expected` otherwise), retried on conflict by
 * {@link CasJournal}, so each journal operation is atomic. Reads treat a row past `expires_at` as
 * absent; the backend's periodic sweep deletes such rows ({@link journalSweepSql}).
 */
import { CasJournal, type CasAdapter, type JournalDoc, type Versioned } from './journal-document.js';
import { run, type Queryable } from '../postgres/connection.js';

/** Attempts of statements that are safe to repeat after a lost connection (reads, deletes). */
const ATTEMPTS = 3;

/** Removes up to $1 journals whose expiry passed. `s` is the quoted schema name. */
export const journalSweepSql = (s: string): string =>
  `DELETE FROM ${s}.journals WHERE flow_id IN (SELECT flow_id FROM ${s}.journals WHERE expires_at <= ${s}.now_ms() LIMIT $1)`;

/** PostgreSQL flow journals. */
export class PostgresJournal extends CasJournal<number> {
  /**
   * @param pool where statements run (the backend's pool)
   * @param s the quoted schema name
   * @param ready resolves once the backend is connected (schema migrated); rejects when closed
   */
  constructor(pool: Queryable, s: string, ready: () => Promise<void>) {
    const loadSql = `SELECT v, doc FROM ${s}.journals WHERE flow_id = $1`;
    const insertSql = `INSERT INTO ${s}.journals (flow_id, v, doc, expires_at) VALUES ($1, 1, $2, $3) ON CONFLICT (flow_id) DO NOTHING`;
    const updateSql = `UPDATE ${s}.journals SET v = v + 1, doc = $3, expires_at = $4 WHERE flow_id = $1 AND v = $2`;
    const deleteSql = `DELETE FROM ${s}.journals WHERE flow_id = $1`;
    const adapter: CasAdapter<number> = {
      async load(flowId): Promise<Versioned<number> | null> {
        await ready();
        const res = await run<{ v: string; doc: string }>(pool, 'journal read', loadSql, [flowId], ATTEMPTS);
        const row = res.rows[0];
        if (row === undefined) return null;
        const version = Number(row.v);
        const doc = JSON.parse(row.doc) as JournalDoc;
        // Past its expiry but not yet swept: empty, replaced by compare-and-set.
        if (doc.x !== undefined && doc.x <= Date.now()) return { doc: { e: {}, s: {} }, version };
        return { doc, version };
      },
      async save(flowId, doc, version): Promise<boolean> {
        await ready();
        const text = JSON.stringify(doc);
        const expiresAt = doc.x === undefined ? null : doc.x;
        // Never repeated: a write that committed before its connection was lost would be applied twice.
        const res =
          version === null
            ? await run(pool, 'journal write', insertSql, [flowId, text, expiresAt])
            : await run(pool, 'journal write', updateSql, [flowId, version, text, expiresAt]);
        return res.rowCount === 1;
      },
      async remove(flowId): Promise<void> {
        await ready();
        await run(pool, 'journal delete', deleteSql, [flowId], ATTEMPTS);
      },
    };
    super(adapter);
  }
}

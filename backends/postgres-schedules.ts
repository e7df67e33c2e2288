/**
 * The schedule store of the PostgreSQL backend: one row per schedule in `<schema>.schedules`
 * (`name`, revision `rev`, `data`: the record's JSON text). The compare-and-set write is one
 * statement — `INSERT ... ON CONFLICT DO NOTHING` for revision 0, else `UPDATE ... WHERE rev =
 * $expected` (a concurrent update of the same row waits, then finds the revision changed) — so of
 * two writes with the same expected revision at most one passes.
 */
import type { ScheduleStore, StoredSchedule } from '../src/schedule/store.js';
import { run, type Queryable } from '../postgres/connection.js';

/** Attempts of statements that are safe to repeat after a lost connection (reads). */
const ATTEMPTS = 3;

/** {@link ScheduleStore} on the Postgres backend's pool. */
export class PostgresScheduleStore implements ScheduleStore {
  private readonly sql: Record<'read' | 'list' | 'insert' | 'update' | 'delete', string>;

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
    this.sql = {
      read: `SELECT name, rev, data FROM ${s}.schedules WHERE name = $1`,
      list: `SELECT name, rev, data FROM ${s}.schedules`,
      insert: `INSERT INTO ${s}.schedules (name, rev, data) VALUES ($1, 1, $2) ON CONFLICT (name) DO NOTHING`,
      update: `UPDATE ${s}.schedules SET rev = rev + 1, data = $2 WHERE name = $1 AND rev = $3`,
      delete: `DELETE FROM ${s}.schedules WHERE name = $1`,
    };
  }

  /** @inheritdoc */
  async readSchedule(name: string): Promise<StoredSchedule | null> {
    await this.ready();
    const res = await run<StoredSchedule>(this.pool, 'readSchedule', this.sql.read, [name], ATTEMPTS);
    return res.rows[0] ?? null;
  }

  /** @inheritdoc */
  async listSchedules(): Promise<StoredSchedule[]> {
    await this.ready();
    const res = await run<StoredSchedule>(this.pool, 'listSchedules', this.sql.list, [], ATTEMPTS);
    return res.rows;
  }

  /** @inheritdoc Not repeated after a lost connection (a committed write would then be refused by itself). */
  async writeSchedule(name: string, data: string, expectedRev: number): Promise<boolean> {
    await this.ready();
    const res =
      expectedRev === 0
        ? await run(this.pool, 'writeSchedule', this.sql.insert, [name, data])
        : await run(this.pool, 'writeSchedule', this.sql.update, [name, data, expectedRev]);
    return res.rowCount === 1;
  }

  /** @inheritdoc */
  async deleteSchedule(name: string): Promise<boolean> {
    await this.ready();
    const res = await run(this.pool, 'deleteSchedule', this.sql.delete, [name], ATTEMPTS);
    return (res.rowCount ?? 0) > 0;
  }
}

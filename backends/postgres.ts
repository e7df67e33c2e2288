/**
 * The PostgreSQL result backend (`tasuki/backends/postgres`). States and results live in one table
 * of the schema (`<schema>.states`), each with its own expiry; expired rows are ignored on read and
 * removed by a periodic, bounded delete. Every write is one guarded `INSERT ... ON CONFLICT DO
 * UPDATE ... WHERE` statement; a final write sends a `NOTIFY` that wakes `getResult` at once (one
 * LISTEN connection per backend instance). Writes can join the caller's transaction (`tx`).
 * Flow journals (`<schema>.journals`, see `./postgres-journal.ts`), schedules
 * (`<schema>.schedules`, see `./postgres-schedules.ts`) and the operations layer's records
 * (`<schema>.records`) live in the same schema; the task index is kept by the write statement itself
 * (see `./postgres-index.ts`).
 */
import { randomUUID } from 'node:crypto';
import type { Backend, FinalNotice, StateWrite, WriteOutcome } from '../src/backend.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { encodeTaskState, isFinalStatus, parseTaskState, type TaskState } from '../src/state.js';
import { PostgresBase } from '../postgres/base.js';
import { isQueryable, run, type PostgresCommonOptions } from '../postgres/connection.js';
import { Listener } from '../postgres/listener.js';
import { indexColumns, PostgresRecordStore, PostgresTaskIndex, recordSweepSql } from './postgres-index.js';
import { journalSweepSql, PostgresJournal } from './postgres-journal.js';
import { PostgresScheduleStore } from './postgres-schedules.js';
import { deleteSql, readManySql, readResultSql, readSql, sweepSql, sweepWatchesSql, unwatchAllSql, unwatchSql, watchSql, writeSql } from './postgres-sql.js';

export type { PostgresConnection } from '../postgres/connection.js';

/** Options of {@link PostgresBackend}. */
export interface PostgresBackendOptions extends PostgresCommonOptions {
  /** How often expired rows are deleted, in ms (default 60 000; 0 turns the sweep off). */
  sweepIntervalMs?: number;
  /** Most rows one sweep deletes (default 1 000). */
  sweepLimit?: number;
  /**
   * The task index (`client.ops.list`, counts by status, the watchdog): three columns of the state
   * row, written by the same statement as the state (see `./postgres-index.ts`). Default on;
   * `false` writes no index columns (two fewer index entries per write) and leaves `index` undefined.
   */
  index?: false;
}

/** Largest NOTIFY payload PostgreSQL accepts is 8000 bytes; bigger notices carry only the id. */
const MAX_PAYLOAD = 7900;

/** Lifetime of a watch row, renewed by every sweep while watched (a dead process's rows expire). */
const WATCH_MS = 3_600_000;

/** Attempts of statements that are safe to repeat after a lost connection. */
const ATTEMPTS = 3;

/** A result backend on PostgreSQL. */
export class PostgresBackend implements Backend {
  /** @inheritdoc */
  readonly kind = 'postgres';
  /** Writes honour the `tx` send control. */
  readonly transactional = true;
  /** Flow journals (`<schema>.journals`, one compare-and-set row per flow; see `./postgres-journal.ts`). */
  readonly journal: PostgresJournal;
  /** Schedule records (`<schema>.schedules`; see `./postgres-schedules.ts`). */
  readonly scheduleStore: PostgresScheduleStore;
  /** The task index (undefined with `index: false`). */
  readonly index: PostgresTaskIndex | undefined;
  /** Shared records of the operations layer (worker registry, paused groups, watchdog claims). */
  readonly records: PostgresRecordStore;
  private readonly base: PostgresBase;
  private readonly sql: Record<'write' | 'read' | 'readMany' | 'readResult' | 'delete' | 'sweep' | 'sweepJournals' | 'sweepRecords' | 'watch' | 'unwatch' | 'unwatchAll' | 'sweepWatches', string>;
  /** This instance's token in `<schema>.watches`. */
  private readonly watchToken = randomUUID();
  private readonly watchers = new Map<string, Set<(notice?: FinalNotice) => void>>();
  private readonly listener: Listener;
  private readonly sweepIntervalMs: number;
  private readonly sweepLimit: number;
  private sweeper: NodeJS.Timeout | undefined;

  /** @param options connection (string, pool options or your `pg.Pool`), schema, sweep settings */
  constructor(options: PostgresBackendOptions = {}) {
    this.base = new PostgresBase(options, 'postgres backend');
    const s = this.base.s;
    this.sql = {
      write: writeSql(s),
      read: readSql(s),
      readMany: readManySql(s),
      readResult: readResultSql(s),
      delete: deleteSql(s),
      sweep: sweepSql(s),
      sweepJournals: journalSweepSql(s),
      sweepRecords: recordSweepSql(s),
      watch: watchSql(s),
      unwatch: unwatchSql(s),
      unwatchAll: unwatchAllSql(s),
      sweepWatches: sweepWatchesSql(s),
    };
    this.journal = new PostgresJournal(this.base.pool, s, () => this.ready());
    this.scheduleStore = new PostgresScheduleStore(this.base.pool, s, () => this.ready());
    if (options.index !== undefined && options.index !== false) throw new InvalidOptionError('index must be false or left out');
    this.index = options.index === false ? undefined : new PostgresTaskIndex(this.base.pool, s, () => this.ready());
    this.records = new PostgresRecordStore(this.base.pool, s, () => this.ready());
    this.sweepIntervalMs = options.sweepIntervalMs ?? 60_000;
    this.sweepLimit = options.sweepLimit ?? 1000;
    if (!Number.isInteger(this.sweepIntervalMs) || this.sweepIntervalMs < 0) throw new InvalidOptionError('sweepIntervalMs must be a whole number ≥ 0');
    if (!Number.isInteger(this.sweepLimit) || this.sweepLimit < 1) throw new InvalidOptionError('sweepLimit must be a whole number ≥ 1');
    this.listener = new Listener(this.base.pool, this.base.channel('final'), {
      notify: (payload) => this.onNotify(payload),
      // Final writes made while the listener was down were missed: register the watches again (a
      // server crash empties the unlogged table) and wake every watcher to re-read.
      resumed: () => {
        if (this.watchers.size > 0) this.register([...this.watchers.keys()]).catch(() => undefined);
        for (const [, set] of this.watchers) for (const l of set) safeCall(l, undefined);
      },
    });
  }

  /** Schema that holds the backend's table. */
  get schema(): string {
    return this.base.schema;
  }

  /** @inheritdoc Applies the schema migrations (under an advisory lock) and starts the sweep. */
  async connect(): Promise<void> {
    await this.base.connect();
    if (this.sweeper === undefined && this.sweepIntervalMs > 0 && !this.base.closed) {
      this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), this.sweepIntervalMs);
      this.sweeper.unref();
    }
  }

  /** @inheritdoc Ends the listener, the sweep, and the pool unless it is yours. */
  async close(): Promise<void> {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    const watched = this.watchers.size > 0;
    this.watchers.clear();
    await this.base.close(async () => {
      if (watched) await run(this.base.pool, 'unwatch', this.sql.unwatchAll, [this.watchToken]).catch(() => undefined);
      await this.listener.close();
    });
  }

  /**
   * Deletes up to `sweepLimit` rows whose state and result have both expired (resolves with how many)
   * and up to `sweepLimit` expired flow journals and records, renews this instance's watches and removes watches of processes that died.
   */
  async sweep(): Promise<number> {
    await this.ready();
    const res = await run(this.base.pool, 'sweep', this.sql.sweep, [this.sweepLimit], ATTEMPTS);
    await run(this.base.pool, 'sweep', this.sql.sweepJournals, [this.sweepLimit], ATTEMPTS);
    await run(this.base.pool, 'sweep', this.sql.sweepRecords, [this.sweepLimit], ATTEMPTS);
    if (this.watchers.size > 0) await this.register([...this.watchers.keys()]);
    await run(this.base.pool, 'sweep', this.sql.sweepWatches, [this.sweepLimit], ATTEMPTS);
    return res.rowCount ?? 0;
  }

  /** @inheritdoc */
  async write(w: StateWrite): Promise<WriteOutcome> {
    const on = w.tx === undefined ? this.base.pool : w.tx;
    if (!isQueryable(on)) throw new InvalidOptionError('tx must be a pg client (or pool client) inside an open transaction');
    await this.ready();
    const id = w.state.id;
    const stateText = w.stateTtl === 0 ? null : encodeTaskState(w.state);
    const hasResult = w.result !== undefined;
    const resultTtl = hasResult ? (w.resultTtl ?? 0) : 0;
    const result = hasResult && resultTtl !== 0 ? (w.result as string) : null;
    const payload = isFinalStatus(w.state.status) ? noticePayload(id, stateText ?? encodeTaskState(w.state), result) : null;
    const values = [
      id,
      stateText === null ? null : w.state.status,
      stateText,
      w.stateTtl,
      hasResult,
      result,
      resultTtl,
      w.guard,
      payload,
      this.base.channel('final'),
      ...indexColumns(w.state, stateText !== null, this.index !== undefined),
    ];
    // Repeated after a lost connection except in the caller's transaction (theirs to retry) and for
    // `absent` writes: one that did commit would be refused by its own guard and taken for a
    // duplicate. A repeated `notFinal`/`notSuccess` write that had committed passes again or finds
    // its own final state (refused, previous = that state), both correct outcomes.
    const attempts = w.tx === undefined && w.guard !== 'absent' ? ATTEMPTS : 1;
    const res = await run<{ written: boolean; previous: string | null }>(on, 'write', this.sql.write, values, attempts);
    const row = res.rows[0];
    const written = row?.written === true;
    let previous = row?.previous == null ? null : parseTaskState(row.previous, `${this.schema}.states ${id}`);
    if (!written && previous === null) {
      // Refused by a row committed after this statement's snapshot began: read what blocked it.
      previous = await this.readOn(on, id);
    }
    return { written, previous };
  }

  /** @inheritdoc */
  async read(id: string): Promise<TaskState | null> {
    await this.ready();
    return this.readOn(this.base.pool, id);
  }

  /** @inheritdoc One query for all ids. */
  async readMany(ids: ReadonlyArray<string>): Promise<Array<TaskState | null>> {
    await this.ready();
    if (ids.length === 0) return [];
    const res = await run<{ id: string; state: string }>(this.base.pool, 'readMany', this.sql.readMany, [ids], ATTEMPTS);
    const byId = new Map<string, string>();
    for (const r of res.rows) byId.set(r.id, r.state);
    return ids.map((id) => {
      const text = byId.get(id);
      return text === undefined ? null : parseTaskState(text, `${this.schema}.states ${id}`);
    });
  }

  /** @inheritdoc */
  async readResult(id: string): Promise<string | null> {
    await this.ready();
    const res = await run<{ result: string }>(this.base.pool, 'readResult', this.sql.readResult, [id], ATTEMPTS);
    return res.rows[0]?.result ?? null;
  }

  /** @inheritdoc */
  async delete(id: string): Promise<void> {
    await this.ready();
    await run(this.base.pool, 'delete', this.sql.delete, [id], ATTEMPTS);
  }

  /**
   * @inheritdoc
   * Resolves once this instance's LISTEN connection is active. Notices carry the written state and
   * result when they fit in a NOTIFY payload (about 8 kB), else none (the caller reads them back).
   */
  async watchFinal(id: string, listener: (notice?: FinalNotice) => void): Promise<() => void> {
    await this.ready();
    await this.listener.ready();
    let set = this.watchers.get(id);
    if (set === undefined) {
      set = new Set();
      this.watchers.set(id, set);
    }
    const own = (notice?: FinalNotice): void => listener(notice);
    set.add(own);
    try {
      // Committed before this resolves: a final write that starts later sees it and notifies.
      await this.register([id]);
    } catch (err) {
      this.unwatch(id, own);
      throw err;
    }
    return () => this.unwatch(id, own);
  }

  /** Ends one local listener; the last one of an id ends the instance's watch row (in the background). */
  private unwatch(id: string, own: (notice?: FinalNotice) => void): void {
    const current = this.watchers.get(id);
    if (current === undefined || !current.delete(own)) return;
    if (current.size > 0) return;
    this.watchers.delete(id);
    if (!this.base.closed) run(this.base.pool, 'unwatch', this.sql.unwatch, [id, this.watchToken]).catch(() => undefined);
  }

  /** Inserts or renews this instance's watch rows of `ids`. */
  private async register(ids: string[]): Promise<void> {
    await run(this.base.pool, 'watch', this.sql.watch, [ids, ids.map(() => this.watchToken), WATCH_MS], ATTEMPTS);
  }

  private async ready(): Promise<void> {
    if (this.base.closed) throw new ClosedError('postgres backend');
    await this.connect();
  }

  private async readOn(on: Parameters<typeof run>[0], id: string): Promise<TaskState | null> {
    const res = await run<{ state: string }>(on, 'read', this.sql.read, [id], on === this.base.pool ? ATTEMPTS : 1);
    const text = res.rows[0]?.state;
    return text === undefined ? null : parseTaskState(text, `${this.schema}.states ${id}`);
  }

  private onNotify(payload: string): void {
    let parsed: { id?: unknown; s?: unknown; r?: unknown };
    try {
      parsed = JSON.parse(payload) as typeof parsed;
    } catch {
      return;
    }
    if (typeof parsed.id !== 'string') return;
    const set = this.watchers.get(parsed.id);
    if (set === undefined) return;
    for (const l of [...set]) {
      let notice: FinalNotice | undefined;
      if (typeof parsed.s === 'string') {
        try {
          notice = { state: parseTaskState(parsed.s, 'notification'), result: typeof parsed.r === 'string' ? parsed.r : null };
        } catch {
          notice = undefined;
        }
      }
      safeCall(l, notice);
    }
  }
}

/** The NOTIFY payload of a final write: id, state and result, or only the id when too large. */
function noticePayload(id: string, state: string, result: string | null): string {
  const full = JSON.stringify({ id, s: state, r: result });
  return Buffer.byteLength(full) <= MAX_PAYLOAD ? full : JSON.stringify({ id });
}

/** Calls a watcher; what it throws is dropped (a hint must not fail anything). */
function safeCall(listener: (notice?: FinalNotice) => void, notice: FinalNotice | undefined): void {
  try {
    listener(notice);
  } catch {
    // ignored
  }
}

/**
 * What the Postgres broker and backend share at run time: the pool (owned or the user's), the
 * checked schema, the one-time migration at connect, and the closed state.
 */
import type pg from 'pg';
import { ClosedError } from '../src/errors.js';
import { openPool, schemaIdentifier, type PostgresCommonOptions, type PoolHandle } from './connection.js';
import { migrate } from './migrations.js';

/** Pool, schema and connect/close life cycle of one broker or backend instance. */
export class PostgresBase {
  /** Pool the statements run on. */
  readonly pool: pg.Pool;
  /** Schema name as given. */
  readonly schema: string;
  /** Schema name quoted for SQL. */
  readonly s: string;
  private readonly handle: PoolHandle;
  private connecting: Promise<void> | undefined;
  private connected = false;
  private closedFlag = false;

  /**
   * @param options connection and schema
   * @param what name used in errors ("postgres broker")
   */
  constructor(
    options: PostgresCommonOptions,
    private readonly what: string,
  ) {
    this.schema = options.schema ?? 'tasuki';
    this.s = schemaIdentifier(this.schema);
    this.handle = openPool(options.connection, `tasuki ${what}`);
    this.pool = this.handle.pool;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /** Channel name of a kind of notification within this schema. */
  channel(kind: string): string {
    return `tasuki:${this.schema}:${kind}`;
  }

  /** Migrates the schema once per instance (retried on the next call after a failure). */
  connect(): Promise<void> {
    if (this.closedFlag) return Promise.reject(new ClosedError(this.what));
    if (this.connected) return Promise.resolve();
    this.connecting ??= migrate(this.pool, this.schema, this.s).then(
      () => {
        this.connected = true;
        this.connecting = undefined;
      },
      (err: unknown) => {
        this.connecting = undefined;
        throw err;
      },
    );
    return this.connecting;
  }

  /** Rejects when closed; connects first when needed. */
  ready(): Promise<void> {
    return this.connected && !this.closedFlag ? Promise.resolve() : this.connect();
  }

  /**
   * Marks the instance closed, runs the owner's `beforeEnd` (stop listeners, flush batches), then ends
   * the pool when tasuki created it. Idempotent.
   */
  async close(beforeEnd?: () => Promise<void>): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    await this.connecting?.catch(() => undefined);
    await beforeEnd?.().catch(() => undefined);
    if (this.handle.owned) await this.pool.end().catch(() => undefined);
  }
}

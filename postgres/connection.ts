/**
 * Shared PostgreSQL plumbing of the Postgres broker and backend: where connections come from (a
 * connection string, `pg` pool options or the user's own `pg.Pool`), the schema name, error mapping
 * to typed tasuki errors (never leaking credentials), and a query helper that retries idempotent
 * statements after a lost connection. The core (`src/`) never imports this module.
 */
import pg from 'pg';
import { ConnectionError, InvalidOptionError, TasukiError } from '../src/errors.js';

/** Where a Postgres broker or backend gets its connections. */
export type PostgresConnection = string | pg.PoolConfig | pg.Pool;

/** Options shared by `PostgresBroker` and `PostgresBackend`. */
export interface PostgresCommonOptions {
  /**
   * A connection string (`postgres://user@host:5432/db`), `pg` pool options, or your own `pg.Pool`
   * (used as is and never closed by tasuki). Default: `pg`'s defaults (the `PG*` environment variables).
   */
  connection?: PostgresConnection;
  /** Schema that holds every table of tasuki (created and migrated at connect). Default `tasuki`. */
  schema?: string;
}

/**
 * At most 47 characters: the longest notification channel, `tasuki:<schema>:messages`, must stay
 * within PostgreSQL's 63-byte identifier limit (a longer one fails every publish).
 */
const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,46}$/;

/** Checks a schema name and returns it quoted for SQL. */
export function schemaIdentifier(schema: string): string {
  if (typeof schema !== 'string' || !SCHEMA_PATTERN.test(schema)) {
    throw new InvalidOptionError(`schema must match ${SCHEMA_PATTERN.source} (lower case letters, digits, _), got ${JSON.stringify(schema)}`);
  }
  return `"${schema}"`;
}

/** A pool plus whether tasuki owns it (and so ends it on close). */
export interface PoolHandle {
  readonly pool: pg.Pool;
  readonly owned: boolean;
}

/** True when `value` looks like a `pg.Pool` (or a pool-compatible object with `connect` and `query`). */
function isPool(value: unknown): value is pg.Pool {
  return value instanceof pg.Pool || (typeof value === 'object' && value !== null && typeof (value as pg.Pool).connect === 'function' && typeof (value as pg.Pool).query === 'function' && 'totalCount' in value);
}

/** Builds the pool of a broker/backend from its `connection` option. */
export function openPool(connection: PostgresConnection | undefined, applicationName: string): PoolHandle {
  if (isPool(connection)) return { pool: connection, owned: false };
  const config: pg.PoolConfig = typeof connection === 'string' ? { connectionString: connection } : { ...(connection ?? {}) };
  config.application_name ??= applicationName;
  config.connectionTimeoutMillis ??= 10_000;
  const pool = new pg.Pool(config);
  // An idle pooled connection that dies (server restart, pg_terminate_backend) is dropped by the pool;
  // without a listener its 'error' event would crash the process.
  pool.on('error', () => undefined);
  // A connection that fails while checked out between two statements emits 'error' on its client,
  // where no pool listener is attached: the statement in progress (or the next) fails instead.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  return { pool, owned: true };
}

/** SQLSTATE classes and driver codes that mean the connection (not the statement) failed. */
const CONNECTION_SQLSTATES = /^(08|53|57P0[1-4]|58)/;
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH']);
const CONNECTION_MESSAGES = /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed|terminating connection|not queryable|Connection ended/i;

/** True when `err` is a lost or refused connection rather than an error of the statement. */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (CONNECTION_SQLSTATES.test(code) || CONNECTION_CODES.has(code))) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && CONNECTION_MESSAGES.test(message);
}

/** Removes anything that could be a credential (URLs with user info, password=...) from a driver message. */
export function redact(text: string): string {
  return text
    .replace(/[a-z][a-z0-9+.-]*:\/\/[^\s'"]*/gi, '<url>')
    .replace(/(password\s*[=:]\s*)\S+/gi, '$1<redacted>');
}

/**
 * Maps a driver error to a tasuki error: connection failures become {@link ConnectionError}, others
 * {@link PostgresQueryError} (`ERR_DATABASE`, with the SQLSTATE). The `cause` is a fresh
 * `Error` holding only the redacted message and code, never the driver's object (which may reference
 * the connection configuration).
 */
export function mapError(err: unknown, what: string): TasukiError {
  if (err instanceof TasukiError) return err;
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : undefined;
  const raw = err instanceof Error ? err.message : String(err);
  const message = redact(raw);
  const cause = Object.assign(new Error(message), code === undefined ? {} : { code });
  if (isConnectionFailure(err)) return new ConnectionError(`postgres ${what} failed: ${message}${code ? ` (${code})` : ''}`, cause);
  return new PostgresQueryError(`postgres ${what} failed: ${message}`, code, cause);
}

/** A statement failed for a reason other than the connection (SQLSTATE in {@link sqlState}). */
export class PostgresQueryError extends TasukiError {
  /** The SQLSTATE of the failure, when the server sent one. */
  readonly sqlState: string | undefined;
  /** @param message redacted message @param sqlState SQLSTATE @param cause redacted cause */
  constructor(message: string, sqlState: string | undefined, cause: Error) {
    super('ERR_DATABASE', message, { cause });
    this.sqlState = sqlState;
  }
}

/** Something that runs a statement: a pool, a pool client, or a caller's transaction client. */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** True when `value` can run statements (the `tx` send control must be such a client). */
export function isQueryable(value: unknown): value is Queryable {
  return typeof value === 'object' && value !== null && typeof (value as Queryable).query === 'function';
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/**
 * Runs one statement; maps errors. With `attempts` > 1, a connection failure is retried after a short
 * backoff (only for statements that are safe to run twice: guarded by a lease token, reads, deletes).
 */
export async function run<R extends pg.QueryResultRow>(
  on: Queryable,
  what: string,
  text: string,
  values: unknown[],
  attempts = 1,
): Promise<pg.QueryResult<R>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await on.query<R>(text, values);
    } catch (err) {
      if (attempt >= attempts || !isConnectionFailure(err)) throw mapError(err, what);
      await sleep(Math.min(50 * 2 ** attempt, 1000));
    }
  }
}

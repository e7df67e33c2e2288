/**
 * Adapters for the transactional send (`client.with({ tx }).send(...)`) with query builders and ORMs
 * (`tasuki/postgres-tx`): each takes the library's transaction object and returns the `pg`-style
 * `{ query(text, values) }` tasuki runs its statements on, so the task is written in that transaction.
 * The module loads no package at all: the libraries' objects are typed structurally, and each adapter
 * calls only the public raw-SQL entry point of its own library (Knex `trx.raw`, Kysely
 * `trx.executeQuery`, Drizzle `tx.execute` with the `sql` helper you pass in, Prisma
 * `tx.$queryRawUnsafe`).
 */
import { InvalidOptionError } from '../src/errors.js';

/** The result shape tasuki reads: the rows, and the affected-row count when the library reports it. */
export interface TxQueryResult<R> {
  rows: R[];
  rowCount: number | null;
}

/** What tasuki needs as its `tx` send control: a `pg`-style query inside the caller's open transaction. */
export interface TxQueryable {
  /** Runs one statement with `$1…$n` placeholders. */
  query<R = Record<string, unknown>>(text: string, values?: readonly unknown[]): Promise<TxQueryResult<R>>;
}

/** A statement split at its `$n` placeholders: `fragments[i]` precedes the value `refs[i]` (1-based). */
export interface SplitStatement {
  fragments: string[];
  refs: number[];
}

/**
 * Splits a statement at its `$n` placeholders, leaving quoted literals, quoted identifiers, dollar
 * quotes and comments intact (a `$1` inside them is text).
 */
export function splitPlaceholders(text: string): SplitStatement {
  const fragments: string[] = [];
  const refs: number[] = [];
  let start = 0;
  let i = 0;
  const skipTo = (end: string, from: number): number => {
    const at = text.indexOf(end, from);
    return at < 0 ? text.length : at + end.length;
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "'" || c === '"') {
      // '' and "" inside are two quotes in a row: the scan simply re-enters the quoted run.
      i = skipTo(c, i + 1);
    } else if (c === '-' && text[i + 1] === '-') {
      i = skipTo('\n', i + 2);
    } else if (c === '/' && text[i + 1] === '*') {
      i = skipTo('*/', i + 2);
    } else if (c === '$') {
      const param = /^\$(\d+)/.exec(text.slice(i));
      const tag = param === null ? /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i)) : null;
      if (param !== null) {
        fragments.push(text.slice(start, i));
        refs.push(Number(param[1]));
        i += param[0].length;
        start = i;
      } else if (tag !== null) {
        i = skipTo(tag[0], i + tag[0].length);
      } else {
        i += 1;
      }
    } else {
      i += 1;
    }
  }
  fragments.push(text.slice(start));
  return { fragments, refs };
}

/** The values of the placeholders in their order of appearance (a repeated `$n` repeats its value). */
function orderedValues(refs: readonly number[], values: readonly unknown[]): unknown[] {
  return refs.map((n) => {
    if (n < 1 || n > values.length) throw new InvalidOptionError(`statement refers to $${n} but ${values.length} values were given`);
    return values[n - 1];
  });
}

/** The part of a Knex transaction (or Knex instance) the adapter uses: `raw` with positional `?` bindings. */
export interface KnexTransactionLike {
  raw(sql: string, bindings: readonly unknown[]): PromiseLike<unknown>;
}

/** Reads rows and a row count out of a driver result (a `pg` result, or an array of rows). */
function toResult<R>(res: unknown): TxQueryResult<R> {
  if (Array.isArray(res)) return { rows: res as R[], rowCount: res.length };
  const r = res as { rows?: unknown; rowCount?: unknown } | null | undefined;
  const rows = Array.isArray(r?.rows) ? (r.rows as R[]) : [];
  return { rows, rowCount: typeof r?.rowCount === 'number' ? r.rowCount : rows.length };
}

/**
 * Knex (`pg` client) transaction → tasuki `tx`: each statement runs through `trx.raw`, its `$n`
 * placeholders rewritten to Knex's `?` bindings (a literal `?` is escaped). Knex's pg dialect hands
 * back the driver's result for `raw`; a `postProcessResponse` hook of yours would see it too.
 *
 * @example await knex.transaction(async (trx) => { await trx('orders').insert(row); await client.with({ tx: knexTx(trx) }).send(task, id); });
 */
export function knexTx(trx: KnexTransactionLike): TxQueryable {
  return {
    async query<R>(text: string, values: readonly unknown[] = []): Promise<TxQueryResult<R>> {
      const { fragments, refs } = splitPlaceholders(text);
      const sql = fragments.map((f) => f.replace(/\?/g, '\\?')).join('?');
      return toResult<R>(await trx.raw(sql, orderedValues(refs, values)));
    },
  };
}

/** The raw operation node Kysely's own `CompiledQuery.raw` attaches to a compiled query. */
interface KyselyRawNode {
  readonly kind: 'RawNode';
  readonly sqlFragments: readonly string[];
  readonly parameters: readonly never[];
}

/** A compiled query as Kysely's `executeQuery` takes it (the shape of `CompiledQuery.raw(sql, parameters)`). */
export interface KyselyCompiledQueryLike {
  readonly sql: string;
  readonly parameters: readonly unknown[];
  readonly query: KyselyRawNode;
  readonly queryId: { readonly queryId: string };
}

/** The part of a Kysely transaction (or instance) the adapter uses. */
export interface KyselyTransactionLike {
  executeQuery<R>(query: KyselyCompiledQueryLike): Promise<{ readonly rows: R[]; readonly numAffectedRows?: bigint }>;
}

let queryCounter = 0;

/**
 * Kysely (`PostgresDialect`) transaction → tasuki `tx`: each statement runs as a raw compiled query
 * through `trx.executeQuery` (the `$n` placeholders are the dialect's own). Result plugins you
 * installed (e.g. `CamelCasePlugin`) see the rows; tasuki's column names are single words.
 *
 * @example await db.transaction().execute(async (trx) => { await trx.insertInto('orders').values(row).execute(); await client.with({ tx: kyselyTx(trx) }).send(task, id); });
 */
export function kyselyTx(trx: KyselyTransactionLike): TxQueryable {
  return {
    async query<R>(text: string, values: readonly unknown[] = []): Promise<TxQueryResult<R>> {
      const compiled: KyselyCompiledQueryLike = {
        sql: text,
        parameters: [...values],
        query: { kind: 'RawNode', sqlFragments: [text], parameters: [] },
        queryId: { queryId: `tasuki-${++queryCounter}` },
      };
      const res = await trx.executeQuery<R>(compiled);
      return { rows: res.rows, rowCount: res.numAffectedRows === undefined ? res.rows.length : Number(res.numAffectedRows) };
    },
  };
}

/** The members of Drizzle's `sql` helper (the `sql` export of drizzle-orm) the adapter uses. */
export interface DrizzleSqlLike<S, P> {
  raw(text: string): S;
  param(value: unknown): P;
  join(chunks: Array<S | P>): S;
}

/** The part of a Drizzle transaction (or database) the adapter uses. */
export interface DrizzleTransactionLike<S> {
  execute(query: S): PromiseLike<unknown>;
}

/**
 * Drizzle (`node-postgres` driver) transaction → tasuki `tx`: each statement is rebuilt with the
 * `sql` helper you pass (text as `sql.raw`, each value as `sql.param`, so arrays stay one parameter)
 * and run with `tx.execute`. The helper is passed in so that this module never loads drizzle-orm.
 *
 * @example await db.transaction(async (tx) => { await tx.insert(orders).values(row); await client.with({ tx: drizzleTx(tx, sql) }).send(task, id); });
 */
export function drizzleTx<S, P>(tx: DrizzleTransactionLike<S>, sql: DrizzleSqlLike<S, P>): TxQueryable {
  return {
    async query<R>(text: string, values: readonly unknown[] = []): Promise<TxQueryResult<R>> {
      const { fragments, refs } = splitPlaceholders(text);
      const ordered = orderedValues(refs, values);
      const chunks: Array<S | P> = [];
      fragments.forEach((f, i) => {
        if (f !== '') chunks.push(sql.raw(f));
        if (i < ordered.length) chunks.push(sql.param(ordered[i]));
      });
      return toResult<R>(await tx.execute(sql.join(chunks)));
    },
  };
}

/** The part of a Prisma interactive transaction (or client) the adapter uses. */
export interface PrismaTransactionLike {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): PromiseLike<T>;
}

/**
 * Prisma (with the `@prisma/adapter-pg` driver adapter) interactive transaction → tasuki `tx`: each
 * statement runs through `tx.$queryRawUnsafe(text, ...values)` (the `$n` placeholders are
 * PostgreSQL's own), which returns the rows. tasuki's statements return no column of a type
 * Prisma's raw queries cannot read (such as `void`).
 *
 * @example await prisma.$transaction(async (tx) => { await tx.order.create({ data: row }); await client.with({ tx: prismaTx(tx) }).send(task, id); });
 */
export function prismaTx(tx: PrismaTransactionLike): TxQueryable {
  return {
    async query<R>(text: string, values: readonly unknown[] = []): Promise<TxQueryResult<R>> {
      return toResult<R>(await tx.$queryRawUnsafe<unknown>(text, ...values));
    },
  };
}

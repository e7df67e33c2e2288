/**
 * The transactional send through Knex, Kysely and Drizzle (`tasuki/postgres-tx`), on the real
 * PostgreSQL: the order row is written with the library's own query builder and the task through its
 * adapter, in the library's transaction. Here `prismaTx` runs on a stand-in of an interactive
 * transaction's `$queryRawUnsafe` (rows back, and a `void` column refused as Prisma's raw queries
 * refuse it); the generated Prisma client itself is in `tx-prisma-postgres.test.ts`. Commit → the task runs once (an explicit id stays an
 * idempotency key, `sendMany` joins too); rollback → it never runs and leaves no state.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import knexFactory, { type Knex } from 'knex';
import { Kysely, PostgresDialect } from 'kysely';
import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgSchema, text } from 'drizzle-orm/pg-core';
import { Server, silentLogger, type TaskId } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { drizzleTx, knexTx, kyselyTx, prismaTx, splitPlaceholders, type PrismaTransactionLike, type TxQueryable } from '../postgres/tx-adapters.js';
import { PostgresOutbox } from '../brokers/postgres-outbox.js';
import { MemoryBroker } from '../brokers/memory.js';
import { until } from './core/suite.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const EMPTY = { ready: 0, delayed: 0, inFlight: 0, dead: 0 };

/** Rolls the library's transaction back (thrown out of its callback, caught by the test). */
class Rollback extends Error {}

/** One library: runs `fn` in its transaction, with its adapter and its own insert of an order row. */
interface Library {
  transaction(fn: (tx: TxQueryable, insertOrder: (id: number, item: string) => Promise<void>) => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

/** OID of PostgreSQL's `void` type. */
const VOID_OID = 2278;

/**
 * A stand-in of a Prisma interactive transaction on a `pg` client inside BEGIN: `$queryRawUnsafe`
 * returns the rows, and refuses a result with a `void` column as Prisma's raw queries do (P2010).
 */
function prismaStandIn(client: pg.PoolClient): PrismaTransactionLike {
  return {
    async $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T> {
      const res = await client.query(query, values);
      if (res.fields.some((f) => f.dataTypeID === VOID_OID)) throw Object.assign(new Error("Failed to deserialize column of type 'void'"), { code: 'P2010' });
      return res.rows as T;
    },
  };
}

interface OrdersDb {
  orders: { id: number; item: string };
}

const libraries: Record<string, (schema: string) => Library> = {
  knex(schema) {
    const db: Knex = knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 2 } });
    return {
      transaction: (fn) =>
        db.transaction(async (trx) => {
          await fn(knexTx(trx), async (id, item) => {
            await trx.withSchema(schema).table('orders').insert({ id, item });
          });
        }),
      close: () => db.destroy(),
    };
  },
  kysely(schema) {
    const db = new Kysely<OrdersDb>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: PG_URL, max: 2 }) }) });
    return {
      transaction: (fn) =>
        db
          .transaction()
          .execute(async (trx) => {
            await fn(kyselyTx(trx), async (id, item) => {
              await trx.withSchema(schema).insertInto('orders').values({ id, item }).execute();
            });
          }),
      close: () => db.destroy(),
    };
  },
  drizzle(schema) {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    const db = drizzle(pool);
    const orders = pgSchema(schema).table('orders', { id: integer('id').primaryKey(), item: text('item').notNull() });
    return {
      transaction: (fn) =>
        db.transaction(async (tx) => {
          await fn(drizzleTx(tx, sql), async (id, item) => {
            await tx.insert(orders).values({ id, item });
          });
        }),
      close: () => pool.end(),
    };
  },
  prisma(schema) {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
    return {
      async transaction(fn) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          const tx = prismaStandIn(client);
          await fn(prismaTx(tx), async (id, item) => {
            await tx.$queryRawUnsafe(`INSERT INTO "${schema}".orders (id, item) VALUES ($1, $2)`, id, item);
          });
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        } finally {
          client.release();
        }
      },
      close: () => pool.end(),
    };
  },
};

describe('prismaTx', () => {
  it('an outbox insert in the caller transaction returns no void column (readable by Prisma raw queries)', async () => {
    const admin = adminPool();
    const schema = schemaName('txp');
    const outbox = new PostgresOutbox({ broker: new MemoryBroker(), connection: PG_URL, schema, relay: false });
    const client = await admin.connect();
    try {
      await client.query('BEGIN');
      await outbox.publishBatch('g', [{ body: 'a', options: { tx: prismaTx(prismaStandIn(client)) } }, { body: 'b' }]);
      await client.query('COMMIT');
      expect(await outbox.pending()).toBe(2);
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await outbox.close();
      await dropSchema(admin, schema);
      await admin.end();
    }
  });
});

describe('splitPlaceholders', () => {
  it('splits at $n outside quotes, dollar quotes and comments, keeping repeats', () => {
    const text = `SELECT $1, '$2 it''s', "$3", $$ $4 $$, $tag$ $5 $tag$, $2 -- $6\n/* $7 */ $1::int`;
    const { fragments, refs } = splitPlaceholders(text);
    expect(refs).toEqual([1, 2, 1]);
    expect(fragments.join('?')).toBe(`SELECT ?, '$2 it''s', "$3", $$ $4 $$, $tag$ $5 $tag$, ? -- $6\n/* $7 */ ?::int`);
  });

  it('an out-of-range placeholder is refused with ERR_INVALID_OPTION', async () => {
    const tx = knexTx({ raw: () => Promise.resolve({ rows: [] }) });
    await expect(tx.query('SELECT $2', [1])).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
  });
});

describe.each(Object.keys(libraries))('transactional send through %s', (name) => {
  let admin: pg.Pool;
  let schema: string;
  let group: string;
  let server: Server;
  let lib: Library;
  const emailed: number[] = [];

  beforeEach(async () => {
    admin = adminPool();
    schema = schemaName('txa');
    group = `txa-${randomUUID().slice(0, 8)}`;
    emailed.length = 0;
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".orders (id integer PRIMARY KEY, item text NOT NULL)`);
    server = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    lib = (libraries[name] as (schema: string) => Library)(schema);
  });

  afterEach(async () => {
    await server.shutdown(1000);
    await lib.close();
    await dropSchema(admin, schema);
    await admin.end();
  });

  const register = () =>
    server.add(group, 'email', (orderId: number) => {
      emailed.push(orderId);
      return `mailed ${orderId}`;
    });
  const orderCount = async (): Promise<number> => ((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).rows[0] as { n: number }).n;

  it('commit: the order row and its tasks appear together and each runs once', async () => {
    const email = register();
    const client = server.client();
    await server.run(group, 2);
    const key = `order-${randomUUID()}`;
    const ids: string[] = [];
    await lib.transaction(async (tx, insertOrder) => {
      await insertOrder(1, 'book');
      const a = await client.with({ tx, id: key }).send(email, 1);
      const again = await client.with({ tx, id: key }).send(email, 1); // idempotency key, read in the transaction
      expect(again).toBe(a);
      ids.push(a, ...(await client.with({ tx, runAfter: 0 }).sendMany(email, [[2], [3]])));
      // Nothing visible outside the transaction yet.
      expect(await client.getStatus(a)).toBeNull();
      expect((await server.broker.counts(group)).ready).toBe(0);
    });
    for (const id of ids) expect((await client.getResult(id as TaskId<string>, 10_000)).isSuccess()).toBe(true);
    expect(emailed.sort()).toEqual([1, 2, 3]);
    expect(await orderCount()).toBe(1);
    await until(async () => JSON.stringify(await server.broker.counts(group)) === JSON.stringify(EMPTY), 10_000, 'empty queue');
  });

  it('rollback: no order row, no task, no state; it never runs', async () => {
    const email = register();
    const client = server.client();
    await server.run(group, 2);
    const rolled: string[] = [];
    await expect(
      lib.transaction(async (tx, insertOrder) => {
        await insertOrder(2, 'lamp');
        rolled.push(await client.with({ tx }).send(email, 2));
        rolled.push(...(await client.with({ tx }).sendMany(email, [[4], [5]])));
        throw new Rollback('roll back');
      }),
    ).rejects.toBeInstanceOf(Rollback);
    // A task sent afterwards runs to the end: the rolled-back ones, had they existed, were ahead of it.
    const later = await client.send(email, 3);
    expect((await client.getResult(later, 10_000)).value).toBe('mailed 3');
    expect(emailed).toEqual([3]);
    expect(rolled).toHaveLength(3);
    for (const id of rolled) expect(await client.getStatus(id)).toBeNull();
    expect(await orderCount()).toBe(0);
    await until(async () => JSON.stringify(await server.broker.counts(group)) === JSON.stringify(EMPTY), 10_000, 'empty queue');
  });
});

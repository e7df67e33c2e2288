/**
 * The transactional send through a real Prisma 7 client (`prismaTx`, `tasuki/postgres-tx`) with the
 * `@prisma/adapter-pg` driver adapter, on the real PostgreSQL: the client is generated at test time
 * from a one-model schema (an `orders` table) into a git-ignored `.scratch/prisma-…` folder and
 * imported from there. In `prisma.$transaction` the order is written with `tx.order.create` and the
 * task through `prismaTx(tx)`: commit → the task runs once and its state exists; a thrown transaction →
 * no order, no task, no state; an explicit id sent twice (in one transaction and in a later one) →
 * one task. And `prismaTx` type-checks (tsc) against the generated client's own types.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PrismaPg } from '@prisma/adapter-pg';
import { Server, silentLogger, type TaskId } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';
import { prismaTx, type PrismaTransactionLike } from '../postgres/tx-adapters.js';
import { until } from './core/suite.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const EMPTY = { ready: 0, delayed: 0, inFlight: 0, dead: 0 };

/** Rolls the Prisma transaction back (thrown out of its callback, caught by the test). */
class Rollback extends Error {}

/** The part of the generated client's interactive transaction the test uses. */
interface OrdersTx extends PrismaTransactionLike {
  order: { create(args: { data: { id: number; item: string } }): Promise<unknown> };
}

/** The part of the generated `PrismaClient` the test uses. */
interface OrdersClient {
  $transaction<T>(fn: (tx: OrdersTx) => Promise<T>): Promise<T>;
  $disconnect(): Promise<void>;
}

/** The generated module's `PrismaClient` class (imported at run time: it exists only after generating). */
type OrdersClientClass = new (options: { adapter: PrismaPg }) => OrdersClient;

/** The one-model schema; the table's PostgreSQL schema is chosen per test by the driver adapter. */
const PRISMA_SCHEMA = `
generator client {
  provider = "prisma-client"
  output   = "./client"
}

datasource db {
  provider = "postgresql"
}

model Order {
  id   Int    @id
  item String

  @@map("orders")
}
`;

/** Runs a Node.js CLI script with `args` in `cwd`; rejects with its output on failure. */
function runCli(script: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [script, ...args], { env, cwd, timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${args.join(' ')} failed: ${stdout}${stderr || err.message}`)) : resolve(),
    ),
  );
}

const resolveModule = createRequire(import.meta.url).resolve;

/** Runs `prisma generate` for the schema file; rejects with the CLI's output on failure. */
function generate(schemaFile: string): Promise<void> {
  const env = {
    ...process.env,
    // `prisma generate` runs no engine binary (Prisma 7 reads the schema and writes the client in
    // WebAssembly), but the CLI first checks that the schema engine binary of `migrate` / `db push`
    // is there and downloads it when it is missing (`@prisma/engines`' postinstall fetches it only
    // where npm runs install scripts and the machine is online; otherwise generate fails with
    // `request to https://binaries.prisma.sh/… failed, reason: getaddrinfo ENOTFOUND`). Naming any
    // existing executable skips that download; it is never run (the table is created with plain SQL,
    // not `db push`).
    PRISMA_SCHEMA_ENGINE_BINARY: '/bin/true',
    CHECKPOINT_DISABLE: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
  };
  return runCli(resolveModule('prisma/build/index.js'), ['generate', '--schema', schemaFile], dirname(schemaFile), env);
}

/** Uses `prismaTx` with the generated client's types: its interactive transaction and the client itself. */
const TYPE_CHECK = `
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './client/client.js';
import { prismaTx, type TxQueryable } from '../../postgres/tx-adapters.js';

const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: 'postgres://localhost/none' }) });
export const inTransaction = (): Promise<TxQueryable> =>
  prisma.$transaction(async (tx) => {
    await tx.order.create({ data: { id: 1, item: 'book' } });
    return prismaTx(tx);
  });
export const outside: TxQueryable = prismaTx(prisma);
`;

const TYPE_CHECK_CONFIG = {
  compilerOptions: { strict: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023'], types: ['node'], noEmit: true, skipLibCheck: true },
  files: ['check.ts'],
};

let scratch: string;
let PrismaClient: OrdersClientClass;

beforeAll(async () => {
  mkdirSync(join(root, '.scratch'), { recursive: true });
  scratch = mkdtempSync(join(root, '.scratch', 'prisma-'));
  const schemaFile = join(scratch, 'schema.prisma');
  writeFileSync(schemaFile, PRISMA_SCHEMA);
  await generate(schemaFile);
  const generated = (await import(pathToFileURL(join(scratch, 'client', 'client.ts')).href)) as { PrismaClient: OrdersClientClass };
  PrismaClient = generated.PrismaClient;
}, 120_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('prismaTx with the generated client types', () => {
  it('takes the interactive transaction and the client (tsc, strict)', async () => {
    writeFileSync(join(scratch, 'check.ts'), TYPE_CHECK);
    writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify(TYPE_CHECK_CONFIG));
    await runCli(resolveModule('typescript/bin/tsc'), ['-p', 'tsconfig.json'], scratch);
  }, 120_000);
});

describe('transactional send through a generated Prisma client', () => {
  let admin: ReturnType<typeof adminPool>;
  let schema: string;
  let group: string;
  let server: Server;
  let prisma: OrdersClient;
  const emailed: number[] = [];

  beforeEach(async () => {
    admin = adminPool();
    schema = schemaName('txprisma');
    group = `txprisma-${randomUUID().slice(0, 8)}`;
    emailed.length = 0;
    await admin.query(`CREATE SCHEMA "${schema}"`);
    await admin.query(`CREATE TABLE "${schema}".orders (id integer PRIMARY KEY, item text NOT NULL)`);
    server = new Server({
      broker: new PostgresBroker({ connection: PG_URL, schema }),
      backend: new PostgresBackend({ connection: PG_URL, schema }),
      logger: silentLogger,
      fetchWaitMs: 300,
    });
    prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: PG_URL, max: 2 }, { schema }) });
  });

  afterEach(async () => {
    await server.shutdown(1000);
    await prisma.$disconnect();
    await dropSchema(admin, schema);
    await admin.end();
  });

  const register = () =>
    server.add(group, 'email', (orderId: number) => {
      emailed.push(orderId);
      return `mailed ${orderId}`;
    });
  const orderIds = async (): Promise<number[]> => (await admin.query<{ id: number }>(`SELECT id FROM "${schema}".orders ORDER BY id`)).rows.map((r) => r.id);
  const emptyQueue = () => until(async () => JSON.stringify(await server.broker.counts(group)) === JSON.stringify(EMPTY), 10_000, 'empty queue');

  it('commit: the order and its tasks appear together, each runs once and its state exists', async () => {
    const email = register();
    const client = server.client();
    await server.run(group, 2);
    const ids = await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { id: 1, item: 'book' } });
      const a = await client.with({ tx: prismaTx(tx) }).send(email, 1);
      const many = await client.with({ tx: prismaTx(tx) }).sendMany(email, [[2], [3]]);
      // Nothing visible outside the transaction yet.
      expect(await client.getStatus(a)).toBeNull();
      expect(await orderIds()).toEqual([]);
      return [a, ...many];
    });
    for (const id of ids) {
      const result = await client.getResult(id as TaskId<string>, 10_000);
      expect(result.isSuccess()).toBe(true);
      const status = await client.getStatus(id);
      expect(status?.status).toBe('success');
      expect(status?.state).not.toBeNull();
    }
    expect(emailed.sort()).toEqual([1, 2, 3]);
    expect(await orderIds()).toEqual([1]);
    await emptyQueue();
  });

  it('a thrown transaction: no order, no task, no state; it never runs', async () => {
    const email = register();
    const client = server.client();
    await server.run(group, 2);
    const rolled: string[] = [];
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.order.create({ data: { id: 2, item: 'lamp' } });
        rolled.push(await client.with({ tx: prismaTx(tx) }).send(email, 2));
        rolled.push(...(await client.with({ tx: prismaTx(tx) }).sendMany(email, [[4], [5]])));
        throw new Rollback('roll back');
      }),
    ).rejects.toBeInstanceOf(Rollback);
    // A task sent afterwards runs to the end: the rolled-back ones, had they existed, were ahead of it.
    const later = await client.send(email, 3);
    expect((await client.getResult(later, 10_000)).value).toBe('mailed 3');
    expect(emailed).toEqual([3]);
    expect(rolled).toHaveLength(3);
    for (const id of rolled) expect(await client.getStatus(id)).toBeNull();
    expect(await orderIds()).toEqual([]);
    await emptyQueue();
  });

  it('an explicit id sent twice in a transaction and again in a later one starts one task', async () => {
    const email = register();
    const client = server.client();
    await server.run(group, 2);
    const key = `order-${randomUUID()}`;
    const [first, second] = await prisma.$transaction(async (tx) => {
      await tx.order.create({ data: { id: 7, item: 'pen' } });
      const a = await client.with({ tx: prismaTx(tx), id: key }).send(email, 7);
      const b = await client.with({ tx: prismaTx(tx), id: key }).send(email, 7); // read in the transaction
      return [a, b];
    });
    expect(first).toBe(key);
    expect(second).toBe(key);
    expect((await client.getResult(key as TaskId<string>, 10_000)).value).toBe('mailed 7');
    const third = await prisma.$transaction(async (tx) => client.with({ tx: prismaTx(tx), id: key }).send(email, 7));
    expect(third).toBe(key);
    // Each send committed its message with its transaction: once the queue is empty, every copy has run.
    await emptyQueue();
    expect(emailed).toEqual([7]);
    expect(await orderIds()).toEqual([7]);
  });
});

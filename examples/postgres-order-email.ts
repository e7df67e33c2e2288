/**
 * An order row and its confirmation-email task in one PostgreSQL transaction (GTA's RunWithTx):
 * the email task exists if and only if the order commits. Broker and backend are PostgreSQL.
 *
 *   npx tsx examples/postgres-order-email.ts            (PG* variables or postgres://postgres@127.0.0.1:5432/test)
 */
import pg from 'pg';
import { Server, consoleLogger } from '../src/index.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { PostgresBackend } from '../backends/postgres.js';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// The demo's schemas (the business table's and tasuki's), both dropped at the end.
const shop = process.env.SHOP_SCHEMA ?? 'shop';
const tasukiSchema = process.env.TASUKI_SCHEMA ?? 'tasuki_example';
// One pool for the application and tasuki (tasuki uses it and never closes it).
const pool = new pg.Pool({ connectionString: url });
await pool.query(`CREATE SCHEMA IF NOT EXISTS ${shop}`);
await pool.query(`CREATE TABLE IF NOT EXISTS ${shop}.orders (id bigserial PRIMARY KEY, email text NOT NULL, item text NOT NULL)`);

const server = new Server({
  broker: new PostgresBroker({ connection: pool, schema: tasukiSchema }),
  backend: new PostgresBackend({ connection: pool, schema: tasukiSchema }),
  logger: consoleLogger('info'),
});
const sendEmail = server.add('mail', 'order_confirmation', async (orderId: number, to: string) => {
  console.log(`emailing ${to} about order ${orderId}`);
  return `sent to ${to}`;
});
await server.run('mail', 2);
const client = server.client();

/** Places an order: the row and its email task commit together, or neither exists. */
async function placeOrder(email: string, item: string, fail: boolean): Promise<string | null> {
  const tx = await pool.connect();
  try {
    await tx.query('BEGIN');
    const { rows } = await tx.query<{ id: string }>(`INSERT INTO ${shop}.orders (email, item) VALUES ($1, $2) RETURNING id`, [email, item]);
    const orderId = Number(rows[0]?.id);
    const taskId = await client.with({ tx }).send(sendEmail, orderId, email);
    if (fail) throw new Error('payment declined');
    await tx.query('COMMIT');
    return taskId;
  } catch (err) {
    await tx.query('ROLLBACK');
    console.log(`order for ${email} rolled back (${(err as Error).message}): no row, no email task`);
    return null;
  } finally {
    tx.release();
  }
}

const ok = await placeOrder('ada@example.com', 'book', false);
await placeOrder('bob@example.com', 'lamp', true);
if (ok !== null) {
  const r = await client.getResult(ok, 10_000);
  console.log('email task:', r.status, r.value);
}

await server.shutdown();
// Clean-up of the demo (leaves the database as it found it).
await pool.query(`DROP SCHEMA ${shop} CASCADE`);
await pool.query(`DROP SCHEMA ${tasukiSchema} CASCADE`);
await pool.end();

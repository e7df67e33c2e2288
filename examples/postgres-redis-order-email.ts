/**
 * An order row in PostgreSQL and its confirmation-email task on the Redis broker, in one
 * transaction: the task goes through tasuki's outbox table and is relayed to Redis after the commit;
 * a rolled-back order never sends its email. Results live in Redis.
 *
 *   npx tsx examples/postgres-redis-order-email.ts     (PostgreSQL at DATABASE_URL, Redis at 127.0.0.1:6379)
 */
import pg from 'pg';
import { Server, consoleLogger } from '../src/index.js';
import { PostgresOutbox } from '../brokers/postgres-outbox.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';

const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
// The demo's schemas (the business table's and tasuki's), both dropped at the end.
const shop = process.env.SHOP_SCHEMA ?? 'shop';
const tasukiSchema = process.env.TASUKI_SCHEMA ?? 'tasuki_example';
const prefix = process.env.TASUKI_PREFIX ?? 'tasuki-example';
const pool = new pg.Pool({ connectionString: url });
await pool.query(`CREATE SCHEMA IF NOT EXISTS ${shop}`);
await pool.query(`CREATE TABLE IF NOT EXISTS ${shop}.orders (id bigserial PRIMARY KEY, email text NOT NULL, item text NOT NULL)`);

const server = new Server({
  // Redis stays the broker; only sends made with `tx` pass through the outbox in PostgreSQL.
  broker: new PostgresOutbox({ broker: new RedisBroker({ prefix }), connection: pool, schema: tasukiSchema }),
  backend: new RedisBackend({ prefix }),
  logger: consoleLogger('info'),
  statusExpires: 60,
  resultExpires: 60,
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
    const taskId = await client.with({ tx }).send(sendEmail, Number(rows[0]?.id), email);
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

await server.broker.purge('mail');
await server.shutdown();
// Clean-up of the demo (leaves the database as it found it).
await pool.query(`DROP SCHEMA ${shop} CASCADE`);
await pool.query(`DROP SCHEMA ${tasukiSchema} CASCADE`);
await pool.end();

/**
 * GoTick's order-timeout example as a durable flow: an order is created, the flow sleeps through a
 * grace period (durably: the worker slot is free and a restart loses nothing), asks a payment
 * service (a child task in another group), closes the unpaid order with retries, fans out the
 * image resizing, then waits for a manager's approval signal.
 *
 *   npx tsx examples/flows/close-order.ts            # embedded memory broker + backend
 *   npx tsx examples/flows/close-order.ts --redis    # Redis (REDIS_URL)
 */
import { Server } from '../../src/index.js';
import { connections } from './connections.js';

const { options, cleanup, label } = connections();
const server = new Server({ ...options, statusExpires: 300, resultExpires: 300 });

// A pretend database.
const orders = new Map<string, { createdAt: Date; paid: boolean; closed: boolean }>([['o-42', { createdAt: new Date(), paid: false, closed: false }]]);
let closeAttempts = 0;

const checkPayment = server.add('payments', 'check', (orderId: string) => orders.get(orderId)?.paid ?? false);
const resize = server.add('images', 'resize', (img: string) => `${img}@256`);

const closeOrder = server.flow('orders', 'closeOrder', async (flow, orderId: string, images: string[]) => {
  const createdAt = await flow.step('load', () => orders.get(orderId)?.createdAt ?? null); // run once, remembered
  await flow.sleep('grace', 300); // GoTick's Sleep: survives restarts, frees the slot
  const paid = await flow.call('check-payment', checkPayment, orderId); // a child task, typed
  if (!paid) {
    await flow.step('close', () => {
      if (++closeAttempts < 2) throw new Error('database busy'); // the first attempt fails, the retry passes
      const o = orders.get(orderId);
      if (o) o.closed = true;
    }, { retryCount: 5, backoff: { type: 'fixed', delayMs: 100 } });
  }
  const sizes = await flow.callMany('resize', resize, images.map((img) => [img] as [string]), { concurrency: 4 });
  const approved = await flow.waitFor<boolean>('approval', { timeoutMs: 60_000 });
  return { createdAt, paid, sizes, approved };
}, {
  onSuccess: (r, info) => console.log(`onSuccess(${info.id}): closed=${String(!r.paid)} approved=${String(r.approved)}`),
  onFailure: (err, info) => console.log(`onFailure(${info.id}):`, err.message),
});

await Promise.all([server.run('orders', 2), server.run('payments', 2), server.run('images', 4)]);
const client = server.client();
console.log(`closeOrder on ${label}`);

const id = await client.send(closeOrder, 'o-42', ['a.png', 'b.png', 'c.png']);
await client.signal(id, 'approval', true); // sent before the flow reaches its wait: kept
const r = await client.getResult(id, 30_000);
console.log('status:', r.status);
console.log('value:', JSON.stringify(r.value));
const f = await client.getFlow(id);
for (const s of f?.steps ?? []) console.log(`  ${s.kind.padEnd(5)} ${s.key.padEnd(18)} ${s.status.padEnd(6)} attempts=${s.attempts}`);

await server.shutdown();
await cleanup();

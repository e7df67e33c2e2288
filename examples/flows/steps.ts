/**
 * vtask's two-step job as a durable flow: step 1 reserves stock, step 2 charges the card with its
 * own retry count and period (vtask's RetryTimes / RetryPeriod). Step 2 keeps failing, the job ends
 * failed; once the card service is fixed, the job is restarted from step 2 — step 1 is not run
 * again (its stored result is kept). The job id is its keyword: sending it twice starts one job.
 *
 *   npx tsx examples/flows/steps.ts            # embedded memory broker + backend
 *   npx tsx examples/flows/steps.ts --redis    # Redis (REDIS_URL)
 */
import { Server } from '../../src/index.js';
import { connections } from './connections.js';

const { options, cleanup, label } = connections();
const server = new Server({ ...options, statusExpires: 300, resultExpires: 300 });

let cardServiceUp = false;
const runs = { reserve: 0, charge: 0 };

const job = server.flow('jobs', 'order-job', async (flow, order: { id: string; amount: number }) => {
  const reservation = await flow.step('reserve', () => {
    runs.reserve++;
    return `R-${order.id}`;
  });
  const receipt = await flow.step('charge', () => {
    runs.charge++;
    if (!cardServiceUp) throw new Error('card service unavailable');
    return `paid ${order.amount} for ${reservation}`;
  }, { retryCount: 2, backoff: { type: 'fixed', delayMs: 100 } });
  return receipt;
});

await server.run('jobs', 2);
const client = server.client();
console.log(`order-job on ${label}`);

const order = { id: 'A-1', amount: 30 };
const id = await client.with({ id: 'job:A-1', retryCount: 0 }).send(job, order);
const again = await client.with({ id: 'job:A-1', retryCount: 0 }).send(job, order); // same keyword: no second job
console.log('same id for the same keyword:', id === again);

const first = await client.getResult(id, 30_000);
console.log('first run:', first.status, '-', first.error?.message);
console.log('runs so far:', JSON.stringify(runs));

cardServiceUp = true;
await client.restartFlow(id, { fromStep: 'charge' }); // vtask: restart from step 2
const second = await client.getResult(id, 30_000);
console.log('after restart:', second.status, '-', second.value);
console.log('runs in all:', JSON.stringify(runs)); // reserve ran once, charge 3 + 1 times

await server.shutdown();
await cleanup();

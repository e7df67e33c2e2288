/**
 * YTask v3's workflow example as a tasuki chain — `add` used twice (the chain YTask itself stops
 * after one step of), steps in two groups, per-step controls — then a group and a chord, and the
 * workflow as a whole (`getWorkflow`).
 *
 *   npx tsx examples/workflow.ts            # embedded memory broker + backend
 *   npx tsx examples/workflow.ts --redis    # Redis (REDIS_URL)
 */
import { Server, task } from '../src/index.js';
import { connections } from './flows/connections.js';

const { options, cleanup, label } = connections();
const server = new Server({ ...options, statusExpires: 300, resultExpires: 300 });

const add = server.add('group1', 'add', (a: number, b: number) => a + b);
const double = server.add('group1', 'double', (n: number) => n * 2);
const toLabel = server.add('group2', 'label', (n: number) => `result: ${n}`);
const count = server.add('group2', 'count', (word: string) => word.length);
const sum = server.add('group2', 'sum', (ns: number[]) => ns.reduce((a, b) => a + b, 0));

await Promise.all([server.run('group1', 4), server.run('group2', 4)]);
const client = server.client();
console.log(`workflows on ${label}`);

// add(1, 2) -> add(10, 3) -> double(13) -> label(26); each step gets the previous value as its last argument.
const id = await client.chain(
  task(add, 1, 2),
  task(add, 10),                                  // the same task again: steps are found by position, not by name
  task(double).with({ retryCount: 5 }),
  task(toLabel).with({ runAfter: 1000 }),         // a durable wait before the step is sent
);
const r = await client.getResult(id, 10_000);
console.log('chain:', r.status, r.value);
const w = await client.getWorkflow(id);
for (const s of w?.steps ?? []) console.log(`  step ${s.path} ${s.group}/${s.name}: ${s.status}, ${s.attempts} attempt(s), value ${JSON.stringify(s.value)}`);

const g = await client.group([task(count, 'tasuki'), task(count, 'ytask')]);
console.log('group:', (await client.getResult(g, 10_000)).value);
const c = await client.chord([task(count, 'x'), task(count, 'yy'), task(count, 'zzz')], task(sum));
console.log('chord:', (await client.getResult(c, 10_000)).value);

await server.shutdown();
await cleanup();

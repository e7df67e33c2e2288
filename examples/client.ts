/**
 * Client process on Redis (YTask's client demo). Start examples/server.ts first.
 * Shows: typed sends, retry, runAfter / runAt, expireAt, abort, progress.
 */
import { Client, consoleLogger, taskRef } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import type { add, appendUser, flaky, slow, now } from './tasks.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const client = new Client({
  broker: new RedisBroker({ connection: url }),
  backend: new RedisBackend({ connection: url }),
  logger: consoleLogger('warn'),
  statusExpires: 60 * 5,
  resultExpires: 60 * 5,
});

// Typed references: the client process imports only the handlers' types.
const addTask = taskRef<typeof add>('group1', 'add');
const appendUserTask = taskRef<typeof appendUser>('group1', 'append_user');
const flakyTask = taskRef<typeof flaky>('group1', 'flaky');
const slowTask = taskRef<typeof slow>('group1', 'slow');
const nowTask = taskRef<typeof now>('group1', 'now');

const r1 = await client.getResult(await client.send(addTask, 123, 44), 5000, 300);
console.log('add(123, 44) =', r1.isSuccess() ? r1.value : r1.error?.message);

const r2 = await client.getResult(await client.send(appendUserTask, { id: 1, name: 'aa' }, [322, 11], ['bb', 'cc']), 5000);
console.log('appendUser ->', r2.value);

// Retry: fails twice, succeeds on the third run; retries go back through Redis with backoff.
const r3 = await client.getResult(
  await client.with({ retryCount: 5, backoff: { type: 'exponential', delayMs: 200, jitter: 0.2 } }).send(flakyTask, 2),
  10_000,
);
console.log('flaky ->', r3.value, `(retries used: ${r3.retriesUsed})`);

// Delays live in Redis: runAfter (ms) and runAt (Date).
const sent = Date.now();
const r4 = await client.getResult(await client.with({ runAfter: 1000 }).send(nowTask), 5000);
console.log(`runAfter 1000 ms -> ran after ${(r4.value as Date).getTime() - sent} ms`);
const at = new Date(Date.now() + 500);
const r5 = await client.getResult(await client.with({ runAt: at }).send(nowTask), 5000);
console.log(`runAt -> ${(r5.value as Date).getTime() - at.getTime()} ms late`);

// Expiry: a task still waiting when expireAt passes never runs.
const expiring = await client.with({ runAfter: 1000, expireAt: Date.now() + 200 }).send(nowTask);
console.log('expireAt ->', (await client.getResult(expiring, 5000)).status);

// Abort: the running handler sees its AbortSignal fire; progress is visible meanwhile.
const long = await client.send(slowTask, 5000);
await new Promise((r) => setTimeout(r, 1200));
console.log('slow progress ->', (await client.getStatus(long))?.progress, '%');
await client.abort(long);
console.log('abort ->', (await client.getResult(long, 5000)).status);

await client.close();

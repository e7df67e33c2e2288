/**
 * The PostgreSQL broker does not evaluate a group rate limit itself: with the Redis backend, the
 * worker takes tokens from the backend's shared bucket (`src/worker-rate-gate.ts`), and getStatus of
 * a task held back says `rate-limit`; without such a backend the option is refused.
 */
import { afterAll, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server } from '../src/server.js';
import { silentLogger } from '../src/logger.js';
import { PostgresBroker } from '../brokers/postgres.js';
import { RedisBackend } from '../backends/redis.js';
import { MemoryBackend } from '../backends/memory.js';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const redis = redisNamespace('gate-pg');
const schema = schemaName('gate');
const admin = adminPool();

afterAll(async () => {
  await dropSchema(admin, schema);
  await admin.end();
  await redis.sweep();
  expect(await redis.keys()).toEqual([]);
  await redis.quit();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

it('PostgreSQL broker + Redis backend: at most the bucket runs, the held task says rate-limit; a memory backend, priorities, keys and per-key limits are refused', async () => {
  const bare = new Server({ broker: new PostgresBroker({ connection: PG_URL, schema }), backend: new MemoryBackend(), logger: silentLogger });
  await expect(bare.run('g', 1, { rateLimit: { limit: 5, periodMs: 1000 } })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('rateLimit') });
  await bare.shutdown(100);

  const server = new Server({ broker: new PostgresBroker({ connection: PG_URL, schema }), backend: new RedisBackend({ prefix: redis.prefix }), logger: silentLogger, statusExpires: 60, resultExpires: 60, fetchWaitMs: 200 });
  const group = `pg-${randomUUID().slice(0, 8)}`;
  const started: string[] = [];
  const task = server.add(group, 't', (label: string) => void started.push(label));
  const client = server.client();
  try {
    // What the PostgreSQL broker does not enforce is refused, typed.
    await expect(client.with({ priority: 7 }).send(task, 'p')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('priority') });
    await expect(client.with({ key: 'k' }).send(task, 'k')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('key') });
    await expect(server.run(group, 1, { keyConcurrency: 2 })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('keyConcurrency') });
    await expect(server.run(group, 1, { keyRateLimit: { limit: 1, periodMs: 1000 } })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringContaining('keyRateLimit') });
    await server.run(group, 3, { rateLimit: { limit: 2, periodMs: 3_600_000, burst: 2 } });
    const ids = await client.sendMany(task, [['a'], ['b'], ['c'], ['d']]);
    while (started.length < 2) await sleep(10);
    await sleep(500);
    expect(started).toHaveLength(2);
    const held = ids.filter((_, i) => !started.includes(['a', 'b', 'c', 'd'][i] as string));
    for (const id of held) {
      const s = await client.getStatus(id);
      expect(s?.status).toBe('sent');
      expect(s?.waiting?.reason).toBe('rate-limit');
    }
  } finally {
    await server.shutdown(1000);
  }
}, 60_000);

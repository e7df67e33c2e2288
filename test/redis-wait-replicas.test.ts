/**
 * `waitReplicas` on the shared one-node Redis (which has no replica): a publish and a state write
 * are stored on the master but reject with `ConnectionError`, since no replica acknowledged them in
 * time. (On a cluster with replicas they resolve: `redis-cluster-failover.test.ts`.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { makeState } from './contract/backend.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('wait');

afterAll(async () => {
  await ns.sweep();
  await ns.quit();
});

it('a write no replica acknowledged within timeoutMs rejects with ConnectionError (it is on the master)', async (ctx) => {
  const info = await ns.admin.info('replication');
  if (!/connected_slaves:0/.test(info)) ctx.skip(); // a shared Redis with replicas: nothing to check here
  const waitReplicas = { replicas: 1, timeoutMs: 50 };
  const broker = new RedisBroker({ prefix: ns.prefix, waitReplicas });
  const backend = new RedisBackend({ prefix: ns.prefix, waitReplicas });
  const group = `w-${randomUUID().slice(0, 8)}`;
  try {
    await expect(broker.publish(group, 'x')).rejects.toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringMatching(/0 of 1 replica/) });
    expect((await broker.counts(group)).ready).toBe(1);
    const state = makeState(randomUUID(), 'sent', { group });
    await expect(backend.write({ state, stateTtl: 60, guard: 'absent', previous: 'refused' })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    expect((await backend.read(state.id))?.status).toBe(state.status);
    expect(() => new RedisBroker({ waitReplicas: { replicas: 0, timeoutMs: 1 } })).toThrow(/waitReplicas/);
    await broker.purge(group);
  } finally {
    await broker.close();
    await backend.close();
  }
});

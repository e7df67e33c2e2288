/**
 * A poison message that kills every worker running it (`process.exit` in the handler) ends as a
 * failure with `ERR_TOO_MANY_DELIVERIES` and a dead letter after `maxDeliveries`, instead of being
 * redelivered forever. Redis backend; Redis or RabbitMQ broker; workers in other processes,
 * respawned as they die.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client, silentLogger, taskRef } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { killAll, startWorker, type WorkerProcess } from './helpers/processes.js';
import { until } from './core/suite.js';

const ns = redisNamespace('e2e-poison');
const rabbit = rabbitNamespace('e2e-poison');
const workers: WorkerProcess[] = [];
const clients: Client[] = [];

afterAll(async () => {
  await killAll(workers);
  await Promise.all(clients.map((c) => c.close()));
  await rabbit.sweep();
  expect(rabbit.queues()).toEqual([]);
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

describe('end to end: a task that kills its worker', () => {
  it.each(['redis', 'rabbitmq'] as const)(
    '%s broker: failed with ERR_TOO_MANY_DELIVERIES and dead-lettered after maxDeliveries deliveries; the next worker goes on',
    async (kind) => {
      const group = `poison-${randomUUID().slice(0, 8)}`;
      const broker = kind === 'redis' ? new RedisBroker({ prefix: ns.prefix }) : new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix });
      const client = new Client({ broker, backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger });
      clients.push(client);
      const env: Record<string, string> = {
        TASUKI_PREFIX: kind === 'redis' ? ns.prefix : rabbit.prefix,
        TASUKI_REDIS_PREFIX: ns.prefix,
        TASUKI_GROUP: group,
        TASUKI_BROKER: kind,
        TASUKI_BACKEND: 'redis',
        TASUKI_LEASE_MS: '500',
        TASUKI_CONCURRENCY: '1',
        TASUKI_MAX_DELIVERIES: '3',
      };
      const poison = taskRef<[number], never>(group, 'exit');
      const add = taskRef<[number, number], number>(group, 'add');
      const id = await client.send(poison, 7);
      let deaths = 0;
      for (;;) {
        const w = await startWorker(env);
        workers.push(w);
        const status = await Promise.race([w.exited.then(() => 'died' as const), client.getResult(id, 60_000).then(() => 'done' as const)]);
        if (status === 'done') break;
        deaths++;
        expect(deaths).toBeLessThanOrEqual(3);
      }
      expect(deaths).toBe(3);
      const r = await client.getResult(id, 1000);
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_TOO_MANY_DELIVERIES');
      // The failure is stored first, then the message moves to the dead letters.
      const dead = await until(async () => {
        const list = await client.deadLetters(group);
        return list.length > 0 ? list : null;
      }, 15_000, 'a dead letter');
      expect(dead.map((d) => d.reason.code)).toEqual(['ERR_TOO_MANY_DELIVERIES']);
      // The worker that failed it is alive and runs other tasks.
      expect((await client.getResult(await client.send(add, 2, 3), 15_000)).value).toBe(5);
      await client.deleteDeadLetters(group);
    },
    120_000,
  );
});

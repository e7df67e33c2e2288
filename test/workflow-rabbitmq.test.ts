import { afterAll, expect } from 'vitest';
import { workflowSuite } from './workflow/suite.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const redis = redisNamespace('wf-rmq');
const rabbit = rabbitNamespace('wf');

afterAll(async () => {
  await rabbit.sweep();
  expect(rabbit.queues()).toEqual([]);
  await redis.sweep();
  expect(await redis.keys()).toEqual([]);
  await redis.quit();
});

workflowSuite('rabbitmq broker + redis backend', () => ({
  broker: () => new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }),
  backend: () => new RedisBackend({ prefix: redis.prefix }),
  teardown: () => redis.sweep(),
}));

import { afterAll, expect } from 'vitest';
import { flowSuite } from './flow/suite.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const redis = redisNamespace('flow-rmq');
const rabbit = rabbitNamespace('flow');

afterAll(async () => {
  await rabbit.sweep();
  expect(rabbit.queues()).toEqual([]);
  await redis.sweep();
  expect(await redis.keys()).toEqual([]);
  await redis.quit();
});

flowSuite('rabbitmq broker + redis backend', () => ({
  broker: () => new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }),
  backend: () => new RedisBackend({ prefix: redis.prefix }),
  teardown: () => redis.sweep(),
}));

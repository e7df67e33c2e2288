/**
 * The broker contract suite against a real RabbitMQ (127.0.0.1:5672, guest/guest). Every queue and
 * exchange of this file lives under a unique prefix and is deleted afterwards.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { afterAll } from 'vitest';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { delayExchangeNames } from '../brokers/rabbitmq-topology.js';
import { brokerContract } from './contract/broker.js';

const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const prefix = `tasuki-test-${randomUUID().slice(0, 8)}`;

/** Queues of the prefix that still exist (purge deletes a group's queues; this catches the rest). */
function leftoverQueues(): string[] {
  const out = execFileSync('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.trim()).filter((name) => name.startsWith(`${prefix}.`));
}

afterAll(async () => {
  const model = await connect(url);
  const ch = await model.createChannel();
  for (const queue of leftoverQueues()) await ch.deleteQueue(queue);
  for (const exchange of delayExchangeNames(prefix)) await ch.deleteExchange(exchange);
  await model.close();
});

brokerContract('rabbitmq', () => ({
  create: () => new RabbitMQBroker({ url, prefix }),
}));

/** Test helpers for RabbitMQ: a unique prefix per test file and a sweep of its queues and exchanges. */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { delayExchangeNames } from '../../brokers/rabbitmq-topology.js';

/** URL of the test RabbitMQ. */
export const rabbitUrl = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A unique prefix, the queues still existing under it, and a sweep that deletes them and the exchanges. */
export function rabbitNamespace(label = 'test'): { prefix: string; queues(): string[]; sweep(): Promise<void> } {
  const prefix = `tasuki-${label}-${randomUUID().slice(0, 8)}`;
  const queues = (): string[] =>
    execFileSync('rabbitmqctl', ['list_queues', '-q', '--no-table-headers', 'name'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim())
      .filter((name) => name.startsWith(`${prefix}.`));
  return {
    prefix,
    queues,
    async sweep() {
      const conn = await connect(rabbitUrl);
      const ch = await conn.createChannel();
      for (const queue of queues()) await ch.deleteQueue(queue);
      for (const exchange of delayExchangeNames(prefix)) await ch.deleteExchange(exchange);
      await conn.close();
    },
  };
}

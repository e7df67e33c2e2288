/**
 * Declaring the RabbitMQ topology of `rabbitmq-topology.ts` on a connection, once per connection:
 * the shared delay exchanges of a prefix and the queues and bindings of each group; and reading a
 * queue's message count. A queue that exists with other arguments fails with `TopologyMismatchError`.
 */
import type { Channel } from 'amqplib';
import {
  NOT_FOUND,
  amqpReplyCode,
  delayExchangeName,
  delayExchangeNames,
  delayQueueArguments,
  groupQueueNames,
  levelBindingKey,
  passDownBindingKey,
  plainQueueArguments,
  toTopologyMismatch,
  type RabbitMQQueueType,
} from '../rabbitmq-topology.js';
import type { Conn, RabbitConnection } from './connection.js';

/** Declares and inspects the queues of one prefix. */
export class Declarations {
  constructor(
    private readonly connection: RabbitConnection,
    private readonly prefix: string,
    private readonly queueType: RabbitMQQueueType,
  ) {}

  /** Declares the shared delay exchanges and their pass-down bindings once per connection. */
  ensureExchanges(conn: Conn): Promise<void> {
    if (!conn.exchanges) {
      const p = (async () => {
        const names = delayExchangeNames(this.prefix);
        await Promise.all(
          names.map((name, i) =>
            this.connection.onChannel(conn, 'admin', i, async (ch) => {
              try {
                await ch.assertExchange(name, 'topic', { durable: true, autoDelete: false, internal: false });
              } catch (err) {
                throw toTopologyMismatch(err, `exchange "${name}"`, { type: 'topic', durable: true }) ?? err;
              }
            }),
          ),
        );
        await Promise.all(
          names
            .slice(1)
            .map((name, i) =>
              this.connection.onChannel(conn, 'admin', i, (ch) => ch.bindExchange(delayExchangeName(this.prefix, i), name, passDownBindingKey(i + 1))),
            ),
        );
      })();
      conn.exchanges = p;
      p.catch(() => {
        if (conn.exchanges === p) conn.exchanges = null;
      });
    }
    return conn.exchanges;
  }

  /** Declares a group's queues and bindings once per connection; a conflicting queue fails with `TopologyMismatchError`. */
  ensureGroup(conn: Conn, group: string): Promise<void> {
    let p = conn.groups.get(group);
    if (!p) {
      const declared = this.declareGroup(conn, group);
      p = declared;
      conn.groups.set(group, declared);
      declared.catch(() => {
        if (conn.groups.get(group) === declared) conn.groups.delete(group);
      });
    }
    return p;
  }

  private async declareGroup(conn: Conn, group: string): Promise<void> {
    await this.ensureExchanges(conn);
    const names = groupQueueNames(this.prefix, group);
    const declare = async (ch: Channel, queue: string, args: Record<string, unknown>): Promise<void> => {
      try {
        await ch.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false, arguments: args });
      } catch (err) {
        throw toTopologyMismatch(err, `queue "${queue}"`, args) ?? err;
      }
    };
    const tasks: Array<(ch: Channel) => Promise<void>> = [
      async (ch) => {
        await declare(ch, names.work, plainQueueArguments(this.queueType));
        await ch.bindQueue(names.work, delayExchangeName(this.prefix, 0), levelBindingKey(0, 0, group));
      },
      (ch) => declare(ch, names.dead, plainQueueArguments(this.queueType)),
      ...names.delay.map((queue, level) => async (ch: Channel) => {
        await declare(ch, queue, delayQueueArguments(this.prefix, group, level, this.queueType));
        await ch.bindQueue(queue, delayExchangeName(this.prefix, level), levelBindingKey(level, 1, group));
      }),
    ];
    await Promise.all(tasks.map((task, i) => this.connection.onChannel(conn, 'admin', i, task)));
  }

  /** Message count of a queue; 0 when it does not exist. */
  async countQueue(conn: Conn, queue: string, slot: number): Promise<number> {
    try {
      return await this.connection.onChannel(conn, 'check', slot, async (ch) => (await ch.checkQueue(queue)).messageCount);
    } catch (err) {
      if (amqpReplyCode(err) === NOT_FOUND) return 0;
      throw err;
    }
  }

  /** Deletes the group's queues (forgetting that they were declared on `conn`). */
  async deleteGroup(conn: Conn, group: string): Promise<void> {
    const names = groupQueueNames(this.prefix, group);
    conn.groups.delete(group);
    await Promise.all(
      [names.work, names.dead, ...names.delay].map((queue, i) => this.connection.onChannel(conn, 'admin', i, (ch) => ch.deleteQueue(queue))),
    );
    conn.groups.delete(group);
  }

  /** Deletes the shared delay exchanges of the prefix. */
  async deleteExchanges(conn: Conn): Promise<void> {
    conn.exchanges = null;
    conn.groups.clear();
    await Promise.all(delayExchangeNames(this.prefix).map((name, i) => this.connection.onChannel(conn, 'admin', i, (ch) => ch.deleteExchange(name))));
    conn.exchanges = null;
    conn.groups.clear();
  }
}

/**
 * Publishing with confirms: messages of one group are written pipelined on the connection's confirm
 * channel (mandatory, persistent, through the default exchange straight to their queue: the work
 * queue, the dead-letter queue, or the delay level of a message not yet due), honouring socket
 * back-pressure; what was not confirmed (nack,
 * returned as unroutable, channel or connection lost) is published again after the queues are
 * declared again, for up to `operationTimeoutMs`. At-least-once: a message whose confirm was lost
 * may be stored twice.
 */
import type { ConfirmChannel, Message, Options } from 'amqplib';
import { HEADER_AVAILABLE_AT, HEADER_HOP_DUE, delayLevel, groupQueueNames, levelWaitMs } from '../rabbitmq-topology.js';
import { type Conn, type RabbitConnection, UnroutableError } from './connection.js';
import type { Declarations } from './declarations.js';

/** A message to publish. */
export interface Outgoing {
  readonly body: string;
  readonly target: 'work' | 'dead';
  readonly availableAt?: number | undefined;
  readonly headers?: Record<string, string>;
  readonly messageId: string;
  /** AMQP priority property (work queues declared with `x-max-priority`); kept through delays and retries. */
  readonly priority?: number | undefined;
}

type Outcome = 'ok' | 'returned' | { error: unknown };

/** The AMQP properties of a publish: persistent, mandatory, its id; headers and priority only when it has them (less for RabbitMQ to parse). */
function publishProperties(messageId: string, headers: Record<string, string> | undefined, priority: number | undefined): Options.Publish {
  const props: Options.Publish = { persistent: true, mandatory: true, messageId };
  if (headers !== undefined) props.headers = headers;
  if (priority !== undefined) props.priority = priority;
  return props;
}

/** Publishes messages with confirms; see the module comment. */
export class Publisher {
  private readonly inflight = new Set<string>();
  private readonly returned = new Set<string>();

  constructor(
    private readonly connection: RabbitConnection,
    private readonly declarations: Declarations,
    private readonly prefix: string,
  ) {}

  /**
   * Publishes messages of one group with confirms, retrying what was not confirmed after transport
   * failures. Returns false without publishing the rest when `stillWanted` turns false between attempts.
   */
  async publish(group: string, items: Outgoing[], stillWanted?: () => boolean): Promise<boolean> {
    let pending = items;
    let gaveUp = false;
    await this.connection.run(`publishing to group "${group}"`, async (conn) => {
      if (stillWanted && !stillWanted()) {
        gaveUp = true;
        return;
      }
      await this.declarations.ensureGroup(conn, group);
      const ch = await this.channel(conn);
      const outcomes = await this.sendAll(ch, group, pending);
      const next: Outgoing[] = [];
      let failure: unknown;
      let returned = false;
      outcomes.forEach((outcome, i) => {
        if (outcome === 'ok') return;
        next.push(pending[i] as Outgoing);
        if (outcome === 'returned') returned = true;
        else failure = outcome.error;
      });
      pending = next;
      if (returned) conn.groups.delete(group);
      if (failure !== undefined) throw failure;
      if (returned) throw new UnroutableError(`RabbitMQ returned messages of group "${group}" as unroutable; declaring its queues again`);
    });
    return !gaveUp;
  }

  private channel(conn: Conn): Promise<ConfirmChannel> {
    // The 'pub' slot is only ever filled by the factory below, which creates a ConfirmChannel.
    return this.connection.lazyChannel(conn, 'pub', async () => {
      const ch = await conn.model.createConfirmChannel();
      ch.on('return', (msg: Message) => {
        const id = msg.properties.messageId as unknown;
        if (typeof id === 'string' && this.inflight.has(id)) this.returned.add(id);
      });
      return ch;
    }) as Promise<ConfirmChannel>;
  }

  private async sendAll(ch: ConfirmChannel, group: string, items: Outgoing[]): Promise<Outcome[]> {
    const names = groupQueueNames(this.prefix, group);
    const results: Array<Promise<Outcome>> = [];
    for (const item of items) {
      const now = Date.now();
      let headers = item.headers;
      let queue = item.target === 'dead' ? names.dead : names.work;
      if (item.target === 'work' && item.availableAt !== undefined && item.availableAt > now) {
        // Not due yet: into the delay level of the remaining time (see rabbitmq-topology.ts).
        const level = delayLevel(item.availableAt - now);
        headers = { ...headers, [HEADER_AVAILABLE_AT]: String(item.availableAt), [HEADER_HOP_DUE]: String(now + levelWaitMs(level)) };
        queue = names.delay[level] as string;
      }
      const id = item.messageId;
      this.inflight.add(id);
      this.returned.delete(id);
      let full = false;
      results.push(
        new Promise((resolve) => {
          const settle = (outcome: Outcome): void => {
            this.inflight.delete(id);
            this.returned.delete(id);
            resolve(outcome);
          };
          try {
            full = !ch.publish(
              '',
              queue,
              Buffer.from(item.body, 'utf8'),
              publishProperties(id, headers, item.priority),
              (err: unknown) => settle(err ? { error: err } : this.returned.has(id) ? 'returned' : 'ok'),
            );
          } catch (err) {
            settle({ error: err });
          }
        }),
      );
      if (full) {
        // Socket buffer full: wait for it to drain (or the channel to die) before writing more.
        await new Promise<void>((resolve) => {
          const done = (): void => {
            ch.off('drain', done);
            ch.off('close', done);
            resolve();
          };
          ch.on('drain', done);
          ch.on('close', done);
        });
      }
    }
    return Promise.all(results);
  }
}

/**
 * Local leases of the deliveries a broker instance handed out: each is a timer; when it runs out the
 * delivery is nacked with requeue and RabbitMQ delivers it again (redelivered flag set). Tokens are
 * unique per delivery; operations on tokens no longer held are no-ops and never send a stale
 * delivery tag (which would close the channel).
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Delivery } from '../../src/broker.js';
import { nackSafe } from './util.js';

/** A delivery handed out by `fetch` and not yet settled. */
export interface Held {
  readonly group: string;
  readonly channel: Channel;
  readonly msg: ConsumeMessage;
  timer: NodeJS.Timeout;
}

/** The deliveries this instance holds, by token. */
export class Leases {
  private readonly held = new Map<string, Held>();
  private readonly perGroup = new Map<string, number>();
  private seq = 0;

  constructor(private readonly instanceId: string) {}

  /** Leases `msg` (received on `channel`) for `leaseMs` and returns its delivery. */
  lease(group: string, channel: Channel, msg: ConsumeMessage, leaseMs: number): Delivery {
    const token = `${this.instanceId}.${(++this.seq).toString(36)}`;
    const timer = setTimeout(() => this.expire(token), leaseMs);
    timer.unref();
    this.held.set(token, { group, channel, msg, timer });
    this.perGroup.set(group, (this.perGroup.get(group) ?? 0) + 1);
    return { group, body: msg.content.toString('utf8'), token, redelivered: msg.fields.redelivered };
  }

  /** The held delivery of `token`, if still held. */
  get(token: string): Held | undefined {
    return this.held.get(token);
  }

  /** How many deliveries of `group` this instance holds. */
  count(group: string): number {
    return this.perGroup.get(group) ?? 0;
  }

  /** Stops holding `token` (its timer cleared); returns what was held, if anything. */
  drop(token: string): Held | undefined {
    const h = this.held.get(token);
    if (!h) return undefined;
    this.held.delete(token);
    clearTimeout(h.timer);
    const n = (this.perGroup.get(h.group) ?? 1) - 1;
    if (n > 0) this.perGroup.set(h.group, n);
    else this.perGroup.delete(h.group);
    return h;
  }

  /** Drops every delivery that matches (their channel is gone, or their queue). */
  dropWhere(match: (h: Held) => boolean): void {
    for (const [token, h] of this.held) if (match(h)) this.drop(token);
  }

  /** Renews the leases of `tokens`; returns those no longer held. */
  renew(tokens: ReadonlyArray<string>, leaseMs: number): string[] {
    const lost: string[] = [];
    for (const token of tokens) {
      const h = this.held.get(token);
      if (!h) {
        lost.push(token);
        continue;
      }
      clearTimeout(h.timer);
      h.timer = setTimeout(() => this.expire(token), leaseMs);
      h.timer.unref();
    }
    return lost;
  }

  /** Forgets every delivery (close: RabbitMQ requeues them with the channels). */
  clear(): void {
    for (const h of this.held.values()) clearTimeout(h.timer);
    this.held.clear();
    this.perGroup.clear();
  }

  private expire(token: string): void {
    const h = this.drop(token);
    if (h) nackSafe(h.channel, h.msg);
  }
}

/**
 * Acks of one consumer channel, batched per event-loop tick: the acks asked for in one tick are sent
 * together at its end, the longest run of settled deliveries at the head of the channel's unsettled
 * ones as a single `basic.ack` with `multiple` (one frame instead of one per message, which costs
 * RabbitMQ and the socket far less), every other one on its own. Nacks are sent at once.
 *
 * `multiple` acks every unsettled delivery of the channel up to the given tag, so every delivery
 * received on a tracked channel must be {@link ChannelAcks.track}ed on arrival, in arrival (= tag)
 * order; the run only ever covers deliveries whose ack was asked for. An ack still waiting for the
 * end of its tick when the channel or connection dies is lost with it and RabbitMQ delivers the
 * message again (at-least-once; the caller stored the outcome before it asked for the ack).
 * {@link ChannelAcks.flush} sends what is waiting at once (before the channel is closed).
 */
import type { Channel, Message } from 'amqplib';

/** Where a tracked delivery is: unsettled, ack asked for (not sent yet), or settled (sent, or gone). */
type EntryState = 0 | 1 | 2;
const UNSETTLED = 0;
const ACK_WANTED = 1;
const SETTLED = 2;

interface Entry {
  readonly msg: Message;
  state: EntryState;
}

const tracked = new WeakMap<Channel, ChannelAcks>();

/** The tracker of a consumer channel, if it has one (channels without one ack directly). */
export function acksOf(ch: Channel): ChannelAcks | undefined {
  return tracked.get(ch);
}

/** Starts batching the acks of a consumer channel (every delivery on it must then be tracked). */
export function trackAcks(ch: Channel): ChannelAcks {
  return new ChannelAcks(ch);
}

/** The unsettled deliveries of one consumer channel and its acks waiting for the end of the tick; see the module comment. */
export class ChannelAcks {
  /** Unsettled deliveries in tag order from `head` (settled ones are skipped lazily). */
  private queue: Entry[] = [];
  private head = 0;
  private readonly byTag = new Map<number, Entry>();
  private wanted: Entry[] = [];
  private scheduled = false;
  private dead = false;

  /** Starts tracking `channel` (every delivery on it must then be tracked). */
  constructor(private readonly channel: Channel) {
    tracked.set(channel, this);
    channel.once('close', () => {
      // RabbitMQ requeued everything unsettled on it; nothing can be sent any more.
      this.dead = true;
      this.queue = [];
      this.wanted = [];
      this.byTag.clear();
    });
  }

  /** Records a delivery as it arrives (in tag order). */
  track(msg: Message): void {
    if (this.dead) return;
    const entry: Entry = { msg, state: UNSETTLED };
    this.queue.push(entry);
    this.byTag.set(msg.fields.deliveryTag, entry);
  }

  /** Asks for the ack of `msg`; sent at the end of this tick (or by {@link flush}). */
  ack(msg: Message): void {
    const entry = this.byTag.get(msg.fields.deliveryTag);
    if (!entry || entry.state !== UNSETTLED) {
      if (!entry && !this.dead) sendSafe(() => this.channel.ack(msg));
      return;
    }
    entry.state = ACK_WANTED;
    this.wanted.push(entry);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Nacks `msg` with requeue at once. */
  nack(msg: Message): void {
    const entry = this.byTag.get(msg.fields.deliveryTag);
    if (entry) {
      if (entry.state !== UNSETTLED) return;
      this.settle(entry);
    }
    if (!this.dead) sendSafe(() => this.channel.nack(msg, false, true));
  }

  /** Sends every ack asked for so far. */
  flush(): void {
    this.scheduled = false;
    if (this.dead || this.wanted.length === 0) return;
    let last: Entry | undefined;
    let run = 0;
    while (this.head < this.queue.length) {
      const entry = this.queue[this.head] as Entry;
      if (entry.state === UNSETTLED) break;
      this.head++;
      if (entry.state === SETTLED) continue;
      this.settle(entry);
      last = entry;
      run++;
    }
    if (last) {
      const msg = last.msg;
      sendSafe(() => this.channel.ack(msg, run > 1));
    }
    for (const entry of this.wanted) {
      if (entry.state !== ACK_WANTED) continue;
      this.settle(entry);
      sendSafe(() => this.channel.ack(entry.msg));
    }
    this.wanted = [];
    // Drop settled entries once they are most of the queue (one long-running delivery at the head
    // must not let it grow with everything settled behind it).
    const kept = this.queue.length - this.head;
    if (kept > 1024 && kept > 2 * this.byTag.size) {
      this.queue = this.queue.slice(this.head).filter((e) => e.state !== SETTLED);
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private settle(entry: Entry): void {
    entry.state = SETTLED;
    this.byTag.delete(entry.msg.fields.deliveryTag);
  }
}

/** Runs a channel write, ignoring a channel that is already gone (RabbitMQ requeued its messages). */
function sendSafe(write: () => void): void {
  try {
    write();
  } catch {
    // channel closed
  }
}

/**
 * The delay mover: moves delayed messages of the groups this instance fetches from through the delay
 * levels (see `rabbitmq-topology.ts`) by confirmed publish-then-ack, so that no RabbitMQ crash can
 * lose one.
 *
 * Per group, one channel with one consumer per level queue (per-consumer prefetch
 * {@link MOVER_PREFETCH}). Messages of one level are due in the order they entered it, so the
 * messages pushed to a consumer are the level's earliest; the mover keeps one timer per level for
 * the earliest it holds, and when it fires publishes every due message on (to the level of the time
 * still remaining, or to the work queue), waits for the confirms, then acks them. A crash of this
 * process, of RabbitMQ or of the connection at any point leaves the message in its level (requeued
 * unacked) or in both places (a duplicate, which at-least-once allows), never in neither.
 *
 * RabbitMQ closes a channel whose delivery stays unacked longer than its `consumer_timeout` (30 min
 * by default), and a held message is invisible to others. So the mover holds a message at most
 * about `holdMs` (the broker's `delayHoldMs`): when a level's head is due later than that, the level's consumer is
 * cancelled, the far messages are handed back (requeued at their positions) and the level is
 * consumed again shortly before the earliest of them is due. Several processes moving the same
 * group share its messages as competing consumers; each message is moved by one of them at a time.
 */
import { randomUUID } from 'node:crypto';
import type { Channel, ConsumeMessage } from 'amqplib';
import { HEADER_AVAILABLE_AT, HEADER_HOP_DUE, groupQueueNames } from '../rabbitmq-topology.js';
import type { RabbitConnection } from './connection.js';
import type { Declarations } from './declarations.js';
import type { Publisher } from './publisher.js';
import { ackSafe, headerString, nackSafe, noop, priorityOf } from './util.js';

/** Messages a level consumer may hold unacked. */
export const MOVER_PREFETCH = 256;
/** Default of the longest time (ms) the mover holds a message before it is due to move; well under RabbitMQ's default consumer_timeout. */
export const DEFAULT_HOLD_MS = 60_000;
/** First pause before a group's mover starts again after a failure (ms); doubles up to 8 s. */
const RESTART_MS = 500;
/** Longest pause of a level whose head is far ahead before it is looked at again (ms). */
const MAX_PAUSE_MS = 3_600_000;

/** A message of a level held by this instance. */
interface HeldHop {
  readonly msg: ConsumeMessage;
  /** When its wait in this level ends (epoch ms). */
  readonly due: number;
  moving: boolean;
}

/** One level queue of a group as this instance consumes it. */
class Level {
  tag: string | null = null;
  held: HeldHop[] = [];
  timer: NodeJS.Timeout | null = null;
  /** Set while the level's consumer is cancelled because its head is due far ahead. */
  resumeTimer: NodeJS.Timeout | null = null;
  pausing = false;
  constructor(
    readonly index: number,
    readonly queue: string,
  ) {}
}

/** The mover of one group. */
class GroupMover {
  channel: Channel | null = null;
  starting = false;
  failures = 0;
  restartTimer: NodeJS.Timeout | null = null;
  readonly levels: Level[];
  constructor(
    readonly group: string,
    prefix: string,
  ) {
    this.levels = groupQueueNames(prefix, group).delay.map((queue, i) => new Level(i, queue));
  }
}

/** The delay movers of one broker instance; see the module comment. */
export class DelayMover {
  private readonly movers = new Map<string, GroupMover>();
  private seq = 0;

  constructor(
    private readonly prefix: string,
    private readonly instanceId: string,
    private readonly connection: RabbitConnection,
    private readonly declarations: Declarations,
    private readonly publisher: Publisher,
    private readonly holdMs: number,
  ) {}

  /** Starts moving the delayed messages of `group` (idempotent; runs until {@link stop} or close). */
  start(group: string): void {
    if (this.movers.has(group) || this.connection.closed) return;
    const m = new GroupMover(group, this.prefix);
    this.movers.set(group, m);
    void this.run(m);
  }

  /** Delayed messages of `group` this instance holds and is not already moving. */
  holding(group: string): number {
    const m = this.movers.get(group);
    if (!m) return 0;
    let n = 0;
    for (const level of m.levels) for (const h of level.held) if (!h.moving) n++;
    return n;
  }

  /** A new connection is up: start every mover again. */
  onConnected(): void {
    for (const m of this.movers.values()) if (!m.channel) void this.run(m);
  }

  /** The connection was lost: RabbitMQ requeued what the movers held. */
  onLost(): void {
    for (const m of this.movers.values()) this.reset(m);
  }

  /** Stops moving `group` (purge); what it held is handed back. */
  async stop(group: string): Promise<void> {
    const m = this.movers.get(group);
    if (!m) return;
    this.movers.delete(group);
    const ch = m.channel;
    this.reset(m);
    await ch?.close().catch(noop);
  }

  /** Stops every mover; returns their channels to close (closing hands back what they held). */
  close(): Array<Promise<Channel> | null> {
    const channels: Array<Promise<Channel> | null> = [];
    for (const m of this.movers.values()) {
      if (m.channel) channels.push(Promise.resolve(m.channel));
      this.reset(m);
    }
    this.movers.clear();
    return channels;
  }

  /** Forgets the state of a mover whose channel is gone (or going). */
  private reset(m: GroupMover): void {
    m.channel = null;
    if (m.restartTimer) clearTimeout(m.restartTimer);
    m.restartTimer = null;
    for (const level of m.levels) {
      if (level.timer) clearTimeout(level.timer);
      if (level.resumeTimer) clearTimeout(level.resumeTimer);
      level.timer = null;
      level.resumeTimer = null;
      level.tag = null;
      level.held = [];
      level.pausing = false;
    }
  }

  private current(m: GroupMover): boolean {
    return !this.connection.closed && this.movers.get(m.group) === m;
  }

  /** Opens the mover's channel and consumes every level; on failure tries again after a pause. */
  private async run(m: GroupMover): Promise<void> {
    if (m.starting || m.channel || !this.current(m)) return;
    m.starting = true;
    let ch: Channel | null = null;
    try {
      const conn = await this.connection.get();
      await this.declarations.ensureGroup(conn, m.group);
      if (!this.current(m)) return;
      ch = await this.connection.privateChannel(conn);
      if (!this.current(m)) {
        await ch.close().catch(noop); // stopped meanwhile
        return;
      }
      const channel = ch;
      channel.on('close', () => this.onChannelClosed(m, channel));
      m.channel = channel;
      // Per-consumer prefetch: applies to each level consumer created on the channel from now on.
      await channel.prefetch(MOVER_PREFETCH, false);
      await Promise.all(m.levels.map((level) => this.consume(m, channel, level)));
      m.failures = 0;
    } catch {
      m.failures++;
      if (ch && m.channel === ch) {
        this.reset(m);
        await ch.close().catch(noop);
      }
      this.scheduleRestart(m);
    } finally {
      m.starting = false;
    }
  }

  private scheduleRestart(m: GroupMover): void {
    if (!this.current(m) || m.restartTimer || !this.connection.current) return; // a reconnection restarts it
    m.restartTimer = setTimeout(
      () => {
        m.restartTimer = null;
        void this.run(m);
      },
      Math.min(8000, RESTART_MS * 2 ** Math.min(4, m.failures)),
    );
    m.restartTimer.unref();
  }

  private onChannelClosed(m: GroupMover, ch: Channel): void {
    if (m.channel !== ch) return;
    // RabbitMQ requeued what the channel held (e.g. a level queue deleted elsewhere closed it).
    this.reset(m);
    this.scheduleRestart(m);
  }

  private async consume(m: GroupMover, ch: Channel, level: Level): Promise<void> {
    if (m.channel !== ch || level.tag) return;
    const tag = `tasuki.mover.${this.instanceId}.${++this.seq}`;
    level.tag = tag;
    await ch.consume(level.queue, (msg) => this.onMessage(m, ch, level, tag, msg), { noAck: false, consumerTag: tag });
  }

  private onMessage(m: GroupMover, ch: Channel, level: Level, tag: string, msg: ConsumeMessage | null): void {
    if (m.channel !== ch) return;
    if (msg === null) {
      // Cancelled by RabbitMQ (queue deleted): start the group again (it declares its queues).
      if (level.tag === tag) {
        this.reset(m);
        void ch.close().catch(noop);
        this.connection.current?.groups.delete(m.group);
        this.scheduleRestart(m);
      }
      return;
    }
    const due = Number(headerString(msg, HEADER_HOP_DUE));
    // A message without a hop due (not put there by tasuki) moves at once.
    level.held.push({ msg, due: Number.isFinite(due) ? due : 0, moving: false });
    this.schedule(m, ch, level);
  }

  /** Arms the level's timer for its earliest held message, or pauses the level if that is far ahead. */
  private schedule(m: GroupMover, ch: Channel, level: Level): void {
    const now = Date.now();
    let earliest = Infinity;
    let far = false;
    for (const h of level.held) {
      if (h.moving) continue;
      if (h.due < earliest) earliest = h.due;
      if (h.due > now + this.holdMs) far = true;
    }
    if (far && !level.pausing) void this.pause(m, ch, level);
    if (level.timer) clearTimeout(level.timer);
    level.timer = null;
    if (earliest === Infinity || earliest > now + this.holdMs) return;
    level.timer = setTimeout(() => {
      level.timer = null;
      this.moveDue(m, ch, level);
    }, Math.max(0, earliest - now));
    level.timer.unref();
  }

  /**
   * The level's head is due later than the mover may hold it: cancel the consumer (nothing more
   * comes), hand back the far messages (requeued in their positions), keep the near ones, and
   * consume again shortly before the earliest far one is due.
   */
  private async pause(m: GroupMover, ch: Channel, level: Level): Promise<void> {
    level.pausing = true;
    const tag = level.tag;
    try {
      if (tag) await ch.cancel(tag);
    } catch {
      return; // channel gone: RabbitMQ requeued everything
    }
    if (m.channel !== ch) return;
    level.tag = null;
    const limit = Date.now() + this.holdMs;
    const far = level.held.filter((h) => !h.moving && h.due > limit);
    level.held = level.held.filter((h) => !far.includes(h));
    for (const h of far) nackSafe(ch, h.msg);
    const wait = far.length === 0 ? 0 : Math.min(...far.map((h) => h.due)) - this.holdMs / 2 - Date.now();
    level.resumeTimer = setTimeout(
      () => {
        level.resumeTimer = null;
        level.pausing = false;
        if (m.channel === ch) void this.consume(m, ch, level).catch(() => this.scheduleRestart(m));
      },
      far.length === 0 ? 0 : Math.min(MAX_PAUSE_MS, Math.max(1000, wait)),
    );
    level.resumeTimer.unref();
    this.schedule(m, ch, level);
  }

  /** Publishes every due message of the level on (confirmed), then acks them. */
  private moveDue(m: GroupMover, ch: Channel, level: Level): void {
    if (m.channel !== ch) return;
    const now = Date.now();
    const batch = level.held.filter((h) => !h.moving && h.due <= now);
    if (batch.length === 0) {
      this.schedule(m, ch, level);
      return;
    }
    for (const h of batch) h.moving = true;
    const items = batch.map((h) => {
      const at = Number(headerString(h.msg, HEADER_AVAILABLE_AT));
      return {
        body: h.msg.content.toString('utf8'),
        target: 'work' as const,
        availableAt: Number.isFinite(at) ? at : undefined,
        messageId: randomUUID(),
        priority: priorityOf(h.msg),
      };
    });
    void this.publisher.publish(m.group, items, () => m.channel === ch).then(
      (published) => {
        if (m.channel !== ch) return; // channel gone: RabbitMQ requeued them; the copies are duplicates at worst
        level.held = level.held.filter((h) => !batch.includes(h));
        for (const h of batch) if (published) ackSafe(ch, h.msg);
        else nackSafe(ch, h.msg);
        this.schedule(m, ch, level);
      },
      () => {
        // Not confirmed within the operation timeout (or closed): hand them back after a pause.
        setTimeout(() => {
          if (m.channel !== ch) return;
          level.held = level.held.filter((h) => !batch.includes(h));
          for (const h of batch) nackSafe(ch, h.msg);
        }, 1000).unref();
      },
    );
  }
}

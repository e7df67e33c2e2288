/**
 * RabbitMQ topology of tasuki: the names and arguments of the queues and exchanges that
 * `brokers/rabbitmq` declares, the plugin-free delay ladder, and the mapping of RabbitMQ's
 * "inequivalent arguments" refusal to {@link TopologyMismatchError}.
 *
 * ## Per group `G` (prefix `P`, default `tasuki`)
 * - `P.work.G` — the work queue (durable; `x-queue-type` classic or quorum).
 * - `P.dead.G` — the dead-letter store (same type).
 * - `P.delay.NN.G` for `NN` = `00`..`31` — delay level queues with a fixed `x-message-ttl` of
 *   2^NN ms, dead-lettering into exchange `P.delay.(NN-1)` (level 00 into the work queue through the
 *   default exchange). Quorum delay queues use `x-dead-letter-strategy: at-least-once` (with
 *   `x-overflow: reject-publish`, which that strategy requires) so that no hop can drop a message.
 *
 * ## Shared by all groups of a prefix
 * - `P.delay.NN` — 32 durable topic exchanges, one per level.
 *
 * ## How a delay travels
 * A delay of `d` ms (1 ≤ d < 2^32) is written in binary, most significant bit first, as 32 words of
 * the routing key followed by the group name: `b31.b30.….b0.G`. The message is published to the
 * exchange of its highest set bit. Exchange `P.delay.N` routes a message whose bit N is 1 into the
 * group's level queue `P.delay.NN.G` (binding `*.….1.*.….G`), where it waits exactly 2^N ms, and
 * a message whose bit N is 0 straight on to exchange `P.delay.(N-1)` (exchange-to-exchange binding
 * `*.….0.#`). Dead-lettering keeps the routing key, so on expiry the message enters the next
 * exchange down. Exchange `P.delay.00` routes bit 0 = 0 into the work queue. Every level queue has
 * one fixed TTL, so its messages expire in the order they entered it: a long delay never holds back a
 * short one (RabbitMQ expires messages only at a queue's head). A message makes one queue hop per set
 * bit of its delay, at most 32; its lateness is the sum of the per-hop dead-lettering latencies
 * (about a millisecond each on an idle local broker). Delays of 2^32 ms (49.7 days) or more take the
 * longest path and are delayed again on arrival (the `x-tasuki-available-at` header).
 */
import { TopologyMismatchError } from '../src/errors.js';

/** Number of delay levels: level N holds messages for 2^N ms. */
export const DELAY_LEVELS = 32;

/** Longest delay one pass through the delay ladder can express (2^32 - 1 ms, about 49.7 days). */
export const MAX_LADDER_DELAY_MS = 2 ** DELAY_LEVELS - 1;

/** Queue type of every queue tasuki declares. `quorum` is meant for RabbitMQ clusters. */
export type RabbitMQQueueType = 'classic' | 'quorum';

/** Allowed prefixes: short enough that every derived queue name stays under RabbitMQ's 255 bytes. */
export const PREFIX_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Header carrying the epoch ms before which a message must not be delivered. */
export const HEADER_AVAILABLE_AT = 'x-tasuki-available-at';
/** Header of a dead letter: reason code. */
export const HEADER_DEAD_CODE = 'x-tasuki-dead-code';
/** Header of a dead letter: reason message. */
export const HEADER_DEAD_MESSAGE = 'x-tasuki-dead-message';
/** Header of a dead letter: when it was dead-lettered (epoch ms, decimal string). */
export const HEADER_DEAD_AT = 'x-tasuki-dead-at';

/** Names of the queues of one group. */
export interface GroupQueueNames {
  /** Work queue. */
  readonly work: string;
  /** Dead-letter queue. */
  readonly dead: string;
  /** Delay level queues, index = level. */
  readonly delay: readonly string[];
}

/** Two-digit level number used in names. */
function level2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Name of the shared topic exchange of delay level `level`. */
export function delayExchangeName(prefix: string, level: number): string {
  return `${prefix}.delay.${level2(level)}`;
}

/** Names of all shared delay exchanges of a prefix, level 0 first. */
export function delayExchangeNames(prefix: string): string[] {
  return Array.from({ length: DELAY_LEVELS }, (_, n) => delayExchangeName(prefix, n));
}

/** Names of the queues of `group` under `prefix`. */
export function groupQueueNames(prefix: string, group: string): GroupQueueNames {
  return {
    work: `${prefix}.work.${group}`,
    dead: `${prefix}.dead.${group}`,
    delay: Array.from({ length: DELAY_LEVELS }, (_, n) => `${prefix}.delay.${level2(n)}.${group}`),
  };
}

/** Arguments shared by every queue of the given type. */
function typeArguments(type: RabbitMQQueueType): Record<string, unknown> {
  return { 'x-queue-type': type };
}

/** Arguments of a work or dead-letter queue. */
export function plainQueueArguments(type: RabbitMQQueueType): Record<string, unknown> {
  return typeArguments(type);
}

/** Arguments of the delay queue of `level` of a group. */
export function delayQueueArguments(prefix: string, group: string, level: number, type: RabbitMQQueueType): Record<string, unknown> {
  const args: Record<string, unknown> = { ...typeArguments(type), 'x-message-ttl': 2 ** level };
  if (level === 0) {
    args['x-dead-letter-exchange'] = '';
    args['x-dead-letter-routing-key'] = groupQueueNames(prefix, group).work;
  } else {
    args['x-dead-letter-exchange'] = delayExchangeName(prefix, level - 1);
  }
  if (type === 'quorum') {
    args['x-dead-letter-strategy'] = 'at-least-once';
    args['x-overflow'] = 'reject-publish';
  }
  return args;
}

/** Binding key on exchange `level` that selects messages of `group` whose bit `level` equals `bit`. */
export function levelBindingKey(level: number, bit: 0 | 1, group: string): string {
  const words = new Array<string>(DELAY_LEVELS).fill('*');
  words[DELAY_LEVELS - 1 - level] = String(bit);
  return `${words.join('.')}.${group}`;
}

/** Binding key of the exchange-to-exchange binding from level `level` (≥ 1) down to `level - 1`. */
export function passDownBindingKey(level: number): string {
  return `${'*.'.repeat(DELAY_LEVELS - 1 - level)}0.#`;
}

/** Where to publish a message of `group` that must wait `delayMs` before it is ready. */
export interface DelayRoute {
  /** Exchange to publish to (that of the highest set bit). */
  readonly exchange: string;
  /** Routing key: 32 bit words, most significant first, then the group. */
  readonly routingKey: string;
  /** The delay the route encodes (ms), after rounding up and capping at {@link MAX_LADDER_DELAY_MS}. */
  readonly delayMs: number;
}

/** Computes the delay-ladder route of a delay (> 0 ms; rounded up to whole ms). */
export function delayRoute(prefix: string, group: string, delayMs: number): DelayRoute {
  const d = Math.min(MAX_LADDER_DELAY_MS, Math.max(1, Math.ceil(delayMs)));
  const words: string[] = [];
  let top = -1;
  for (let level = DELAY_LEVELS - 1; level >= 0; level--) {
    const bit = Math.floor(d / 2 ** level) % 2;
    if (bit === 1 && top < 0) top = level;
    words.push(String(bit));
  }
  return { exchange: delayExchangeName(prefix, Math.max(0, top)), routingKey: `${words.join('.')}.${group}`, delayMs: d };
}

/** The AMQP reply code and text of an amqplib error, if it carries one. */
export function amqpReplyCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/** AMQP reply code PRECONDITION_FAILED (e.g. a declaration with inequivalent arguments). */
export const PRECONDITION_FAILED = 406;
/** AMQP reply code NOT_FOUND (e.g. a passive declaration of a missing queue). */
export const NOT_FOUND = 404;

/**
 * Turns RabbitMQ's refusal of a declaration (406 PRECONDITION_FAILED) into a
 * {@link TopologyMismatchError} naming the object and the differing argument; returns `undefined` for
 * any other error.
 */
export function toTopologyMismatch(err: unknown, what: string, expected: Record<string, unknown>): TopologyMismatchError | undefined {
  if (amqpReplyCode(err) !== PRECONDITION_FAILED) return undefined;
  const raw = err instanceof Error ? err.message : String(err);
  const m = /with message "([^"]*)"/.exec(raw);
  const detail = m?.[1] ?? raw;
  return new TopologyMismatchError(
    `${what} already exists with other arguments than tasuki declares (${JSON.stringify(expected)}): ${detail}`,
  );
}

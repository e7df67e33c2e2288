/**
 * RabbitMQ topology of tasuki: the names and arguments of the queues that `brokers/rabbitmq`
 * declares, the delay levels, and the mapping of RabbitMQ's "inequivalent arguments" refusal to
 * {@link TopologyMismatchError}.
 *
 * ## Per group `G` (prefix `P`, default `tasuki`; a prefix holds no `.`, so names never coincide)
 * - `P.work.G` — the work queue (durable; `x-queue-type` classic or quorum).
 * - `P.dead.G` — the dead-letter store (same type).
 * - `P.delay2.NN.G` for `NN` = `00`..`31` — delay level queues (same type, no TTL, no
 *   dead-lettering). A message in level NN waits 2^NN ms from when it entered (header
 *   `x-tasuki-hop-due`).
 *
 * ## How a delay travels
 * Hops are made by tasuki itself, never by RabbitMQ's TTL dead-lettering (which moves messages
 * between classic queues at most once, so a node crash mid-hop lost them): a message still
 * `r` ms from its `x-tasuki-available-at` is published (persistent, confirmed) to the level of the
 * highest set bit of `r` (capped at 31), with `x-tasuki-hop-due` = now + 2^level. The delay mover of
 * each process that fetches from the group (`rabbitmq/delay-mover.ts`) consumes the level queues,
 * and at a message's hop due publishes it again (confirmed) to the level of what remains, or to the
 * work queue once it is due, and only then acks it: a crash at any point duplicates a hop, never
 * loses the message. Every level has one fixed wait, so its messages are due in the order they
 * entered it: a long delay never holds back a short one, and the mover only needs a queue's head.
 * A message makes about one hop per set bit of its delay (at most 32 for one pass); since each hop
 * re-reads the remaining time, hop latencies do not add up. Delays of 2^32 ms or more simply pass
 * through level 31 several times.
 *
 * ## Earlier versions
 * The first delay ladder (queues `P.delay.NN.G` with `x-message-ttl` dead-lettering through the
 * shared topic exchanges `P.delay.NN`) is no longer declared. Messages still in it reach the work
 * queue by themselves; `purge` deletes its queues and `deleteDelayExchanges` its exchanges.
 */
import { TopologyMismatchError } from '../src/errors.js';

/** Number of delay levels: level N holds messages for 2^N ms. */
export const DELAY_LEVELS = 32;


/** Queue type of every queue tasuki declares. `quorum` is meant for RabbitMQ clusters. */
export type RabbitMQQueueType = 'classic' | 'quorum';

/**
 * Allowed prefixes: no `.` (the separator of the name parts, so that two prefixes' names never
 * coincide), and short enough that every derived queue name stays under RabbitMQ's 255 bytes.
 */
export const PREFIX_PATTERN = /^[A-Za-z0-9_:-]{1,64}$/;

/** Header carrying the epoch ms before which a message must not be delivered. */
export const HEADER_AVAILABLE_AT = 'x-tasuki-available-at';
/** Header carrying the epoch ms at which a message's wait in its current delay level ends. */
export const HEADER_HOP_DUE = 'x-tasuki-hop-due';
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
  /** Level queues of the first delay ladder (no longer declared; deleted by `purge`). */
  readonly legacyDelay: readonly string[];
}

/** Two-digit level number used in names. */
function level2(n: number): string {
  return String(n).padStart(2, '0');
}

/** Names of the shared topic exchanges of the first delay ladder of a prefix (no longer declared), level 0 first. */
export function delayExchangeNames(prefix: string): string[] {
  return Array.from({ length: DELAY_LEVELS }, (_, n) => `${prefix}.delay.${level2(n)}`);
}

/** Names computed recently (each publish asks for them); emptied when it grows past {@link NAMES_CACHED}. */
const namesCache = new Map<string, GroupQueueNames>();
const NAMES_CACHED = 1000;

/** Names of the queues of `group` under `prefix` (computed once, then cached). */
export function groupQueueNames(prefix: string, group: string): GroupQueueNames {
  const key = `${prefix}\n${group}`;
  let names = namesCache.get(key);
  if (!names) {
    if (namesCache.size >= NAMES_CACHED) namesCache.clear();
    names = computeNames(prefix, group);
    namesCache.set(key, names);
  }
  return names;
}

function computeNames(prefix: string, group: string): GroupQueueNames {
  return {
    work: `${prefix}.work.${group}`,
    dead: `${prefix}.dead.${group}`,
    delay: Array.from({ length: DELAY_LEVELS }, (_, n) => `${prefix}.delay2.${level2(n)}.${group}`),
    legacyDelay: Array.from({ length: DELAY_LEVELS }, (_, n) => `${prefix}.delay.${level2(n)}.${group}`),
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

/** Highest AMQP priority of a work queue declared with priorities (tasuki's 0..9). */
export const MAX_QUEUE_PRIORITY = 9;

/**
 * Arguments of a work queue: with `priorities` (classic queues only) `x-max-priority` 9. A work
 * queue that already exists without it (or with it, when the option is off) is refused by RabbitMQ
 * and reported as {@link TopologyMismatchError}: every process of a group must agree on the option.
 */
export function workQueueArguments(type: RabbitMQQueueType, priorities: boolean): Record<string, unknown> {
  return priorities ? { ...typeArguments(type), 'x-max-priority': MAX_QUEUE_PRIORITY } : typeArguments(type);
}

/**
 * Extra arguments of a quorum work queue with a delivery limit: `x-delivery-limit`, and
 * dead-lettering into the group's dead-letter queue (default exchange, routing key = its name) so
 * that RabbitMQ never drops a message over the limit. Only the work queue gets them: the delay mover
 * and the dead-letter listing return messages to their queues as a matter of course, and RabbitMQ
 * counts each return as a delivery.
 */
export function deliveryLimitArguments(deadQueue: string, limit: number): Record<string, unknown> {
  return { 'x-delivery-limit': limit, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': deadQueue };
}

/** Arguments of a delay level queue: a plain queue (the waiting is done by the delay mover). */
export function delayQueueArguments(type: RabbitMQQueueType): Record<string, unknown> {
  return typeArguments(type);
}

/** Where a message that must still wait `remainingMs` (> 0) goes: the level of its highest set bit, capped at the top level. */
export function delayLevel(remainingMs: number): number {
  const d = Math.max(1, Math.ceil(remainingMs));
  return Math.min(DELAY_LEVELS - 1, Math.floor(Math.log2(d)));
}

/** How long a message waits in delay level `level` (ms). */
export function levelWaitMs(level: number): number {
  return 2 ** level;
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

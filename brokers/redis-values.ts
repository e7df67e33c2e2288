/**
 * Argument checks and script reply parsing of the Redis broker: what goes into a script call and
 * what comes back out of one, validated with typed errors.
 */
import type { DeadLetterReason, Delivery, FetchLimits, PublishOptions, QueueCounts } from '../src/broker.js';
import { DEFAULT_PRIORITY, checkKey, checkPriority } from '../src/limits.js';
import { ConnectionError, InvalidOptionError } from '../src/errors.js';
import { assertName } from '../src/names.js';

/** Validates a lease length and rounds it up to whole ms. */
export function positiveMs(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InvalidOptionError(`${name} must be a finite number > 0, got ${String(value)}`);
  }
  return Math.ceil(value);
}

/** `availableAt` as a script argument: whole epoch ms, 0 for "now". */
export function availableAtArg(at: number | undefined): number {
  if (at === undefined) return 0;
  if (typeof at !== 'number' || !Number.isFinite(at)) throw new InvalidOptionError(`availableAt must be a finite number of epoch ms, got ${String(at)}`);
  return Math.max(0, Math.ceil(at));
}

/** The validated group of a delivery. */
export function deliveryGroup(delivery: Delivery): string {
  const group = delivery?.group;
  assertName('group', group);
  if (typeof delivery.token !== 'string') throw new InvalidOptionError('delivery token must be a string');
  return group;
}

/** Validated dead letter ids, or undefined for "all". */
export function idList(ids: ReadonlyArray<string> | undefined): string[] | undefined {
  if (ids === undefined) return undefined;
  if (!Array.isArray(ids)) throw new InvalidOptionError('ids must be an array of strings');
  return ids.map((id) => {
    if (typeof id !== 'string') throw new InvalidOptionError('ids must be an array of strings');
    return id;
  });
}

/** A script reply expected to be an array of strings. */
export function stringArray(reply: unknown, what: string): string[] {
  if (!Array.isArray(reply)) throw new ConnectionError(`unexpected reply of the ${what} script`);
  return reply.map((x) => String(x));
}

/** Parses the reply of the fetch script: `[nextEventMs, throttleMs, token, body, redelivered, ...]`. */
export function parseFetchReply(group: string, reply: unknown): { deliveries: Delivery[]; nextEventMs: number; throttleMs: number } {
  if (!Array.isArray(reply) || reply.length < 2 || (reply.length - 2) % 3 !== 0) {
    throw new ConnectionError('unexpected reply of the fetch script');
  }
  const deliveries: Delivery[] = [];
  for (let i = 2; i < reply.length; i += 3) {
    deliveries.push({ group, token: String(reply[i]), body: String(reply[i + 1]), redelivered: Number(reply[i + 2]) === 1 });
  }
  return { deliveries, nextEventMs: Number(reply[0]), throttleMs: Number(reply[1]) };
}

/** The lane of a message (level digit + key), or '' for a plain one (default priority, no key). */
export function laneArg(options: PublishOptions | undefined): string {
  if (options === undefined) return '';
  const { priority, key } = options;
  if (priority === undefined && key === undefined) return '';
  const level = priority === undefined ? DEFAULT_PRIORITY : checkPriority(priority);
  if (key === undefined) return level === DEFAULT_PRIORITY ? '' : String(level);
  return String(level) + checkKey(key);
}

/** The fetch script's limit arguments (0: none). */
export function flowArgs(flow: FetchLimits | undefined): number[] {
  if (flow === undefined) return [];
  const g = flow.rateLimit;
  const k = flow.keyRateLimit;
  return [
    g ? g.limit : 0, g ? g.periodMs : 1, g ? (g.burst ?? g.limit) : 1,
    flow.keyConcurrency ?? 0,
    k ? k.limit : 0, k ? k.periodMs : 1, k ? (k.burst ?? k.limit) : 1,
  ];
}

/** The counts of a group from the replies of the counts script of each of its shards (`{ready, delayed, inFlight, dead}`). */
export function sumCounts(replies: ReadonlyArray<unknown>): QueueCounts {
  const sum = [0, 0, 0, 0];
  for (const reply of replies) {
    if (!Array.isArray(reply) || reply.length !== 4) throw new ConnectionError('unexpected reply of the counts script');
    for (let i = 0; i < 4; i++) sum[i]! += Number(reply[i]);
  }
  return { ready: sum[0]!, delayed: sum[1]!, inFlight: sum[2]!, dead: sum[3]! };
}

/** Parses a stored dead-letter reason (tolerates foreign or damaged values). */
export function parseReason(json: string): DeadLetterReason {
  try {
    const v: unknown = JSON.parse(json);
    if (v !== null && typeof v === 'object') {
      const o = v as { code?: unknown; message?: unknown };
      return { code: String(o.code ?? ''), message: String(o.message ?? '') };
    }
  } catch {
    // fall through
  }
  return { code: '', message: json };
}

/** A publish waiting for the end of the current tick. */
export interface PendingPublish {
  at: number;
  body: string;
  /** Lane (priority and key), '' for a plain message. */
  lane: string;
}

/** The publish script and its arguments for `items`: the plain one, or the flow one when a message has a priority or key. */
export function publishArgs(items: ReadonlyArray<PendingPublish>): { name: 'tasukiPublish' | 'tasukiPublishFlow'; args: Array<string | number> } {
  const args: Array<string | number> = [items.length];
  if (items.some((p) => p.lane !== '')) {
    for (const p of items) args.push(p.at, p.lane, p.body);
    return { name: 'tasukiPublishFlow', args };
  }
  for (const p of items) args.push(p.at, p.body);
  return { name: 'tasukiPublish', args };
}

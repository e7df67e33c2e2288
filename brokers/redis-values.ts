/**
 * Argument checks and script reply parsing of the Redis broker: what goes into a script call and
 * what comes back out of one, validated with typed errors.
 */
import type { DeadLetterReason, Delivery } from '../src/broker.js';
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

/** Parses the reply of the fetch script: `[nextEventMs, token, body, redelivered, ...]`. */
export function parseFetchReply(group: string, reply: unknown): { deliveries: Delivery[]; nextEventMs: number } {
  if (!Array.isArray(reply) || reply.length < 1 || (reply.length - 1) % 3 !== 0) {
    throw new ConnectionError('unexpected reply of the fetch script');
  }
  const deliveries: Delivery[] = [];
  for (let i = 1; i < reply.length; i += 3) {
    deliveries.push({ group, token: String(reply[i]), body: String(reply[i + 1]), redelivered: Number(reply[i + 2]) === 1 });
  }
  return { deliveries, nextEventMs: Number(reply[0]) };
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

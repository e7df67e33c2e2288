/**
 * Priorities, keys and rate limits: the value ranges, their validation, the group options a worker
 * passes to its broker, the token bucket the in-memory broker evaluates, and the refusal
 * ({@link UnsupportedError}) of a feature a broker does not enforce natively.
 */
import type { Backend } from './backend.js';
import type { Broker, FetchLimits, DispatchFeature, RateLimit } from './broker.js';
import { InvalidOptionError, UnsupportedError } from './errors.js';

/** Lowest priority. */
export const MIN_PRIORITY = 0;
/** Highest priority. */
export const MAX_PRIORITY = 9;
/** Priority of a task sent without one (the middle of the range). */
export const DEFAULT_PRIORITY = 5;
/** Keys: 1 to 200 printable ASCII characters without spaces. */
export const KEY_PATTERN = /^[\x21-\x7e]{1,200}$/;

/** Flow-control options of one group, given to `server.run(group, concurrency, options)`. */
export interface GroupOptions {
  /** Rate limit of the whole group, global across every worker process (default: none). */
  rateLimit?: RateLimit;
  /** Most tasks of one key running at once, across every worker process (default: no bound). */
  keyConcurrency?: number;
  /** Rate limit of each key, global across every worker process (default: none). */
  keyRateLimit?: RateLimit;
}

/** Checks a priority (whole number 0..9). */
export function checkPriority(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < MIN_PRIORITY || v > MAX_PRIORITY) {
    throw new InvalidOptionError(`priority must be a whole number from ${MIN_PRIORITY} to ${MAX_PRIORITY} (higher first), got ${String(v)}`);
  }
  return v;
}

/** Checks a flow-control key. */
export function checkKey(v: unknown): string {
  if (typeof v !== 'string' || !KEY_PATTERN.test(v)) {
    throw new InvalidOptionError('key must be 1 to 200 printable ASCII characters without spaces');
  }
  return v;
}

/** Checks a rate limit; returns a copy with `burst` resolved. */
export function checkRateLimit(name: string, v: unknown): Required<RateLimit> {
  const r = v as Partial<RateLimit> | null;
  if (typeof r !== 'object' || r === null) throw new InvalidOptionError(`${name} must be { limit, periodMs, burst? }`);
  const whole = (field: string, x: unknown, max: number): number => {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > max) {
      throw new InvalidOptionError(`${name}.${field} must be a whole number from 1 to ${max}, got ${String(x)}`);
    }
    return x;
  };
  const limit = whole('limit', r.limit, 1_000_000_000);
  const periodMs = whole('periodMs', r.periodMs, 31_536_000_000);
  const burst = r.burst === undefined ? limit : whole('burst', r.burst, 1_000_000_000);
  return { limit, periodMs, burst };
}

/** Checks group options and returns the fetch flow they ask for (`undefined`: none). */
export function resolveGroupLimits(o: GroupOptions | undefined): FetchLimits | undefined {
  if (o === undefined) return undefined;
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('group options must be an object');
  const flow: FetchLimits = {};
  if (o.rateLimit !== undefined) flow.rateLimit = checkRateLimit('rateLimit', o.rateLimit);
  if (o.keyRateLimit !== undefined) flow.keyRateLimit = checkRateLimit('keyRateLimit', o.keyRateLimit);
  if (o.keyConcurrency !== undefined) {
    if (!Number.isInteger(o.keyConcurrency) || o.keyConcurrency < 1) {
      throw new InvalidOptionError(`keyConcurrency must be a whole number ≥ 1, got ${String(o.keyConcurrency)}`);
    }
    flow.keyConcurrency = o.keyConcurrency;
  }
  return Object.keys(flow).length === 0 ? undefined : flow;
}

/** Throws {@link UnsupportedError} unless `broker` declares `feature`. */
export function requireFeature(broker: Broker, feature: DispatchFeature, what: string): void {
  if (broker.dispatchFeatures?.has(feature)) return;
  throw new UnsupportedError(`${what} is not supported by the ${broker.kind} broker (it cannot enforce "${feature}" natively); see the support table in the README`);
}

/**
 * Refuses (UnsupportedError) group options the broker cannot enforce: called by the worker at `run()`.
 * A group `rateLimit` is also accepted when the backend keeps shared buckets (`Backend.rateLimits`):
 * the worker then enforces it (`src/worker-rate-gate.ts`).
 */
export function checkGroupSupport(broker: Broker, group: string, flow: FetchLimits | undefined, backend?: Backend): void {
  if (flow === undefined) return;
  if (flow.rateLimit && backend?.rateLimits === undefined) {
    requireFeature(broker, 'rateLimit', `group "${group}": rateLimit (without a backend that keeps shared rate-limit buckets, e.g. the Redis backend)`);
  }
  if (flow.keyConcurrency !== undefined) requireFeature(broker, 'keyConcurrency', `group "${group}": keyConcurrency`);
  if (flow.keyRateLimit) requireFeature(broker, 'keyRateLimit', `group "${group}": keyRateLimit`);
}

/** Refuses (UnsupportedError) send controls the broker cannot honour: called at `send`. */
export function checkSendSupport(broker: Broker, priority: number | undefined, key: string | undefined): void {
  if (priority !== undefined) requireFeature(broker, 'priority', 'the priority send control');
  if (key !== undefined) requireFeature(broker, 'key', 'the key send control');
}

/**
 * A token bucket (the in-memory broker's; the Redis broker runs the same arithmetic in Lua): holds
 * up to `burst` tokens, refilled at `limit` per `periodMs`, starting full. In any window of
 * `periodMs`, at most `limit + burst` takes succeed.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  /** @param rate the limit @param now start time (ms) */
  constructor(
    private rate: Required<RateLimit>,
    now: number,
  ) {
    this.tokens = rate.burst;
    this.at = now;
  }

  /** Adopts another limit (a worker started with other options); keeps the tokens, capped. */
  setRate(rate: Required<RateLimit>): void {
    if (rate.limit === this.rate.limit && rate.periodMs === this.rate.periodMs && rate.burst === this.rate.burst) return;
    this.rate = rate;
    this.tokens = Math.min(this.tokens, rate.burst);
  }

  private refill(now: number): void {
    if (now > this.at) {
      this.tokens = Math.min(this.rate.burst, this.tokens + ((now - this.at) * this.rate.limit) / this.rate.periodMs);
      this.at = now;
    }
  }

  /** Whole tokens available now (at most `want`), without taking them. */
  available(now: number, want: number): number {
    this.refill(now);
    return Math.min(want, Math.floor(this.tokens));
  }

  /** Takes `n` tokens (the caller checked {@link available}). */
  take(n: number): void {
    this.tokens -= n;
  }

  /** Whether the bucket is full (a bucket dropped now and made again later would allow no more). */
  isFull(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.rate.burst;
  }

  /** Milliseconds until the next whole token (0 when one is there). */
  nextInMs(now: number): number {
    this.refill(now);
    if (this.tokens >= 1) return 0;
    return Math.ceil(((1 - this.tokens) * this.rate.periodMs) / this.rate.limit);
  }
}

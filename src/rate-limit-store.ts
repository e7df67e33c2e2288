/**
 * Shared token buckets for flow control a broker cannot enforce itself: the optional
 * `Backend.rateLimits`. A worker whose broker lacks the `rateLimit` feature (RabbitMQ, PostgreSQL)
 * takes tokens here before it takes tasks from its broker (`src/worker-rate-gate.ts`), so a group
 * rate limit holds across every worker process that shares the backend. Implementation:
 * `backends/redis-rate-limits.ts` (one Lua script per call).
 *
 * A take is a *reservation* until it is settled with the number of tokens used: the unused ones go
 * back. While reserved, tokens count against the bucket's size (it refills up to `burst` minus the
 * reserved tokens), so that giving tokens back can never let more than `limit + burst` be used in
 * any window of `periodMs`. A reservation not settled within its `holdMs` (its worker died) counts
 * as used.
 */
import type { RateLimit } from './broker.js';

/** What a take from a bucket gave. */
export interface TokenGrant {
  /** Tokens taken (0 to `want`). */
  granted: number;
  /** Milliseconds until the next whole token is due (0 when one is left). */
  nextInMs: number;
  /** The reservation to settle (present when `granted` > 0). */
  ticket?: string;
}

/** Named token buckets evaluated atomically in a shared store (the arithmetic of `TokenBucket`, plus reservations). */
export interface RateLimitStore {
  /**
   * Reserves up to `want` whole tokens of bucket `name` (starting full at `burst`, refilled at
   * `limit` per `periodMs`) for at most `holdMs`.
   */
  take(name: string, rate: Required<RateLimit>, want: number, holdMs: number): Promise<TokenGrant>;
  /** Settles a reservation: `used` of its tokens were used, the rest go back. A late (expired) settle changes nothing. */
  settle(name: string, rate: Required<RateLimit>, ticket: string, used: number): Promise<void>;
  /** When bucket `name`, empty now, has its next token (epoch ms); `null` when it has one (or was never used). */
  emptyUntil(name: string): Promise<number | null>;
}

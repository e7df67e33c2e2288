/**
 * Shared token buckets for flow control a broker cannot enforce itself: the optional
 * `Backend.rateLimits`. A worker whose broker lacks the `rateLimit` feature (RabbitMQ, PostgreSQL)
 * takes tokens here before it takes tasks from its broker (`src/worker-rate-gate.ts`), so a group
 * rate limit holds across every worker process that shares the backend. Implementations:
 * `backends/redis-rate-limits.ts` (one Lua script per call), `backends/memory-rate-limits.ts`.
 */
import type { RateLimit } from './broker.js';

/** What a take from a bucket gave. */
export interface TokenGrant {
  /** Tokens taken (0 to `want`). */
  granted: number;
  /** Milliseconds until the next whole token (0 when one is left). */
  nextInMs: number;
}

/** Named token buckets evaluated atomically in a shared store (the same arithmetic as `TokenBucket`). */
export interface RateLimitStore {
  /** Takes up to `want` whole tokens from bucket `name` (starting full at `burst`, refilled at `limit` per `periodMs`). */
  take(name: string, rate: Required<RateLimit>, want: number): Promise<TokenGrant>;
  /** Gives back `n` tokens taken and not used (the bucket stays capped at `burst`). */
  refund(name: string, rate: Required<RateLimit>, n: number): Promise<void>;
  /** When bucket `name`, empty now, has its next token (epoch ms); `null` when it has one (or was never used). */
  emptyUntil(name: string): Promise<number | null>;
}

/**
 * A group rate limit enforced by the worker for a broker that cannot enforce it itself (RabbitMQ,
 * PostgreSQL): before each fetch the worker reserves tokens in a bucket shared by every process in
 * the backend (`Backend.rateLimits`), asks its broker for at most that many tasks, and settles the
 * reservation with the number it got (the rest go back). The bucket is global and reserved tokens
 * count against its size, so the bound holds across processes: in any window of `periodMs` at most
 * `limit + burst` tokens are used. A worker out of tokens sleeps until the next one is due (no
 * polling in between; while every token is reserved by other workers' fetches, it looks again once
 * per token interval). Tokens stay reserved while the fetch waits for tasks (up to `fetchWaitMs` on
 * an empty queue): idle workers may hold part of the burst when tasks arrive. A worker killed
 * holding a reservation loses it for `fetchWaitMs` + 10 s (then it counts as used).
 */
import type { Backend } from './backend.js';
import type { Broker, FetchLimits, RateLimit } from './broker.js';
import type { Logger } from './logger.js';
import type { RateLimitStore } from './rate-limit-store.js';
import { toError } from './errors.js';
import { pause } from './timers.js';

/** Tokens reserved for one fetch. */
export interface GateGrant {
  /** How many tasks the fetch may take. */
  readonly granted: number;
  /** The reservation, settled after the fetch. */
  readonly ticket: string;
}

/** Margin (ms) beyond the fetch's own wait for which a reservation is held before it counts as used. */
const HOLD_MARGIN_MS = 10_000;

/** The worker's side of one group's shared bucket. */
export class RateGate {
  /**
   * @param store the backend's shared buckets
   * @param group the group (the bucket's name)
   * @param rate the resolved limit
   * @param holdMs how long a reservation may stay open (the fetch's wait plus a margin)
   * @param logger where a failed settle is reported
   */
  constructor(
    private readonly store: RateLimitStore,
    readonly group: string,
    private readonly rate: Required<RateLimit>,
    private readonly holdMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * Reserves up to `want` tokens, waiting for the first one (sleeping until it is due); resolves
   * `undefined` when `signal` aborts first. Rejects when the backend cannot be reached (the caller
   * backs off).
   */
  async acquire(want: number, signal: AbortSignal): Promise<GateGrant | undefined> {
    while (!signal.aborted) {
      const grant = await this.store.take(this.group, this.rate, want, this.holdMs);
      if (grant.granted > 0 && grant.ticket !== undefined) return { granted: grant.granted, ticket: grant.ticket };
      await pause(Math.max(1, grant.nextInMs), signal);
    }
    return undefined;
  }

  /** Settles a reservation after its fetch took `used` tasks (in the background; a failure only costs the unused tokens). */
  settle(grant: GateGrant, used: number): void {
    this.store.settle(this.group, this.rate, grant.ticket, used).catch((err: unknown) => {
      this.logger.warn('could not give back unused rate-limit tokens', { group: this.group, tokens: grant.granted - used, error: toError(err) });
    });
  }
}

/**
 * Splits a group's flow control between its broker and a {@link RateGate}: the group `rateLimit`
 * goes to the gate when the broker does not enforce it and the backend keeps shared buckets
 * (`server.run` refused the options otherwise); the rest stays with the broker.
 */
export function splitRateGate(broker: Broker, backend: Backend, logger: Logger, group: string, flow: FetchLimits | undefined, fetchWaitMs: number): { gate?: RateGate; flow?: FetchLimits } {
  if (flow?.rateLimit === undefined || broker.dispatchFeatures?.has('rateLimit') === true || backend.rateLimits === undefined) {
    return flow === undefined ? {} : { flow };
  }
  const { rateLimit, ...rest } = flow;
  const rate = { limit: rateLimit.limit, periodMs: rateLimit.periodMs, burst: rateLimit.burst ?? rateLimit.limit };
  const gate = new RateGate(backend.rateLimits, group, rate, fetchWaitMs + HOLD_MARGIN_MS, logger);
  return Object.keys(rest).length === 0 ? { gate } : { gate, flow: rest };
}

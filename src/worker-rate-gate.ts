/**
 * A group rate limit enforced by the worker for a broker that cannot enforce it itself (RabbitMQ,
 * PostgreSQL): before each fetch the worker takes tokens from a bucket shared by every process in
 * the backend (`Backend.rateLimits`), and asks its broker for at most that many tasks; tokens a fetch
 * did not use are given back. The bucket is global, so the bound holds across processes: in any
 * window of `periodMs` at most `limit + burst` tasks are taken. A worker out of tokens sleeps until
 * the next one is due (no polling in between). Tokens are held while the fetch waits for tasks (up
 * to `fetchWaitMs` on an empty queue) and given back after it: the bound never loosens, but idle
 * workers may hold part of the burst when tasks arrive.
 */
import type { Backend } from './backend.js';
import type { Broker, FetchLimits, RateLimit } from './broker.js';
import type { Logger } from './logger.js';
import type { RateLimitStore } from './rate-limit-store.js';
import { toError } from './errors.js';
import { pause } from './timers.js';

/** The worker's side of one group's shared bucket. */
export class RateGate {
  /**
   * @param store the backend's shared buckets
   * @param group the group (the bucket's name)
   * @param rate the resolved limit
   * @param logger where a failed refund is reported
   */
  constructor(
    private readonly store: RateLimitStore,
    readonly group: string,
    private readonly rate: Required<RateLimit>,
    private readonly logger: Logger,
  ) {}

  /**
   * Takes up to `want` tokens, waiting for the first one (sleeping until it is due); resolves 0 when
   * `signal` aborts first. Rejects when the backend cannot be reached (the caller backs off).
   */
  async acquire(want: number, signal: AbortSignal): Promise<number> {
    while (!signal.aborted) {
      const grant = await this.store.take(this.group, this.rate, want);
      if (grant.granted > 0) return grant.granted;
      await pause(Math.max(1, grant.nextInMs), signal);
    }
    return 0;
  }

  /** Gives back `n` unused tokens (in the background; a failure only costs those tokens). */
  refund(n: number): void {
    if (n <= 0) return;
    this.store.refund(this.group, this.rate, n).catch((err: unknown) => {
      this.logger.warn('could not give back unused rate-limit tokens', { group: this.group, tokens: n, error: toError(err) });
    });
  }
}

/**
 * Splits a group's flow control between its broker and a {@link RateGate}: the group `rateLimit`
 * goes to the gate when the broker does not enforce it and the backend keeps shared buckets
 * (`server.run` refused the options otherwise); the rest stays with the broker.
 */
export function splitRateGate(broker: Broker, backend: Backend, logger: Logger, group: string, flow: FetchLimits | undefined): { gate?: RateGate; flow?: FetchLimits } {
  if (flow?.rateLimit === undefined || broker.dispatchFeatures?.has('rateLimit') === true || backend.rateLimits === undefined) {
    return flow === undefined ? {} : { flow };
  }
  const { rateLimit, ...rest } = flow;
  const rate = { limit: rateLimit.limit, periodMs: rateLimit.periodMs, burst: rateLimit.burst ?? rateLimit.limit };
  const gate = new RateGate(backend.rateLimits, group, rate, logger);
  return Object.keys(rest).length === 0 ? { gate } : { gate, flow: rest };
}

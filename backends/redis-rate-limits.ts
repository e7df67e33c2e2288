/**
 * Shared token buckets of the Redis backend (`Backend.rateLimits`, see `src/rate-limit-store.ts`):
 * one hash `P:{limit:<name>}` per bucket (P: the backend prefix) with the tokens (`t`), when they
 * were counted (`a`, Redis clock) and when the next whole token is due (`n`). Each take or refund is
 * one Lua script on the Redis clock, so the bucket is global across processes. The hash expires once
 * the bucket would be full again (an absent bucket is a full one): idle buckets leave nothing behind.
 */
import type { Redis } from 'ioredis';
import type { RateLimit } from '../src/broker.js';
import type { RateLimitStore, TokenGrant } from '../src/rate-limit-store.js';

/** KEYS: bucket. ARGV: limit, periodMs, burst, want, refund. Returns `{granted, nextInMs}`. */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, period, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local want, back = tonumber(ARGV[4]), tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 't', 'a')
local tokens = burst
if v[1] then
  tokens = tonumber(v[1])
  local at = tonumber(v[2])
  if now > at then tokens = tokens + (now - at) * limit / period end
  tokens = math.min(burst, tokens)
end
local granted = 0
if back > 0 then
  tokens = math.min(burst, tokens + back)
else
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
local nx = 0
if tokens < 1 then nx = math.ceil((1 - tokens) * period / limit) end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'a', string.format('%d', now), 'n', string.format('%d', now + nx))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * period / limit) + 1000)
return {granted, nx}
`;

/** KEYS: bucket. Returns the epoch ms of the next token while the bucket is empty, else -1. */
const EMPTY_UNTIL = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > now then return n end
return -1
`;

/** The key of bucket `name` under `prefix` (its own hash slot). */
export function rateLimitKey(prefix: string, name: string): string {
  return `${prefix}:{limit:${name}}`;
}

/** {@link RateLimitStore} on the Redis backend's connection. */
export class RedisRateLimits implements RateLimitStore {
  /**
   * @param client the backend's connection
   * @param prefix the backend's key prefix
   * @param wrap turns a driver error into the backend's typed error
   */
  constructor(
    private readonly client: Redis,
    private readonly prefix: string,
    private readonly wrap: (err: unknown, op: string) => Error,
  ) {}

  private async script(op: string, lua: string, name: string, ...args: Array<string | number>): Promise<unknown> {
    try {
      return await this.client.eval(lua, 1, rateLimitKey(this.prefix, name), ...args);
    } catch (err) {
      throw this.wrap(err, op);
    }
  }

  /** @inheritdoc */
  async take(name: string, rate: Required<RateLimit>, want: number): Promise<TokenGrant> {
    const reply = await this.script('rateLimits.take', TAKE, name, rate.limit, rate.periodMs, rate.burst, want, 0);
    const [granted, nextInMs] = Array.isArray(reply) ? reply.map(Number) : [0, 1];
    return { granted: granted ?? 0, nextInMs: nextInMs ?? 1 };
  }

  /** @inheritdoc */
  async refund(name: string, rate: Required<RateLimit>, n: number): Promise<void> {
    if (n > 0) await this.script('rateLimits.refund', TAKE, name, rate.limit, rate.periodMs, rate.burst, 0, n);
  }

  /** @inheritdoc */
  async emptyUntil(name: string): Promise<number | null> {
    const at = Number(await this.script('rateLimits.emptyUntil', EMPTY_UNTIL, name));
    return at > 0 ? at : null;
  }
}

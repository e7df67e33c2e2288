/**
 * Shared token buckets of the Redis backend (`Backend.rateLimits`, see `src/rate-limit-store.ts`):
 * per bucket a hash `P:{limit:<name>}` (P: the backend prefix) with the free tokens (`t`), when they
 * were counted (`a`, Redis clock), the reserved tokens (`o`), when the next whole token is due (`n`)
 * and a ticket counter (`s`); and a ZSET `P:{limit:<name>}:r` of open reservations
 * (`<serial>:<tokens>` → deadline). Each call is one Lua script on the Redis clock, so the bucket is
 * global across processes. Free tokens refill up to `burst` minus the reserved ones. Both keys expire
 * once the bucket would be full again and no reservation is open: idle buckets leave nothing behind.
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import type { RateLimit } from '../src/broker.js';
import type { RateLimitStore, TokenGrant } from '../src/rate-limit-store.js';

/** Shared head of both scripts: the clock, the state with expired reservations dropped (as used) and refilled. */
const LOAD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, period, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local res = KEYS[2]
local v = redis.call('HMGET', KEYS[1], 't', 'a', 'o')
local tokens, at, held = burst, now, tonumber(v[3] or '0')
if v[1] then tokens, at = tonumber(v[1]), tonumber(v[2]) end
local dead = redis.call('ZRANGEBYSCORE', res, '-inf', now)
if #dead > 0 then
  for i = 1, #dead do held = held - tonumber(string.match(dead[i], ':(%d+)$')) end
  redis.call('ZREMRANGEBYSCORE', res, '-inf', now)
  if held < 0 then held = 0 end
end
if now > at then tokens = tokens + (now - at) * limit / period end
tokens = math.max(0, math.min(burst - held, tokens))
`;

/** Shared tail: stores the state, the next-token time and the expiries; returns ms to the next token. */
const STORE = `
local nx = 0
if tokens < 1 then nx = math.ceil((1 - tokens) * period / limit) end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'a', string.format('%d', now), 'o', string.format('%d', held), 'n', string.format('%d', now + nx))
local ttl = math.ceil((burst - tokens) * period / limit)
local last = redis.call('ZRANGE', res, -1, -1, 'WITHSCORES')
if last[2] then ttl = math.max(ttl, tonumber(last[2]) - now) end
redis.call('PEXPIRE', KEYS[1], ttl + 1000)
if last[2] then redis.call('PEXPIRE', res, ttl + 1000) end
`;

/** KEYS: bucket, its reservations (ZSET). ARGV: limit, periodMs, burst, want, holdMs. Returns `{granted, nextInMs, ticket}`. */
const TAKE = `${LOAD}
local granted = math.min(tonumber(ARGV[4]), math.floor(tokens))
local ticket = ''
if granted > 0 then
  tokens = tokens - granted
  held = held + granted
  ticket = string.format('%d', redis.call('HINCRBY', KEYS[1], 's', 1)) .. ':' .. string.format('%d', granted)
  redis.call('ZADD', res, now + tonumber(ARGV[5]), ticket)
end
${STORE}
return {granted, nx, ticket}
`;

/** KEYS: bucket, its reservations (ZSET). ARGV: limit, periodMs, burst, ticket, used. Returns 1, or 0 when the reservation had expired. */
const SETTLE = `${LOAD}
local ok = redis.call('ZREM', res, ARGV[4])
if ok == 1 then
  local n = tonumber(string.match(ARGV[4], ':(%d+)$'))
  held = math.max(0, held - n)
  tokens = math.min(burst - held, tokens + math.max(0, n - tonumber(ARGV[5])))
end
${STORE}
return ok
`;

/** KEYS: bucket, its reservations (ZSET). Returns the epoch ms of the next token while the bucket is empty, else -1. */
const EMPTY_UNTIL = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n > now then return n end
return -1
`;

/** The key of bucket `name` under `prefix` (its own hash slot; its reservations are this key plus `:r`). */
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
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly wrap: (err: unknown, op: string) => Error,
  ) {}

  private async script(op: string, lua: string, name: string, ...args: Array<string | number>): Promise<unknown> {
    try {
      return await this.client.eval(lua, 2, rateLimitKey(this.prefix, name), `${rateLimitKey(this.prefix, name)}:r`, ...args);
    } catch (err) {
      throw this.wrap(err, op);
    }
  }

  /** @inheritdoc */
  async take(name: string, rate: Required<RateLimit>, want: number, holdMs: number): Promise<TokenGrant> {
    const reply = await this.script('rateLimits.take', TAKE, name, rate.limit, rate.periodMs, rate.burst, want, Math.max(1, Math.ceil(holdMs)));
    if (!Array.isArray(reply)) return { granted: 0, nextInMs: 1 };
    const granted = Number(reply[0]);
    const grant: TokenGrant = { granted, nextInMs: Number(reply[1]) };
    if (granted > 0) grant.ticket = String(reply[2]);
    return grant;
  }

  /** @inheritdoc */
  async settle(name: string, rate: Required<RateLimit>, ticket: string, used: number): Promise<void> {
    await this.script('rateLimits.settle', SETTLE, name, rate.limit, rate.periodMs, rate.burst, ticket, used);
  }

  /** @inheritdoc */
  async emptyUntil(name: string): Promise<number | null> {
    const at = Number(await this.script('rateLimits.emptyUntil', EMPTY_UNTIL, name));
    return at > 0 ? at : null;
  }
}

/**
 * Why ready tasks of a Redis group are held back by flow control (`RedisBroker.waitReason`): read
 * from the state the fetch script leaves behind — a key's back-off (`kstate` field `o<key>`), its
 * lanes parked on concurrency (`cpark:<key>`) or until a time (`tpark`, a key bucket), and the
 * group bucket's next token (`kstate` field `gn`, written by fetch only while that bucket is empty).
 * One script call, read-only, for `client.getStatus`; nothing on the send, fetch or ack path.
 */
import type { RedisClient } from './redis-cluster.js';
import type { WaitReason } from '../src/broker.js';
import type { GroupKeys } from './redis-keys.js';

/** KEYS: kstate, tpark, the key's cpark list (kstate when keyless). ARGV: key ('' for keyless). Returns `{}` or `{reason, until}` (until -1: none). */
export const WAIT_REASON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local st, key = KEYS[1], ARGV[1]
if key ~= '' then
  local off = tonumber(redis.call('HGET', st, 'o' .. key) or '0')
  if off > now then return {'key-paused', off} end
  if redis.call('EXISTS', KEYS[3]) == 1 then return {'key-concurrency', -1} end
  local best = -1
  for lv = 0, 9 do
    local s = tonumber(redis.call('ZSCORE', KEYS[2], lv .. key) or '0')
    if s > now and (best < 0 or s < best) then best = s end
  end
  if best > 0 then return {'key-rate-limit', best} end
end
local gn = tonumber(redis.call('HGET', st, 'gn') or '0')
if gn > now then return {'rate-limit', gn} end
return {}
`;

const REASONS = new Set<WaitReason['reason']>(['rate-limit', 'key-rate-limit', 'key-concurrency', 'key-paused']);

/** Runs {@link WAIT_REASON} for the group (shard) whose keys are `keys`. */
export async function readWaitReason(redis: RedisClient, keys: GroupKeys, key: string | undefined): Promise<WaitReason | null> {
  const park = key === undefined ? keys.kstate : `${keys.base}cpark:${key}`;
  const reply = (await redis.eval(WAIT_REASON, 3, keys.kstate, keys.tpark, park, key ?? '')) as unknown;
  if (!Array.isArray(reply) || reply.length < 2) return null;
  const reason = String(reply[0]) as WaitReason['reason'];
  if (!REASONS.has(reason)) return null;
  const out: WaitReason = { reason };
  if (key !== undefined && reason !== 'rate-limit') out.key = key;
  const until = Number(reply[1]);
  if (until > 0) out.until = until;
  return out;
}

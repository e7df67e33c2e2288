/**
 * Why ready tasks of a Redis group are held back by flow control (`RedisBroker.waitReason`): read
 * from the state the fetch script leaves behind — a key's back-off (`kstate` field `o<key>`), its
 * lanes parked on concurrency (the key's range of `cpark`) or until a time (`tpark`, a key bucket),
 * and the group bucket's next token (`kstate` field `gn`, written by fetch only while that bucket is
 * empty). One read-only script call (`WAIT_REASON` of `./redis-lane-scripts.ts`), for
 * `client.getStatus`; nothing on the send, fetch or ack path.
 */
import type { WaitReason } from '../src/broker.js';

const REASONS = new Set<WaitReason['reason']>(['rate-limit', 'key-rate-limit', 'key-concurrency', 'key-paused']);

/** The wait reason of `key` (undefined: keyless tasks) from the reply of the waitReason script. */
export function parseWaitReason(reply: unknown, key: string | undefined): WaitReason | null {
  if (!Array.isArray(reply) || reply.length < 2) return null;
  const reason = String(reply[0]) as WaitReason['reason'];
  if (!REASONS.has(reason)) return null;
  const out: WaitReason = { reason };
  if (key !== undefined && reason !== 'rate-limit') out.key = key;
  const until = Number(reply[1]);
  if (until > 0) out.until = until;
  return out;
}

/** Reading the take/start/end log of `test/fixtures/limits-worker.ts` and counting it. */
import type { Redis } from 'ioredis';

/** One line of the log. */
export interface FlowEvent {
  kind: 'take' | 'grant' | 'start' | 'end';
  at: number;
  key: string;
  label: string;
  pid: string;
}

/** Every event logged so far in list `logKey`. */
export async function flowEvents(redis: Redis, logKey: string): Promise<FlowEvent[]> {
  const lines = await redis.lrange(logKey, 0, -1);
  return lines.map((l) => {
    const [kind, at, key, label, pid] = l.split(' ');
    return { kind: kind as FlowEvent['kind'], at: Number(at), key: key as string, label: label as string, pid: pid as string };
  });
}

/** Most times within any window of `periodMs` (sliding over every time). */
export function maxInWindow(times: number[], periodMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while ((t[hi] as number) - (t[lo] as number) >= periodMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

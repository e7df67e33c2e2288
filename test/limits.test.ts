/** The token bucket and option checks of `src/limits.ts` (simulated clock: no timing in the test). */
import { describe, expect, it } from 'vitest';
import { TokenBucket, checkRateLimit, resolveGroupLimits } from '../src/limits.js';

describe('TokenBucket', () => {
  it('takes at most limit + burst in any window of periodMs and about limit per period over time', () => {
    const rate = checkRateLimit('r', { limit: 50, periodMs: 1000, burst: 10 });
    const b = new TokenBucket(rate, 0);
    const takes: number[] = [];
    // A greedy taker asking every 7 ms for 3 tokens for 20 simulated seconds.
    for (let now = 0; now <= 20_000; now += 7) {
      const n = b.available(now, 3);
      b.take(n);
      for (let i = 0; i < n; i++) takes.push(now);
    }
    let most = 0;
    for (let lo = 0, hi = 0; hi < takes.length; hi++) {
      while ((takes[hi] as number) - (takes[lo] as number) >= 1000) lo++;
      most = Math.max(most, hi - lo + 1);
    }
    expect(most).toBeLessThanOrEqual(60);
    expect(takes.length).toBeGreaterThanOrEqual(10 + 50 * 20 - 2);
    expect(takes.length).toBeLessThanOrEqual(10 + 50 * 20 + 1);
  });

  it('says when the next token is due and refills to the burst only', () => {
    const b = new TokenBucket({ limit: 4, periodMs: 1000, burst: 2 }, 0);
    b.take(b.available(0, 10));
    expect(b.available(0, 10)).toBe(0);
    expect(b.nextInMs(0)).toBe(250);
    expect(b.available(250, 10)).toBe(1);
    expect(b.isFull(10_000)).toBe(true);
    expect(b.available(10_000, 10)).toBe(2);
  });
});

describe('group options', () => {
  it('resolve burst to limit and drop empty options', () => {
    expect(resolveGroupLimits(undefined)).toBeUndefined();
    expect(resolveGroupLimits({})).toBeUndefined();
    expect(resolveGroupLimits({ rateLimit: { limit: 5, periodMs: 100 }, keyConcurrency: 3 })).toEqual({ rateLimit: { limit: 5, periodMs: 100, burst: 5 }, keyConcurrency: 3 });
  });
});

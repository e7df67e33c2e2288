/**
 * The worker's parts on their own: long timers, cut-down stored errors, the job's state
 * transitions, the ms option range and the certain-expiry test of a lease.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_TIMER_MS, setLongTimeout } from '../src/timers.js';
import { STORED_ERROR_TEXT_MAX, storeError, truncateText } from '../src/state.js';
import { Job } from '../src/worker-job.js';
import { leaseCertainlyExpired } from '../src/worker-leases.js';
import { MAX_MS, checkMs } from '../src/options.js';
import type { Delivery } from '../src/broker.js';

const delivery: Delivery = { group: 'g', body: '{}', token: 't1', redelivered: false };

afterEach(() => {
  vi.useRealTimers();
});

describe('setLongTimeout', () => {
  it('fires after delays beyond 2^31-1 ms, not at once, and can be cleared', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    setLongTimeout(fn, 3e9);
    vi.advanceTimersByTime(1000);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(3e9 - MAX_TIMER_MS - 1000);
    expect(fn).toHaveBeenCalledTimes(1);
    const cleared = vi.fn();
    setLongTimeout(cleared, 5e9).clear();
    vi.advanceTimersByTime(6e9);
    expect(cleared).not.toHaveBeenCalled();
  });

  it('fires short delays once', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    setLongTimeout(fn, 10);
    vi.advanceTimersByTime(10);
    expect(fn).toHaveBeenCalledTimes(1);
  });
});

describe('stored errors', () => {
  it('cuts message and stack to the limit with a marker saying how much was cut', () => {
    const e = new Error('z'.repeat(100_000));
    const s = storeError(e);
    expect(s.message.length).toBe(STORED_ERROR_TEXT_MAX);
    expect(s.message).toMatch(/… \[\d+ more characters cut\]$/);
    expect(s.stack?.length).toBeLessThanOrEqual(STORED_ERROR_TEXT_MAX);
    expect(storeError(new Error('short')).message).toBe('short');
    expect(truncateText('abc', 10)).toBe('abc');
    const cut = truncateText('x'.repeat(500), 100);
    expect(cut.length).toBe(100);
    expect(cut).toContain('more characters cut');
  });
});

describe('a job', () => {
  it('moves through its phases and holds once', () => {
    const job = new Job(delivery, 1000);
    expect([job.phase, job.hold, job.slot]).toEqual(['fetched', 'held', 'none']);
    expect(job.watched).toBe(false);
    job.claimed();
    expect(job.watched).toBe(true);
    job.takeSlot();
    job.started();
    expect(job.phase).toBe('running');
    expect(job.concluding()).toBe(true);
    expect(job.concluding()).toBe(false);
    job.settled();
    expect(job.lost()).toBe(false);
    expect(job.released()).toBe(false);
    expect(job.held).toBe(false);
    job.ended();
    expect(job.phase).toBe('done');
  });

  it('a lost or handed-back delivery is held no more, and such a job or an aborted one is not watched', () => {
    const lost = new Job(delivery, 1000);
    lost.claimed();
    expect(lost.lost()).toBe(true);
    expect([lost.hold, lost.held, lost.watched]).toEqual(['lost', false, false]);
    expect(lost.lost()).toBe(false);
    expect(lost.released()).toBe(false);
    lost.settled();
    expect(lost.hold).toBe('lost');

    const handedBack = new Job(delivery, 1000);
    expect(handedBack.released()).toBe(true);
    expect(handedBack.lost()).toBe(false);
    expect([handedBack.hold, handedBack.held]).toEqual(['released', false]);

    const aborted = new Job(delivery, 1000);
    aborted.claimed();
    aborted.abort(new Error('stop'));
    expect([aborted.held, aborted.watched]).toEqual([true, false]);
  });

  it('a job settled without running goes from fetched or claimed straight to done', () => {
    const fromFetched = new Job(delivery, 1000);
    fromFetched.settled();
    fromFetched.ended();
    expect([fromFetched.phase, fromFetched.hold, fromFetched.startedAt]).toEqual(['done', 'settled', 0]);
    expect(fromFetched.concluding()).toBe(false);
    fromFetched.claimed();
    expect(fromFetched.phase).toBe('done');

    const fromClaimed = new Job(delivery, 1000);
    fromClaimed.claimed();
    fromClaimed.ended();
    expect([fromClaimed.phase, fromClaimed.watched]).toEqual(['done', false]);
  });

  it('a held slot is freed by either side; lingering needs a held slot', () => {
    const job = new Job(delivery, 1000);
    job.lingering();
    expect(job.slot).toBe('none');
    expect(job.freeSlot(false)).toBe(false);
    job.takeSlot();
    expect(job.freeSlot(false)).toBe(true);
    expect(job.slot).toBe('none');
  });

  it('a lingering slot is freed only by its handler', () => {
    const job = new Job(delivery, 1000);
    job.takeSlot();
    job.lingering();
    expect(job.freeSlot(false)).toBe(false);
    expect(job.slot).toBe('lingering');
    expect(job.freeSlot(true)).toBe(true);
    expect(job.freeSlot(true)).toBe(false);
  });

  it('fires its signal once, with the first reason', () => {
    const job = new Job(delivery, 1000);
    job.controller = new AbortController();
    const first = new Error('first');
    expect(job.abort(first)).toBe(true);
    expect(job.abort(new Error('second'))).toBe(false);
    expect(job.abortReason).toBe(first);
    expect(job.controller.signal.reason).toBe(first);
  });

  it('its lease has certainly expired only more than leaseMs after the fetch or last renewal', () => {
    const job = new Job(delivery, 1000);
    expect(leaseCertainlyExpired(job, Date.now() + 500)).toBe(false);
    expect(leaseCertainlyExpired(job, Date.now() + 1500)).toBe(true);
    job.leaseEndsBy = Date.now() + 5000;
    expect(leaseCertainlyExpired(job, Date.now() + 1500)).toBe(false);
  });
});

describe('ms options', () => {
  it('accept finite numbers from the minimum to 100 years and name the range otherwise', () => {
    expect(checkMs('timeout', 3e9)).toBe(3e9);
    expect(checkMs('timeout', MAX_MS)).toBe(MAX_MS);
    for (const bad of [0, -1, MAX_MS + 1, Number.NaN, Number.POSITIVE_INFINITY, '5']) {
      expect(() => checkMs('timeout', bad)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining(`from 1 to ${MAX_MS}`) }));
    }
  });
});

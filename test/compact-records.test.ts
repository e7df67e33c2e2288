/**
 * Compact records: the wire text leaves out fields at the value readers assume when they are absent,
 * and what the previous release wrote (every field, nulls included) still reads the same.
 */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, type TaskMessage } from '../src/index.js';

const message = (extra: Partial<TaskMessage> = {}): TaskMessage => ({
  v: 1,
  id: '6f1c2a57-9d7e-4d59-8a7e-2f3c1b0e9a11',
  group: 'g',
  name: 'add',
  args: { json: [1, 2] },
  retriesLeft: 3,
  retriesUsed: 0,
  backoff: { type: 'exponential', delayMs: 1000, maxDelayMs: 300_000, jitter: 0.5 },
  sentAt: 1_767_225_600_000,
  runAt: null,
  expireAt: null,
  timeoutMs: null,
  firstUnknownAt: null,
  ...extra,
});

describe('compact wire messages', () => {
  it('leaves out null optional fields and retriesUsed 0, and decodes to the same message', () => {
    const msg = message();
    const text = encodeMessage(msg);
    expect(text).not.toContain('null');
    expect(text).not.toContain('retriesUsed');
    expect(JSON.parse(text)).toEqual({ v: 1, id: msg.id, group: 'g', name: 'add', args: { json: [1, 2] }, retriesLeft: 3, backoff: msg.backoff, sentAt: msg.sentAt });
    expect(decodeMessage(text)).toEqual(msg);
  });

  it('keeps every field that is set', () => {
    const msg = message({ retriesUsed: 2, runAt: 1, expireAt: 2, timeoutMs: 3, firstUnknownAt: 4, priority: 5, key: 'k', trace: { traceparent: 'x' } });
    const text = encodeMessage(msg);
    expect(JSON.parse(text)).toEqual(msg);
    expect(decodeMessage(text)).toEqual(msg);
  });

  it('reads a message written by the previous release (every field, nulls included) the same', () => {
    const msg = message();
    const old = JSON.stringify(msg);
    expect(old).toContain('"runAt":null');
    expect(decodeMessage(old)).toEqual(decodeMessage(encodeMessage(msg)));
    expect(encodeMessage(msg).length).toBeLessThan(old.length - 60);
  });
});

/**
 * Flow-control part of the broker contract: priorities, fair dispatch between keys, per-key
 * concurrency, rate limits and key back-off. Each test runs only when the broker declares the
 * feature in `dispatchFeatures` (a broker without it must refuse the feature, which the core checks).
 */
import { expect, it } from 'vitest';
import type { Broker, Delivery, DispatchFeature } from '../../src/broker.js';

/** What the flow tests need from the suite. */
export interface FlowSuite {
  make(): Promise<Broker>;
  group(): string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Fetches one at a time (acking each) until `n` were taken or `totalMs` passed; returns the bodies in order. */
async function drainOneByOne(b: Broker, group: string, n: number, totalMs = 10_000): Promise<string[]> {
  const out: string[] = [];
  const until = Date.now() + totalMs;
  while (out.length < n && Date.now() < until) {
    const [d] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 500 });
    if (d === undefined) continue;
    out.push(d.body);
    await b.ack(d);
  }
  return out;
}

/** Registers the flow-control contract tests (inside the broker contract's describe). */
export function brokerFlowContract(s: FlowSuite): void {
  const when = (feature: DispatchFeature, name: string, fn: (b: Broker, group: string) => Promise<void>, also?: DispatchFeature): void => {
    it(`flow (${feature}): ${name}`, async (ctx) => {
      const b = await s.make();
      if (!b.dispatchFeatures?.has(feature) || (also !== undefined && !b.dispatchFeatures.has(also))) {
        ctx.skip();
        return;
      }
      await fn(b, s.group());
    });
  };

  when('priority', 'strict between levels, FIFO within a level, default 5 in the middle', async (b, group) => {
    const items: Array<{ body: string; options?: { priority: number } }> = [];
    for (let i = 0; i < 6; i++) items.push({ body: `low${i}`, options: { priority: 1 } });
    for (let i = 0; i < 3; i++) items.push({ body: `mid${i}` });
    for (let i = 0; i < 3; i++) items.push({ body: `high${i}`, options: { priority: 8 } });
    await b.publishBatch(group, items);
    await b.publish(group, 'top', { priority: 9 });
    const got = await drainOneByOne(b, group, items.length + 1);
    expect(got).toEqual(['top', 'high0', 'high1', 'high2', 'mid0', 'mid1', 'mid2', 'low0', 'low1', 'low2', 'low3', 'low4', 'low5']);
  });

  when('priority', 'a delayed message keeps its priority', async (b, group) => {
    // A fetch first: workers are running (a RabbitMQ broker moves delays while it fetches).
    expect(await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 0 })).toEqual([]);
    const at = Date.now() + 200;
    await b.publish(group, 'late-low', { availableAt: at, priority: 0 });
    await b.publish(group, 'late-high', { availableAt: at, priority: 9 });
    // Both due and moved to ready (on RabbitMQ: by the delay mover, possibly late on a loaded machine).
    const until = Date.now() + 10_000;
    while ((await b.counts(group)).ready < 2 && Date.now() < until) await sleep(100);
    await b.publish(group, 'plain');
    const got = await drainOneByOne(b, group, 3);
    expect(got).toEqual(['late-high', 'plain', 'late-low']);
  });

  when('key', 'a retried and a redelivered message keep their priority', async (b, group) => {
    for (let i = 0; i < 3; i++) await b.publish(group, `low${i}`, { priority: 0 });
    await b.publish(group, 'high', { priority: 9 });
    const [d] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 1000 });
    expect(d?.body).toBe('high');
    await b.retry(d as Delivery, 'high-again', Date.now());
    const [e] = await b.fetch(group, 1, { leaseMs: 200, waitMs: 1000 });
    expect(e?.body).toBe('high-again');
    await sleep(400); // its lease runs out: back at the head of its level
    const got = await drainOneByOne(b, group, 4);
    expect(got).toEqual(['high-again', 'low0', 'low1', 'low2']);
  }, 'priority');

  when('key', 'keys are served round-robin within a level', async (b, group) => {
    await b.publishBatch(group, Array.from({ length: 200 }, (_, i) => ({ body: `A${i}`, options: { key: 'A' } })));
    await b.publish(group, 'B0', { key: 'B' });
    await b.publish(group, 'C0', { key: 'C' });
    const first = await drainOneByOne(b, group, 3);
    expect(first.sort()).toEqual(['A0', 'B0', 'C0']);
    const rest = await drainOneByOne(b, group, 199);
    expect(rest).toEqual(Array.from({ length: 199 }, (_, i) => `A${i + 1}`));
  });

  when('keyConcurrency', 'at most N deliveries of a key in flight; released on ack, retry, dead letter and lease expiry', async (b, group) => {
    const flow = { keyConcurrency: 2 };
    for (let i = 0; i < 6; i++) await b.publish(group, `A${i}`, { key: 'A' });
    for (let i = 0; i < 6; i++) await b.publish(group, `B${i}`, { key: 'B' });
    const first = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000, flow });
    expect(first.map((d) => d.body).sort()).toEqual(['A0', 'A1', 'B0', 'B1']);
    expect(await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 100, flow })).toEqual([]);
    const a0 = first.find((d) => d.body === 'A0') as Delivery;
    const a1 = first.find((d) => d.body === 'A1') as Delivery;
    const b0 = first.find((d) => d.body === 'B0') as Delivery;
    await b.ack(a0);
    await b.deadLetter(b0, { code: 'ERR_TEST', message: 'x' });
    const second = await b.fetch(group, 10, { leaseMs: 300, waitMs: 1000, flow });
    expect(second.map((d) => d.body).sort()).toEqual(['A2', 'B2']);
    await b.retry(a1, 'A1-retry', Date.now() + 60_000);
    const third = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000, flow });
    expect(third.map((d) => d.body)).toEqual(['A3']);
    // The 300 ms leases of A2 and B2 run out: their slots are free again and they come back first.
    const fourth: Delivery[] = [];
    const until = Date.now() + 5000;
    while (fourth.length < 2 && Date.now() < until) fourth.push(...(await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000, flow })));
    expect(fourth.map((d) => d.body).sort()).toEqual(['A2', 'B2']);
    expect(fourth.every((d) => d.redelivered)).toBe(true);
  });

  when('rateLimit', 'a group rate limit holds messages back without failing them; a waiting fetch gets the next token', async (b, group) => {
    const flow = { rateLimit: { limit: 4, periodMs: 400, burst: 4 } };
    await b.publishBatch(group, Array.from({ length: 10 }, (_, i) => ({ body: `m${i}` })));
    const first = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000, flow });
    expect(first).toHaveLength(4);
    expect(await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 0, flow })).toEqual([]);
    const next = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 5000, flow });
    expect(next.length).toBeGreaterThanOrEqual(1);
    expect(next.length).toBeLessThanOrEqual(4);
    const counts = await b.counts(group);
    expect(counts.ready + counts.inFlight).toBe(10);
  });

  when('keyRateLimit', 'a per-key rate limit holds back that key only', async (b, group) => {
    const flow = { keyRateLimit: { limit: 2, periodMs: 60_000 } };
    for (let i = 0; i < 5; i++) await b.publish(group, `A${i}`, { key: 'A' });
    for (let i = 0; i < 5; i++) await b.publish(group, `B${i}`, { key: 'B' });
    await b.publish(group, 'free');
    const got = await b.fetch(group, 20, { leaseMs: 30_000, waitMs: 1000, flow });
    expect(got.map((d) => d.body).sort()).toEqual(['A0', 'A1', 'B0', 'B1', 'free']);
    expect(await b.fetch(group, 20, { leaseMs: 30_000, waitMs: 100, flow })).toEqual([]);
  });

  when('keyBackoff', 'a backed-off key gets no delivery until its time passed', async (b, group) => {
    await b.publish(group, 'A0', { key: 'A' });
    await b.publish(group, 'B0', { key: 'B' });
    await b.backoffKey?.(group, 'A', 400);
    const got = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000 });
    expect(got.map((d) => d.body)).toEqual(['B0']);
    const later = await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 5000 });
    expect(later.map((d) => d.body)).toEqual(['A0']);
  });

  when('keyConcurrency', 'waitReason (where the broker has it) names what holds a key or the group back, and nothing for a free one', async (b, group) => {
    if (b.waitReason === undefined) return;
    const kc = { keyConcurrency: 1 };
    await b.publishBatch(group, [{ body: 'A0', options: { key: 'A' } }, { body: 'A1', options: { key: 'A' } }, { body: 'C0', options: { key: 'C' } }]);
    // A0 and C0 are taken (in either order: a sharded group may serve C's shard first); A1 waits.
    const got: string[] = [];
    for (let i = 0; i < 5 && got.length < 2; i++) got.push(...(await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 1000, flow: kc })).map((d) => d.body));
    expect(got.sort()).toEqual(['A0', 'C0']);
    // A further fetch meets A's lane at its bound (and parks it).
    expect(await b.fetch(group, 10, { leaseMs: 30_000, waitMs: 200, flow: kc })).toEqual([]);
    expect(await b.waitReason(group, 'A')).toEqual({ reason: 'key-concurrency', key: 'A' });
    expect(await b.waitReason(group, 'C')).toBeNull();
    expect(await b.waitReason(group, undefined)).toBeNull();
    if (b.dispatchFeatures?.has('keyBackoff')) {
      const before = Date.now();
      await b.backoffKey?.(group, 'C', 60_000);
      const paused = await b.waitReason(group, 'C');
      expect(paused).toMatchObject({ reason: 'key-paused', key: 'C' });
      expect(paused?.until).toBeGreaterThan(before + 30_000);
    }
    if (b.dispatchFeatures?.has('rateLimit')) {
      const other = `${group}-r`;
      const flow = { rateLimit: { limit: 1, periodMs: 3_600_000, burst: 1 } };
      await b.publishBatch(other, [{ body: 'x' }, { body: 'y' }]);
      expect(await b.fetch(other, 10, { leaseMs: 30_000, waitMs: 1000, flow })).toHaveLength(1);
      const held = await b.waitReason(other, undefined);
      expect(held?.reason).toBe('rate-limit');
      expect(held?.until).toBeGreaterThan(Date.now() + 60_000);
      await b.purge(other);
    }
  });
}

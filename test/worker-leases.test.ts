/**
 * A worker frozen past its leases (SIGSTOP, a long GC, a blocked event loop) must not start a
 * handler for a delivery whose lease has certainly run out: the broker hands it to another worker
 * meanwhile. The freeze is simulated by moving the clock forward inside a handler.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server, silentLogger } from '../src/index.js';
import { MemoryBroker } from '../brokers/memory.js';
import type { Delivery } from '../src/broker.js';

const realNow = Date.now;
afterEach(() => {
  Date.now = realNow;
});

describe('worker: leases that certainly expired', () => {
  it('a prefetched delivery whose lease ran out while the worker was frozen is dropped, not started, and runs once when delivered again', async () => {
    let skew = 0;
    Date.now = () => realNow() + skew;
    const group = `lease-${randomUUID().slice(0, 8)}`;
    const broker = new MemoryBroker();
    const seen: Array<{ id: string; redelivered: boolean }> = [];
    const fetch = broker.fetch.bind(broker);
    broker.fetch = async (...args: Parameters<MemoryBroker['fetch']>): Promise<Delivery[]> => {
      const ds = await fetch(...args);
      for (const d of ds) seen.push({ id: (JSON.parse(d.body) as { id: string }).id, redelivered: d.redelivered });
      return ds;
    };
    const server = new Server({ broker, logger: silentLogger, leaseMs: 300, prefetch: 1, fetchWaitMs: 100 });
    const freeze = server.add(group, 'freeze', () => {
      skew += 2000; // as if the process had been stopped for 2 s
      return 'thawed';
    });
    let runs = 0;
    const next = server.add(group, 'next', () => ++runs);
    const client = server.client();
    const a = await client.send(freeze);
    const b = await client.send(next);
    await server.run(group, 1);
    expect((await client.getResult(a, 10_000)).value).toBe('thawed');
    expect((await client.getResult(b, 10_000)).value).toBe(1);
    expect(runs).toBe(1);
    // The first delivery of `next` was fetched with `freeze` and dropped; the broker delivered it again.
    const ofB = seen.filter((s) => s.id === b);
    expect(ofB.length).toBe(2);
    expect(ofB[1]?.redelivered).toBe(true);
    await server.shutdown(1000);
  });
});

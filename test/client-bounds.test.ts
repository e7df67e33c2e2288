/**
 * The client's own bounds and edge cases, on the memory broker and backend: getResult and send
 * honour their deadlines when a backend or broker call hangs; getResult of an unknown id fails fast
 * with ERR_NOT_FOUND; abort of an unknown id does not poison it; a non-memory broker needs a backend;
 * an idempotent send waits for a first sender that is still publishing, and takes over one that died.
 */
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client, ConnectionError, Server, silentLogger, type Broker, type PublishOptions, type StateWrite, type WriteOutcome } from '../src/index.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { RedisBroker } from '../brokers/redis.js';
import { until } from './core/suite.js';
import { beforeDeadline } from '../src/deadline.js';

const never = <T>(): Promise<T> => new Promise<T>(() => undefined);

/** A memory backend whose reads never complete. */
class HangingReads extends MemoryBackend {
  override read(): Promise<null> {
    return never();
  }
  override readResult(): Promise<null> {
    return never();
  }
}

/** A memory broker whose publish waits for `gate` (or never completes when none is given). */
class GatedBroker extends MemoryBroker {
  gate: Promise<void> | undefined;
  published = 0;
  override async publish(group: string, body: string, options?: PublishOptions): Promise<void> {
    await (this.gate ?? never<void>());
    this.published++;
    return super.publish(group, body, options);
  }
}

describe('client deadlines', () => {
  it('getResult(id, 300) rejects with ERR_RESULT_TIMEOUT although every backend read hangs', async () => {
    const client = new Client({ backend: new HangingReads(), logger: silentLogger });
    // Bounded by its own timeout, not by the hung read (which would never end: the test would time out).
    await expect(client.getResult(randomUUID(), 300)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
    await client.close();
  });

  it('send rejects with ERR_CONNECTION after sendTimeoutMs when the publish hangs, and frees its state', async () => {
    const backend = new MemoryBackend();
    const client = new Client({ broker: new GatedBroker(), backend, logger: silentLogger, sendTimeoutMs: 200 });
    await expect(client.send('g', 'x', 1)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(client.with({ id: 'hung-1' }).send('g', 'x', 1)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    // The explicit id is free again: a later send may claim it.
    expect(await backend.read('hung-1')).toBeNull();
    await client.close();
  });

  it('a send whose publish fails rejects with its error and deletes its sent state once that write has landed', async () => {
    class FailingBroker extends MemoryBroker {
      override publish(): Promise<void> {
        return Promise.reject(new ConnectionError('publish refused'));
      }
    }
    /** A backend whose writes land 50 ms late (after the publish failed); remembers the ids written. */
    class SlowWrites extends MemoryBackend {
      readonly ids: string[] = [];
      override async write(w: StateWrite): Promise<WriteOutcome> {
        this.ids.push(w.state.id);
        await new Promise((r) => setTimeout(r, 50));
        return super.write(w);
      }
    }
    const backend = new SlowWrites();
    const client = new Client({ broker: new FailingBroker(), backend, logger: silentLogger });
    await expect(client.send('g', 'x', 1)).rejects.toThrow('publish refused');
    expect(backend.ids).toHaveLength(1);
    // Deleted after the late write, not before it (which would leave a `sent` state of a task never published).
    await new Promise((r) => setTimeout(r, 100));
    expect(await backend.read(backend.ids[0] as string)).toBeNull();
    await client.close();
  });

  it('a bound beyond 2^31-1 ms does not fire at once (setTimeout would overflow)', async () => {
    const work = new Promise<number>((r) => setTimeout(() => r(1), 50));
    expect(await beforeDeadline(work, Date.now() + 3e9, () => new Error('fired early'))).toBe(1);
    const server = new Server({ logger: silentLogger });
    const t = server.add('g', 'later', async () => {
      await new Promise((r) => setTimeout(r, 50));
      return 2;
    });
    await server.run('g', 1);
    const client = server.client();
    try {
      expect((await client.getResult(await client.send(t), 3e9, 3e9)).value).toBe(2);
    } finally {
      await server.shutdown(1000);
    }
  });

  it('rejects bad bounds', () => {
    expect(() => new Client({ sendTimeoutMs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => new Client({ sendTimeoutMs: 1000, claimTakeoverMs: 1000 })).toThrow(/claimTakeoverMs/);
  });
});

describe('unknown ids', () => {
  it('getResult of an id that was never sent rejects with ERR_NOT_FOUND well before its timeout', async () => {
    const client = new Client({ logger: silentLogger, notFoundAfterMs: 200 });
    // Without the fast path this would end with ERR_RESULT_TIMEOUT after 20 s.
    await expect(client.getResult(randomUUID(), 20_000)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    await client.close();
  });

  it('getResult of a delayed task that is stored but not finished waits its timeout', async () => {
    const client = new Client({ logger: silentLogger, notFoundAfterMs: 50 });
    const id = await client.with({ runAfter: 60_000 }).send('g', 'later');
    await expect(client.getResult(id, 300, 20)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
    await client.close();
  });

  it('with statusExpires 0 an unknown id waits the whole timeout (nothing tells it from a running task)', async () => {
    const client = new Client({ logger: silentLogger, statusExpires: 0, notFoundAfterMs: 10 });
    await expect(client.getResult(randomUUID(), 200, 20)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
    await client.close();
  });

  it('abort of an id never sent returns false, stores nothing, and a later send of that id runs', async () => {
    const server = new Server({ logger: silentLogger });
    const t = server.add('g', 'echo', (x: number) => x);
    const client = server.client();
    try {
      expect(await client.abort('never-sent-1')).toBe(false);
      expect(await client.getStatus('never-sent-1')).toBeNull();
      await server.run('g', 1);
      const id = await client.with({ id: 'never-sent-1' }).send(t, 5);
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('success');
      expect(r.value).toBe(5);
    } finally {
      await server.shutdown(2000);
    }
  });
});

describe('client construction', () => {
  it('a non-memory broker without a backend is refused with ERR_INVALID_OPTION', () => {
    const broker: Broker = new RedisBroker({ prefix: `tasuki-test-${randomUUID()}` });
    expect(() => new Client({ broker })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/redis broker needs a backend/) }));
    // With the memory broker, the memory backend default is kept (same-process use).
    expect(() => new Client({ broker: new MemoryBroker() })).not.toThrow();
    // The same holds for a server: its results must land where clients read.
    expect(() => new Server({ broker, logger: silentLogger })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringMatching(/redis broker needs a backend/) }),
    );
    expect(() => new Server({ broker: new MemoryBroker(), logger: silentLogger })).not.toThrow();
  });

  it('a TaskCtl-first handler registered without { ctl: true } fails with a message naming the option', async () => {
    const server = new Server({ logger: silentLogger });
    const client = server.client();
    const group = `ctl-${randomUUID().slice(0, 8)}`;
    server.add(group, 'needsCtl', ((ctl: unknown, x: number) => x) as (x: number) => number);
    await server.run(group, 1);
    const id = await client.send(group, 'needsCtl', 1);
    const result = await client.getResult(id, 10_000, 10);
    expect(result.status).toBe('failure');
    expect(result.error?.message).toMatch(/\{ ctl: true \}/);
    await server.shutdown(1000);
  });
});

describe('idempotent send in one process', () => {
  it('a second send of an id whose first sender is still publishing waits for it and publishes nothing', async () => {
    const brokerStore = new MemoryBrokerStore();
    const backendStore = new MemoryBackendStore();
    const slow = new GatedBroker({ store: brokerStore });
    let open!: () => void;
    slow.gate = new Promise<void>((r) => (open = r));
    const first = new Client({ broker: slow, backend: new MemoryBackend({ store: backendStore }), logger: silentLogger });
    const second = new Client({ broker: new GatedBroker({ store: brokerStore }), backend: new MemoryBackend({ store: backendStore }), logger: silentLogger });
    const a = first.with({ id: 'slow-1' }).send('g', 'x');
    await until(async () => (await second.getStatus('slow-1'))?.status === 'sent', 5000, 'claim');
    let bDone = false;
    const b = second.with({ id: 'slow-1' }).send('g', 'x').then((id) => ((bDone = true), id));
    await new Promise((r) => setTimeout(r, 100));
    expect(bDone).toBe(false); // waiting for the first sender's marker
    open();
    expect(await a).toBe('slow-1');
    expect(await b).toBe('slow-1');
    expect((await slow.counts('g')).ready).toBe(1);
    await Promise.all([first.close(), second.close()]);
  });

  it('a second send of an id whose sender died before publishing takes over after claimTakeoverMs', async () => {
    const brokerStore = new MemoryBrokerStore();
    const backendStore = new MemoryBackendStore();
    const dead = new Client({ broker: new GatedBroker({ store: brokerStore }), backend: new MemoryBackend({ store: backendStore }), logger: silentLogger, sendTimeoutMs: 60_000 });
    void dead.with({ id: 'dead-1' }).send('g', 'x'); // never publishes: a sender stuck forever
    const live = new MemoryBroker({ store: brokerStore });
    const retry = new Client({ broker: live, backend: new MemoryBackend({ store: backendStore }), logger: silentLogger, sendTimeoutMs: 100, claimTakeoverMs: 300 });
    await until(async () => (await retry.getStatus('dead-1'))?.status === 'sent', 5000, 'claim');
    expect(await Promise.all([retry.with({ id: 'dead-1' }).send('g', 'x'), retry.with({ id: 'dead-1' }).send('g', 'x')])).toEqual(['dead-1', 'dead-1']);
    // Two concurrent re-senders: one takeover, one message.
    expect((await live.counts('g')).ready).toBe(1);
    await retry.close();
  });
});

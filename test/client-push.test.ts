/**
 * client.getResult with push hints (Backend.watchFinal): on Redis (pub/sub) and with in-memory
 * backends whose watchFinal fails, hangs or resolves late (plain polling must still work).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, Server, silentLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend, finalChannel } from '../backends/redis.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('push');
const { prefix, admin } = ns;

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const numsub = async (id: string): Promise<number> => {
  const reply = (await admin.call('PUBSUB', 'NUMSUB', finalChannel(prefix, id))) as [string, number];
  return Number(reply[1]);
};

describe('getResult with push on Redis', () => {
  it('resolves as soon as the task finishes, whatever the poll interval; unsubscribes after', async () => {
    const group = `push-${randomUUID().slice(0, 8)}`;
    const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
    const client = new Client({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const task = server.add(group, 'gated', async () => {
      await gate;
      return 'done';
    });
    try {
      await server.run(group, 1);
      const id = await client.send(task);
      // A poll interval of 5 s: after the first quick polls (2, 4, 8 … ms) the next read would come
      // about 2 s after the start; the push hint must make it at once.
      const pending = client.getResult(id, 20_000, 5000);
      await sleep(1200);
      const released = Date.now();
      release();
      const r = await pending;
      const after = Date.now() - released;
      expect(r.isSuccess()).toBe(true);
      expect(r.value).toBe('done');
      expect(after).toBeLessThan(500);
      for (let i = 0; i < 100 && (await numsub(id)) !== 0; i++) await sleep(5);
      expect(await numsub(id)).toBe(0);
    } finally {
      release();
      await client.close();
      await server.shutdown(5000);
      await ns.sweep();
    }
  });

  it('unsubscribes when it times out, and a result already there is returned at once', async () => {
    const group = `push-${randomUUID().slice(0, 8)}`;
    const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
    const task = server.add(group, 'echo', (x: number) => x);
    try {
      await server.run(group, 1);
      const client = server.client();
      const unknown = randomUUID();
      await expect(client.getResult(unknown, 100, 1000)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
      for (let i = 0; i < 100 && (await numsub(unknown)) !== 0; i++) await sleep(5);
      expect(await numsub(unknown)).toBe(0);
      const id = await client.send(task, 7);
      expect((await client.getResult(id, 10_000, 1)).value).toBe(7);
      const t = Date.now();
      expect((await client.getResult(id, 10_000, 5000)).value).toBe(7);
      expect(Date.now() - t).toBeLessThan(500);
    } finally {
      await server.shutdown(5000);
      await ns.sweep();
    }
  });

  it('many concurrent waits on one backend share its subscriber connection and all resolve', async () => {
    const group = `push-${randomUUID().slice(0, 8)}`;
    const server = new Server({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
    const task = server.add(group, 'double', async (x: number) => {
      await sleep(x % 20);
      return 2 * x;
    });
    const client = new Client({ broker: new RedisBroker({ prefix }), backend: new RedisBackend({ prefix }), logger: silentLogger });
    try {
      await server.run(group, 8);
      const ids = await Promise.all(Array.from({ length: 100 }, (_, i) => client.send(task, i)));
      // The same id waited for twice at once too.
      const results = await Promise.all([...ids, ids[0] as string].map((id) => client.getResult<number>(id, 20_000, 5000)));
      expect(results.map((r) => r.value)).toEqual([...ids.map((_, i) => 2 * i), 0]);
    } finally {
      await client.close();
      await server.shutdown(5000);
      await ns.sweep();
    }
  });
});

/** A memory backend whose watchFinal is replaced. */
class OddPushBackend extends MemoryBackend {
  ends = 0;
  constructor(
    store: MemoryBackendStore,
    private readonly mode: 'reject' | 'throw' | 'hang' | 'late',
  ) {
    super({ store });
  }

  override watchFinal(id: string, listener: () => void): Promise<() => void> {
    const end = (): void => {
      this.ends++;
    };
    switch (this.mode) {
      case 'reject':
        return Promise.reject(new Error('no pub/sub here'));
      case 'throw':
        throw new Error('synchronous failure');
      case 'hang':
        return new Promise(() => undefined);
      case 'late':
        void listener;
        void id;
        return sleep(300).then(() => end);
    }
  }
}

describe('getResult when watchFinal does not work', () => {
  for (const mode of ['reject', 'throw', 'hang', 'late'] as const) {
    it(`falls back to polling (${mode})`, async () => {
      const store = new MemoryBackendStore();
      const backend = new OddPushBackend(store, mode);
      const server = new Server({ broker: new MemoryBroker(), backend, logger: silentLogger });
      const task = server.add('g', 'echo', async (x: string) => {
        await sleep(30);
        return x;
      });
      try {
        await server.run('g', 1);
        const client = server.client();
        const id = await client.send(task, 'v');
        const r = await client.getResult(id, 5000, 10);
        expect(r.value).toBe('v');
        await expect(client.getResult(randomUUID(), 50, 10)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
        if (mode === 'late') {
          // A subscription that arrives after the wait ended is ended at once.
          await sleep(400);
          expect(backend.ends).toBe(2);
        }
      } finally {
        await server.shutdown(5000);
      }
    });
  }
});

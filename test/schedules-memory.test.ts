import { describe, expect, it } from 'vitest';
import { schedulesContract } from './contract/schedules.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';
import { Client, silentLogger, taskRef } from '../src/index.js';
import type { Backend } from '../src/backend.js';

schedulesContract('memory', () => {
  const brokers = new MemoryBrokerStore();
  const backends = new MemoryBackendStore();
  return { broker: () => new MemoryBroker({ store: brokers }), backend: () => new MemoryBackend({ store: backends }) };
});

describe('schedules without a schedule store', () => {
  it('reject with ERR_UNSUPPORTED at upsert', async () => {
    const inner = new MemoryBackend();
    // A backend that implements everything but schedules (as Memcache and Mongo do today).
    const plain: Backend = {
      kind: 'plain',
      connect: () => inner.connect(),
      close: () => inner.close(),
      write: (w) => inner.write(w),
      read: (id) => inner.read(id),
      readMany: (ids) => inner.readMany(ids),
      readResult: (id) => inner.readResult(id),
      delete: (id) => inner.delete(id),
    };
    const client = new Client({ broker: new MemoryBroker(), backend: plain, logger: silentLogger });
    await expect(client.schedules.upsert('s', { everyMs: 1000 }, taskRef<[], void>('g', 't'))).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    await client.close();
  });
  it('reject when states are not stored (explicit-id sends need them)', async () => {
    const client = new Client({ statusExpires: 0, logger: silentLogger });
    await expect(client.schedules.upsert('s', { everyMs: 1000 }, taskRef<[], void>('g', 't'))).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    await client.close();
  });
});

describe('schedules and send defaults', () => {
  it('a server whose sendDefaults delay and expire tasks still ticks and fires on time', async () => {
    const { Server } = await import('../src/index.js');
    const server = new Server({ logger: silentLogger, fetchWaitMs: 200, sendDefaults: { runAfter: 60_000, expireAt: Date.now() - 1 } });
    const ids: string[] = [];
    const beat = server.add('defaults', 'beat', (ctl: import('../src/index.js').TaskCtl) => void ids.push(ctl.id), { ctl: true });
    await server.run('defaults', 1);
    const started = Date.now();
    await server.client().schedules.upsert('d', { everyMs: 1000 }, beat);
    while (ids.length < 2 && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 50));
    await server.shutdown(1000);
    expect(ids.length).toBeGreaterThanOrEqual(2);
  });
});

import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Client } from '../src/client.js';
import { Server } from '../src/server.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { MemoryBroker } from '../brokers/memory.js';
import { silentLogger } from '../src/logger.js';
import type { Backend } from '../src/backend.js';

describe('operations on a backend without task index or records (Memcache)', () => {
  it('list, workers, pause and groups reject with ERR_UNSUPPORTED; counts give the broker depths with statuses null; a watchdog is refused', async () => {
    const backend: Backend = new MemcacheBackend({ prefix: `ops-${randomUUID()}` });
    expect(backend.index).toBeUndefined();
    expect(backend.records).toBeUndefined();
    const broker = new MemoryBroker();
    const client = new Client({ broker, backend, logger: silentLogger });
    try {
      await expect(client.ops.list('g')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(client.ops.workers()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(client.ops.pause('g')).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(client.ops.groups()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await client.send('g', 't', 1);
      expect(await client.ops.counts('g')).toEqual({ group: 'g', ready: 1, delayed: 0, inFlight: 0, dead: 0, paused: false, statuses: null, redelivered: null, running: null });
      expect(() => new Server({ broker, backend, logger: silentLogger, watchdog: {} })).toThrow(expect.objectContaining({ code: 'ERR_UNSUPPORTED' }));
    } finally {
      await client.close();
    }
  });
});

/**
 * The workflow suite on memory broker + Memcache backend (memcached on 127.0.0.1:11211; flow
 * journals as one CAS-guarded item per flow). memcached cannot list its keys, so nothing can be
 * swept by prefix: every test runs with short expiries (statusExpires / resultExpires 60 s) and a
 * prefix of its own, and its items expire by themselves (the expiry test checks that they do).
 * No workflow operation needs a listing; the ones that do (task lists by group) refuse, typed.
 * Set MEMCACHE_SERVERS to use another memcached than 127.0.0.1:11211.
 */
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server, silentLogger, task } from '../src/index.js';
import { workflowSuite } from './workflow/suite.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { MemcacheBackend } from '../backends/memcache.js';

const SERVERS = process.env.MEMCACHE_SERVERS ?? '127.0.0.1:11211';

workflowSuite('memory broker + memcache backend', () => {
  const brokers = new MemoryBrokerStore();
  const prefix = `tasuki-wf-${randomUUID().slice(0, 8)}`;
  return {
    broker: () => new MemoryBroker({ store: brokers }),
    backend: () => new MemcacheBackend({ servers: SERVERS, prefix }),
    options: { statusExpires: 60, resultExpires: 60 },
  };
});

describe('workflows on Memcache: what needs listing is refused', () => {
  it('a workflow\'s steps are found through its journal (getWorkflow), while listing tasks by group refuses with ERR_UNSUPPORTED', async () => {
    const prefix = `tasuki-wf-${randomUUID().slice(0, 8)}`;
    const group = `wfmc-${randomUUID().slice(0, 8)}`;
    const server = new Server({ broker: new MemoryBroker(), backend: new MemcacheBackend({ servers: SERVERS, prefix }), logger: silentLogger, statusExpires: 60, resultExpires: 60 });
    try {
      const add = server.add(group, 'add', (a: number, b: number) => a + b);
      await server.run(group, 2);
      const client = server.client();
      const id = await client.chain(task(add, 1, 2), task(add, 3));
      expect((await client.getResult(id, 20_000, 20)).value).toBe(6);
      expect((await client.getWorkflow(id))?.steps.map((s) => [s.status, s.value])).toEqual([['success', 3], ['success', 6]]);
      await expect(client.ops.list(group)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await expect(client.ops.groups()).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
    } finally {
      await server.shutdown(1000);
    }
  });
});

/**
 * The workflow suite on memory broker + Memcache backend (memcached on 127.0.0.1:11211; flow
 * journals as one CAS-guarded item per flow). memcached cannot list its keys, so nothing can be
 * swept by prefix: every test runs with short expiries (statusExpires / resultExpires 60 s) and a
 * prefix of its own, and its items expire by themselves (the expiry test checks that they do).
 */
import { randomUUID } from 'node:crypto';
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

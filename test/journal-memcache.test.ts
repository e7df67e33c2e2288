import { randomUUID } from 'node:crypto';
import { journalContract } from './contract/journal.js';
import { flowSuite } from './flow/suite.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';

const prefix = `tasuki-journal-${randomUUID()}`;

// Every key is under a fresh prefix and carries an expiry; the contract deletes the journals it made.
journalContract('memcache', () => ({ create: () => new MemcacheBackend({ prefix }) }));

flowSuite('memory broker + memcache backend', () => {
  const brokers = new MemoryBrokerStore();
  return { broker: () => new MemoryBroker({ store: brokers }), backend: () => new MemcacheBackend({ prefix }) };
});

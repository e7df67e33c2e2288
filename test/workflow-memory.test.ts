import { workflowSuite } from './workflow/suite.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';

workflowSuite('memory broker + memory backend', () => {
  const brokers = new MemoryBrokerStore();
  const backends = new MemoryBackendStore();
  return { broker: () => new MemoryBroker({ store: brokers }), backend: () => new MemoryBackend({ store: backends }) };
});

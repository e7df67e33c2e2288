import { coreSuite } from './core/suite.js';
import { sendRaceSuite } from './core/send-race.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';

coreSuite('memory broker + memory backend', () => {
  const brokers = new MemoryBrokerStore();
  const backends = new MemoryBackendStore();
  return { broker: () => new MemoryBroker({ store: brokers }), backend: () => new MemoryBackend({ store: backends }) };
});

sendRaceSuite('memory broker + memory backend', () => {
  const brokers = new MemoryBrokerStore();
  const backends = new MemoryBackendStore();
  return { broker: () => new MemoryBroker({ store: brokers }), backend: () => new MemoryBackend({ store: backends }) };
});

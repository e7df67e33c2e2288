import { brokerContract } from './contract/broker.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';

brokerContract('memory', () => {
  const store = new MemoryBrokerStore();
  return { create: () => new MemoryBroker({ store }) };
});

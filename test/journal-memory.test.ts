import { journalContract } from './contract/journal.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';

journalContract('memory', () => {
  const store = new MemoryBackendStore();
  return { create: () => new MemoryBackend({ store }) };
});

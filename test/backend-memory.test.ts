import { backendContract } from './contract/backend.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';

backendContract('memory', () => {
  const store = new MemoryBackendStore();
  return { create: () => new MemoryBackend({ store }) };
});

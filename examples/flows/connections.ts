/**
 * Broker and backend of the flow examples: the embedded in-memory default, or Redis with `--redis`
 * (REDIS_URL, default redis://127.0.0.1:6379; keys under a fresh prefix, removed at the end).
 */
import { randomUUID } from 'node:crypto';
import type { ServerOptions } from '../../src/index.js';
import { RedisBroker } from '../../brokers/redis.js';
import { RedisBackend } from '../../backends/redis.js';

/** Server options for the example and a clean-up to call after shutdown. */
export function connections(): { options: ServerOptions; cleanup: () => Promise<void>; label: string } {
  if (!process.argv.includes('--redis')) return { options: {}, cleanup: async () => undefined, label: 'embedded memory broker + backend' };
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const prefix = `tasuki-example-${randomUUID().slice(0, 8)}`;
  return {
    options: { broker: new RedisBroker({ connection: url, prefix }), backend: new RedisBackend({ connection: url, prefix }) },
    label: `Redis at ${url}`,
    cleanup: async () => {
      const { Redis } = await import('ioredis');
      const admin = new Redis(url);
      let cursor = '0';
      do {
        const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await admin.del(...keys);
      } while (cursor !== '0');
      await admin.quit();
    },
  };
}

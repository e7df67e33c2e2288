/** Test helpers for Redis: a unique key prefix per test file and a sweep that leaves nothing behind. */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** A unique prefix plus functions to list and delete every key under it. */
export function redisNamespace(label = 'test'): {
  prefix: string;
  /** The admin connection the helper uses (for TTL, CLIENT and SCRIPT commands in tests). */
  admin: Redis;
  keys(): Promise<string[]>;
  sweep(): Promise<void>;
  quit(): Promise<void>;
} {
  const prefix = `tasuki-${label}-${randomUUID()}`;
  const admin = new Redis({ lazyConnect: true, connectionName: 'tasuki-test-admin' });
  const keys = async (): Promise<string[]> => {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found;
  };
  return {
    prefix,
    admin,
    keys,
    async sweep() {
      const k = await keys();
      if (k.length > 0) await admin.del(...k);
    },
    async quit() {
      await admin.quit();
    },
  };
}

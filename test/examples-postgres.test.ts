/**
 * The two "order row and its email task in one transaction" examples run as programs (PostgreSQL
 * alone; PostgreSQL outbox + Redis), each in schemas and a Redis prefix of its own: the committed
 * order's email runs, the rolled-back one's never does, and the program leaves nothing behind.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { redisNamespace } from './helpers/redis.js';
import { PG_URL, adminPool, schemaName, schemaExists } from './helpers/postgres.js';

const run = promisify(execFile);
const admin = adminPool();
afterAll(() => admin.end());

describe.each(['postgres-order-email.ts', 'postgres-redis-order-email.ts'])('examples/%s', (file) => {
  it('emails about the committed order only, and cleans up after itself', async () => {
    const ns = redisNamespace('ex');
    const [shop, tasuki] = [schemaName('exshop'), schemaName('ex')];
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`../examples/${file}`, import.meta.url))], {
        env: { ...process.env, DATABASE_URL: PG_URL, SHOP_SCHEMA: shop, TASUKI_SCHEMA: tasuki, TASUKI_PREFIX: ns.prefix },
        timeout: 60_000,
      });
      expect(stdout).toContain('emailing ada@example.com about order 1');
      expect(stdout).toContain('order for bob@example.com rolled back (payment declined): no row, no email task');
      expect(stdout).toContain('email task: success sent to ada@example.com');
      expect(stdout).not.toContain('emailing bob@example.com');
      expect(await schemaExists(admin, shop)).toBe(false);
      expect(await schemaExists(admin, tasuki)).toBe(false);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${shop}" CASCADE; DROP SCHEMA IF EXISTS "${tasuki}" CASCADE`);
      await ns.sweep();
      await ns.quit();
    }
  });
});

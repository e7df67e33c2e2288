/**
 * The durability check on a Redis Cluster reads every node, masters and replicas (a replica becomes
 * a master at a failover), and names the unsafe node. A private local cluster (3 masters + 3
 * replicas) is started for this file; one replica is made unsafe with CONFIG SET.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisBroker } from '../brokers/redis.js';
import { haveRedisCluster, startRedisCluster, type PrivateCluster } from './helpers/redis-cluster.js';

if (!haveRedisCluster) console.warn('redis cluster durability tests skipped: redis-server or redis-cli not found');

async function until<T>(check: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const durabilityLines = (lines: string[]): string[] => lines.filter((l) => l.includes('appendonly') || l.includes('maxmemory-policy') || l.includes('could not check'));

describe.skipIf(!haveRedisCluster)('redis cluster: durability check of every node', () => {
  let cluster: PrivateCluster;
  const prefix = `tasuki-cldur-${randomUUID().slice(0, 8)}`;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);

  afterAll(async () => {
    if (cluster === undefined) return;
    try {
      for (const close of closers) await close().catch(() => undefined);
      await cluster.sweep(`${prefix}:*`);
    } finally {
      await cluster.stop();
    }
  });

  it('warns once per unsafe node, naming it, and works on', async () => {
    const masters = new Set(await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((k) => cluster.masterOf(k))));
    const replica = cluster.processes.find((p) => !masters.has(p.port) && p.alive());
    if (replica === undefined) throw new Error('no replica found');
    const port = replica.port;
    const direct = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
    await direct.config('SET', 'appendonly', 'no');
    await direct.config('SET', 'maxmemory-policy', 'allkeys-lru');
    direct.disconnect();

    const lines: string[] = [];
    const logger = { warn: (msg: string) => lines.push(msg) };
    const broker = new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, logger });
    closers.push(() => broker.close());
    await broker.publish('g', 'x');
    await until(() => (durabilityLines(lines).length > 0 ? true : undefined), 20_000, 'the durability warning');
    const [d] = await broker.fetch('g', 1, { leaseMs: 30_000, waitMs: 2000 });
    expect(d?.body).toBe('x');
    if (d !== undefined) await broker.ack(d);

    // A second instance in this process does not repeat the finding.
    const again = new RedisBroker({ prefix, cluster: { nodes: cluster.nodes }, logger });
    closers.push(() => again.close());
    await again.publish('g', 'y');
    await again.counts('g');
    const found = durabilityLines(lines);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain(`127.0.0.1:${port} (cluster node)`);
    expect(found[0]).toContain('appendonly is "no"');
    expect(found[0]).toContain('maxmemory-policy is "allkeys-lru"');
  }, 60_000);
});

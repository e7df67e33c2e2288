/**
 * Idle fetches of the Redis broker cost one fetch script per wait (issue 16), counted with MONITOR
 * on a private redis-server (nothing else talks to it): a fetch whose wait runs to its deadline with
 * no marker returns empty without calling the script again; the caller's next fetch calls it first.
 * What that must not weaken: a publish, a delayed message coming due and the expired lease of a dead
 * worker still end the wait and are delivered by that same fetch.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { SCRIPTS } from '../brokers/redis-scripts.js';
import { Server, silentLogger } from '../src/index.js';
import { startPrivateRedis, type PrivateRedis } from './helpers/redis-server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const uid = (): string => randomUUID().slice(0, 8);

let server: PrivateRedis;
let monitor: Redis | undefined;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startPrivateRedis({ args: ['--appendonly', 'yes'] });
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  monitor?.disconnect();
  monitor = undefined;
});
afterAll(async () => {
  await server.remove();
});

function broker(extra: { shards?: number; prefix?: string } = {}): RedisBroker {
  const b = new RedisBroker({ connection: { host: '127.0.0.1', port: server.port }, prefix: `idle-${uid()}`, connectionName: `tasuki-idle-${uid()}`, ...extra });
  closers.push(() => b.close());
  return b;
}

/**
 * Counts the fetch scripts Redis runs from now on (EVALSHA of the fetch script, or EVAL of its
 * body after a NOSCRIPT), with MONITOR.
 */
async function countFetchScripts(): Promise<{ count(): number }> {
  // The body as registered (with the key-check prologue when TASUKI_REDIS_KEY_CHECK=1 added it).
  const lua = SCRIPTS.tasukiFetch.lua;
  const sha = createHash('sha1').update(lua).digest('hex');
  let n = 0;
  const m = await new Redis({ host: '127.0.0.1', port: server.port }).monitor();
  monitor = m;
  m.on('monitor', (_time: string, args: string[]) => {
    const cmd = String(args[0]).toLowerCase();
    if ((cmd === 'evalsha' && args[1] === sha) || (cmd === 'eval' && args[1] === lua)) n++;
  });
  return { count: () => n };
}

describe('redis broker idle fetches (private redis-server)', () => {
  it('a fetch that waits to its deadline with nothing to do runs the fetch script once, not twice', async () => {
    const b = broker();
    const group = `g-${uid()}`;
    await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 50 }); // connections up, scripts loaded
    const scripts = await countFetchScripts();
    for (let i = 0; i < 3; i++) expect(await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 300 })).toEqual([]);
    await sleep(100); // the MONITOR feed of a script may arrive after its reply
    expect(scripts.count()).toBe(3);
  });

  it('a sharded group: one script per shard per idle wait', async () => {
    const b = broker({ shards: 2 });
    const group = `g-${uid()}`;
    await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 50 });
    const scripts = await countFetchScripts();
    for (let i = 0; i < 3; i++) expect(await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 300 })).toEqual([]);
    await sleep(100); // the MONITOR feed of a script may arrive after its reply
    expect(scripts.count()).toBe(6);
  });

  it("a server's idle group runs about one fetch script per fetchWaitMs", async () => {
    const waitMs = 250;
    const s = new Server({ broker: broker(), backend: new RedisBackend({ connection: { host: '127.0.0.1', port: server.port }, prefix: `idle-${uid()}` }), logger: silentLogger, fetchWaitMs: waitMs });
    closers.push(() => s.shutdown(5000));
    s.add('idle', 'echo', (x: string) => x);
    await s.run('idle', 1);
    await sleep(100);
    const scripts = await countFetchScripts();
    const t = Date.now();
    await sleep(6 * waitMs);
    const count = scripts.count();
    const periods = Math.ceil((Date.now() - t) / waitMs);
    // Each wait period that started or ended in the window ran its one script (two before).
    expect(count).toBeGreaterThanOrEqual(1);
    expect(count).toBeLessThanOrEqual(periods + 1);
  });

  it('a publish during the wait is delivered by that fetch', async () => {
    const b = broker();
    const group = `g-${uid()}`;
    await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 50 });
    const fetching = b.fetch(group, 1, { leaseMs: 10_000, waitMs: 10_000 });
    await sleep(200);
    await b.publish(group, 'hello');
    expect((await fetching).map((d) => d.body)).toEqual(['hello']);
  });

  it('a delayed message coming due during the wait is delivered by that fetch', async () => {
    const b = broker();
    const group = `g-${uid()}`;
    await b.publish(group, 'later', { availableAt: Date.now() + 300 });
    // The fetch waits 10 s: ending its wait at the message's due time is what delivers it.
    expect((await b.fetch(group, 1, { leaseMs: 10_000, waitMs: 10_000 })).map((d) => d.body)).toEqual(['later']);
  });

  it("the expired lease of a dead worker is recovered by another worker's idle fetch", async () => {
    const prefix = `idle-${uid()}`;
    const dead = broker({ prefix });
    const group = `g-${uid()}`;
    await dead.publish(group, 'orphan');
    expect((await dead.fetch(group, 1, { leaseMs: 300, waitMs: 1000 })).map((d) => d.body)).toEqual(['orphan']);
    await dead.close(); // never acks
    const alive = broker({ prefix });
    expect((await alive.fetch(group, 1, { leaseMs: 10_000, waitMs: 10_000 })).map((d) => d.body)).toEqual(['orphan']);
  });
});

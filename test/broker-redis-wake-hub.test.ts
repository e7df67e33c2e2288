/**
 * The wake hub of the Redis broker (`brokers/redis-wake-hub.ts`) on the shared Redis (own prefix,
 * own connection names): one server running 1 000 groups holds two broker connections (command +
 * one blocking) and serves every group's ready and delayed tasks; a group woken while the others
 * block is woken by its marker, not a timeout; abort, close and a CLIENT KILL of the blocking
 * connection mid-wait. A capped pool on a private Redis Cluster, when one can be started.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { Redis } from 'ioredis';
import { RedisConnector } from '../brokers/redis-connection.js';
import { Waits } from '../brokers/redis-waits.js';
import { WakeHub } from '../brokers/redis-wake-hub.js';
import { Client, Server, silentLogger } from '../src/index.js';
import { redisNamespace } from './helpers/redis.js';
import { haveRedisCluster, startRedisCluster } from './helpers/redis-cluster.js';

const ns = redisNamespace('wakehub');
const { prefix, admin } = ns;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const uid = (): string => randomUUID().slice(0, 8);

/** CLIENT LIST lines whose client name starts with `<name>:`, by role (`cmd`, `block`). */
async function connectionsOf(name: string): Promise<{ cmd: number; block: number; ids: string[] }> {
  const list = String(await admin.call('CLIENT', 'LIST'));
  const out = { cmd: 0, block: 0, ids: [] as string[] };
  for (const line of list.split('\n')) {
    const client = /(?:^|\s)name=(\S*)/.exec(line)?.[1] ?? '';
    if (!client.startsWith(`${name}:`)) continue;
    const role = client.slice(name.length + 1);
    if (role === 'cmd') out.cmd++;
    if (role === 'block') {
      out.block++;
      out.ids.push(/(?:^|\s)id=(\d+)/.exec(line)?.[1] ?? '');
    }
  }
  return out;
}

/** Waits (bounded) until `name` has a blocking connection blocked in BLPOP. */
async function untilBlocked(name: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const list = String(await admin.call('CLIENT', 'LIST'));
    if (list.split('\n').some((l) => l.includes(`name=${name}:block `) && /\bflags=\S*b/.test(l) && l.includes('cmd=blpop'))) return;
    await sleep(25);
  }
  throw new Error(`no blocked connection named ${name}:block`);
}

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  await ns.sweep();
});
afterAll(async () => {
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

function broker(name: string): RedisBroker {
  const b = new RedisBroker({ prefix, connectionName: name });
  closers.push(() => b.close());
  return b;
}

describe('redis broker wake hub', () => {
  it('a server running 1 000 groups holds 2 broker connections and serves every ready and delayed task', async () => {
    const name = `tasuki-hub-${uid()}`;
    const groups = Array.from({ length: 1000 }, (_, i) => `g${i}-${uid()}`);
    // fetchWaitMs 60 s: a group whose wake marker were missed would not be served within the test.
    const server = new Server({ broker: new RedisBroker({ prefix, connectionName: name }), backend: new RedisBackend({ prefix }), logger: silentLogger, fetchWaitMs: 60_000 });
    closers.push(() => server.shutdown(5000));
    for (const g of groups) server.add(g, 'echo', (x: string) => x);
    for (const g of groups) await server.run(g, 1);
    const client = new Client({ broker: broker(`tasuki-hub-client-${uid()}`), backend: new RedisBackend({ prefix }), logger: silentLogger });
    closers.push(() => client.close());
    await untilBlocked(name);
    expect(await connectionsOf(name)).toMatchObject({ cmd: 1, block: 1 });

    // Ready tasks to every group while all of them block, then delayed ones sent while idle.
    const ready = await Promise.all(groups.map((g) => client.send(g, 'echo', `r-${g}`)));
    const readyResults = await Promise.all(ready.map((id) => client.getResult(id, 30_000)));
    expect(readyResults.map((r) => r.value)).toEqual(groups.map((g) => `r-${g}`));
    await untilBlocked(name);
    const delayed = await Promise.all(groups.map((g) => client.with({ runAfter: 300 }).send(g, 'echo', `d-${g}`)));
    const during = await connectionsOf(name);
    const delayedResults = await Promise.all(delayed.map((id) => client.getResult(id, 30_000)));
    expect(delayedResults.map((r) => r.value)).toEqual(groups.map((g) => `d-${g}`));
    expect(during).toMatchObject({ cmd: 1, block: 1 });
    expect(await connectionsOf(name)).toMatchObject({ cmd: 1, block: 1 });
  }, 120_000);

  it('one group published to while 999 others block is woken by its marker (no timeout)', async () => {
    const name = `tasuki-hub-${uid()}`;
    const b = broker(name);
    const producer = broker(`tasuki-hub-p-${uid()}`);
    const groups = Array.from({ length: 1000 }, (_, i) => `w${i}-${uid()}`);
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    const pending = groups.map((g) => b.fetch(g, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal }));
    await untilBlocked(name);
    // Woken one after another, each while the rest still block.
    for (const i of [500, 0, 999]) {
      await producer.publish(groups[i] as string, `m${i}`);
      const stop = setTimeout(() => ac.abort(), 10_000); // a missed wake ends with [] instead of a slow pass
      const got = await pending[i];
      clearTimeout(stop);
      expect(got?.map((d) => d.body)).toEqual([`m${i}`]);
    }
    expect(await connectionsOf(name)).toMatchObject({ cmd: 1, block: 1 });
    ac.abort();
    expect((await Promise.all(pending)).flat()).toHaveLength(3);
  }, 60_000);

  it('abort ends one wait at once and the others still wake; close ends every wait', async () => {
    const name = `tasuki-hub-${uid()}`;
    const b = broker(name);
    const producer = broker(`tasuki-hub-p-${uid()}`);
    const [g1, g2] = [`a-${uid()}`, `b-${uid()}`];
    const ac = new AbortController();
    const first = b.fetch(g1, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal });
    const second = b.fetch(g2, 1, { leaseMs: 30_000, waitMs: 60_000 });
    await untilBlocked(name);
    ac.abort();
    expect(await first).toEqual([]);
    // The aborted group's key leaves the BLPOP (next tick): its marker stays for another process.
    await sleep(200);
    await producer.publish(g1, 'for-someone-else');
    await sleep(100);
    expect(await admin.llen(`${prefix}:{${g1}}:wake`)).toBe(1);
    await producer.publish(g2, 'x');
    expect((await second).map((d) => d.body)).toEqual(['x']);
    const third = b.fetch(g2, 1, { leaseMs: 30_000, waitMs: 60_000 });
    await untilBlocked(name);
    await b.close();
    expect(await third).toEqual([]);
    expect(await connectionsOf(name)).toMatchObject({ cmd: 0, block: 0 });
  });

  it('a CLIENT KILL of the blocking connection mid-wait: the waits go on and wake after the reconnect', async () => {
    const name = `tasuki-hub-${uid()}`;
    const b = broker(name);
    const producer = broker(`tasuki-hub-p-${uid()}`);
    const groups = Array.from({ length: 20 }, (_, i) => `k${i}-${uid()}`);
    const ac = new AbortController();
    setMaxListeners(0, ac.signal);
    const stop = setTimeout(() => ac.abort(), 20_000);
    const pending = groups.map((g) => b.fetch(g, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal }));
    await untilBlocked(name);
    const before = await connectionsOf(name);
    expect(before.block).toBe(1);
    expect(Number(await admin.call('CLIENT', 'KILL', 'ID', before.ids[0] as string))).toBe(1);
    await untilBlocked(name);
    const after = await connectionsOf(name);
    expect(after.block).toBe(1);
    expect(after.ids).not.toEqual(before.ids);
    await Promise.all(groups.map((g) => producer.publish(g, `v-${g}`)));
    const got = await Promise.all(pending);
    clearTimeout(stop);
    expect(got.map((ds) => ds.map((d) => d.body))).toEqual(groups.map((g) => [`v-${g}`]));
  }, 30_000);
});

it('clusterBlockingConnections must be an integer from 1 to 1000', async () => {
  for (const bad of [0, 1.5, 1001, '8']) {
    expect(() => new RedisBroker({ prefix, clusterBlockingConnections: bad as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  }
  await new RedisBroker({ prefix, clusterBlockingConnections: 1 }).close();
});

describe('wake hub: a marker popped for a waiter that left', () => {
  it('ends the next wait on that key at once (its fetch script then takes the work)', async () => {
    const name = `tasuki-hub-${uid()}`;
    const waits = new Waits();
    const connector = new RedisConnector('redis://127.0.0.1:6379', name, undefined, () => waits.closed);
    const cmd = new Redis({ connectionName: `${name}:cmd` });
    const hub = new WakeHub(connector, cmd, waits, undefined, 5000);
    closers.push(async () => {
      waits.close();
      hub.close();
      await cmd.quit();
    });
    const [left, other] = [`${prefix}:{l-${uid()}}:wake`, `${prefix}:{o-${uid()}}:wake`];
    const ac = new AbortController();
    const keepBlocking = hub.waitForWork(other, 60_000, ac.signal); // keeps the hub's BLPOP going
    await untilBlocked(name);
    // Its timer ends this wait; its key stays in the BLPOP for the grace period (it usually comes back).
    await hub.waitForWork(left, 30, undefined);
    await admin.rpush(left, '1');
    for (let i = 0; i < 100 && (await admin.llen(left)) > 0; i++) await sleep(10);
    expect(await admin.llen(left)).toBe(0); // popped by the hub for nobody
    const stop = setTimeout(() => ac.abort(), 10_000);
    await Promise.race([hub.waitForWork(left, 60_000, ac.signal), keepBlocking]);
    expect(ac.signal.aborted).toBe(false); // the kept marker ended it, not the abort
    clearTimeout(stop);
    ac.abort();
    await keepBlocking;
  });
});

describe.skipIf(!haveRedisCluster)('redis broker wake waits on a cluster', () => {
  it('at most clusterBlockingConnections blocking clients; groups beyond the cap are still served', async () => {
    const cluster = await startRedisCluster();
    try {
      const cprefix = `tasuki-hubcl-${uid()}`;
      const name = `tasuki-hubcl-${uid()}`;
      const b = new RedisBroker({ prefix: cprefix, cluster: { nodes: cluster.nodes }, connectionName: name, clusterBlockingConnections: 2 });
      const producer = new RedisBroker({ prefix: cprefix, cluster: { nodes: cluster.nodes } });
      try {
        const groups = Array.from({ length: 10 }, (_, i) => `c${i}-${uid()}`);
        const ac = new AbortController();
        const stop = setTimeout(() => ac.abort(), 20_000);
        const pending = groups.map((g) => b.fetch(g, 1, { leaseMs: 30_000, waitMs: 60_000, signal: ac.signal }));
        await sleep(500);
        expect((b as unknown as { pool: { connections: number } }).pool.connections).toBe(2);
        await Promise.all(groups.map((g) => producer.publish(g, `v-${g}`)));
        const got = await Promise.all(pending);
        clearTimeout(stop);
        expect(got.map((ds) => ds.map((d) => d.body))).toEqual(groups.map((g) => [`v-${g}`]));
        expect((b as unknown as { pool: { connections: number } }).pool.connections).toBeLessThanOrEqual(2);
      } finally {
        await Promise.all([b.close(), producer.close()]);
        await cluster.sweep(`${cprefix}:*`);
      }
    } finally {
      await cluster.stop();
    }
  }, 90_000);
});

/**
 * The RabbitMQ broker on a private local 3-node RabbitMQ cluster with quorum queues
 * (`test/helpers/rabbitmq-cluster.ts`; the shared node is never touched): the broker contract suite,
 * the core and flow behaviour suites, and a node SIGKILLed mid-run and restarted, counting what completes.
 * Opt-in (`TASUKI_RABBIT_CLUSTER=1`): it starts three RabbitMQ nodes and takes minutes on two cores.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBackend } from '../backends/redis.js';
import { RabbitMQBroker, type RabbitMQBrokerOptions } from '../brokers/rabbitmq.js';
import type { Delivery } from '../src/broker.js';
import { brokerContract } from './contract/broker.js';
import { coreSuite } from './core/suite.js';
import { flowSuite } from './flow/suite.js';
import { clusterTestsEnabled, startPrivateRabbitCluster, type PrivateRabbitCluster } from './helpers/rabbitmq-cluster.js';
import { redisNamespace } from './helpers/redis.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe.runIf(clusterTestsEnabled)('RabbitMQ broker on a 3-node cluster, quorum queues', () => {
  let cluster: PrivateRabbitCluster | undefined;
  const redis = redisNamespace('cluster-rmq');
  const opened: RabbitMQBroker[] = [];

  /** A broker on the cluster (every node listed), quorum queues. */
  const make = (prefix: string, extra: RabbitMQBrokerOptions = {}): RabbitMQBroker => {
    if (!cluster) throw new Error('cluster not started');
    const b = new RabbitMQBroker({ urls: cluster.urls, queueType: 'quorum', prefix, reconnectMaxDelayMs: 500, ...extra });
    opened.push(b);
    return b;
  };

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startPrivateRabbitCluster(3);
    console.log(`rabbitmq cluster: 3 nodes up and joined in ${Date.now() - t0} ms`);
  }, 240_000);

  afterAll(async () => {
    await Promise.all(opened.map((b) => b.close()));
    await cluster?.destroy();
    await redis.sweep();
    expect(await redis.keys()).toEqual([]);
    await redis.quit();
  }, 120_000);

  brokerContract('rabbitmq cluster (quorum)', () => ({ create: () => make('contract') }));

  coreSuite('rabbitmq cluster (quorum) + redis backend', () => ({
    broker: () => make('core'),
    backend: () => new RedisBackend({ prefix: redis.prefix }),
    teardown: () => redis.sweep(),
  }));

  flowSuite('rabbitmq cluster (quorum) + redis backend', () => ({
    broker: () => make('flow'),
    backend: () => new RedisBackend({ prefix: redis.prefix }),
    teardown: () => redis.sweep(),
  }));

  it('a node SIGKILLed mid-run and restarted: nothing confirmed is lost, consumers move, delayed messages survive', async () => {
    if (!cluster) throw new Error('cluster not started');
    const victim = cluster.nodes[0];
    if (!victim) throw new Error('no node');
    const group = 'failover';
    const prefix = 'failover';
    // Declared through the victim: the quorum queues' leaders start there (client-local placement).
    const declarer = new RabbitMQBroker({ url: cluster.urls[0], queueType: 'quorum', prefix });
    opened.push(declarer);
    expect(await declarer.fetch(group, 1, { leaseMs: 30_000, waitMs: 1 })).toEqual([]);

    // Consumers: at least one connected to the victim and one elsewhere (each starts at a random node).
    const consumers: RabbitMQBroker[] = [];
    const onVictim = (): RabbitMQBroker[] => consumers.filter((c) => c.connectedNode() === 0);
    while (consumers.length < 2 || onVictim().length === 0 || onVictim().length === consumers.length) {
      const c = make(prefix, { operationTimeoutMs: 120_000 });
      await c.connect();
      consumers.push(c);
    }
    const victimConsumers = new Set(onVictim());
    // The producer too publishes through the victim when it dies: its unconfirmed publishes must go
    // again through another node, and what was confirmed must survive.
    let producer = make(prefix, { operationTimeoutMs: 120_000 });
    await producer.connect();
    while (producer.connectedNode() !== 0) {
      producer = make(prefix, { operationTimeoutMs: 120_000 });
      await producer.connect();
    }

    const seenAt = new Map<string, number>();
    const byConsumerAfterKill = new Map<RabbitMQBroker, number>();
    let killedAt = Infinity;
    let restartedAt = Infinity;
    let done = false;
    const consume = async (c: RabbitMQBroker): Promise<void> => {
      while (!done) {
        let got: Delivery[] = [];
        try {
          got = await c.fetch(group, 20, { leaseMs: 60_000, waitMs: 300 });
        } catch {
          await sleep(100); // its node is down: the broker moves to another in the background
        }
        for (const d of got) {
          const now = Date.now();
          if (!seenAt.has(d.body)) seenAt.set(d.body, now);
          if (now > killedAt && now < restartedAt) byConsumerAfterKill.set(c, (byConsumerAfterKill.get(c) ?? 0) + 1);
          await c.ack(d).catch(() => undefined);
        }
      }
    };
    const consuming = consumers.map((c) => consume(c));

    // Delayed messages due 1.5 to 6 s ahead: moving between delay levels when the node dies at +2.5 s.
    const t1 = Date.now();
    const delayedCount = 300;
    await producer.publishBatch(
      group,
      Array.from({ length: delayedCount }, (_, i) => ({ body: `d${i}`, options: { availableAt: t1 + 1500 + Math.floor(Math.random() * 4500) } })),
    );
    const confirmed = new Set(Array.from({ length: delayedCount }, (_, i) => `d${i}`));
    const unconfirmed = new Set<string>();

    // A steady stream of ready messages, in batches of 10, across the kill.
    let producing = true;
    const produce = (async () => {
      for (let n = 0; producing; n++) {
        const bodies = Array.from({ length: 10 }, (_, i) => `r${n}-${i}`);
        try {
          await producer.publishBatch(group, bodies.map((body) => ({ body })));
          for (const b of bodies) confirmed.add(b);
        } catch {
          for (const b of bodies) unconfirmed.add(b);
        }
        await sleep(20);
      }
    })();

    await sleep(Math.max(0, t1 + 2500 - Date.now()));
    const leaders = await victim.ctl('list_queues', '-q', '--no-table-headers', 'name', 'leader');
    const workLeader = leaders.split('\n').find((l) => l.startsWith(`${prefix}.work.${group}`))?.trim().split(/\s+/)[1];
    killedAt = Date.now();
    await victim.crash();
    const lastBeforeKill = Math.max(0, ...[...seenAt.values()].filter((t) => t <= killedAt));
    await sleep(3000);
    const restartBegan = Date.now();
    await victim.start();
    restartedAt = Date.now();
    await sleep(2000);
    producing = false;
    await produce;

    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline && [...confirmed].some((b) => !seenAt.has(b))) await sleep(200);
    done = true;
    await Promise.all(consuming);

    const missing = [...confirmed].filter((b) => !seenAt.has(b));
    const firstAfterKill = Math.min(...[...seenAt.values()].filter((t) => t > killedAt));
    const times = [...seenAt.values()].sort((a, b) => a - b);
    let longestGap = 0;
    let gapStart = 0;
    for (let i = 1; i < times.length; i++) {
      const gap = (times[i] as number) - (times[i - 1] as number);
      if (gap > longestGap) [longestGap, gapStart] = [gap, times[i - 1] as number];
    }
    const movedDeliveries = [...victimConsumers].map((c) => byConsumerAfterKill.get(c) ?? 0);
    const lastDelayed = Math.max(...[...seenAt].filter(([b]) => b.startsWith('d')).map(([, t]) => t));
    console.log(
      `rabbitmq cluster failover: ${confirmed.size} confirmed (${delayedCount} delayed), ${unconfirmed.size} rejected during the kill ` +
        `(${[...unconfirmed].filter((b) => seenAt.has(b)).length} of them delivered anyway), ${missing.length} confirmed lost; ` +
        `work queue leader ${workLeader === victim.node ? 'on' : 'not on'} the killed node; ${consumers.length} consumers, ${victimConsumers.size} on the killed node, which took ${movedDeliveries.join('/')} deliveries from a surviving node before the restart; ` +
        `first delivery ${firstAfterKill - killedAt} ms after the kill (last before it ${killedAt - lastBeforeKill} ms before), longest gap between deliveries ${longestGap} ms, from ${gapStart - killedAt} ms after the kill; ` +
        `node restart took ${restartedAt - restartBegan} ms (began ${restartBegan - killedAt} ms after the kill); last delayed message delivered ${lastDelayed - t1} ms after they were sent (due by 6000 ms)`,
    );
    expect(missing).toEqual([]);
    // Consumers of the killed node moved to a surviving one and went on working there.
    for (const n of movedDeliveries) expect(n).toBeGreaterThan(0);
    // The node came back into the cluster.
    expect(await cluster.runningNodes(cluster.nodes[1])).toEqual(cluster.nodes.map((n) => n.node).sort());
  }, 300_000);
});

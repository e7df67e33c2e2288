/**
 * A RabbitMQ node crash loses no confirmed message, delayed or not: delayed messages and delayed
 * retries are sent (every publish confirmed), the node's Erlang VM is SIGKILLed while they wait,
 * the node is started again on the same data directory, and every message must still be delivered.
 * A graceful restart (stop_app/start_app) loses nothing either. Runs on a private node (own name,
 * ports, data directory), never the shared one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import type { Broker, Delivery } from '../src/broker.js';
import { startPrivateRabbit, type PrivateRabbit } from './helpers/rabbitmq-node.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let node: PrivateRabbit | undefined;
const brokers: Broker[] = [];

/** Queue type of the run: classic (the default), or TASUKI_CRASH_QUEUE_TYPE=quorum. */
const queueType = process.env.TASUKI_CRASH_QUEUE_TYPE === 'quorum' ? 'quorum' : 'classic';

function make(): RabbitMQBroker {
  const b = new RabbitMQBroker({ url: node?.url, prefix: 'crash', reconnectMaxDelayMs: 300, operationTimeoutMs: 120_000, queueType });
  brokers.push(b);
  return b;
}

beforeAll(async () => {
  node = await startPrivateRabbit();
}, 120_000);

afterAll(async () => {
  await Promise.all(brokers.map((b) => b.close()));
  await node?.destroy();
}, 60_000);

describe('RabbitMQ broker: node crash and restart (private node)', () => {
  it('delivers every confirmed delayed message and delayed retry after a SIGKILL of the node', async () => {
    const group = 'g';
    // The scale (3 000 delayed, 800 retries) runs with TASUKI_CRASH_DELAYED / TASUKI_CRASH_RETRIES.
    const delayed = Number(process.env.TASUKI_CRASH_DELAYED ?? 300);
    const retries = Number(process.env.TASUKI_CRASH_RETRIES ?? 100);
    const consumer = make();
    const producer = make();
    // Declare the group (and start whatever the broker runs for a fetching group).
    expect(await consumer.fetch(group, 1, { leaseMs: 30_000, waitMs: 1 })).toEqual([]);

    // Delayed retries: ready messages, fetched, then retried with a delay (each retry confirmed).
    const retrier = make();
    await producer.publishBatch(group, Array.from({ length: retries }, (_, i) => ({ body: `r${i}` })));
    const fetched: Delivery[] = [];
    while (fetched.length < retries) fetched.push(...(await retrier.fetch(group, retries - fetched.length, { leaseMs: 60_000, waitMs: 5000 })));
    const t0 = Date.now();
    await Promise.all(fetched.map((d) => retrier.retry(d, `${d.body}-retry`, t0 + 1000 + Math.floor(Math.random() * 3000))));
    // Delayed messages, due 1.5 to 6 s ahead (confirmed as one batch).
    const t1 = Date.now();
    await producer.publishBatch(
      group,
      Array.from({ length: delayed }, (_, i) => ({ body: `d${i}`, options: { availableAt: t1 + 1500 + Math.floor(Math.random() * 4500) } })),
    );
    const expected = new Set([...Array.from({ length: delayed }, (_, i) => `d${i}`), ...fetched.map((d) => `${d.body}-retry`)]);

    const seen = new Set<string>();
    let done = false;
    const consume = (async () => {
      while (!done) {
        let got: Delivery[] = [];
        try {
          got = await consumer.fetch(group, 50, { leaseMs: 30_000, waitMs: 500 });
        } catch {
          await sleep(200); // node down: the broker reconnects in the background
        }
        for (const d of got) {
          seen.add(d.body);
          await consumer.ack(d).catch(() => undefined);
        }
      }
    })();

    // Crash the node while the messages wait, then start it again on the same data directory.
    await sleep(Math.max(0, t1 + 2500 - Date.now()));
    const before = seen.size;
    await node?.crash();
    await node?.start();
    const restarted = Date.now();

    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && [...expected].some((b) => !seen.has(b))) await sleep(200);
    done = true;
    await consume;
    const missing = [...expected].filter((b) => !seen.has(b));
    console.log(
      `rabbitmq crash run (${queueType}): ${expected.size} confirmed (${delayed} delayed, ${retries} delayed retries), ${before} delivered before the crash, ` +
        `${missing.length} lost (${missing.filter((b) => b.endsWith('-retry')).length} of them retries); last delivery ${Date.now() - restarted} ms after the restart completed (or the 60 s wait ran out)`,
    );
    expect(missing).toEqual([]);
  }, 180_000);

  it('a worker survives a graceful restart of the node (stop_app/start_app) and loses no message', async () => {
    const group = 'restart';
    const producer = make();
    const consumer = make();
    await producer.publishBatch(group, Array.from({ length: 50 }, (_, i) => ({ body: `before${i}` })));
    await producer.publish(group, 'delayed', { availableAt: Date.now() + 3000 });
    const seen = new Set<string>();
    let done = false;
    const consume = (async () => {
      while (!done) {
        let got: Delivery[] = [];
        try {
          got = await consumer.fetch(group, 10, { leaseMs: 30_000, waitMs: 500 });
        } catch {
          await sleep(100);
        }
        for (const d of got) {
          seen.add(d.body);
          await consumer.ack(d).catch(() => undefined);
        }
      }
    })();
    const until = Date.now() + 20_000;
    while (seen.size < 50 && Date.now() < until) await sleep(50);
    await node?.ctl('stop_app');
    try {
      await sleep(1500);
    } finally {
      await node?.ctl('start_app');
    }
    await node?.ctl('await_startup');
    for (let i = 0; i < 50; i++) await producer.publish(group, `after${i}`);
    const expected = [...Array.from({ length: 50 }, (_, i) => `before${i}`), 'delayed', ...Array.from({ length: 50 }, (_, i) => `after${i}`)];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && expected.some((b) => !seen.has(b))) await sleep(100);
    done = true;
    await consume;
    expect(expected.filter((b) => !seen.has(b))).toEqual([]);
  }, 120_000);
});

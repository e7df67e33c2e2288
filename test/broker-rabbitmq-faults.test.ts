/**
 * Fault and behaviour tests of the RabbitMQ broker against a real RabbitMQ (127.0.0.1:5672):
 * topology conflicts, server-side connection closes during a run of messages, delay ordering and
 * measured delay lateness, dead-letter bookkeeping. Crashes and restarts of a node are tested on a
 * private node in `broker-rabbitmq-crash.test.ts`; the shared node is never stopped.
 */
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Broker, Delivery } from '../src/broker.js';
import { RabbitMQBroker, type RabbitMQBrokerOptions } from '../brokers/rabbitmq.js';
import { delayExchangeNames, groupQueueNames } from '../brokers/rabbitmq-topology.js';

const url = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';
const prefix = `tasuki-test-${randomUUID().slice(0, 8)}`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rabbitmqctl(...args: string[]): string {
  return execFileSync('rabbitmqctl', args, { encoding: 'utf8' });
}

/** Closes, from the server side, every connection whose client-provided name is `name`; returns how many. */
function closeConnectionsNamed(name: string): number {
  const lines = rabbitmqctl('list_connections', '-q', '--no-table-headers', 'pid', 'client_properties').split('\n');
  let closed = 0;
  for (const line of lines) {
    if (!line.includes(`{"connection_name","${name}"}`)) continue;
    const pid = line.split('\t')[0]?.trim();
    if (!pid) continue;
    rabbitmqctl('close_connection', pid, 'tasuki fault test');
    closed++;
  }
  return closed;
}

const brokers: Broker[] = [];
const groups: string[] = [];
function make(options: RabbitMQBrokerOptions = {}): RabbitMQBroker {
  const b = new RabbitMQBroker({ url, prefix, ...options });
  brokers.push(b);
  return b;
}
function newGroup(): string {
  const g = `g-${randomUUID().slice(0, 8)}`;
  groups.push(g);
  return g;
}

afterEach(async () => {
  const cleaner = make();
  for (const g of groups.splice(0)) await cleaner.purge(g).catch(() => undefined);
  await Promise.all(brokers.splice(0).map((b) => b.close()));
});

afterAll(async () => {
  const model = await connect(url);
  const ch = await model.createChannel();
  const leftovers = rabbitmqctl('list_queues', '-q', '--no-table-headers', 'name')
    .split('\n')
    .map((l) => l.trim())
    .filter((q) => q.startsWith(`${prefix}.`));
  for (const queue of leftovers) await ch.deleteQueue(queue);
  for (const exchange of delayExchangeNames(prefix)) await ch.deleteExchange(exchange);
  await model.close();
});

/** Runs a worker loop on `broker` that acks everything and records bodies, until `stop()` is called. */
function worker(broker: Broker, group: string, concurrency = 10): { seen: string[]; stop: () => Promise<void> } {
  const seen: string[] = [];
  const ac = new AbortController();
  const loop = (async () => {
    while (!ac.signal.aborted) {
      let got: Delivery[] = [];
      try {
        got = await broker.fetch(group, concurrency, { leaseMs: 30_000, waitMs: 500, signal: ac.signal });
      } catch {
        await sleep(100);
        continue;
      }
      for (const d of got) {
        seen.push(d.body);
        await broker.ack(d).catch(() => undefined);
      }
    }
  })();
  return {
    seen,
    stop: async () => {
      ac.abort();
      await loop;
    },
  };
}

async function waitFor(cond: () => boolean, totalMs: number): Promise<void> {
  const until = Date.now() + totalMs;
  while (!cond() && Date.now() < until) await sleep(50);
}

describe('RabbitMQ broker: topology', () => {
  it('refuses a work queue that exists with other arguments, naming the difference', async () => {
    const group = newGroup();
    const model = await connect(url);
    const ch = await model.createChannel();
    await ch.assertQueue(groupQueueNames(prefix, group).work, { durable: true, arguments: { 'x-max-length': 10 } });
    await model.close();

    const b = make();
    const err = await b.publish(group, 'x').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TOPOLOGY_MISMATCH' });
    expect(String((err as Error).message)).toContain('x-max-length');
    expect(String((err as Error).message)).toContain(groupQueueNames(prefix, group).work);
    // The broker stays usable for other groups after the refused declaration.
    const other = newGroup();
    await b.publish(other, 'fine');
    expect((await b.counts(other)).ready).toBe(1);
  });

  it('refuses to use classic queues as quorum queues', async () => {
    const group = newGroup();
    await make().publish(group, 'classic');
    const quorum = make({ queueType: 'quorum' });
    const err = await quorum.fetch(group, 1, { leaseMs: 1000, waitMs: 2000 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TOPOLOGY_MISMATCH' });
    expect(String((err as Error).message)).toContain('x-queue-type');
  });
});

describe('RabbitMQ broker: connection faults', () => {
  it('reconnects after the server closes its connections mid-run and loses nothing', async () => {
    const group = newGroup();
    const tag = randomUUID().slice(0, 8);
    const producer = make({ connectionName: `tasuki-fault-producer-${tag}` });
    const consumer = make({ connectionName: `tasuki-fault-consumer-${tag}` });
    await consumer.connect();
    const w = worker(consumer, group);
    const n = 300;
    const published: string[] = [];
    let closedProducer = 0;
    let closedConsumer = 0;
    for (let i = 0; i < n; i++) {
      const body = `m${i}`;
      const pub = producer.publish(group, body);
      if (i === 100) closedConsumer = closeConnectionsNamed(`tasuki-fault-consumer-${tag}`);
      if (i === 200) closedProducer = closeConnectionsNamed(`tasuki-fault-producer-${tag}`);
      await pub;
      published.push(body);
    }
    expect(closedConsumer).toBe(1);
    expect(closedProducer).toBe(1);
    await waitFor(() => new Set(w.seen).size >= n, 30_000);
    await w.stop();
    const seen = new Set(w.seen);
    expect(published.filter((b) => !seen.has(b))).toEqual([]);
    expect(seen.size).toBe(n);
    expect(await consumer.counts(group)).toMatchObject({ ready: 0, delayed: 0, inFlight: 0 });
  });

  it('a delivery held on a closed connection comes back redelivered, and its stale ack is a no-op', async () => {
    const group = newGroup();
    const tag = randomUUID().slice(0, 8);
    const a = make({ connectionName: `tasuki-fault-a-${tag}` });
    const c = make();
    await a.publish(group, 'job');
    const [first] = await a.fetch(group, 1, { leaseMs: 60_000, waitMs: 2000 });
    expect(first?.body).toBe('job');
    expect(closeConnectionsNamed(`tasuki-fault-a-${tag}`)).toBe(1);
    let second: Delivery | undefined;
    for (let i = 0; i < 20 && !second; i++) [second] = await c.fetch(group, 1, { leaseMs: 60_000, waitMs: 500 });
    expect(second?.body).toBe('job');
    expect(second?.redelivered).toBe(true);
    await a.ack(first as Delivery);
    expect(await a.extend([first as Delivery], 1000)).toEqual([first?.token]);
    expect((await c.counts(group)).inFlight).toBe(1);
    await c.ack(second as Delivery);
    expect(await c.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });
});

describe('RabbitMQ broker: unreachable server', () => {
  it('rejects with ConnectionError while it cannot connect, and ClosedError once closed', async () => {
    const b = make({ url: 'amqp://guest:guest@127.0.0.1:1', operationTimeoutMs: 400, reconnectInitialDelayMs: 50 });
    await expect(b.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.publish('g', 'x')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.fetch('g', 1, { leaseMs: 1000, waitMs: 200 })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await b.close();
    await expect(b.fetch('g', 1, { leaseMs: 1000, waitMs: 200 })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await expect(b.counts('g')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

describe('RabbitMQ broker: credentials', () => {
  it('after a wrong password neither the error, its causes, nor its stack holds the password (URL and connection fields)', async () => {
    const secret = `wrong-${randomUUID()}`;
    const byUrl = make({ url: `amqp://guest:${secret}@127.0.0.1:5672`, operationTimeoutMs: 1500, reconnectInitialDelayMs: 50 });
    const byFields = make({
      connection: { protocol: 'amqp', hostname: '127.0.0.1', port: 5672, username: 'guest', password: secret },
      operationTimeoutMs: 1500,
      reconnectInitialDelayMs: 50,
    });
    for (const b of [byUrl, byFields]) {
      const errs = [await b.connect().catch((e: unknown) => e), await b.publish('g', 'x').catch((e: unknown) => e)];
      for (const err of errs) {
        expect(err).toMatchObject({ code: 'ERR_CONNECTION' });
        const printed = [inspect(err, { depth: Infinity, showHidden: true }), String((err as Error).stack)];
        for (let c: unknown = err; c instanceof Error; c = c.cause) printed.push(String(c.message), String(c.stack), JSON.stringify(c));
        for (const text of printed) expect(text).not.toContain(secret);
      }
    }
  });
});

describe('RabbitMQ broker: refused permissions', () => {
  it('a user without configure rights gets a ConnectionError from publish and fetch, not a silent wait', async () => {
    const user = `${prefix}-noconf`;
    rabbitmqctl('add_user', user, 'pw');
    try {
      rabbitmqctl('set_permissions', '-p', '/', user, '^$', '.*', '.*');
      const b = make({ url: `amqp://${encodeURIComponent(user)}:pw@127.0.0.1:5672`, operationTimeoutMs: 2000 });
      const group = newGroup();
      const pubErr = await b.publish(group, 'x').catch((e: unknown) => e);
      expect(pubErr).toMatchObject({ code: 'ERR_CONNECTION' });
      expect(String((pubErr as Error).message)).toContain('ACCESS_REFUSED');
      const fetchErr = await b.fetch(group, 1, { leaseMs: 1000, waitMs: 5000 }).catch((e: unknown) => e);
      expect(fetchErr).toMatchObject({ code: 'ERR_CONNECTION' });
      expect(String((fetchErr as Error).message)).toContain('ACCESS_REFUSED');
    } finally {
      rabbitmqctl('delete_user', user);
    }
  });
});

describe('RabbitMQ broker: quorum queues', () => {
  it('works end to end on quorum queues: ready, delayed, dead letters', async () => {
    const group = newGroup();
    const b = make({ queueType: 'quorum' });
    await b.publish(group, 'now');
    await b.publish(group, 'later', { availableAt: Date.now() + 300 });
    const got: Delivery[] = [];
    for (let i = 0; i < 20 && got.length < 2; i++) got.push(...(await b.fetch(group, 2, { leaseMs: 30_000, waitMs: 500 })));
    expect(got.map((d) => d.body)).toEqual(['now', 'later']);
    await b.ack(got[0] as Delivery);
    await b.deadLetter(got[1] as Delivery, { code: 'ERR_DECODE', message: 'bad' });
    const dead = await b.listDeadLetters(group);
    expect(dead.map((d) => [d.body, d.reason.code])).toEqual([['later', 'ERR_DECODE']]);
    expect(await b.redriveDeadLetters(group)).toBe(1);
    const [back] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 2000 });
    expect(back?.body).toBe('later');
    await b.ack(back as Delivery);
    expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });
});

describe('RabbitMQ broker: killed worker', () => {
  it("a SIGKILLed worker's unacked delivery returns at once, long before its lease", async () => {
    const group = newGroup();
    const producer = make();
    await producer.publish(group, 'job');
    const script = `
      import { RabbitMQBroker } from ${JSON.stringify(fileURLToPath(new URL('../brokers/rabbitmq.ts', import.meta.url)))};
      const b = new RabbitMQBroker({ url: process.env.T_URL, prefix: process.env.T_PREFIX });
      for (;;) {
        const got = await b.fetch(process.env.T_GROUP, 1, { leaseMs: 600000, waitMs: 1000 });
        if (got.length > 0) { console.log('got ' + got[0].body); break; }
      }
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, T_URL: url, T_PREFIX: prefix, T_GROUP: group },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        child.on('exit', (code) => reject(new Error(`worker exited early with ${String(code)}`)));
      });
      expect(line).toBe('got job');
    } finally {
      child.kill('SIGKILL');
    }
    const c = make();
    let again: Delivery | undefined;
    // The lease is 10 minutes: only the channel closing with the killed process can bring it back.
    for (let i = 0; i < 20 && !again; i++) [again] = await c.fetch(group, 1, { leaseMs: 30_000, waitMs: 500 });
    expect(again?.body).toBe('job');
    expect(again?.redelivered).toBe(true);
    await c.ack(again as Delivery);
  });
});

describe('RabbitMQ broker: delays', () => {
  it('delivers delays in due order whatever the publish order, never early', async () => {
    const group = newGroup();
    const b = make();
    // Use the group first: its first use declares the topology, which is not what this measures
    // (a fetch that times out before the connection is up declares nothing).
    await b.publish(group, 'warm-up');
    const [warm] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 5000 });
    expect(warm?.body).toBe('warm-up');
    await b.ack(warm as Delivery);
    const start = Date.now();
    const delays = [2400, 1200, 600, 300, 100];
    for (const d of delays) await b.publish(group, String(d), { availableAt: start + d });
    const got: Array<{ body: string; at: number }> = [];
    const until = Date.now() + 10_000;
    while (got.length < delays.length && Date.now() < until) {
      for (const d of await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 500 })) {
        got.push({ body: d.body, at: Date.now() });
        await b.ack(d);
      }
    }
    expect(got.map((g) => g.body)).toEqual(['100', '300', '600', '1200', '2400']);
    for (const g of got) expect(g.at).toBeGreaterThanOrEqual(start + Number(g.body));
  });

  it('measures delay lateness over 50 delayed messages', async () => {
    const group = newGroup();
    const producer = make();
    const consumer = make();
    const n = 50;
    // Warm up: the first use of a group declares its topology; that is not delay lateness.
    await producer.publish(group, 'warm-up');
    const [warm] = await consumer.fetch(group, 1, { leaseMs: 30_000, waitMs: 5000 });
    expect(warm?.body).toBe('warm-up');
    await consumer.ack(warm as Delivery);
    const due = new Map<string, number>();
    const now = Date.now();
    const items = Array.from({ length: n }, (_, i) => {
      const at = now + 200 + Math.floor(Math.random() * 2800);
      due.set(`d${i}`, at);
      return { body: `d${i}`, options: { availableAt: at } };
    });
    await producer.publishBatch(group, items);
    const lateness: number[] = [];
    const until = Date.now() + 15_000;
    while (lateness.length < n && Date.now() < until) {
      for (const d of await consumer.fetch(group, 10, { leaseMs: 30_000, waitMs: 500 })) {
        lateness.push(Date.now() - (due.get(d.body) as number));
        await consumer.ack(d);
      }
    }
    expect(lateness).toHaveLength(n);
    expect(Math.min(...lateness)).toBeGreaterThanOrEqual(0);
    const sorted = [...lateness].sort((x, y) => x - y);
    const pick = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
    console.log(
      `rabbitmq delay lateness over ${n} messages (ms): min ${pick(0)}, median ${pick(0.5)}, p95 ${pick(0.95)}, max ${sorted[sorted.length - 1]}`,
    );
  });

  it('a retry with a delay survives the worker closing before it is due', async () => {
    const group = newGroup();
    const a = make();
    await a.publish(group, 'v1');
    const [d] = await a.fetch(group, 1, { leaseMs: 30_000, waitMs: 2000 });
    await a.retry(d as Delivery, 'v2', Date.now() + 500);
    await a.close();
    const c = make();
    let again: Delivery | undefined;
    for (let i = 0; i < 10 && !again; i++) [again] = await c.fetch(group, 1, { leaseMs: 30_000, waitMs: 500 });
    expect(again?.body).toBe('v2');
    await c.ack(again as Delivery);
  });
});

describe('RabbitMQ broker: dead letters', () => {
  it('keeps ids and order stable across listings, deletes and redrives only what it is asked to', async () => {
    const group = newGroup();
    const b = make();
    const bodies = ['p0', 'p1', 'p2', 'p3', 'p4'];
    for (const body of bodies) await b.publish(group, body);
    const ds: Delivery[] = [];
    while (ds.length < bodies.length) ds.push(...(await b.fetch(group, 5, { leaseMs: 30_000, waitMs: 1000 })));
    for (const d of ds) await b.deadLetter(d, { code: 'ERR_DECODE', message: `bad ${d.body}` });

    const first = await b.listDeadLetters(group);
    expect(first.map((x) => x.body)).toEqual(bodies);
    expect(first.map((x) => x.reason.message)).toEqual(bodies.map((x) => `bad ${x}`));
    expect(await b.listDeadLetters(group)).toEqual(first);
    expect((await b.listDeadLetters(group, { offset: 1, limit: 2 })).map((x) => x.id)).toEqual([first[1]?.id, first[2]?.id]);

    expect(await b.deleteDeadLetters(group, [first[1]?.id as string, 'nope'])).toBe(1);
    expect(await b.redriveDeadLetters(group, [first[3]?.id as string])).toBe(1);
    const left = await b.listDeadLetters(group);
    expect(left.map((x) => x.id)).toEqual([first[0]?.id, first[2]?.id, first[4]?.id]);
    const [back] = await b.fetch(group, 1, { leaseMs: 30_000, waitMs: 2000 });
    expect(back?.body).toBe('p3');
    await b.ack(back as Delivery);
    expect(await b.counts(group)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 3 });
  });
});

/**
 * Idempotent sends (explicit `id`) across processes, on the Redis and RabbitMQ brokers (Redis
 * backend): a sender SIGKILLed between its `sent`
 * claim and its publish must not poison the ids (a re-send from another process runs every task),
 * and two processes sending the same ids at once run each task exactly once.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, Server, silentLogger } from '../src/index.js';
import type { Broker } from '../src/broker.js';
import { RedisBroker } from '../brokers/redis.js';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';
import { until } from './core/suite.js';

const ns = redisNamespace('idem');
const rabbit = rabbitNamespace('idem');
type Kind = 'redis' | 'rabbitmq';
const brokerOf = (kind: Kind): Broker => (kind === 'redis' ? new RedisBroker({ prefix: ns.prefix }) : new RabbitMQBroker({ url: rabbitUrl, prefix: rabbit.prefix }));
const senderEnv = (kind: Kind, group: string, ids: string[], mode: 'hang' | 'send'): Record<string, string> => ({
  TASUKI_BROKER: kind,
  TASUKI_PREFIX: kind === 'redis' ? ns.prefix : rabbit.prefix,
  TASUKI_REDIS_PREFIX: ns.prefix,
  TASUKI_GROUP: group,
  TASUKI_IDS: ids.join(','),
  TASUKI_MODE: mode,
});
const fixture = fileURLToPath(new URL('./fixtures/sender.ts', import.meta.url));
const N = 20;
let children: ChildProcess[] = [];
let servers: Server[] = [];
let clients: Client[] = [];

interface Sender {
  child: ChildProcess;
  exited: Promise<unknown>;
  /** Resolves once `n` lines starting with `word ` were printed. */
  lines(word: string, n: number): Promise<void>;
  /** Waits for "ready", then lets the sends start. */
  go(): Promise<void>;
  /** Whether it printed "ready". */
  ready(): boolean;
}

function startSender(env: Record<string, string>): Sender {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    child,
    exited,
    ready: () => out.includes('ready\n'),
    go: async () => {
      await until(() => out.includes('ready\n') || undefined, 30_000, `sender ready; output:\n${out}`);
      child.stdin?.write('go\n');
    },
    lines: (word, n) => until(() => out.split('\n').filter((l) => l.startsWith(`${word} `)).length >= n || undefined, 30_000, `${n} "${word}" lines; output:\n${out}`).then(() => undefined),
  };
}

/** A worker in this process whose `count` task counts its runs per id. */
async function countingWorker(kind: Kind, group: string): Promise<Map<string, number>> {
  const runs = new Map<string, number>();
  const server = new Server({ broker: brokerOf(kind), backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger, leaseMs: 5000 });
  servers.push(server);
  server.add(group, 'count', (id: string) => {
    runs.set(id, (runs.get(id) ?? 0) + 1);
    return id;
  });
  await server.run(group, 4);
  return runs;
}

function newClient(kind: Kind, options: { sendTimeoutMs?: number; claimTakeoverMs?: number } = {}): Client {
  const c = new Client({ broker: brokerOf(kind), backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger, ...options });
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children = [];
  await Promise.all(servers.map((s) => s.shutdown(2000)));
  servers = [];
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await ns.sweep();
});

afterAll(async () => {
  await ns.sweep();
  await ns.quit();
  await rabbit.sweep();
  expect(rabbit.queues()).toEqual([]);
});

describe.each(['redis', 'rabbitmq'] as const)('idempotent sends across processes (%s broker)', (kind) => {
  it(`a sender SIGKILLed between claim and publish (${N} sends in flight): a re-send from another process runs every task once`, async () => {
    const group = `idem-${randomUUID().slice(0, 8)}`;
    const ids = Array.from({ length: N }, (_, i) => `crash-${group}-${i}`);
    const sender = startSender(senderEnv(kind, group, ids, 'hang'));
    await sender.go();
    // Every send has written its claim and is inside publish: kill it there.
    await sender.lines('publishing', N);
    sender.child.kill('SIGKILL');
    await sender.exited;
    const client = newClient(kind, { sendTimeoutMs: 500, claimTakeoverMs: 1000 });
    for (const id of ids) expect((await client.getStatus(id))?.status).toBe('sent');
    const runs = await countingWorker(kind, group);
    // The re-sends find unpublished claims; once they are older than claimTakeoverMs, they publish.
    expect(await Promise.all(ids.map((id) => client.with({ id }).send(group, 'count', id)))).toEqual(ids);
    const results = await Promise.allSettled(ids.map((id) => client.getResult<string>(id, 10_000)));
    const ran = ids.filter((id) => (runs.get(id) ?? 0) >= 1).length;
    process.stdout.write(`idempotency crash run (${kind}): ${N} sends in flight killed, ${ran} ran after re-send\n`);
    expect(ran).toBe(N);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value.value : r.reason))).toEqual(ids);
    // One taker per id: no duplicate publish here (the killed sender never published).
    expect(ids.map((id) => runs.get(id))).toEqual(ids.map(() => 1));
    // Another re-send is a plain duplicate now.
    await client.with({ id: ids[0] as string }).send(group, 'count', ids[0]);
    const again = await client.getStatus(ids[0] as string);
    expect(again?.status).toBe('success');
  });

  it(`two processes sending the same ${N} ids at once run each task exactly once`, async () => {
    const group = `idem-${randomUUID().slice(0, 8)}`;
    const ids = Array.from({ length: N }, (_, i) => `dup-${group}-${i}`);
    const runs = await countingWorker(kind, group);
    const client = newClient(kind);
    const sender = startSender(senderEnv(kind, group, ids, 'send'));
    await client.getStatus('warm-up');
    await until(() => sender.ready() || undefined, 30_000, 'sender ready');
    // Both processes start their sends of the same ids at the same moment.
    sender.child.stdin?.write('go\n');
    const mine = Promise.all(ids.map((id) => client.with({ id }).send(group, 'count', id)));
    await sender.lines('sent', N);
    expect(await mine).toEqual(ids);
    const results = await Promise.all(ids.map((id) => client.getResult<string>(id, 20_000)));
    expect(results.every((r) => r.isSuccess())).toBe(true);
    expect(ids.map((id) => runs.get(id))).toEqual(ids.map(() => 1));
    expect(await servers[0]?.broker.counts(group)).toMatchObject({ ready: 0 });
  });
});

/**
 * The Redis broker against private redis-servers (test/helpers/redis-server.ts), for what must not
 * be done to the shared one: freezing it (SIGSTOP) or killing it to bound every operation, a
 * password, configurations unsafe for tasks, and SCRIPT FLUSH.
 */
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisBroker, type RedisBrokerOptions } from '../brokers/redis.js';
import type { Delivery } from '../src/broker.js';
import { until } from './core/suite.js';
import { startPrivateRedis, type PrivateRedis } from './helpers/redis-server.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let servers: PrivateRedis[] = [];
let brokers: RedisBroker[] = [];
let admins: Redis[] = [];

afterEach(async () => {
  for (const s of servers) s.signal('SIGCONT');
  await Promise.all(brokers.map((b) => b.close()));
  for (const a of admins) a.disconnect();
  await Promise.all(servers.map((s) => s.remove()));
  servers = [];
  brokers = [];
  admins = [];
});

async function server(args: string[] = [], password?: string): Promise<PrivateRedis> {
  const s = await startPrivateRedis({ args, ...(password === undefined ? {} : { password }) });
  servers.push(s);
  return s;
}

/** A log that keeps every line as one string (message and fields). */
function recorder(): { lines: string[]; logger: { warn(msg: string, fields?: Record<string, unknown>): void } } {
  const lines: string[] = [];
  return { lines, logger: { warn: (msg, fields) => lines.push(`${msg} ${inspect(fields, { depth: 10 })}`) } };
}

function broker(s: PrivateRedis, extra: RedisBrokerOptions = {}): RedisBroker {
  const b = new RedisBroker({ connection: { host: '127.0.0.1', port: s.port }, prefix: 'tasuki-private', connectionName: 'tasuki-test', ...extra });
  brokers.push(b);
  return b;
}

function adminOf(s: PrivateRedis): Redis {
  const a = new Redis({ host: '127.0.0.1', port: s.port, connectionName: 'tasuki-test-admin' });
  admins.push(a);
  return a;
}

const durabilityLines = (lines: string[]): string[] => lines.filter((l) => l.includes('appendonly') || l.includes('maxmemory-policy') || l.includes('could not check'));

describe('redis broker: operation timeout', () => {
  it('while the server is frozen (SIGSTOP) every operation rejects with ERR_CONNECTION; after SIGCONT work goes on', async () => {
    const s = await server();
    const b = broker(s, { operationTimeoutMs: 300 });
    const g = 'jobs';
    await b.connect();
    await b.publishBatch(g, [{ body: 'a' }, { body: 'b' }]);
    const [a] = await b.fetch(g, 1, { leaseMs: 60_000, waitMs: 1000 });
    expect(a?.body).toBe('a');

    s.signal('SIGSTOP');
    const connection = { code: 'ERR_CONNECTION' };
    await expect(b.publish(g, 'c')).rejects.toMatchObject(connection);
    await expect(b.publishBatch(g, [{ body: 'd' }])).rejects.toMatchObject(connection);
    await expect(b.ack(a as Delivery)).rejects.toMatchObject(connection);
    await expect(b.extend([a as Delivery], 60_000)).rejects.toMatchObject(connection);
    // The fetch script is sent and runs once Redis resumes (its outcome was unknown): the message it
    // takes comes back after this short lease.
    await expect(b.fetch(g, 1, { leaseMs: 500, waitMs: 100 })).rejects.toMatchObject(connection);
    await expect(b.counts(g)).rejects.toMatchObject(connection);
    const err = await b.counts(g).catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain('operationTimeoutMs');
    // A new broker cannot even connect (the TCP handshake succeeds, Redis never answers).
    const late = broker(s, { operationTimeoutMs: 300 });
    await expect(late.connect()).rejects.toMatchObject(connection);

    s.signal('SIGCONT');
    const counts = await until(() => b.counts(g).catch(() => undefined), 20_000, 'the broker to work again');
    expect(counts.inFlight).toBeGreaterThanOrEqual(0);
    await late.connect();
    // Nothing is lost: 'b' (and what the publishes that timed out stored, if anything) comes back.
    const got: string[] = [];
    await until(async () => {
      for (const d of await b.fetch(g, 10, { leaseMs: 60_000, waitMs: 200 })) got.push(d.body);
      return got.includes('b');
    }, 20_000, 'message b');
    // The ack that timed out was sent too, and took effect once Redis resumed.
    expect(await b.extend([a as Delivery], 60_000)).toEqual([a?.token]);
  });

  it('with the server killed every operation rejects with ERR_CONNECTION, and reconnecting goes on until it is back', async () => {
    const s = await server(['--appendonly', 'yes', '--appendfsync', 'always']);
    const { lines, logger } = recorder();
    const b = broker(s, { operationTimeoutMs: 300, logger });
    const g = 'jobs';
    await b.publish(g, 'before');
    await s.kill();
    await expect(b.publish(g, 'lost?')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.counts(g)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await sleep(300);
    expect(lines.some((l) => l.includes('reconnecting'))).toBe(true);
    await s.restart();
    await until(() => b.counts(g).catch(() => undefined), 20_000, 'the broker to reconnect');
    await b.publish(g, 'after');
    const got = await b.fetch(g, 10, { leaseMs: 60_000, waitMs: 1000 });
    expect(got.map((d) => d.body)).toEqual(expect.arrayContaining(['before', 'after']));
  });

  it('an idle fetch blocks for its waitMs, not cut by the operation timeout (nor by a commandTimeout in the connection options)', async () => {
    const s = await server();
    const { lines, logger } = recorder();
    const waiter = broker(s, { connection: { host: '127.0.0.1', port: s.port, commandTimeout: 200 }, logger });
    const producer = broker(s);
    const g = 'idle';
    await waiter.connect();
    const pending = waiter.fetch(g, 1, { leaseMs: 60_000, waitMs: 20_000 });
    // Well past the 200 ms bound: the BLPOP must still be waiting.
    await sleep(1200);
    await producer.publish(g, 'late');
    const got = await pending;
    expect(got.map((d) => d.body)).toEqual(['late']);
    expect(lines.filter((l) => l.includes('blocking wait failed'))).toEqual([]);
    // One BLPOP waited the whole time (cut every 200 ms, the fetch would have polled with new ones).
    const stats = String(await adminOf(s).info('commandstats'));
    expect(/cmdstat_blpop:calls=(\d+)/.exec(stats)?.[1]).toBe('1');
    // An empty wait ends with [] after waitMs, not with an error.
    expect(await waiter.fetch('other', 1, { leaseMs: 1000, waitMs: 500 })).toEqual([]);
  });
});

describe('redis broker: credentials', () => {
  it('after a wrong password neither the error (with its cause) nor a log line holds the password', async () => {
    const secret = `right-${randomUUID()}`;
    const wrong = `wrong-${randomUUID()}`;
    const s = await server(['--requirepass', secret], secret);
    const { lines, logger } = recorder();
    const b = broker(s, { connection: `redis://:${wrong}@127.0.0.1:${s.port}`, operationTimeoutMs: 500, logger });
    const err = await b.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_CONNECTION' });
    const publishErr = await b.publish('g', 'x').catch((e: unknown) => e);
    expect(publishErr).toMatchObject({ code: 'ERR_CONNECTION' });
    await sleep(300); // a reconnect or two more, each logged
    expect(lines.length).toBeGreaterThan(0);
    for (const text of [inspect(err, { depth: 10 }), inspect(publishErr, { depth: 10 }), ...lines]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(secret);
    }
    expect(inspect(err, { depth: 10 })).toMatch(/WRONGPASS|invalid password|NOAUTH/i);
    // The right password works.
    const ok = broker(s, { connection: `redis://:${secret}@127.0.0.1:${s.port}` });
    await ok.publish('g', 'y');
    expect((await ok.counts('g')).ready).toBe(1);
  });
});

describe('redis broker: durability check', () => {
  it('warns once when a restart would lose tasks (no append-only file)', async () => {
    const s = await server(); // appendonly no, maxmemory-policy noeviction (the defaults)
    const { lines, logger } = recorder();
    const b = broker(s, { logger });
    await b.connect();
    await until(() => durabilityLines(lines).length > 0, 10_000, 'the durability warning');
    // Reconnects and more instances of this process do not repeat it.
    await adminOf(s).client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    await until(() => b.counts('g').catch(() => undefined), 10_000, 'the reconnect');
    const other = broker(s, { logger });
    await other.counts('g');
    const found = durabilityLines(lines);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('appendonly is "no"');
    expect(found[0]).not.toContain('maxmemory-policy');
  });

  it('warns when the eviction policy may drop keys; says nothing for a safe server, until it is made unsafe', async () => {
    const lru = await server(['--appendonly', 'yes', '--maxmemory-policy', 'allkeys-lru']);
    const { lines, logger } = recorder();
    await broker(lru, { logger }).connect();
    await until(() => durabilityLines(lines).length > 0, 10_000, 'the eviction warning');
    expect(durabilityLines(lines)).toHaveLength(1);
    expect(durabilityLines(lines)[0]).toContain('maxmemory-policy is "allkeys-lru"');
    expect(durabilityLines(lines)[0]).not.toContain('appendonly is');

    const safe = await server(['--appendonly', 'yes']);
    const quiet = recorder();
    const b = broker(safe, { logger: quiet.logger });
    await b.connect();
    await b.counts('g'); // sent after the check's CONFIG GETs: their answers are in
    await sleep(100);
    expect(durabilityLines(quiet.lines)).toEqual([]);
    await adminOf(safe).config('SET', 'maxmemory-policy', 'volatile-ttl');
    await broker(safe, { logger: quiet.logger }).connect();
    await until(() => durabilityLines(quiet.lines).length > 0, 10_000, 'the warning after CONFIG SET');
    expect(durabilityLines(quiet.lines)[0]).toContain('volatile-ttl');
  });

  it('says once that it could not check when CONFIG is renamed away, and works on', async () => {
    const s = await server(['--rename-command', 'CONFIG', '']);
    const { lines, logger } = recorder();
    const b = broker(s, { logger });
    await b.connect();
    await broker(s, { logger }).connect();
    await until(() => durabilityLines(lines).length > 0, 10_000, 'the could-not-check line');
    await b.publish('g', 'x');
    expect((await b.counts('g')).ready).toBe(1);
    const found = durabilityLines(lines);
    expect(found).toHaveLength(1);
    expect(found[0]).toContain('could not check');
  });
});

describe('redis broker: scripts', () => {
  it('survives SCRIPT FLUSH (on a private server: never flushed on the shared one)', async () => {
    const s = await server();
    const admin = adminOf(s);
    const b = broker(s);
    await b.connect();
    const g = 'flushed';
    await b.publish(g, 'before');
    await admin.script('FLUSH');
    await b.publish(g, 'after');
    const got = await b.fetch(g, 5, { leaseMs: 30_000, waitMs: 1000 });
    expect(got.map((d) => d.body)).toEqual(['before', 'after']);
    await admin.script('FLUSH');
    for (const d of got) await b.ack(d);
    expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });
});

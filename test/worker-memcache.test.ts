/**
 * Failure states too large for the real Memcache backend (memcached on 127.0.0.1:11211): they are
 * cut down and stored, or failed and dead-lettered; never retried in a loop, and the worker's slot
 * is never lost. Memory broker, Memcache backend; every task's entries are deleted afterwards.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Server, silentLogger, type Logger } from '../src/index.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { until } from './core/suite.js';

const SERVERS = process.env.MEMCACHE_SERVERS ?? '127.0.0.1:11211';
const prefix = `tasuki-test-${randomUUID()}`;
const ids: string[] = [];
const servers: Server[] = [];

const newServer = (maxValueBytes?: number, logger: Logger = silentLogger): Server => {
  const backend = new MemcacheBackend(maxValueBytes === undefined ? { servers: SERVERS, prefix } : { servers: SERVERS, prefix, maxValueBytes });
  const s = new Server({ broker: new MemoryBroker(), backend, logger, leaseMs: 1000, fetchWaitMs: 100 });
  servers.push(s);
  return s;
};

afterAll(async () => {
  for (const s of servers) await s.shutdown(1000);
  const backend = new MemcacheBackend({ servers: SERVERS, prefix });
  await Promise.all(ids.map((id) => backend.delete(id)));
  expect(await backend.readMany(ids)).toEqual(ids.map(() => null));
  await backend.close();
});

describe('worker + memcache: failure states too large for the backend', () => {
  it('a handler throwing a 600 KB message fails with the message cut down; the worker goes on', async () => {
    const group = `mc-${randomUUID().slice(0, 8)}`;
    const server = newServer();
    const huge = server.add(group, 'huge', () => {
      throw new Error('m'.repeat(600_000));
    });
    const ok = server.add(group, 'ok', () => 'next ran');
    await server.run(group, 1);
    const client = server.client().with({ retryCount: 0 });
    const a = await client.send(huge);
    const b = await client.send(ok);
    ids.push(a, b);
    const r = await client.getResult(a, 10_000);
    expect(r.status).toBe('failure');
    expect(r.error?.message.length).toBeLessThanOrEqual(16_384);
    expect(r.error?.message).toContain('characters cut');
    expect((await client.getResult(b, 10_000)).value).toBe('next ran');
  });

  it('an undecodable message quoting a 1 MB field gets a cut-down failure and a dead letter; a concurrency-1 worker runs the next task', async () => {
    const group = `mc-${randomUUID().slice(0, 8)}`;
    const lines: string[] = [];
    const record = (message: string, fields?: Record<string, unknown>): void => void lines.push(`${message} ${JSON.stringify(fields ?? {})}`);
    const server = newServer(undefined, { debug: record, info: record, warn: record, error: record });
    const ok = server.add(group, 'ok', () => 'next ran');
    await server.run(group, 1);
    const id = randomUUID();
    ids.push(id);
    await server.broker.publish(group, JSON.stringify({ v: 'v'.repeat(1_000_000), id, group, name: 'ok' }));
    const client = server.client();
    const next = await client.send(ok);
    ids.push(next);
    expect((await client.getResult(next, 10_000)).value).toBe('next ran');
    const r = await client.getResult(id, 10_000);
    expect(r.status).toBe('failure');
    expect(r.error?.originalCode).toBe('ERR_DECODE');
    expect(r.error?.message.length).toBeLessThanOrEqual(16_384);
    const dead = await until(async () => {
      const list = await client.deadLetters(group);
      return list.length > 0 ? list : null;
    }, 10_000, 'a dead letter');
    expect(dead.map((d) => d.reason.code)).toEqual(['ERR_DECODE']);
    // The reason quotes a bounded part of the field: in the state, the dead letter and the log line.
    expect(r.error?.message.length).toBeLessThan(1000);
    expect(dead[0]?.reason.message.length).toBeLessThan(1000);
    expect(lines.some((l) => l.startsWith('undecodable message'))).toBe(true);
    for (const l of lines) expect(l.length).toBeLessThan(2000);
  });

  it('when even the cut-down state is refused, the task fails with ERR_VALUE_TOO_LARGE and is dead-lettered instead of looping', async () => {
    const group = `mc-${randomUUID().slice(0, 8)}`;
    const server = newServer(700);
    const big = server.add(group, 'big', () => {
      throw new Error('b'.repeat(5000));
    });
    const ok = server.add(group, 'ok', () => 'next ran');
    await server.run(group, 1);
    const client = server.client().with({ retryCount: 0 });
    const a = await client.send(big);
    const b = await client.send(ok);
    ids.push(a, b);
    const r = await client.getResult(a, 10_000);
    expect(r.status).toBe('failure');
    expect(r.error?.originalCode).toBe('ERR_VALUE_TOO_LARGE');
    const dead = await until(async () => {
      const list = await client.deadLetters(group);
      return list.length > 0 ? list : null;
    }, 10_000, 'a dead letter');
    expect(dead.map((d) => d.reason.code)).toEqual(['ERR_VALUE_TOO_LARGE']);
    expect((await client.getResult(b, 10_000)).value).toBe('next ran');
  });
});

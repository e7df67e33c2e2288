import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { backendContract, makeState } from './contract/backend.js';
import { RedisBackend, encodeIdForKey, normalizeExpiry, redisKeys, redisReconnectDelay } from '../backends/redis.js';
import { encodeValueText } from '../src/message.js';
import { redisNamespace } from './helpers/redis.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ns = redisNamespace('test');
const { prefix, admin } = ns;
const removeAll = ns.sweep;

afterAll(async () => {
  await removeAll();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

backendContract('redis', () => ({
  create: () => new RedisBackend({ connection: REDIS_URL, prefix }),
  teardown: removeAll,
}));

/** The hash tag Redis Cluster hashes for a key (whole key when there is no non-empty tag). */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

describe('redis backend specifics', () => {
  it('puts both keys of a task under one non-empty hash tag, whatever the id', () => {
    for (const id of ['plain-id', 'a}b', '}x', '{}', '{x}', '%7B', 'ünï {code}']) {
      const k = redisKeys('p', id);
      expect(k.state).toMatch(/:state$/);
      expect(k.result).toMatch(/:result$/);
      const tag = hashTag(k.state);
      expect(tag).not.toBe(k.state);
      expect(hashTag(k.result)).toBe(tag);
    }
    expect(redisKeys('p', 'abc')).toEqual({ state: 'p:{abc}:state', result: 'p:{abc}:result' });
    // The encoding is injective: distinct ids never share keys.
    expect(encodeIdForKey('{')).not.toBe(encodeIdForKey('%7B'));
    expect(() => new RedisBackend({ prefix: 'a{b' })).toThrow(/prefix/);
  });

  it('validates expiries', () => {
    expect(normalizeExpiry(-1, 't')).toBe(-1);
    expect(normalizeExpiry(0, 't')).toBe(0);
    expect(normalizeExpiry(1.2, 't')).toBe(2);
    expect(() => normalizeExpiry(-2, 't')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => normalizeExpiry(Number.NaN, 't')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it('backs off between reconnects, capped', () => {
    const delays = [1, 2, 3, 4, 10, 50].map((n) => redisReconnectDelay(n, () => 0));
    expect(delays).toEqual([100, 200, 400, 800, 3000, 3000]);
    expect(redisReconnectDelay(50, () => 1)).toBe(2400);
  });

  it('stores states and results on the hash-tagged keys with the TTLs asked for', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      await b.connect();
      const id = randomUUID();
      const keys = redisKeys(prefix, id);
      await b.write({ state: makeState(id, 'success'), stateTtl: -1, result: encodeValueText(1), resultTtl: 120, guard: 'notSuccess' });
      expect(await admin.ttl(keys.state)).toBe(-1);
      const rttl = await admin.ttl(keys.result);
      expect(rttl).toBeGreaterThan(0);
      expect(rttl).toBeLessThanOrEqual(120);
      expect(JSON.parse((await admin.get(keys.state)) as string)).toMatchObject({ id, status: 'success' });

      const other = randomUUID();
      const okeys = redisKeys(prefix, other);
      await b.write({ state: makeState(other, 'running'), stateTtl: 30, guard: 'notFinal' });
      const sttl = await admin.ttl(okeys.state);
      expect(sttl).toBeGreaterThan(0);
      expect(sttl).toBeLessThanOrEqual(30);
      expect(await admin.exists(okeys.result)).toBe(0);
      // stateTtl 0 deletes the stored state (the write passes its guard: running is not final).
      const out = await b.write({ state: makeState(other, 'failure'), stateTtl: 0, guard: 'notFinal' });
      expect(out.written).toBe(true);
      expect(out.previous?.status).toBe('running');
      expect(await admin.exists(okeys.state)).toBe(0);
      await b.delete(id);
      await b.delete(other);
      expect(await admin.exists(keys.state, keys.result)).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('reports a corrupt stored state as ERR_DECODE', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      const id = randomUUID();
      await admin.set(redisKeys(prefix, id).state, 'not json', 'EX', 60);
      await expect(b.read(id)).rejects.toMatchObject({ code: 'ERR_DECODE' });
      // A write never silently replaces what it cannot read.
      await expect(b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'notSuccess' })).rejects.toMatchObject({ code: 'ERR_DECODE' });
      expect(await admin.get(redisKeys(prefix, id).state)).toBe('not json');
      await b.delete(id);
      expect((await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent' })).written).toBe(true);
      await b.delete(id);
    } finally {
      await b.close();
    }
  });

  it('reconnects by itself after its connection is killed', async () => {
    const name = `tasuki-test-${randomUUID().slice(0, 8)}`;
    const errors: Error[] = [];
    const b = new RedisBackend({ connection: { host: '127.0.0.1', port: 6379, connectionName: name }, prefix, onError: (e) => errors.push(e) });
    try {
      await b.connect();
      const id = randomUUID();
      await b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'notFinal' });
      const before = await clientIdByName(name);
      expect(before).not.toBeNull();
      // The new form of CLIENT KILL answers with the number of connections it closed.
      expect(await admin.client('KILL', 'ID', String(before))).toBe(1);
      // The next operations go through once ioredis has reconnected (no error surfaces to the caller).
      expect((await b.read(id))?.status).toBe('running');
      const out = await b.write({ state: makeState(id, 'success'), stateTtl: 60, result: encodeValueText('ok'), resultTtl: 60, guard: 'notSuccess' });
      expect(out).toMatchObject({ written: true, previous: { status: 'running' } });
      const after = await clientIdByName(name);
      expect(after).not.toBeNull();
      expect(after).not.toBe(before);
      await b.delete(id);
    } finally {
      await b.close();
    }
  });

  it('rejects with ERR_CONNECTION when Redis cannot be reached, without unhandled errors', async () => {
    const b = new RedisBackend({
      connection: { host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, retryStrategy: () => null },
      prefix,
    });
    await expect(b.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.read('x')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await b.close();
    await b.close();
    await expect(b.write({ state: makeState('x', 'sent'), stateTtl: 1, guard: 'absent' })).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

async function clientIdByName(name: string): Promise<number | null> {
  const list = (await admin.client('LIST')) as string;
  for (const line of list.split('\n')) {
    if (line.includes(` name=${name} `)) {
      const m = /(?:^|\s)id=(\d+)/.exec(line);
      if (m) return Number(m[1]);
    }
  }
  return null;
}

import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { backendContract, makeState } from './contract/backend.js';
import { Redis } from 'ioredis';
import { RedisBackend, encodeIdForKey, finalChannel, normalizeExpiry, redisKeys, redisReconnectDelay } from '../backends/redis.js';
import { encodeValueText } from '../src/message.js';
import { encodeTaskState, type TaskState } from '../src/state.js';
import { ConnectionError } from '../src/errors.js';
import { redisNamespace } from './helpers/redis.js';
import { startPrivateRedis, type PrivateRedis } from './helpers/redis-server.js';
import { until } from './core/suite.js';

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

  it('a ConnectionError carries no credential: URL passwords masked, the driver error copied without its command', () => {
    const driver = Object.assign(new Error('WRONGPASS for redis://app:s3cret-a@db:6379/0'), {
      name: 'ReplyError',
      command: { name: 'auth', args: ['app', 's3cret-b'] },
      code: 'WRONGPASS',
      cause: Object.assign(new Error('inner amqp://u:s3cret-c@host'), { options: { password: 's3cret-d' } }),
    });
    const err = new ConnectionError('cannot connect to rediss://:s3cret-e@db:6380', driver);
    const text = inspect(err, { depth: 10 });
    expect(text).not.toMatch(/s3cret/);
    expect(err.message).toBe('cannot connect to rediss://:***@db:6380');
    expect(err.cause).toMatchObject({ name: 'ReplyError', code: 'WRONGPASS', message: 'WRONGPASS for redis://app:***@db:6379/0' });
    expect((err.cause as Error).cause).toMatchObject({ message: 'inner amqp://u:***@host' });
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
      // The record leaves out the id its key names; reads put it back.
      const record = JSON.parse((await admin.get(keys.state)) as string) as Record<string, unknown>;
      expect(record).toMatchObject({ status: 'success' });
      expect(record).not.toHaveProperty('id');
      expect((await b.read(id))?.id).toBe(id);

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

describe('redis backend: status search of the write script', () => {
  const tricky = [
    'id-"status":"success"',
    'id-,"status":"success"',
    '{"status":"success"}',
    'x\\",\\"status\\":\\"success',
    '"status":"aborted",',
    '%7B{}%',
  ];

  it('reads the state\'s own status whatever ids, names, errors and progress contain', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      for (const id of tricky) {
        const bait = { error: { name: 'E', message: 'm ,"status":"success" {"status":"success"}', code: '"status":"success"' }, progress: '{"json":{"status":"success"}}' };
        const running = makeState(id, 'running', { group: 'g', name: 'n', ...bait });
        expect((await b.write({ state: running, stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
        // running is not final: notFinal passes again (the bait "success" texts are not the status).
        const again = await b.write({ state: makeState(id, 'waiting-retry', bait), stateTtl: 60, guard: 'notFinal' });
        expect(again.written).toBe(true);
        expect(again.previous).toEqual(running);
        expect((await b.write({ state: makeState(id, 'failure', bait), stateTtl: 60, guard: 'notFinal' })).written).toBe(true);
        // failure is final: notFinal is refused, notSuccess passes; then success is sticky.
        expect((await b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'notFinal' })).written).toBe(false);
        expect((await b.write({ state: makeState(id, 'success', bait), stateTtl: 60, result: encodeValueText(1), resultTtl: 60, guard: 'notSuccess' })).written).toBe(true);
        for (const guard of ['absent', 'notFinal', 'notSuccess'] as const) {
          const late = await b.write({ state: makeState(id, 'failure'), stateTtl: 60, guard });
          expect(late.written).toBe(false);
          expect(late.previous?.status).toBe('success');
        }
        await b.delete(id);
      }
    } finally {
      await b.close();
    }
  });

  it('refuses every guard over a stored value without a status key of its own (nothing overwritten)', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      const values = [
        '{"v":1,"id":"x","group":"g","name":"n","retriesUsed":0}',
        '{"v":1,"id":"x","a\\"status":"running"}',
        '{"v":1,"id":"x\\",\\"status\\":\\"running"}',
        '{"v":1,"id":"x", "status": "running"}',
        'plain text "status":"running"',
      ];
      for (const value of values) {
        const id = randomUUID();
        const key = redisKeys(prefix, id).state;
        await admin.set(key, value, 'EX', 60);
        for (const guard of ['absent', 'notFinal', 'notSuccess'] as const) {
          const out = b.write({ state: makeState(id, 'failure'), stateTtl: 60, guard });
          // Refused; the stored value is reported (parsed when it is a state, else ERR_DECODE).
          await out.then(
            (o) => expect(o.written).toBe(false),
            (err: unknown) => expect(err).toMatchObject({ code: 'ERR_DECODE' }),
          );
        }
        expect(await admin.get(key)).toBe(value);
        await b.delete(id);
      }
      // A status key written first (another writer's key order) is found.
      const id = randomUUID();
      await admin.set(redisKeys(prefix, id).state, `{"status":"running","id":${JSON.stringify(id)}}`, 'EX', 60);
      const out = await b.write({ state: makeState(id, 'failure'), stateTtl: 60, guard: 'notFinal' });
      expect(out.written).toBe(true);
      expect(out.previous?.status).toBe('running');
      await b.delete(id);
    } finally {
      await b.close();
    }
  });

  it('applies the guards of many writes of one tick (one script call) each on its own, in order', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      await b.connect();
      const [x, y] = [randomUUID(), randomUUID()];
      const outs = await Promise.all([
        b.write({ state: makeState(x, 'sent'), stateTtl: 60, guard: 'absent' }),
        b.write({ state: makeState(x, 'running'), stateTtl: 60, guard: 'notFinal' }),
        b.write({ state: makeState(y, 'success'), stateTtl: -1, result: encodeValueText('y'), resultTtl: 30, guard: 'notSuccess' }),
        b.write({ state: makeState(x, 'sent'), stateTtl: 60, guard: 'absent' }),
        b.write({ state: makeState(y, 'failure'), stateTtl: 60, guard: 'notSuccess' }),
        b.write({ state: makeState(x, 'aborted'), stateTtl: 60, guard: 'notFinal' }),
        b.write({ state: makeState(x, 'running'), stateTtl: 60, guard: 'notFinal' }),
      ]);
      expect(outs.map((o) => o.written)).toEqual([true, true, true, false, false, true, false]);
      expect(outs.map((o) => o.previous?.status ?? null)).toEqual([null, 'sent', null, 'running', 'success', 'running', 'aborted']);
      expect((await b.read(x))?.status).toBe('aborted');
      expect(await admin.ttl(redisKeys(prefix, y).state)).toBe(-1);
      expect(await b.readResult(y)).toBe(encodeValueText('y'));
      await Promise.all([b.delete(x), b.delete(y)]);
    } finally {
      await b.close();
    }
  });
});

describe('redis backend: reads of one tick', () => {
  it('answers each read of a large batch (one pipeline) and of a small one (plain GETs) in order', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      const ids = Array.from({ length: 25 }, () => randomUUID());
      await Promise.all(ids.map((id, i) => (i % 3 === 0 ? null : b.write({ state: makeState(id, 'running', { retriesLeft: i }), stateTtl: 60, result: encodeValueText(i), resultTtl: 60, guard: 'notFinal' }))));
      const states = await b.readMany(ids);
      expect(states.map((st) => st?.retriesLeft ?? null)).toEqual(ids.map((_, i) => (i % 3 === 0 ? null : i)));
      const mixed = await Promise.all(ids.slice(0, 6).map((id, i) => (i % 2 ? b.read(id) : b.readResult(id))));
      expect(mixed.map((m) => (m === null ? null : typeof m === 'string' ? m : m.retriesLeft))).toEqual([null, 1, encodeValueText(2), null, encodeValueText(4), 5]);
      // A key of another type fails its own read only.
      const odd = randomUUID();
      await admin.hset(redisKeys(prefix, odd).state, 'f', 'v');
      await admin.expire(redisKeys(prefix, odd).state, 60);
      const outs = await Promise.allSettled([...ids.slice(0, 8), odd].map((id) => b.read(id)));
      expect(outs.map((o) => o.status)).toEqual([...Array(8).fill('fulfilled'), 'rejected']);
      await Promise.all([...ids, odd].map((id) => b.delete(id)));
    } finally {
      await b.close();
    }
  });
});

// The native path is taken only without the task index (which the write script keeps).
describe('redis backend: native SET NX GET for a lone absent write', () => {
  it('keeps the absent guard: written once with its expiry, then refused with the stored state', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix, index: false });
    try {
      const id = randomUUID();
      const key = redisKeys(prefix, id).state;
      const first = makeState(id, 'sent', { sentAt: 1 });
      expect(await b.write({ state: first, stateTtl: 45, guard: 'absent' })).toEqual({ written: true, previous: null });
      const ttl = await admin.ttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(45);
      const second = await b.write({ state: makeState(id, 'sent', { sentAt: 2 }), stateTtl: 45, guard: 'absent' });
      expect(second).toEqual({ written: false, previous: first });
      // Stored as its compact record (`encodeTaskState`), unchanged by the refused write.
      expect(await admin.get(key)).toBe(encodeTaskState(first, { omitId: true }));
      // -1: no expiry.
      const forever = randomUUID();
      expect((await b.write({ state: makeState(forever, 'sent'), stateTtl: -1, guard: 'absent' })).written).toBe(true);
      expect(await admin.ttl(redisKeys(prefix, forever).state)).toBe(-1);
      // Over a value that is not a state: refused, reported as ERR_DECODE, left as it was.
      const bad = randomUUID();
      await admin.set(redisKeys(prefix, bad).state, 'not json', 'EX', 60);
      await expect(b.write({ state: makeState(bad, 'sent'), stateTtl: 60, guard: 'absent' })).rejects.toMatchObject({ code: 'ERR_DECODE' });
      expect(await admin.get(redisKeys(prefix, bad).state)).toBe('not json');
      await Promise.all([b.delete(id), b.delete(forever), b.delete(bad)]);
    } finally {
      await b.close();
    }
  });

  it('falls back to the script for good when the server rejects NX with GET (Redis < 7)', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix, index: false });
    try {
      await b.connect();
      let calls = 0;
      // Simulate an old server: its SET answers NX GET with a syntax error.
      (b as unknown as { client: { set: (...a: unknown[]) => Promise<unknown> } }).client.set = () => {
        calls++;
        return Promise.reject(new Error('ERR syntax error'));
      };
      const id = randomUUID();
      expect((await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent' })).written).toBe(true);
      const again = await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent' });
      expect(again.written).toBe(false);
      expect(again.previous?.status).toBe('sent');
      expect(calls).toBe(1);
      expect(await admin.ttl(redisKeys(prefix, id).state)).toBeGreaterThan(0);
      await b.delete(id);
    } finally {
      await b.close();
    }
  });

  it('lets exactly one of many sequential and concurrent creators win', async () => {
    const bs = [new RedisBackend({ connection: REDIS_URL, prefix, index: false }), new RedisBackend({ connection: REDIS_URL, prefix, index: false })];
    try {
      const id = randomUUID();
      // One write per tick per backend: each is a native SET.
      const outs = await Promise.all(bs.map(async (b, i) => {
        const mine = [];
        for (let j = 0; j < 10; j++) mine.push(await b.write({ state: makeState(id, 'sent', { retriesLeft: i * 10 + j }), stateTtl: 60, guard: 'absent' }));
        return mine;
      }));
      const all = outs.flat();
      expect(all.filter((o) => o.written)).toHaveLength(1);
      const stored = await bs[0]?.read(id);
      for (const o of all) if (!o.written) expect(o.previous).toEqual(stored);
      await bs[0]?.delete(id);
    } finally {
      await Promise.all(bs.map((b) => b.close()));
    }
  });
});

describe('redis backend: watchFinal (pub/sub)', () => {
  /** Subscribes a plain connection to the task's channel and records what is published there. */
  async function record(id: string): Promise<{ messages: string[]; until(n: number): Promise<void>; quit(): Promise<void> }> {
    const sub = new Redis(REDIS_URL);
    const messages: string[] = [];
    sub.on('message', (_c: string, m: string) => messages.push(m));
    await sub.subscribe(finalChannel(prefix, id));
    return {
      messages,
      async until(n) {
        for (let i = 0; i < 200 && messages.length < n; i++) await new Promise((r) => setTimeout(r, 10));
      },
      quit: async () => {
        await sub.quit();
      },
    };
  }

  const numsub = async (id: string): Promise<number> => {
    const reply = (await admin.call('PUBSUB', 'NUMSUB', finalChannel(prefix, id))) as [string, number];
    return Number(reply[1]);
  };

  it('publishes a write that stores a final state, only then (not refused writes, not other statuses)', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    const id = randomUUID();
    const rec = await record(id);
    try {
      const w = (status: TaskState['status'], guard: 'absent' | 'notFinal' | 'notSuccess', extra = {}) =>
        b.write({ state: makeState(id, status), stateTtl: 60, guard, ...extra });
      await w('sent', 'absent');
      await w('running', 'notFinal');
      await w('waiting-retry', 'notFinal');
      await w('failure', 'notFinal');
      await w('running', 'notFinal'); // refused
      await w('success', 'notSuccess', { result: encodeValueText(1), resultTtl: 60 });
      await w('failure', 'notSuccess'); // refused
      await w('aborted', 'notFinal'); // refused
      await b.delete(id);
      await w('expired', 'absent', { stateTtl: 0 }); // stored nowhere, still final and written
      await w('aborted', 'absent');
      await rec.until(4);
      await new Promise((r) => setTimeout(r, 50));
      // Each notice is the state written, then (when the write stored a result) a newline and the result.
      const notices = rec.messages.map((m) => {
        const nl = m.indexOf('\n');
        return { status: (JSON.parse(nl < 0 ? m : m.slice(0, nl)) as TaskState).status, result: nl < 0 ? null : m.slice(nl + 1) };
      });
      expect(notices).toEqual([
        { status: 'failure', result: null },
        { status: 'success', result: encodeValueText(1) },
        { status: 'expired', result: null },
        { status: 'aborted', result: null },
      ]);
      await b.delete(id);
    } finally {
      await rec.quit();
      await b.close();
    }
  });

  it('resolves once subscribed; one SUBSCRIBE per id, ended when its last listener stops', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    const writer = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      const id = randomUUID();
      const calls = [0, 0];
      const stop0 = await b.watchFinal(id, () => void (calls[0] = (calls[0] ?? 0) + 1));
      expect(await numsub(id)).toBe(1);
      const stop1 = await b.watchFinal(id, () => void (calls[1] = (calls[1] ?? 0) + 1));
      expect(await numsub(id)).toBe(1);
      // A final write by another instance right after the subscription is not missed.
      await writer.write({ state: makeState(id, 'failure'), stateTtl: 60, guard: 'notFinal' });
      for (let i = 0; i < 200 && (calls[0] === 0 || calls[1] === 0); i++) await new Promise((r) => setTimeout(r, 5));
      expect(calls).toEqual([1, 1]);
      stop0();
      stop0(); // idempotent
      expect(await numsub(id)).toBe(1);
      await writer.write({ state: makeState(id, 'success'), stateTtl: 60, guard: 'notSuccess' });
      for (let i = 0; i < 200 && (calls[1] ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 5));
      expect(calls).toEqual([1, 2]);
      stop1();
      for (let i = 0; i < 100 && (await numsub(id)) !== 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(await numsub(id)).toBe(0);
      // Watching again after the UNSUBSCRIBE subscribes again.
      const stop2 = await b.watchFinal(id, () => undefined);
      expect(await numsub(id)).toBe(1);
      stop2();
      await writer.delete(id);
    } finally {
      await Promise.all([b.close(), writer.close()]);
    }
  });

  it('a watch right after the previous one of the same id stopped (UNSUBSCRIBE in flight) still hears', async () => {
    const b = new RedisBackend({ connection: REDIS_URL, prefix });
    const writer = new RedisBackend({ connection: REDIS_URL, prefix });
    try {
      const id = randomUUID();
      for (let i = 0; i < 20; i++) (await b.watchFinal(id, () => undefined))();
      let heard = 0;
      const stop = await b.watchFinal(id, () => {
        heard++;
      });
      await writer.write({ state: makeState(id, 'expired'), stateTtl: 60, guard: 'notFinal' });
      for (let i = 0; i < 200 && heard === 0; i++) await new Promise((r) => setTimeout(r, 5));
      expect(heard).toBe(1);
      expect(await numsub(id)).toBe(1);
      stop();
      await writer.delete(id);
    } finally {
      await Promise.all([b.close(), writer.close()]);
    }
  });

  it('close() closes the subscriber connection and later watches reject with ERR_CLOSED', async () => {
    const name = `tasuki-test-${randomUUID().slice(0, 8)}`;
    const b = new RedisBackend({ connection: { host: '127.0.0.1', port: 6379, connectionName: name }, prefix });
    const id = randomUUID();
    await b.watchFinal(id, () => undefined);
    expect(await clientIdByName(`${name}-sub`)).not.toBeNull();
    await b.close();
    for (let i = 0; i < 100 && (await clientIdByName(`${name}-sub`)) !== null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await clientIdByName(`${name}-sub`)).toBeNull();
    expect(await numsub(id)).toBe(0);
    await expect(b.watchFinal(id, () => undefined)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('rejects with ERR_CONNECTION when it cannot subscribe, without unhandled errors', async () => {
    const b = new RedisBackend({
      connection: { host: '127.0.0.1', port: 1, maxRetriesPerRequest: 0, retryStrategy: () => null },
      prefix,
    });
    await expect(b.watchFinal('x', () => undefined)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await b.close();
  });
});

describe('redis backend on a private server', () => {
  let servers: PrivateRedis[] = [];
  let backends: RedisBackend[] = [];
  afterEach(async () => {
    for (const s of servers) s.signal('SIGCONT');
    await Promise.all(backends.map((b) => b.close()));
    await Promise.all(servers.map((s) => s.remove()));
    servers = [];
    backends = [];
  });
  const server = async (args: string[] = [], password?: string): Promise<PrivateRedis> => {
    const s = await startPrivateRedis({ args, ...(password === undefined ? {} : { password }) });
    servers.push(s);
    return s;
  };
  const make = (options: ConstructorParameters<typeof RedisBackend>[0]): RedisBackend => {
    const b = new RedisBackend({ prefix: 'tasuki-private', ...options });
    backends.push(b);
    return b;
  };
  const recorder = (): { lines: string[]; logger: { warn(msg: string, fields?: Record<string, unknown>): void } } => {
    const lines: string[] = [];
    return { lines, logger: { warn: (msg, fields) => lines.push(`${msg} ${inspect(fields, { depth: 10 })}`) } };
  };

  it('while the server is frozen (SIGSTOP) every operation rejects with ERR_CONNECTION after operationTimeoutMs; after SIGCONT it works again', async () => {
    const s = await server();
    const b = make({ connection: { host: '127.0.0.1', port: s.port }, operationTimeoutMs: 300 });
    const id = randomUUID();
    await b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'absent' });
    s.signal('SIGSTOP');
    const connection = { code: 'ERR_CONNECTION' };
    // getResult's reads: each one bounded (they waited for ever on a frozen server, or ~1 min unreachable).
    await expect(b.read(id)).rejects.toMatchObject(connection);
    await expect(b.readResult(id)).rejects.toMatchObject(connection);
    await expect(b.readMany([id, randomUUID(), randomUUID(), randomUUID(), randomUUID()])).rejects.toMatchObject(connection);
    await expect(b.write({ state: makeState(randomUUID(), 'sent'), stateTtl: 60, guard: 'absent' })).rejects.toMatchObject(connection);
    await expect(b.write({ state: makeState(id, 'success'), stateTtl: 60, result: encodeValueText(1), resultTtl: 60, guard: 'notSuccess' })).rejects.toMatchObject(connection);
    await expect(b.delete(randomUUID())).rejects.toMatchObject(connection);
    await expect(b.watchFinal(id, () => undefined)).rejects.toMatchObject(connection);
    const err = await b.read(id).catch((e: unknown) => e);
    expect(String((err as Error).message)).toContain('operationTimeoutMs');
    const late = make({ connection: { host: '127.0.0.1', port: s.port }, operationTimeoutMs: 300 });
    await expect(late.connect()).rejects.toMatchObject(connection);
    s.signal('SIGCONT');
    const state = await until(() => b.read(id).catch(() => undefined), 20_000, 'the backend to work again');
    expect(['running', 'success']).toContain(state.status);
    await late.connect();
    expect((await late.read(id))?.id).toBe(id);
  });

  it('with the server killed, reads reject with ERR_CONNECTION after operationTimeoutMs and work again once it is back', async () => {
    const s = await server();
    const b = make({ connection: { host: '127.0.0.1', port: s.port }, operationTimeoutMs: 300 });
    const id = randomUUID();
    await b.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'absent' });
    await s.kill();
    await expect(b.read(id)).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await s.restart(); // no persistence: the state is gone, the backend answers again
    expect(await until(async () => (await b.read(id).then(() => true, () => false)) || undefined, 20_000, 'the reconnect')).toBe(true);
  });

  it('after a wrong password neither the errors (with their causes) nor what onError gets hold the password', async () => {
    const secret = `right-${randomUUID()}`;
    const wrong = `wrong-${randomUUID()}`;
    const s = await server(['--requirepass', secret], secret);
    const reported: Error[] = [];
    const b = make({ connection: `redis://:${wrong}@127.0.0.1:${s.port}`, operationTimeoutMs: 500, onError: (e) => reported.push(e) });
    const connectErr = await b.connect().catch((e: unknown) => e);
    expect(connectErr).toMatchObject({ code: 'ERR_CONNECTION' });
    const readErr = await b.read('x').catch((e: unknown) => e);
    expect(readErr).toMatchObject({ code: 'ERR_CONNECTION' });
    expect(reported.length).toBeGreaterThan(0);
    const texts = [inspect(connectErr, { depth: 10 }), inspect(readErr, { depth: 10 }), ...reported.map((e) => inspect(e, { depth: 10 }))];
    for (const text of texts) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(secret);
    }
    expect(texts.join('\n')).toMatch(/WRONGPASS|invalid password|NOAUTH/i);
    const ok = make({ connection: `redis://:${secret}@127.0.0.1:${s.port}` });
    await ok.write({ state: makeState('y', 'sent'), stateTtl: 60, guard: 'absent' });
    expect((await ok.read('y'))?.status).toBe('sent');
  });

  it('warns once when the eviction policy may drop states, not about persistence', async () => {
    const s = await server(); // appendonly no: the broker's concern, not the backend's
    const { lines, logger } = recorder();
    const b = make({ connection: { host: '127.0.0.1', port: s.port }, logger });
    await b.connect();
    await b.read('x'); // sent after the check's CONFIG GETs: their answers are in
    expect(lines).toEqual([]);
    const admin = new Redis({ host: '127.0.0.1', port: s.port, lazyConnect: true });
    try {
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    } finally {
      admin.disconnect();
    }
    await make({ connection: { host: '127.0.0.1', port: s.port }, logger }).connect();
    await make({ connection: { host: '127.0.0.1', port: s.port }, logger }).connect();
    await until(() => lines.length > 0, 10_000, 'the eviction warning');
    await b.read('x');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('maxmemory-policy is "allkeys-lru"');
    expect(lines[0]).not.toContain('appendonly');
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

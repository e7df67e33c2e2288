import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { backendContract, makeState } from './contract/backend.js';
import {
  DEFAULT_MAX_VALUE_BYTES,
  MEMCACHED_MAX_RELATIVE_EXPIRY,
  MemcacheBackend,
  absoluteExpiry,
  guardAllows,
  memcacheKeys,
  memcachedExptime,
} from '../backends/memcache.js';
import type { WriteOutcome } from '../src/backend.js';
import { encodeValueText } from '../src/message.js';

const SERVERS = process.env.MEMCACHE_SERVERS ?? '127.0.0.1:11211';
const prefix = `tasuki-test-${randomUUID()}`;

/** Keys under `p` that memcached still holds (text protocol `lru_crawler metadump all`). */
function keysUnder(p: string): Promise<string[]> {
  const [host, port] = (SERVERS.split(',')[0] as string).split(':');
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port ?? 11211), host ?? '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.endsWith('END\r\n') || buf.startsWith('ERROR') || buf.startsWith('CLIENT_ERROR')) {
        sock.end();
        const keys = [...buf.matchAll(/^key=(\S+)/gm)].map((m) => decodeURIComponent(m[1] as string));
        resolve(keys.filter((k) => k.startsWith(`${p}:`)));
      }
    });
    sock.on('error', reject);
    sock.write('lru_crawler metadump all\r\n');
  });
}

const created: MemcacheBackend[] = [];
const make = async (options: ConstructorParameters<typeof MemcacheBackend>[0] = {}): Promise<MemcacheBackend> => {
  const b = new MemcacheBackend({ servers: SERVERS, prefix, ...options });
  created.push(b);
  await b.connect();
  return b;
};

afterAll(async () => {
  await Promise.all(created.map((b) => b.close()));
  // Every test deletes what it wrote (and expired items are never listed).
  expect(await keysUnder(prefix)).toEqual([]);
});

backendContract('memcache', () => ({
  create: () => new MemcacheBackend({ servers: SERVERS, prefix }),
}));

describe('memcache expiry conversion', () => {
  const now = 1_700_000_000_000;
  it('maps -1 to "never" and keeps relative expiries up to 30 days', () => {
    expect(memcachedExptime(-1, now)).toBe(0);
    expect(memcachedExptime(1, now)).toBe(1);
    expect(memcachedExptime(0.2, now)).toBe(1);
    expect(memcachedExptime(MEMCACHED_MAX_RELATIVE_EXPIRY, now)).toBe(MEMCACHED_MAX_RELATIVE_EXPIRY);
  });
  it('sends longer expiries as absolute Unix times', () => {
    expect(memcachedExptime(MEMCACHED_MAX_RELATIVE_EXPIRY + 1, now)).toBe(1_700_000_000 + MEMCACHED_MAX_RELATIVE_EXPIRY + 1);
    expect(memcachedExptime(365 * 86400, now)).toBe(1_700_000_000 + 365 * 86400);
    expect(memcachedExptime(1e12, now)).toBe(0); // beyond uint32: forever
    expect(absoluteExpiry(60, now)).toBe(1_700_000_060);
    expect(absoluteExpiry(-1, now)).toBe(0);
  });
  it('rejects expiries that mean nothing', () => {
    for (const bad of [0, -2, Number.NaN]) expect(() => memcachedExptime(bad, now)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});

describe('memcache keys and guards', () => {
  it('uses readable keys for plain ids and hashes the others', () => {
    expect(memcacheKeys('p', 'abc')).toEqual({ state: 'p:abc:s', result: 'p:abc:r', lock: 'p:abc:l' });
    for (const id of ['has space', 'ünï', '#abc', 'x'.repeat(300), 'tab\there']) {
      const k = memcacheKeys('p', id);
      expect(k.state).toMatch(/^p:#[A-Za-z0-9_-]{43}:s$/);
      expect(k.result).toBe(k.state.replace(/:s$/, ':r'));
    }
    expect(memcacheKeys('p', 'a b').state).not.toBe(memcacheKeys('p', 'a  b').state);
  });
  it('evaluates guards like the interface says', () => {
    const s = (status: Parameters<typeof makeState>[1]) => makeState('i', status);
    expect(guardAllows('absent', null)).toBe(true);
    expect(guardAllows('absent', s('sent'))).toBe(false);
    expect(guardAllows('notFinal', s('running'))).toBe(true);
    expect(guardAllows('notFinal', s('failure'))).toBe(false);
    expect(guardAllows('notSuccess', s('aborted'))).toBe(true);
    for (const g of ['absent', 'notFinal', 'notSuccess'] as const) expect(guardAllows(g, s('success'))).toBe(false);
  });
});

describe('memcache backend on the server', () => {
  it('keeps entries with expiries beyond 30 days (sent as absolute times)', async () => {
    const b = await make();
    const id = randomUUID();
    const ninetyDays = 90 * 86400;
    await b.write({ state: makeState(id, 'success'), stateTtl: ninetyDays, result: encodeValueText('long'), resultTtl: ninetyDays, guard: 'notSuccess' });
    // Sent as a relative 7 776 000 s, memcached would read a date in 1970 and drop the items at once.
    expect((await b.read(id))?.status).toBe('success');
    expect(await b.readResult(id)).toBe(encodeValueText('long'));
    await b.delete(id);
    expect(await b.read(id)).toBeNull();
  });

  it('stores a value just under the default limit and refuses a larger one before writing anything', async () => {
    const b = await make();
    const id = randomUUID();
    const fits = 'y'.repeat(DEFAULT_MAX_VALUE_BYTES);
    const ok = await b.write({ state: makeState(id, 'success'), stateTtl: 60, result: fits, resultTtl: 60, guard: 'notSuccess' });
    expect(ok.written).toBe(true);
    expect(await b.readResult(id)).toBe(fits);
    await b.delete(id);

    const id2 = randomUUID();
    await expect(
      b.write({ state: makeState(id2, 'success'), stateTtl: 60, result: fits + 'yy', resultTtl: 60, guard: 'notSuccess' }),
    ).rejects.toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    expect(await b.read(id2)).toBeNull();
    expect(await b.readResult(id2)).toBeNull();
  });

  it("maps the server's own too-large answer to ERR_VALUE_TOO_LARGE", async () => {
    // A limit above memcached's 1 MiB item size: the client-side check passes and the server refuses.
    const b = await make({ maxValueBytes: 4 * 1024 * 1024 });
    const id = randomUUID();
    await expect(
      b.write({ state: makeState(id, 'success'), stateTtl: 60, result: 'z'.repeat(2 * 1024 * 1024), resultTtl: 60, guard: 'notSuccess' }),
    ).rejects.toMatchObject({ code: 'ERR_VALUE_TOO_LARGE' });
    expect(await b.read(id)).toBeNull();
    expect(await b.readResult(id)).toBeNull();
  });

  it('never loses an update under concurrent compare-and-set writers', async () => {
    const [b1, b2, b3] = await Promise.all([make(), make(), make()]);
    const backends = [b1, b2, b3] as MemcacheBackend[];
    const id = randomUUID();
    const n = 40;
    const outs: WriteOutcome[] = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        (backends[i % 3] as MemcacheBackend).write({ state: makeState(id, 'running', { retriesLeft: i }), stateTtl: 60, guard: 'notFinal' }),
      ),
    );
    // Every write passes (nothing final is stored), and the writes form one chain: each saw the state
    // of exactly one earlier write, and no two saw the same one (that would be a lost update).
    expect(outs.every((o) => o.written)).toBe(true);
    const seen = outs.map((o) => (o.previous === null ? 'none' : String(o.previous.retriesLeft)));
    expect(new Set(seen).size).toBe(n);
    expect(seen.filter((s) => s === 'none')).toHaveLength(1);
    const last = await b1.read(id);
    expect(seen).not.toContain(String(last?.retriesLeft));
    await b1.delete(id);
  });

  it('lets one of many concurrent successes win, with its own result', async () => {
    const [b1, b2] = await Promise.all([make(), make()]);
    const id = randomUUID();
    await b1.write({ state: makeState(id, 'running'), stateTtl: 60, guard: 'notFinal' });
    const outs = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        (i % 2 ? b1 : b2).write({ state: makeState(id, 'success', { retriesLeft: i }), stateTtl: 60, result: encodeValueText(i), resultTtl: 60, guard: 'notSuccess' }),
      ),
    );
    const winners = outs.map((o, i) => (o.written ? i : -1)).filter((i) => i >= 0);
    expect(winners).toHaveLength(1);
    const stored = await b1.read(id);
    expect(stored?.retriesLeft).toBe(winners[0]);
    expect(await b1.readResult(id)).toBe(encodeValueText(winners[0]));
    for (const o of outs) if (!o.written) expect(o.previous?.status).toBe('success');
    await b1.delete(id);
  });

  it('round-trips ids that need hashing', async () => {
    const b = await make();
    const id = `an id with spaces ✓ ${randomUUID()}`;
    await b.write({ state: makeState(id, 'sent'), stateTtl: 60, guard: 'absent' });
    expect((await b.read(id))?.id).toBe(id);
    expect((await b.readMany([id, 'missing ✓']))[0]?.id).toBe(id);
    await b.delete(id);
    expect(await b.read(id)).toBeNull();
  });

  it('rejects with ERR_CONNECTION when memcached cannot be reached, and ERR_CLOSED once closed', async () => {
    const b = new MemcacheBackend({ servers: '127.0.0.1:1', prefix, timeout: 0.5 });
    await expect(b.connect()).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.read('x')).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await expect(b.write({ state: makeState('x', 'sent'), stateTtl: 5, guard: 'absent' })).rejects.toMatchObject({ code: 'ERR_CONNECTION' });
    await b.close();
    await expect(b.read('x')).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});

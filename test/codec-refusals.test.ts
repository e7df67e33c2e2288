/**
 * Values that cannot round-trip are refused with ERR_NOT_SERIALIZABLE naming their path — as send
 * arguments and as return values — instead of travelling as `{}` or surfacing as a raw RangeError or
 * getter error; decode reasons never quote a huge field whole.
 */
import { describe, expect, it } from 'vitest';
import { Client, MAX_VALUE_DEPTH, Server, decodeMessage, encodeValue, silentLogger } from '../src/index.js';

function nested(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

const refused: Array<[string, () => unknown, RegExp]> = [
  ['ArrayBuffer', () => new ArrayBuffer(8), /binary buffer/],
  ['SharedArrayBuffer', () => new SharedArrayBuffer(8), /binary buffer/],
  ['Uint8Array', () => new Uint8Array(4), /binary buffer/],
  ['DataView', () => new DataView(new ArrayBuffer(4)), /binary buffer/],
  ['Buffer', () => Buffer.from('x'), /binary buffer/],
  ['Promise', () => Promise.resolve(1), /Promise/],
  ['WeakMap', () => new WeakMap(), /WeakMap/],
  ['WeakSet', () => new WeakSet(), /WeakSet/],
  ['WeakRef', () => new WeakRef({}), /WeakRef/],
  ['boxed Number', () => new Number(3), /Number/],
];

describe('send refuses values that cannot round-trip', () => {
  const client = new Client({ logger: silentLogger });
  for (const [label, make, why] of refused) {
    it(`${label} (nested in an argument)`, async () => {
      const err = await client.send('g', 't', 1, { inner: [make()] }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_NOT_SERIALIZABLE', message: expect.stringMatching(why) });
      expect((err as Error).message).toContain('arguments[1].inner[0]');
    });
  }

  it(`a value nested 2000 levels deep (limit ${MAX_VALUE_DEPTH}) is refused with a typed error, not a RangeError`, async () => {
    const err = await client.send('g', 't', nested(2000)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_NOT_SERIALIZABLE', message: expect.stringMatching(/nested deeper than/) });
    expect((err as Error).message.length).toBeLessThan(600);
    // Up to the limit, deep values still travel.
    expect(() => encodeValue(nested(MAX_VALUE_DEPTH - 1))).not.toThrow();
  });

  it('an argument whose getter throws rejects with ERR_NOT_SERIALIZABLE naming the field', async () => {
    const hostile = {
      ok: 1,
      get bad(): number {
        throw new Error('getter exploded');
      },
    };
    const err = await client.send('g', 't', hostile).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
    expect((err as Error).message).toContain('arguments[0].bad');
    expect((err as Error).message).toContain('getter exploded');
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it('plain values, Date, Map, Set, BigInt and class instances are still accepted', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    expect(() => encodeValue([1, 'a', new Date(), new Map([[1, 2]]), new Set([1]), 10n, new Point(1), /x/, new URL('http://a'), new Error('e')])).not.toThrow();
  });
});

describe('return values that cannot round-trip fail the task with ERR_NOT_SERIALIZABLE', () => {
  for (const [label, make] of [
    ['ArrayBuffer', () => new ArrayBuffer(8)],
    ['WeakMap', () => new WeakMap()],
    ['a value nested 2000 levels deep', () => nested(2000)],
  ] as Array<[string, () => unknown]>) {
    it(label, async () => {
      const server = new Server({ logger: silentLogger });
      const t = server.add('g', 'ret', () => ({ out: make() }));
      try {
        await server.run('g', 1);
        const client = server.client();
        const r = await client.getResult(await client.with({ retryCount: 0 }).send(t), 10_000);
        expect(r.status).toBe('failure');
        expect(r.error?.originalCode).toBe('ERR_NOT_SERIALIZABLE');
        expect(r.error?.message).toContain('return value.out');
      } finally {
        await server.shutdown(2000);
      }
    });
  }
});

describe('decode reasons are bounded', () => {
  const base = { v: 1, id: 'm1', group: 'g', name: 't', args: { json: [] } };
  const reason = (body: object): { message: string; partial: { id?: string } } => {
    try {
      decodeMessage(JSON.stringify(body));
    } catch (err) {
      return err as { message: string; partial: { id?: string } };
    }
    throw new Error('decoded');
  };

  it('a 1 MB wire version is quoted cut down, with a marker', () => {
    const e = reason({ ...base, v: 'x'.repeat(1_000_000) });
    expect(e.message.length).toBeLessThan(400);
    expect(e.message).toMatch(/more characters/);
    expect(e.partial.id).toBe('m1');
  });

  it('a 1 MB id or group is not taken (no state written for it) and not quoted whole', () => {
    const e = reason({ ...base, id: 'i'.repeat(1_000_000) });
    expect(e.message.length).toBeLessThan(400);
    expect(e.partial.id).toBeUndefined();
    const g = reason({ ...base, group: 'g'.repeat(1_000_000) });
    expect(g.message.length).toBeLessThan(400);
  });
});

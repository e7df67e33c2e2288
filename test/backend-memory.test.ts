import { afterEach, describe, expect, it, vi } from 'vitest';
import { backendContract, makeState } from './contract/backend.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';
import type { TaskState, TaskStatus } from '../src/state.js';

backendContract('memory', () => {
  const store = new MemoryBackendStore();
  return { create: () => new MemoryBackend({ store }) };
});

const write = (b: MemoryBackend, state: TaskState, guard: 'absent' | 'notFinal' | 'notSuccess' = 'notFinal', stateTtl = 60) =>
  b.write({ state, stateTtl, guard });

describe('memory backend copies', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  class Point {
    constructor(
      public x: number,
      public y: number,
    ) {}
  }
  const nest = (levels: number): unknown => {
    let v: unknown = 'bottom';
    for (let i = 0; i < levels; i++) v = { i, v: [v] };
    return v;
  };
  /** Extra state fields the fast copy handles itself. */
  const plain: Record<string, unknown> = {
    nan: Number.NaN,
    inf: Number.POSITIVE_INFINITY,
    negInf: Number.NEGATIVE_INFINITY,
    negZero: -0,
    undef: undefined,
    fn: () => 1,
    sym: Symbol('s'),
    arr: [1, undefined, () => 2, Symbol('t'), Number.NaN, -0, [null, 'x', { a: undefined }]],
    sparse: [1, , 3], // eslint-disable-line no-sparse-arrays
    nullProto: Object.assign(Object.create(null) as object, { a: 1, b: undefined, c: { d: true } }),
    notFnToJSON: { toJSON: 5 },
    text: 'ünïcødé ✓ 🎌 \u2028 \ud800',
    '10': 'integer key',
    '2': 'another',
    nested: nest(30),
  };
  /** Extra state fields for which it falls back to the JSON round trip, each tried alone. */
  const nonPlain: Record<string, unknown> = {
    date: new Date(1700000000000),
    withToJSON: { toJSON: (key: string) => `json:${key}` },
    protoKey: JSON.parse('{"__proto__": {"polluted": true}, "k": 1}') as unknown,
    point: new Point(1, 2),
    map: new Map([[1, 2]]),
    boxed: new String('boxed'), // eslint-disable-line no-new-wrappers
    arraySubclass: Object.setPrototypeOf([1, 2], class extends Array {}.prototype) as unknown,
    deep: nest(70),
  };

  it('stores exactly what a JSON round trip of the state keeps, through the fast copy for plain data', async () => {
    const b = new MemoryBackend();
    const state = { ...makeState('plain', 'running'), ...plain } as unknown as TaskState;
    const stringify = vi.spyOn(JSON, 'stringify');
    await write(b, state);
    const got = await b.read('plain');
    const [many] = await b.readMany(['plain']);
    expect(stringify).not.toHaveBeenCalled();
    stringify.mockRestore();
    const expected: unknown = JSON.parse(JSON.stringify(state));
    expect(got).toStrictEqual(expected);
    expect(many).toStrictEqual(expected);
    expect(Object.keys(got as object)).toEqual(Object.keys(expected as object));
    expect(Object.is((got as unknown as { negZero: number }).negZero, 0)).toBe(true);
    expect((await write(b, makeState('plain', 'success'), 'absent')).previous).toStrictEqual(expected);
    expect((await write(b, makeState('plain', 'failure'))).previous).toStrictEqual(expected);
    await b.close();
  });

  it.each(Object.keys(nonPlain))('falls back to the JSON round trip for %s', async (key) => {
    const b = new MemoryBackend();
    const state = { ...makeState(key, 'running'), [key]: nonPlain[key] } as unknown as TaskState;
    await write(b, state);
    const expected: unknown = JSON.parse(JSON.stringify(state));
    const got = await b.read(key);
    expect(got).toStrictEqual(expected);
    expect(Object.keys(got as object)).toEqual(Object.keys(expected as object));
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    await b.close();
  });

  it('a state JSON cannot hold fails the write with the JSON error and stores nothing', async () => {
    const b = new MemoryBackend();
    const cyclic = makeState('c', 'success') as TaskState & { self?: unknown };
    cyclic.self = cyclic;
    const big = { ...makeState('n', 'success'), n: 10n } as unknown as TaskState;
    for (const state of [cyclic, big]) {
      await expect(b.write({ state, stateTtl: 60, result: '"r"', resultTtl: 60, guard: 'notSuccess' })).rejects.toBeInstanceOf(TypeError);
      expect(await b.read(state.id)).toBeNull();
      expect(await b.readResult(state.id)).toBeNull();
    }
    await b.close();
  });

  it('callers never share objects with the store', async () => {
    const b = new MemoryBackend();
    const state = makeState('s', 'running', { error: { name: 'E', message: 'm' } });
    await write(b, state);
    state.status = 'success';
    (state.error as { message: string }).message = 'changed by the writer';
    const read = (await b.read('s')) as TaskState;
    expect(read).toMatchObject({ status: 'running', error: { message: 'm' } });
    read.status = 'aborted';
    (read.error as { message: string }).message = 'changed by a reader';
    const [many] = await b.readMany(['s']);
    (many as TaskState).status = 'aborted';
    const refused = await write(b, makeState('s', 'running'), 'absent');
    expect(refused.previous).toMatchObject({ status: 'running', error: { message: 'm' } });
    (refused.previous as TaskState).status = 'aborted';
    const next = makeState('s', 'failure');
    const written = await write(b, next);
    expect(written.previous).toMatchObject({ status: 'running', error: { message: 'm' } });
    (written.previous as TaskState).status = 'success';
    next.status = 'success';
    expect(await b.read('s')).toMatchObject({ status: 'failure' });
    expect((await write(b, makeState('s', 'running'))).previous).toMatchObject({ status: 'failure' });
    await b.close();
  });
});

describe('memory backend expiry', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('state and result expire separately; a rewrite sets a new expiry; expired parts are dropped on read and by sweep', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = 1_000_000;
    vi.setSystemTime(t0);
    const store = new MemoryBackendStore();
    const b = new MemoryBackend({ store });
    const keys = (): string[] => [...store.entries.keys()].sort();
    await write(b, makeState('a', 'sent'), 'absent', 1);
    await write(b, makeState('a', 'running'), 'notFinal', 10);
    await b.write({ state: makeState('b', 'success'), stateTtl: 1, result: '"b"', resultTtl: 1, guard: 'notSuccess' });
    await b.write({ state: makeState('c', 'success'), stateTtl: 1, result: '"c"', resultTtl: 60, guard: 'notSuccess' });
    await b.write({ state: makeState('d', 'success'), stateTtl: 60, result: '"d"', resultTtl: 1, guard: 'notSuccess' });
    await b.write({ state: makeState('e', 'success'), stateTtl: 0, result: '"e"', resultTtl: 1, guard: 'notSuccess' });
    await b.write({ state: makeState('f', 'success'), stateTtl: -1, result: '"f"', resultTtl: -1, guard: 'notSuccess' });
    vi.setSystemTime(t0 + 5000);
    expect((await b.read('a'))?.status).toBe('running');
    expect(await b.readMany(['b', 'c', 'd', 'f'])).toMatchObject([null, null, { status: 'success' }, { status: 'success' }]);
    const results = await Promise.all(['b', 'c', 'd', 'e', 'f'].map((id) => b.readResult(id)));
    expect(results).toEqual([null, '"c"', null, null, '"f"']);
    expect(keys()).toEqual(['a', 'c', 'd', 'f']);
    // An expired state counts as absent for the guard while the result is still there.
    expect((await write(b, makeState('c', 'sent'), 'absent')).written).toBe(true);
    expect(await b.readResult('c')).toBe('"c"');
    store.sweep(t0 + 11_000);
    expect(keys()).toEqual(['c', 'd', 'f']);
    store.sweep(t0 + 66_000);
    expect(keys()).toEqual(['f']);
    vi.setSystemTime(t0 + 1e9);
    expect(await b.readResult('f')).toBe('"f"');
    expect((await b.read('f'))?.status).toBe('success');
    // stateTtl 0 stores nothing and removes what was there (the guard is still checked).
    expect((await write(b, makeState('f', 'success'), 'notSuccess', 0)).written).toBe(false);
    await write(b, makeState('g', 'running'), 'notFinal');
    expect(await write(b, makeState('g', 'failure'), 'notFinal', 0)).toMatchObject({ written: true, previous: { status: 'running' } });
    expect(await b.read('g')).toBeNull();
    await b.write({ state: makeState('h', 'success'), stateTtl: 0, result: '"h"', resultTtl: 60, guard: 'notSuccess' });
    expect([await b.read('h'), await b.readResult('h')]).toEqual([null, '"h"']);
    await b.write({ state: makeState('i', 'success'), stateTtl: 0, result: '"i"', resultTtl: 0, guard: 'notSuccess' });
    expect(keys()).toEqual(['f', 'h']);
    await b.delete('h');
    expect(keys()).toEqual(['f']);
    await b.close();
  });
});

describe('memory backend watchFinal', () => {
  it('calls the listener after a write stores a final state for its id, and only then', async () => {
    const b = new MemoryBackend();
    const calls: string[] = [];
    const stop = await b.watchFinal('t', () => calls.push('t'));
    await b.watchFinal('other', () => calls.push('other'));
    for (const status of ['sent', 'running', 'waiting-retry', 'running'] as TaskStatus[]) await write(b, makeState('t', status));
    expect(calls).toEqual([]);
    await write(b, makeState('t', 'failure'));
    expect(calls).toEqual(['t']);
    // A refused write stores nothing and calls nobody.
    await write(b, makeState('t', 'aborted'));
    expect(calls).toEqual(['t']);
    await write(b, makeState('t', 'success'), 'notSuccess');
    expect(calls).toEqual(['t', 't']);
    stop();
    stop();
    await write(b, makeState('t2', 'success'), 'notSuccess');
    await b.delete('t');
    await write(b, makeState('t', 'expired'));
    expect(calls).toEqual(['t', 't']);
    await b.close();
  });

  it('is active as soon as it resolves, and hears writes of every backend on the store', async () => {
    const store = new MemoryBackendStore();
    const client = new MemoryBackend({ store });
    const worker = new MemoryBackend({ store });
    let woken = 0;
    const stop = await client.watchFinal('x', () => woken++);
    await worker.write({ state: makeState('x', 'success'), stateTtl: 60, result: '1', resultTtl: 60, guard: 'notSuccess' });
    expect(woken).toBe(1);
    // The state and result are stored by the time the listener runs.
    const seen: Array<string | undefined> = [];
    await client.watchFinal('y', () => {
      void client.read('y').then((s) => seen.push(s?.status));
    });
    await worker.write({ state: makeState('y', 'aborted'), stateTtl: 60, guard: 'notFinal' });
    await Promise.resolve();
    expect(seen).toEqual(['aborted']);
    stop();
    await client.close();
    await worker.close();
  });

  it('a throwing listener breaks neither the write nor the other listeners', async () => {
    const b = new MemoryBackend();
    const calls: string[] = [];
    await b.watchFinal('t', () => {
      calls.push('first');
      throw new Error('listener bug');
    });
    await b.watchFinal('t', () => calls.push('second'));
    const out = await write(b, makeState('t', 'failure'));
    expect(out.written).toBe(true);
    expect(calls).toEqual(['first', 'second']);
    expect((await b.read('t'))?.status).toBe('failure');
    await b.close();
  });

  it('each subscription is its own, even with the same listener; one may end another during a call', async () => {
    const b = new MemoryBackend();
    let n = 0;
    const listener = (): void => {
      n++;
    };
    const stopA = await b.watchFinal('t', listener);
    const stopB = await b.watchFinal('t', listener);
    await write(b, makeState('t', 'failure'));
    expect(n).toBe(2);
    stopA();
    await write(b, makeState('t', 'success'), 'notSuccess');
    expect(n).toBe(3);
    stopB();
    let m = 0;
    let stopLater: () => void = () => undefined;
    await b.watchFinal('u', () => {
      m++;
      stopLater();
    });
    stopLater = await b.watchFinal('u', () => m++);
    await write(b, makeState('u', 'failure'));
    await write(b, makeState('u', 'success'), 'notSuccess');
    expect(m).toBe(2);
    expect(b.store.watches.has('t')).toBe(false);
    await b.close();
  });

  it('close drops the instance’s listeners only, and a closed backend refuses to watch', async () => {
    const store = new MemoryBackendStore();
    const a = new MemoryBackend({ store });
    const c = new MemoryBackend({ store });
    const calls: string[] = [];
    const stopA = await a.watchFinal('t', () => calls.push('a'));
    await c.watchFinal('t', () => calls.push('c'));
    await a.close();
    await c.write({ state: makeState('t', 'success'), stateTtl: 60, guard: 'notSuccess' });
    expect(calls).toEqual(['c']);
    stopA();
    await expect(a.watchFinal('t', () => undefined)).rejects.toMatchObject({ code: 'ERR_CLOSED' });
    await c.close();
    expect(store.watches.size).toBe(0);
  });
});

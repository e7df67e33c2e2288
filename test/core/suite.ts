/**
 * Behaviour of the server/client core, run over several broker+backend pairs (memory, Redis...).
 * Every scope item of the core has a test here that fails without it.
 */
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../src/backend.js';
import type { Broker } from '../../src/broker.js';
import {
  Client,
  Server,
  silentLogger,
  taskRef,
  type ServerOptions,
  type TaskCtl,
  type TaskId,
  encodeMessage,
  encodeValue,
} from '../../src/index.js';

/** Broker and backend of one test; all instances share a namespace. */
export interface CoreHarness {
  broker(): Broker;
  backend(): Backend;
  teardown?(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns truthy (or fails after `ms`). */
export async function until<T>(fn: () => Promise<T> | T, ms = 10_000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Registers the core behaviour suite for one broker+backend pair. */
export function coreSuite(name: string, makeHarness: () => CoreHarness): void {
  describe(`core: ${name}`, () => {
    let harness: CoreHarness;
    let servers: Server[];
    let group: string;

    const fast: ServerOptions = {
      logger: silentLogger,
      leaseMs: 1500,
      abortPollMs: 50,
      fetchWaitMs: 300,
      unknownTaskRetryMs: 400,
      unknownTaskRetryDelayMs: 50,
      abandonAfterMs: 200,
      sendDefaults: { backoff: { type: 'fixed', delayMs: 20 } },
    };
    const newServer = (extra: ServerOptions = {}): Server => {
      const s = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...extra });
      servers.push(s);
      return s;
    };

    beforeEach(() => {
      harness = makeHarness();
      servers = [];
      group = `core-${randomUUID().slice(0, 8)}`;
    });

    afterEach(async () => {
      for (const s of servers) {
        await s.broker.purge(group).catch(() => undefined);
        await s.shutdown(1000);
      }
      await harness.teardown?.();
    });

    it('runs tasks and returns typed results (YTask demo)', async () => {
      const server = newServer();
      const add = server.add(group, 'add', (a: number, b: number) => a + b);
      const appendUser = server.add(group, 'append_user', (user: { id: number; name: string }, ids: number[], names: string[]) => [
        user,
        ...ids.map((id, i) => ({ id, name: names[i] as string })),
      ]);
      await server.run(group, 3);
      const client = server.client();
      const id = await client.send(add, 123, 44);
      expectTypeOf(id).toEqualTypeOf<TaskId<number>>();
      const r = await client.getResult(id, 10_000);
      expect(r.isSuccess()).toBe(true);
      expect(r.isFinished()).toBe(true);
      expect(r.value).toBe(167);
      expect(r.get(0)).toBe(167);
      expect(r.gets()).toEqual([167]);
      expect(r.status).toBe('success');
      expect(r.retriesUsed).toBe(0);
      expect(r.startedAt).toBeInstanceOf(Date);
      expect(r.finishedAt).toBeInstanceOf(Date);
      expectTypeOf(r.value).toEqualTypeOf<number | undefined>();

      const id2 = await client.send(appendUser, { id: 1, name: 'aa' }, [322, 11], ['bb', 'cc']);
      const r2 = await client.getResult(id2, 10_000);
      expect(r2.value).toEqual([
        { id: 1, name: 'aa' },
        { id: 322, name: 'bb' },
        { id: 11, name: 'cc' },
      ]);
      // Untyped send by group and name reaches the same handler.
      const id3 = await client.send(group, 'add', 1, 2);
      expect((await client.getResult(id3, 10_000)).value).toBe(3);
    });

    it('keeps Date, Map, Set, BigInt and undefined intact through arguments and results', async () => {
      const server = newServer();
      const echo = server.add(group, 'echo', (v: { d: Date; m: Map<string, number>; s: Set<string>; b: bigint; u: undefined }) => v);
      await server.run(group, 1);
      const value = { d: new Date(1_700_000_000_000), m: new Map([['a', 1]]), s: new Set(['x']), b: 2n ** 70n, u: undefined };
      const r = await server.client().getResult(await server.client().send(echo, value), 10_000);
      expect(r.value).toEqual(value);
      expect(r.value?.d).toBeInstanceOf(Date);
    });

    it('a separate client process view (taskRef + Client) sends and reads results', async () => {
      const server = newServer();
      const handler = (a: number, b: number): number => a * b;
      server.add(group, 'mul', handler);
      await server.run(group, 2);
      const client = new Client({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger });
      try {
        const mul = taskRef<typeof handler>(group, 'mul');
        const r = await client.getResult(await client.send(mul, 6, 7), 10_000);
        expect(r.value).toBe(42);
      } finally {
        await client.close();
      }
    });

    it('retries a throwing handler through the broker, then succeeds', async () => {
      const server = newServer();
      let calls = 0;
      const retried: number[] = [];
      server.on('retrying', (e) => retried.push(e.retriesLeft));
      const t = server.add(group, 'flaky', () => {
        calls++;
        if (calls < 3) throw new Error(`boom ${calls}`);
        return 'ok';
      });
      await server.run(group, 1);
      const r = await server.client().getResult(await server.client().send(t), 10_000);
      expect(r.value).toBe('ok');
      expect(calls).toBe(3);
      expect(r.retriesUsed).toBe(2);
      expect(retried).toEqual([2, 1]);
    });

    it('fails with the last error after the retries run out; retryCount 0 disables retries', async () => {
      const server = newServer();
      let calls = 0;
      const t = server.add(group, 'bad', async () => {
        calls++;
        throw new TypeError('always');
      });
      await server.run(group, 1);
      const client = server.client();
      const r = await client.getResult(await client.with({ retryCount: 2 }).send(t), 10_000);
      expect(r.status).toBe('failure');
      expect(r.isSuccess()).toBe(false);
      expect(r.isFinished()).toBe(true);
      expect(r.error?.message).toBe('always');
      expect(r.error?.originalName).toBe('TypeError');
      expect(r.retriesUsed).toBe(2);
      expect(calls).toBe(3);
      calls = 0;
      const r0 = await client.getResult(await client.with({ retryCount: 0 }).send(t), 10_000);
      expect(r0.status).toBe('failure');
      expect(calls).toBe(1);
    });

    it('ctl.retry(err) and ctl.setRetryCount(n) control retries from the handler', async () => {
      const server = newServer();
      let runs = 0;
      const t = server.add(
        group,
        'ctl',
        (ctl: TaskCtl, mode: string) => {
          runs++;
          if (mode === 'no-more') {
            ctl.setRetryCount(0);
            throw new Error('give up at once');
          }
          if (ctl.retriesUsed < 2) {
            ctl.retry(new Error('again'));
            return 'not yet';
          }
          return `done after ${ctl.retriesUsed}`;
        },
        { ctl: true },
      );
      await server.run(group, 1);
      const client = server.client();
      const r = await client.getResult(await client.send(t, 'go'), 10_000);
      expect(r.value).toBe('done after 2');
      runs = 0;
      const r2 = await client.getResult(await client.send(t, 'no-more'), 10_000);
      expect(r2.status).toBe('failure');
      expect(r2.error?.message).toBe('give up at once');
      expect(runs).toBe(1);
    });

    it('wraps thrown strings and undefined in a typed error', async () => {
      const server = newServer();
      const t = server.add(group, 'throws', (what: string) => {
        // eslint-disable-next-line @typescript-eslint/only-throw-error
        throw what === 'undefined' ? undefined : what;
      });
      await server.run(group, 2);
      const client = server.client().with({ retryCount: 0 });
      const r1 = await client.getResult(await client.send(t, 'a string'), 10_000);
      expect(r1.error?.originalCode).toBe('ERR_NON_ERROR_THROWN');
      expect(r1.error?.message).toContain('"a string"');
      const r2 = await client.getResult(await client.send(t, 'undefined'), 10_000);
      expect(r2.error?.originalCode).toBe('ERR_NON_ERROR_THROWN');
      expect(r2.error?.message).toContain('undefined');
    });

    it('a handler that never settles fails with a per-task timeout and its signal fires', async () => {
      const server = newServer();
      let sawAbort: unknown;
      const t = server.add(
        group,
        'hang',
        (ctl: TaskCtl) =>
          new Promise<never>(() => {
            ctl.signal.addEventListener('abort', () => (sawAbort = ctl.signal.reason));
          }),
        { ctl: true },
      );
      await server.run(group, 1);
      const client = server.client();
      const r = await client.getResult(await client.with({ timeout: 100, retryCount: 1 }).send(t), 10_000);
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_TASK_TIMEOUT');
      expect(r.retriesUsed).toBe(1);
      expect((sawAbort as { code?: string }).code).toBe('ERR_TASK_TIMEOUT');
    });

    it('never runs a delayed task early (runAfter, runAt)', async () => {
      const server = newServer();
      const t = server.add(group, 'when', () => Date.now());
      await server.run(group, 2);
      const client = server.client();
      const sentAt = Date.now();
      const a = await client.with({ runAfter: 300 }).send(t);
      const at = new Date(Date.now() + 400);
      const b = await client.with({ runAt: at }).send(t);
      const early = await client.getStatus(a);
      // Read before `a` was due (a slow broker, e.g. quorum queues on a loaded cluster, may take longer to confirm `b`): it has not started.
      if (Date.now() < sentAt + 300) expect(early?.status).toBe('sent');
      const ra = await client.getResult(a, 10_000);
      const rb = await client.getResult(b, 10_000);
      expect(ra.value).toBeGreaterThanOrEqual(sentAt + 300);
      expect(rb.value).toBeGreaterThanOrEqual(at.getTime());
    });

    it('an expired task never runs', async () => {
      const server = newServer();
      let ran = false;
      const t = server.add(group, 'exp', () => (ran = true));
      const expired: string[] = [];
      server.on('expired', (e) => expired.push(e.id));
      const client = server.client();
      const id = await client.with({ runAfter: 200, expireAt: Date.now() + 50 }).send(t);
      await server.run(group, 1);
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('expired');
      expect(r.error?.originalCode).toBe('ERR_EXPIRED');
      expect(ran).toBe(false);
      await until(() => expired.length > 0, 10_000, 'expired event');
      expect(expired).toEqual([id]);
    });

    it('an aborted task that has not started never runs', async () => {
      const server = newServer();
      let ran = false;
      const t = server.add(group, 'never', () => (ran = true));
      const client = server.client();
      const id = await client.send(t);
      expect(await client.abort(id)).toBe(true);
      await server.run(group, 1);
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('aborted');
      await until(async () => (await server.broker.counts(group)).ready === 0 && (await server.broker.counts(group)).inFlight === 0);
      expect(ran).toBe(false);
    });

    it('aborting a running task fires its AbortSignal; a finished task cannot be aborted', async () => {
      const server = newServer();
      let started = false;
      let reason: unknown;
      const t = server.add(
        group,
        'long',
        async (ctl: TaskCtl) => {
          started = true;
          await new Promise<void>((_, reject) =>
            ctl.signal.addEventListener('abort', () => {
              reason = ctl.signal.reason;
              reject(ctl.signal.reason as Error);
            }),
          );
        },
        { ctl: true },
      );
      const quick = server.add(group, 'quick', () => 1);
      await server.run(group, 2);
      const client = server.client();
      const id = await client.send(t);
      await until(() => started, 10_000, 'handler start');
      expect(await client.abort(id)).toBe(true);
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('aborted');
      await until(() => reason !== undefined, 10_000, 'abort signal');
      expect((reason as { code?: string }).code).toBe('ERR_ABORTED');
      const q = await client.send(quick);
      await client.getResult(q, 10_000);
      expect(await client.abort(q)).toBe(false);
      expect((await client.getStatus(q))?.status).toBe('success');
    });

    it('stores progress and exposes it in the status', async () => {
      const server = newServer();
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let handlerStart = 0;
      const t = server.add(
        group,
        'prog',
        async (ctl: TaskCtl) => {
          handlerStart = Date.now();
          await new Promise((r) => setTimeout(r, 30));
          await ctl.progress({ pct: 50, note: 'half' });
          await gate;
          return 'done';
        },
        { ctl: true },
      );
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(t);
      const mid = await until(async () => {
        const s = await client.getStatus(id);
        return s?.progress !== undefined ? s : null;
      }, 10_000, 'progress');
      expect(mid.status).toBe('running');
      expect(mid.progress).toEqual({ pct: 50, note: 'half' });
      // A progress write keeps the run's start time.
      expect(mid.startedAt).toBeDefined();
      expect(mid.startedAt?.getTime() ?? Infinity).toBeLessThanOrEqual(handlerStart);
      release();
      expect((await client.getResult(id, 10_000)).value).toBe('done');
    });

    it('the same idempotency key starts one task', async () => {
      const server = newServer();
      let runs = 0;
      const t = server.add(group, 'once', () => ++runs);
      await server.run(group, 2);
      const client = server.client().with({ id: `order-${randomUUID()}` });
      const ids = await Promise.all([client.send(t), client.send(t), client.send(t)]);
      expect(new Set(ids).size).toBe(1);
      const r = await client.getResult(ids[0] as string, 10_000);
      expect(r.value).toBe(1);
      const again = await client.send(t);
      expect(again).toBe(ids[0]);
      await sleep(200);
      expect(runs).toBe(1);
    });

    it('rejects bad names, bad options and non-serializable arguments at the call site', async () => {
      const server = newServer();
      const client = server.client();
      await expect(client.send('bad group!', 'x')).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
      await expect(client.send(group, '')).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
      await expect(client.send(group, 'x', () => 1)).rejects.toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
      await expect(client.send(group, 'x', Symbol('s'))).rejects.toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expect(client.send(group, 'x', circular)).rejects.toMatchObject({ code: 'ERR_NOT_SERIALIZABLE' });
      expect(() => client.with({ retryCount: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      expect(() => client.with({ runAt: new Date('nope') })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      expect(() => client.with({ id: 'has space' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      expect(() => server.add('bad/group', 'x', () => 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_NAME' }));
      expect(() => new Server({ statusExpires: -2 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      expect((await server.broker.counts(group)).ready).toBe(0);
    });

    it('wrong argument count or type ends as a clear failure and a dead letter', async () => {
      const server = newServer();
      const t = server.add(group, 'typed', (a: number, b: number) => a + b, { args: ['number', 'number'] });
      server.add(group, 'arity', (a: number, b: number) => a + b);
      await server.run(group, 2);
      const client = server.client();
      const r1 = await client.getResult(await client.send(group, 'typed', 1, 'two'), 10_000);
      expect(r1.status).toBe('failure');
      expect(r1.error?.originalCode).toBe('ERR_BAD_ARGS');
      expect(r1.error?.message).toContain('argument 2 must be number, got string');
      const r2 = await client.getResult(await client.send(group, 'arity', 1), 10_000);
      expect(r2.error?.originalCode).toBe('ERR_BAD_ARGS');
      expect(r2.retriesUsed).toBe(0);
      // The failure is stored first, then the message moves to the dead letters.
      const dead = await until(async () => {
        const list = await client.deadLetters(group);
        return list.length === 2 ? list : null;
      }, 10_000, 'two dead letters');
      expect(dead.map((d) => d.reason.code)).toEqual(['ERR_BAD_ARGS', 'ERR_BAD_ARGS']);
      expect((await client.getResult(await client.send(t, 1, 2), 10_000)).value).toBe(3);
    });

    it('an undecodable message goes to dead letters and the worker goes on', async () => {
      const server = newServer();
      const t = server.add(group, 'ok', () => 'fine');
      const dl: string[] = [];
      server.on('deadLettered', (e) => dl.push(e.reason.code));
      await server.run(group, 1);
      await server.broker.publish(group, '{not json');
      await server.broker.publish(group, JSON.stringify({ v: 99, id: 'x' }));
      const client = server.client();
      expect((await client.getResult(await client.send(t), 10_000)).value).toBe('fine');
      await until(async () => (await client.deadLetters(group)).length === 2, 10_000, 'dead letters');
      const dead = await client.deadLetters(group);
      expect(dead.map((d) => d.body).sort()).toEqual(['{not json', JSON.stringify({ v: 99, id: 'x' })].sort());
      expect(dead.every((d) => d.reason.code === 'ERR_DECODE')).toBe(true);
      expect(dl).toEqual(['ERR_DECODE', 'ERR_DECODE']);
      // The readable id of the second one got a failure state.
      expect((await client.getStatus('x'))?.status).toBe('failure');
    });

    it('an unknown task is retried for a while (rolling deploy), then fails and is dead-lettered; redrive runs it', async () => {
      const server = newServer();
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(group, 'later', 20, 22);
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_UNKNOWN_TASK');
      const dead = await until(async () => {
        const d = await client.deadLetters(group);
        return d.length === 1 ? d : null;
      });
      expect(dead[0]?.reason.code).toBe('ERR_UNKNOWN_TASK');
      // Deploy the handler and re-drive the dead letter: it runs now, under its original id.
      server.add(group, 'later', (a: number, b: number) => a + b);
      expect(await client.redriveDeadLetters(group)).toBe(1);
      expect((await client.getResult(id, 10_000)).value).toBe(42);
      expect(await client.deadLetters(group)).toEqual([]);
    });

    it('a task sent before its handler is deployed runs once the handler appears', async () => {
      const server = newServer({ unknownTaskRetryMs: 60_000 });
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(group, 'deployed-late', 2);
      await sleep(150);
      server.add(group, 'deployed-late', (x: number) => x * 10);
      expect((await client.getResult(id, 10_000)).value).toBe(20);
    });

    it('dead letters can be re-driven from the client API', async () => {
      const server = newServer();
      await server.run(group, 1);
      const client = server.client();
      // A message whose args are not an array: a bad message, dead-lettered with a failure state.
      const body = encodeMessage({
        v: 1, id: `dl-${randomUUID()}`, group, name: 'fixme', args: encodeValue('oops'), retriesLeft: 0, retriesUsed: 0,
        backoff: { type: 'fixed', delayMs: 0 }, sentAt: Date.now(), runAt: null, expireAt: null, timeoutMs: null, firstUnknownAt: null,
      });
      await server.broker.publish(group, body);
      const [dead] = await until(async () => {
        const d = await client.deadLetters(group);
        return d.length === 1 ? d : null;
      });
      expect(dead?.reason.code).toBe('ERR_DECODE');
      expect(await client.redriveDeadLetters(group, [dead?.id as string])).toBe(1);
      // It comes back, is still bad, and lands in dead letters again: nothing vanishes.
      await until(async () => (await client.deadLetters(group)).length === 1, 10_000, 'dead again');
    });

    it('status and result expiries of 0 store nothing; a result-only store still reports success', async () => {
      const noState = newServer({ statusExpires: 0 });
      const t = noState.add(group, 'v', () => 'value');
      await noState.run(group, 1);
      const c = noState.client();
      const id = await c.send(t);
      const r = await c.getResult(id, 10_000);
      expect(r.isSuccess()).toBe(true);
      expect(r.state).toBeNull();
      expect(r.value).toBe('value');
    });

    it('a result expiry of 0 keeps the status but no value', async () => {
      const server = newServer({ resultExpires: 0 });
      const t = server.add(group, 'v', () => 'value');
      await server.run(group, 1);
      const c = server.client();
      const r = await c.getResult(await c.send(t), 10_000);
      expect(r.isSuccess()).toBe(true);
      expect(r.hasValue()).toBe(false);
      expect(r.value).toBeUndefined();
    });

    it('getResult rejects with a typed timeout when the task does not finish in time', async () => {
      const server = newServer();
      const client = server.client();
      const id = await client.with({ runAfter: 60_000 }).send(group, 'idle');
      await expect(client.getResult(id, 100, 20)).rejects.toMatchObject({ code: 'ERR_RESULT_TIMEOUT' });
    });

    it('concurrency is a hard bound on running handlers', async () => {
      const server = newServer();
      let now = 0;
      let peak = 0;
      const t = server.add(group, 'busy', async () => {
        now++;
        peak = Math.max(peak, now);
        await sleep(20);
        now--;
      });
      await server.run(group, 3);
      const client = server.client();
      const ids = await client.sendMany(t, Array.from({ length: 30 }, () => [] as []));
      for (const id of ids) expect((await client.getResult(id, 20_000)).isSuccess()).toBe(true);
      expect(peak).toBe(3);
    });

    it('prefetch 0: a worker holds no more messages than its concurrency', async () => {
      const server = newServer({ prefetch: 0 });
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started = 0;
      const t = server.add(group, 'held', async () => {
        started++;
        await gate;
      });
      const client = server.client();
      const ids = await client.sendMany(t, Array.from({ length: 6 }, () => [] as []));
      await server.run(group, 2);
      await until(() => started === 2, 10_000, 'two handlers started');
      await sleep(200);
      const c = await server.broker.counts(group);
      expect(c.inFlight).toBe(2);
      expect(c.ready).toBe(4);
      release();
      for (const id of ids) expect((await client.getResult(id, 10_000)).isSuccess()).toBe(true);
    });

    it('short tasks are claimed ahead when prefetched; aborting a claimed task that has not started keeps it from running', async () => {
      const server = newServer({ prefetch: 4 });
      const quick = server.add(group, 'quick', () => 1);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let blockerStarted = false;
      const blocker = server.add(group, 'blocker', async () => {
        blockerStarted = true;
        await gate;
      });
      const ran: string[] = [];
      const follower = server.add(group, 'follower', (tag: string) => void ran.push(tag));
      await server.run(group, 1);
      const client = server.client();
      // Warm-up: enough short handlers for the worker to claim prefetched messages ahead.
      for (const id of await client.sendMany(quick, Array.from({ length: 12 }, () => [] as []))) {
        expect((await client.getResult(id, 10_000)).isSuccess()).toBe(true);
      }
      const b = await client.send(blocker);
      await until(() => blockerStarted, 10_000, 'blocker start');
      const [f1, f2] = await client.sendMany(follower, [['one'], ['two']]);
      // Both followers are prefetched behind the blocker and claimed: their status is running.
      // (Claims may be stored in any order: a backend with a connection pool writes them in parallel.)
      await until(
        async () => (await client.getStatus(f2 as string))?.status === 'running' && (await client.getStatus(f1 as string))?.status === 'running',
        10_000,
        'claimed followers',
      );
      expect(await client.abort(f1 as string)).toBe(true);
      await sleep(300); // several abort polls (abortPollMs 50)
      release();
      expect((await client.getResult(b, 10_000)).isSuccess()).toBe(true);
      expect((await client.getResult(f2 as string, 10_000)).isSuccess()).toBe(true);
      expect((await client.getResult(f1 as string, 10_000)).status).toBe('aborted');
      expect(ran).toEqual(['two']);
    });

    it('several groups run in one server', async () => {
      const server = newServer();
      const g2 = `${group}-b`;
      const a = server.add(group, 'a', () => 'A');
      const b = server.add(g2, 'b', () => 'B');
      await server.run(group, 1);
      await server.run(g2, 1);
      const c = server.client();
      expect((await c.getResult(await c.send(a), 10_000)).value).toBe('A');
      expect((await c.getResult(await c.send(b), 10_000)).value).toBe('B');
      await server.broker.purge(g2);
      await expect(server.run(group, 1)).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
    });

    it('emits life-cycle events', async () => {
      const server = newServer();
      const seen: string[] = [];
      for (const e of ['started', 'succeeded', 'retrying', 'failed'] as const) server.on(e, () => seen.push(e));
      let n = 0;
      const t = server.add(group, 'ev', () => {
        if (n++ === 0) throw new Error('first');
        return 1;
      });
      await server.run(group, 1);
      const c = server.client();
      await c.getResult(await c.send(t), 10_000);
      // The result is visible once stored; `succeeded` follows the ack.
      await until(() => seen.length === 4, 10_000, 'the succeeded event');
      expect(seen).toEqual(['started', 'retrying', 'started', 'succeeded']);
    });

    it('graceful shutdown lets running tasks finish and hands back the ones past the deadline', async () => {
      const a = newServer();
      let finished = 0;
      let started = 0;
      const quick = a.add(group, 'quick', async () => {
        started++;
        await sleep(100);
        return ++finished;
      });
      const slowRef = a.add(group, 'slow', async () => {
        started++;
        await sleep(60_000);
        return 'never';
      });
      await a.run(group, 4);
      const c = new Client({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger });
      const q = await c.send(quick);
      const s = await c.send(slowRef);
      // Both handlers running (not only fetched: a claim still on its way could miss the deadline).
      await until(() => started === 2, 10_000, 'both started');
      // The deadline leaves the quick one (100 ms) time to finish and store on a loaded machine.
      await a.shutdown(2000);
      expect((await c.getStatus(q))?.status).toBe('success');
      // The slow task went back to the broker at once, and a second worker finishes it.
      const b = newServer();
      b.add(group, 'slow', () => 'finished elsewhere');
      await b.run(group, 1);
      expect((await c.getResult(s, 10_000)).value).toBe('finished elsewhere');
      await c.close();
    });

    it('a worker that vanishes without acking loses nothing: the lease expires and another worker runs the task', async () => {
      const a = newServer({ leaseMs: 400 });
      let startedOnA = false;
      a.add(group, 'job', async () => {
        startedOnA = true;
        await sleep(60_000);
      });
      await a.run(group, 1);
      const c = new Client({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger });
      const id = await c.send(group, 'job');
      await until(() => startedOnA, 10_000, 'start on a');
      // Simulate a frozen worker: its broker connection goes away without ack or release.
      await a.broker.close();
      const b = newServer({ leaseMs: 400 });
      b.add(group, 'job', () => 'rescued');
      await b.run(group, 1);
      expect((await c.getResult(id, 15_000)).value).toBe('rescued');
      await c.close();
    });

    it('a handler that ignores its signal after a timeout keeps its slot: the concurrency bound holds', async () => {
      const server = newServer({ abandonAfterMs: 10_000 });
      let now = 0;
      let peak = 0;
      const t = server.add(group, 'stubborn', async () => {
        now++;
        peak = Math.max(peak, now);
        await sleep(600); // ignores its signal
        now--;
      });
      await server.run(group, 1);
      const client = server.client().with({ timeout: 100, retryCount: 0 });
      const ids = await client.sendMany(t, [[], [], []]);
      for (const id of ids) expect((await client.getResult(id, 20_000)).error?.originalCode).toBe('ERR_TASK_TIMEOUT');
      await until(() => now === 0, 10_000, 'handlers settled');
      expect(peak).toBe(1);
    });

    it('timeouts longer than 2^31-1 ms do not fire at once; ms options say the accepted range', async () => {
      const server = newServer();
      const t = server.add(group, 'long', async () => {
        await sleep(50);
        return 'ok';
      }, { timeout: 3e9 });
      await server.run(group, 1);
      const client = server.client();
      expect((await client.getResult(await client.send(t), 10_000)).value).toBe('ok');
      expect((await client.getResult(await client.with({ timeout: 3e9 }).send(t), 10_000)).value).toBe('ok');
      const wire = encodeMessage({
        v: 1, id: randomUUID(), group, name: 'long', args: encodeValue([]), retriesLeft: 0, retriesUsed: 0,
        backoff: { type: 'fixed', delayMs: 0 }, sentAt: Date.now(), runAt: null, expireAt: null, timeoutMs: 3e9, firstUnknownAt: null,
      });
      const wireId = (JSON.parse(wire) as { id: string }).id;
      await server.broker.publish(group, wire);
      expect((await client.getResult(wireId, 10_000)).value).toBe('ok');
      expect(() => client.with({ timeout: 1e20 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('from 1 to') }));
      expect(() => server.add(group, 'bad', () => 1, { timeout: 1e20 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
      expect(() => new Server({ leaseMs: 1e20 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION', message: expect.stringContaining('from 100 to') }));
    });

    it('a wire message with an absurd timeoutMs fails as undecodable and is dead-lettered', async () => {
      const server = newServer();
      let runs = 0;
      server.add(group, 'job', () => ++runs);
      await server.run(group, 1);
      const client = server.client();
      const ids: string[] = [];
      for (const timeoutMs of [1e300, -5, 0]) {
        const id = randomUUID();
        ids.push(id);
        await server.broker.publish(group, JSON.stringify({
          v: 1, id, group, name: 'job', args: { json: [] }, retriesLeft: 2, retriesUsed: 0,
          backoff: { type: 'fixed', delayMs: 0 }, sentAt: Date.now(), runAt: null, expireAt: null, timeoutMs, firstUnknownAt: null,
        }));
      }
      for (const id of ids) {
        const r = await client.getResult(id, 10_000);
        expect(r.status).toBe('failure');
        expect(r.error?.originalCode).toBe('ERR_DECODE');
        expect(r.retriesUsed).toBe(0);
      }
      await until(async () => (await client.deadLetters(group)).length === 3, 10_000, 'three dead letters');
      expect(runs).toBe(0);
    });

    it('an oversized error is stored cut down, with a marker', async () => {
      const server = newServer();
      const t = server.add(group, 'huge', () => {
        throw new Error('x'.repeat(600_000));
      });
      await server.run(group, 1);
      const client = server.client();
      const r = await client.getResult(await client.with({ retryCount: 0 }).send(t), 10_000);
      expect(r.status).toBe('failure');
      const stored = await server.backend.read(r.id);
      expect(stored?.error?.message.length).toBeLessThanOrEqual(16_384);
      expect(stored?.error?.message).toMatch(/characters cut\]$/);
      expect(stored?.error?.stack?.length).toBeLessThanOrEqual(16_384);
    });

    it("a malformed message in one group's queue never writes over another group's task", async () => {
      const server = newServer();
      const other = `${group}-y`;
      server.add(group, 'job', () => 'x');
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(other, 'job');
      expect((await client.getStatus(id))?.status).toBe('sent');
      await server.broker.publish(group, JSON.stringify({ v: 1, id, group: other, name: 'job', args: { json: [] } }));
      await server.broker.publish(group, JSON.stringify({ v: 99, id, name: 'job' }));
      await until(async () => (await client.deadLetters(group)).length === 2, 10_000, 'two dead letters');
      expect((await client.getStatus(id))?.status).toBe('sent');
      const y = newServer();
      y.add(other, 'job', () => 'ran in y');
      await y.run(other, 1);
      expect((await client.getResult(id, 10_000)).value).toBe('ran in y');
      await y.broker.purge(other);
    });

    it('the last progress stays in the final state', async () => {
      const server = newServer();
      const t = server.add(
        group,
        'prog',
        async (ctl: TaskCtl, fail: boolean) => {
          await ctl.progress({ pct: 100 });
          if (fail) throw new Error('after progress');
          return 'done';
        },
        { ctl: true },
      );
      await server.run(group, 1);
      const client = server.client();
      const ok = await client.getResult(await client.send(t, false), 10_000);
      expect(ok.value).toBe('done');
      expect(ok.progress).toEqual({ pct: 100 });
      const bad = await client.getResult(await client.with({ retryCount: 0 }).send(t, true), 10_000);
      expect(bad.status).toBe('failure');
      expect(bad.progress).toEqual({ pct: 100 });
    });

    it('a task handed back at shutdown reads sent again, not running', async () => {
      const a = newServer();
      let started = false;
      const slow = a.add(group, 'slow', async () => {
        started = true;
        await sleep(60_000);
      });
      await a.run(group, 1);
      const c = new Client({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger });
      const id = await c.send(slow);
      await until(() => started, 10_000, 'started');
      expect((await c.getStatus(id))?.status).toBe('running');
      await a.shutdown(100);
      expect((await c.getStatus(id))?.status).toBe('sent');
      const b = newServer();
      b.add(group, 'slow', () => 'finished elsewhere');
      await b.run(group, 1);
      expect((await c.getResult(id, 10_000)).value).toBe('finished elsewhere');
      await c.close();
    });

    it('a success is sticky: a late duplicate failing does not turn it into a failure', async () => {
      const server = newServer();
      const t = server.add(group, 'once', () => 'first');
      await server.run(group, 1);
      const c = server.client();
      const id = await c.send(t);
      await c.getResult(id, 10_000);
      // Re-deliver the same message (a duplicate): the worker sees the final state and skips it.
      const msg = encodeMessage({
        v: 1, id, group, name: 'once', args: encodeValue([]), retriesLeft: 0, retriesUsed: 0,
        backoff: { type: 'fixed', delayMs: 0 }, sentAt: Date.now(), runAt: null, expireAt: null, timeoutMs: null, firstUnknownAt: null,
      });
      await server.broker.publish(group, msg);
      await until(async () => {
        const k = await server.broker.counts(group);
        return k.ready === 0 && k.inFlight === 0;
      });
      const r = await c.getStatus(id);
      expect(r?.status).toBe('success');
      expect(r?.value).toBe('first');
    });
  });
}

/**
 * Behaviour of durable flows (`server.flow`), run over several broker+backend pairs. Each numbered
 * semantic of the flows design has a test here that fails without it.
 */
import { afterEach, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../src/backend.js';
import type { Broker } from '../../src/broker.js';
import { Server, silentLogger, type ServerOptions, type TaskCtl, type TaskId, type TaskResult } from '../../src/index.js';
import { until } from '../core/suite.js';

/** Broker and backend of one test; all instances share a namespace. */
export interface FlowHarness {
  broker(): Broker;
  backend(): Backend;
  teardown?(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Registers the flow behaviour suite for one broker+backend pair. */
export function flowSuite(name: string, makeHarness: () => FlowHarness): void {
  describe(`flows: ${name}`, () => {
    let harness: FlowHarness;
    let servers: Server[];
    let group: string;
    let other: string;

    const fast: ServerOptions = {
      logger: silentLogger,
      leaseMs: 2000,
      abortPollMs: 50,
      fetchWaitMs: 300,
      unknownTaskRetryMs: 300,
      unknownTaskRetryDelayMs: 50,
      abandonAfterMs: 200,
      sendDefaults: { backoff: { type: 'fixed', delayMs: 20 } },
    };
    const newServer = (extra: ServerOptions = {}): Server => {
      const s = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...extra });
      servers.push(s);
      return s;
    };
    const result = <R>(s: Server, id: TaskId<R> | string): Promise<TaskResult<R>> => s.client().getResult<R>(id, 20_000, 20);

    beforeEach(() => {
      harness = makeHarness();
      servers = [];
      group = `flow-${randomUUID().slice(0, 8)}`;
      other = `${group}-kids`;
    });

    afterEach(async () => {
      for (const s of servers) {
        await s.broker.purge(group).catch(() => undefined);
        await s.broker.purge(other).catch(() => undefined);
        await s.shutdown(1000);
      }
      await harness.teardown?.();
    });

    it('runs each step once, replays stored values (typed), keys steps by name and occurrence, and sleeps without a slot', async () => {
      const server = newServer();
      const runs = new Map<string, number>();
      const count = (k: string): void => void runs.set(k, (runs.get(k) ?? 0) + 1);
      let tops = 0;
      const f = server.flow(group, 'basic', async (flow, n: number) => {
        tops++;
        const d = await flow.step('load', () => {
          count('load');
          return { at: new Date(1_700_000_000_000), n };
        });
        const parts: number[] = [];
        for (let i = 0; i < 3; i++) parts.push(await flow.step('part', () => (count(`part${i}`), i * n)));
        await flow.sleep('nap', 1500);
        const last = await flow.step('last', () => (count('last'), 'x'));
        return { d, parts, last };
      });
      const plain = server.add(group, 'plain', () => 'p');
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(f, 7);
      // The flow sleeps: with one slot, a plain task still runs meanwhile (before the step after the
      // sleep starts). The sleep's journal entry is there from the first run on, however late this looks.
      await until(async () => (await client.getFlow(id))?.steps.some((s) => s.key === 'nap#0'), 10_000, 'the sleep');
      const p = await result(server, await client.send(plain));
      expect(p.value).toBe('p');
      const r = await result(server, id);
      expect(r.status).toBe('success');
      expectTypeOf(r.value).toEqualTypeOf<{ d: { at: Date; n: number }; parts: number[]; last: string } | undefined>();
      expect(r.value?.d.at).toBeInstanceOf(Date);
      expect(r.value).toEqual({ d: { at: new Date(1_700_000_000_000), n: 7 }, parts: [0, 7, 14], last: 'x' });
      expect(tops).toBeGreaterThanOrEqual(2);
      expect([...runs.values()].every((v) => v === 1)).toBe(true);
      expect(runs.size).toBe(5);
      const info = await client.getFlow(id);
      expect(info?.steps.map((s) => s.key)).toEqual(['load#0', 'part#0', 'part#1', 'part#2', 'nap#0', 'last#0']);
      expect(info?.steps.find((s) => s.key === 'part#2')).toMatchObject({ name: 'part', occurrence: 2, status: 'done', attempts: 1, value: 14 });
      const lastStarted = info?.steps.find((s) => s.key === 'last#0')?.startedAt;
      expect(p.finishedAt!.getTime()).toBeLessThanOrEqual(lastStarted!.getTime());
    });

    it('resumes a sleeping flow on another server after its worker shut down, without running done steps again', async () => {
      let before = 0;
      let after = 0;
      const register = (s: Server) =>
        s.flow(group, 'restart', async (flow, x: number) => {
          const a = await flow.step('before', () => (before++, x + 1));
          await flow.sleep('nap', 400);
          const b = await flow.step('after', () => (after++, a * 10));
          return b;
        });
      const first = newServer();
      const f = register(first);
      await first.run(group, 1);
      const id = await first.client().send(f, 4);
      await until(async () => (await first.client().getFlow(id))?.waitingOn.some((s) => s.kind === 'sleep'), 10_000, 'the sleep');
      await first.shutdown(1000);
      const second = newServer();
      register(second);
      await second.run(group, 1);
      expect((await result(second, id)).value).toBe(50);
      expect({ before, after }).toEqual({ before: 1, after: 1 });
    });

    it('retries a step per its own retryCount and backoff, then fails the flow unless caught; non-Errors are wrapped', async () => {
      const server = newServer();
      let attempts = 0;
      const f = server.flow(group, 'retry', async (flow) => {
        const v = await flow.step('flaky', (s) => {
          attempts++;
          if (s.attempt < 3) throw new Error(`boom ${s.attempt}`);
          return s.attempt;
        }, { retryCount: 4, backoff: { type: 'fixed', delayMs: 30 } });
        let caught = '';
        try {
          await flow.step('bad', () => {
            throw 'not an error';
          }, { retryCount: 1, backoff: { type: 'fixed', delayMs: 0 } });
        } catch (err) {
          caught = `${(err as { code: string }).code}/${(err as { originalCode: string }).originalCode}`;
        }
        await flow.step('hopeless', () => {
          throw new TypeError('never');
        });
        return { v, caught };
      });
      await server.run(group, 2);
      const client = server.client();
      const id = await client.with({ retryCount: 0 }).send(f);
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_STEP_FAILED');
      expect(attempts).toBe(3);
      const info = await client.getFlow(id);
      expect(info?.steps.find((s) => s.key === 'flaky#0')).toMatchObject({ status: 'done', attempts: 3, value: 3 });
      expect(info?.steps.find((s) => s.key === 'bad#0')).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'ERR_NON_ERROR_THROWN' } });
      expect(info?.steps.find((s) => s.key === 'hopeless#0')?.error?.name).toBe('TypeError');
    });

    it('fails a step on its timeout (signal fired), a flow on its wall-time timeout, and expires a flow at its expireAt', async () => {
      const server = newServer();
      let aborted = false;
      const f = server.flow(group, 'slow', async (flow) => {
        try {
          await flow.step('slow', (s) => new Promise((res) => s.signal.addEventListener('abort', () => ((aborted = true), res(1)))), { timeout: 50 });
        } catch (err) {
          return (err as { originalCode: string }).originalCode;
        }
        return 'no timeout';
      });
      const g = server.flow(group, 'long', async (flow) => {
        await flow.sleep('s', 60_000);
        return 'woke';
      });
      await server.run(group, 2);
      const client = server.client();
      expect((await result(server, await client.send(f))).value).toBe('ERR_TASK_TIMEOUT');
      expect(aborted).toBe(true);
      const r = await result(server, await client.with({ timeout: 300, retryCount: 0 }).send(g));
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_TASK_TIMEOUT');
      // expireAt: a flow not finished by then ends expired (its sleep is cut short to that time).
      const e = await result(server, await client.with({ expireAt: Date.now() + 300 }).send(g));
      expect(e.status).toBe('expired');
    });

    it('fails a replay that diverges with ERR_FLOW_DIVERGED naming both, never retried; flow.patched guards changed code', async () => {
      const server = newServer();
      let version = 1;
      let gate = false;
      const f = server.flow(group, 'changing', async (flow) => {
        await flow.step(version === 1 ? 'a' : 'renamed', () => 1);
        await flow.waitFor('go');
        return 'done';
      });
      const p = server.flow(group, 'patched', async (flow) => {
        const first = await flow.step('first', () => 1);
        let extra = 0;
        if (version > 1 && flow.patched('add-extra')) extra = await flow.step('extra', () => 10);
        await flow.waitFor('go');
        return first + extra + (gate ? 100 : 0);
      });
      await server.run(group, 2);
      const client = server.client();
      const id = await client.send(f);
      const old = await client.send(p);
      await until(async () => (await client.getFlow(id))?.waitingOn.length && (await client.getFlow(old))?.waitingOn.length, 10_000, 'waits');
      version = 2;
      gate = true;
      const fresh = await client.send(p);
      await until(async () => (await client.getFlow(fresh))?.waitingOn.length, 10_000, 'fresh wait');
      await client.signal(id, 'go');
      await client.signal(old, 'go');
      await client.signal(fresh, 'go');
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_FLOW_DIVERGED');
      expect(r.error?.message).toMatch(/"a#0".*"renamed#0"/);
      expect(r.retriesUsed).toBe(0);
      // The run that was in flight keeps the old path; a new one takes the new path.
      expect((await result(server, old)).value).toBe(101);
      expect((await result(server, fresh)).value).toBe(111);
    });

    it('calls children in another group (typed), fans out with a bound, and wakes the parent when each ends', async () => {
      const server = newServer();
      let running = 0;
      let peak = 0;
      let mapRunning = 0;
      let mapPeak = 0;
      const double = server.add(other, 'double', async (n: number) => {
        running++;
        peak = Math.max(peak, running);
        await sleep(20);
        running--;
        return n * 2;
      });
      const f = server.flow(group, 'parent', async (flow, xs: number[]) => {
        const one = await flow.call('one', double, 21);
        expectTypeOf(one).toEqualTypeOf<number>();
        const many = await flow.callMany('many', double, xs.map((x) => [x] as [number]), { concurrency: 3 });
        const mapped = await flow.map('sq', xs, async (x) => {
          mapPeak = Math.max(mapPeak, ++mapRunning);
          await sleep(20);
          mapRunning--;
          return x * x;
        }, { concurrency: 2 });
        return { one, many, mapped };
      }, { recheckMs: 60_000 });
      await server.run(group, 2);
      await server.run(other, 8);
      const client = server.client();
      const xs = [1, 2, 3, 4, 5, 6, 7];
      const id = await client.send(f, xs);
      const r = await result(server, id);
      expect(r.value).toEqual({ one: 42, many: xs.map((x) => x * 2), mapped: xs.map((x) => x * x) });
      expect(peak).toBeLessThanOrEqual(3);
      expect(mapPeak).toBeLessThanOrEqual(2);
      const info = await client.getFlow(id);
      const kids = info?.steps.filter((s) => s.kind === 'call') ?? [];
      expect(kids).toHaveLength(8);
      // Children have deterministic ids derived from the flow id and step key.
      expect(kids[0]?.child).toBe(`${id}/one#0`);
      expect((await client.getStatus(`${id}/many#0[6]`))?.value).toBe(14);
    });

    it('a flow sent twice with the same id (vtask\'s keyword) is one flow: its steps run once', async () => {
      const server = newServer();
      let runs = 0;
      const f = server.flow(group, 'keyed', async (flow, n: number) => flow.step('once', () => (runs++, n * 2)));
      await server.run(group, 2);
      const client = server.client();
      const keyword = `kw-${group}`;
      const [a, b] = await Promise.all([client.with({ id: keyword }).send(f, 1), client.with({ id: keyword }).send(f, 1)]);
      expect(a).toBe(keyword);
      expect(b).toBe(keyword);
      expect((await result(server, keyword)).value).toBe(2);
      expect(await client.with({ id: keyword }).send(f, 1)).toBe(keyword);
      await sleep(200);
      expect(runs).toBe(1);
      expect((await client.getFlow(keyword))?.steps.map((s) => s.key)).toEqual(['once#0']);
    });

    it('wakes the parent when a child\'s worker died after storing the final state and before acking', async () => {
      const server = newServer({ leaseMs: 300 });
      const kid = server.add(other, 'kid', (n: number) => n + 1);
      const f = server.flow(group, 'waker', async (flow) => flow.call('kid', kid, 1), { recheckMs: 600_000 });
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(f);
      // A "worker" that stores the child's success and dies before its ack.
      const d = await until(async () => (await server.broker.fetch(other, 1, { leaseMs: 300, waitMs: 200 }))[0], 10_000, 'the child message');
      const childId = (JSON.parse(d.body) as { id: string }).id;
      const now = Date.now();
      await server.backend.write({
        state: { v: 1, id: childId, group: other, name: 'kid', status: 'success', retriesUsed: 0, retriesLeft: 3, finishedAt: now, updatedAt: now },
        stateTtl: 60, result: JSON.stringify({ json: 99 }), resultTtl: 60, guard: 'notSuccess',
      });
      // The redelivery finds the child final, acks it — and wakes the parent first.
      await server.run(other, 1);
      const r = await result(server, id);
      expect(r.value).toBe(99);
    });

    it('runs one replay of a flow at a time, however many wake-ups arrive, and its callback once', async () => {
      const server = newServer();
      const kid = server.add(other, 'kid', async (n: number) => n);
      const inStep = new Map<string, number>();
      let overlap = 0;
      let bodies = 0;
      let callbacks = 0;
      const f = server.flow(group, 'busy', async (flow) => {
        const xs = await flow.callMany('kids', kid, Array.from({ length: 12 }, (_, i) => [i] as [number]));
        const slow = await flow.step('slow', async () => {
          bodies++;
          inStep.set(flow.id, (inStep.get(flow.id) ?? 0) + 1);
          if ((inStep.get(flow.id) ?? 0) > 1) overlap++;
          await sleep(150);
          inStep.set(flow.id, (inStep.get(flow.id) ?? 0) - 1);
          return xs.length;
        });
        return slow;
      }, { onSuccess: () => void callbacks++ });
      await server.run(group, 4);
      await server.run(other, 12);
      const client = server.client();
      const ids = await Promise.all([client.send(f), client.send(f), client.send(f)]);
      for (const id of ids) expect((await result(server, id)).value).toBe(12);
      await until(() => callbacks >= 3, 10_000, 'callbacks');
      await sleep(300);
      expect(overlap).toBe(0);
      expect(bodies).toBe(3);
      expect(callbacks).toBe(3);
    });

    it('throws ChildFailedError in the flow, with failFast, waitAll and ignore policies', async () => {
      const server = newServer();
      const maybe = server.add(other, 'maybe', (n: number) => {
        if (n % 2 === 1) throw new RangeError(`odd ${n}`);
        return n;
      });
      const f = server.flow(group, 'policies', async (flow) => {
        const out: Record<string, unknown> = {};
        try {
          await flow.callWith('single', maybe, [1], { retryCount: 0 });
        } catch (err) {
          out.single = [(err as { code: string }).code, (err as { originalName: string }).originalName, (err as { childStatus: string }).childStatus];
        }
        out.ignore = await flow.callMany('ign', maybe, [[2], [3], [4]], { onFailure: 'ignore', retryCount: 0 });
        try {
          await flow.callMany('all', maybe, [[5], [6]], { onFailure: 'waitAll', retryCount: 0 });
        } catch (err) {
          out.all = (err as Error).message;
        }
        try {
          await flow.callMany('fast', maybe, [[8], [9], [10]], { retryCount: 0, concurrency: 1 });
        } catch (err) {
          out.fast = (err as { childId: string }).childId;
        }
        return out;
      });
      await server.run(group, 2);
      await server.run(other, 4);
      const client = server.client();
      const id = await client.send(f);
      const r = await result(server, id);
      expect(r.value).toEqual({
        single: ['ERR_CHILD_FAILED', 'RangeError', 'failure'],
        ignore: [2, undefined, 4],
        all: expect.stringMatching(/odd 5/),
        fast: `${id}/fast#0[1]`,
      });
      // failFast with concurrency 1: the item after the failed one was never sent.
      expect(await client.getStatus(`${id}/fast#0[2]`)).toBeNull();
      // waitAll: the other child ran to its end.
      expect((await client.getStatus(`${id}/all#0[1]`))?.value).toBe(6);
    });

    it('keeps a signal sent before the wait, delivers one sent after it, and times a wait out with ERR_SIGNAL_TIMEOUT', async () => {
      const server = newServer();
      const f = server.flow(group, 'signals', async (flow) => {
        await flow.step('start', () => 0);
        const early = await flow.waitFor<string>('early');
        const late = await flow.waitFor<{ ok: boolean }>('late');
        let timedOut = '';
        try {
          await flow.waitFor('never', { timeoutMs: 100 });
        } catch (err) {
          timedOut = (err as { code: string }).code;
        }
        const second = await flow.waitFor<string>('early');
        return { early, late, timedOut, second };
      }, { recheckMs: 60_000 });
      await server.run(group, 1);
      const client = server.client();
      const id = await client.with({ runAfter: 300 }).send(f);
      await client.signal(id, 'early', 'e1');
      await client.signal(id, 'early', 'e2');
      await until(async () => (await client.getFlow(id))?.waitingOn.some((s) => s.name === 'late'), 10_000, 'the late wait');
      await client.signal(id, 'late', { ok: true });
      const r = await result(server, id);
      expect(r.value).toEqual({ early: 'e1', late: { ok: true }, timedOut: 'ERR_SIGNAL_TIMEOUT', second: 'e2' });
      expect((await client.getFlow(id))?.signals).toEqual({ early: 2, late: 1 });
      await expect(client.signal('no-such-flow', 'x')).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    });

    it('abort stops the running step (signal), aborts pending children and never resumes the flow', async () => {
      const server = newServer();
      let stepSignal = false;
      let childSignal = false;
      let resumed = false;
      const slowKid = server.add(other, 'slowKid', (ctl: TaskCtl) => new Promise((_, rej) => ctl.signal.addEventListener('abort', () => ((childSignal = true), rej(ctl.signal.reason)))), { ctl: true });
      const a = server.flow(group, 'abortStep', async (flow) => {
        await flow.step('long', (s) => new Promise((res) => s.signal.addEventListener('abort', () => ((stepSignal = true), res(0)))));
        resumed = true;
        return 1;
      });
      const b = server.flow(group, 'abortKids', async (flow) => {
        await flow.call('kid', slowKid);
        resumed = true;
        return 2;
      }, { recheckMs: 600_000 });
      await server.run(group, 2);
      await server.run(other, 2);
      const client = server.client();
      const ida = await client.send(a);
      const idb = await client.send(b);
      await until(async () => (await client.getStatus(ida))?.status === 'running', 10_000, 'the step');
      await until(async () => (await client.getStatus(`${idb}/kid#0`))?.status === 'running', 10_000, 'the child');
      expect(await client.abort(ida)).toBe(true);
      expect(await client.abort(idb)).toBe(true);
      await until(() => stepSignal && childSignal, 10_000, 'both signals');
      expect((await client.getStatus(`${idb}/kid#0`))?.status).toBe('aborted');
      await sleep(300);
      expect(resumed).toBe(false);
      expect((await client.getStatus(ida))?.status).toBe('aborted');
      expect((await client.getStatus(idb))?.status).toBe('aborted');
    });

    it('runs success and failure callbacks after the final state is stored, and emits flow events', async () => {
      const server = newServer();
      const seen: string[] = [];
      const events: string[] = [];
      server.on('flowStarted', (e) => events.push(`start:${e.name}`));
      server.on('stepDone', (e) => events.push(`step:${e.step}:${e.status}`));
      server.on('flowDone', (e) => events.push(`done:${e.name}:${e.status}`));
      const ok = server.flow(group, 'ok', async (flow) => flow.step('s', () => 5), {
        onSuccess: async (v, info) => {
          const st = await server.client().getStatus(info.id);
          seen.push(`ok:${v}:${st?.status}`);
        },
      });
      const bad = server.flow(group, 'bad', async () => {
        throw new Error('nope');
      }, { onFailure: (err, info) => void seen.push(`bad:${err.message}:${info.status}`) });
      await server.run(group, 2);
      const client = server.client();
      await result(server, await client.send(ok));
      await result(server, await client.with({ retryCount: 0 }).send(bad));
      await until(() => seen.length === 2, 10_000, 'callbacks');
      expect(seen.sort()).toEqual(['bad:nope:failure', 'ok:5:success']);
      await until(() => events.filter((e) => e.startsWith('done')).length === 2, 10_000, 'events');
      expect(events).toEqual(expect.arrayContaining(['start:ok', 'step:s#0:done', 'done:ok:success', 'start:bad', 'done:bad:failure']));
    });

    it('restarts a finished flow from a step (earlier steps kept), and refuses to restart a running one', async () => {
      const server = newServer();
      const counts = { one: 0, two: 0 };
      let failTwo = true;
      const f = server.flow(group, 'restartable', async (flow) => {
        const a = await flow.step('one', () => ++counts.one);
        const b = await flow.step('two', () => {
          counts.two++;
          if (failTwo) throw new Error('step two down');
          return 'two ok';
        });
        await flow.waitFor('end');
        return [a, b];
      });
      await server.run(group, 1);
      const client = server.client();
      const id = await client.with({ retryCount: 0 }).send(f);
      expect((await result(server, id)).status).toBe('failure');
      failTwo = false;
      await client.restartFlow(id, { fromStep: 'two' });
      await until(async () => (await client.getFlow(id))?.waitingOn.some((s) => s.name === 'end'), 10_000, 'the wait');
      await expect(client.restartFlow(id, { fromStep: 'two' })).rejects.toMatchObject({ code: 'ERR_FLOW_RUNNING' });
      await client.signal(id, 'end');
      const r = await result(server, id);
      expect(r.value).toEqual([1, 'two ok']);
      expect(counts).toEqual({ one: 1, two: 2 });
      await expect(client.restartFlow(id, { fromStep: 'zzz' })).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    });

    it('enforces the step limit and the value size limit; unknown flow names behave as unknown tasks', async () => {
      const server = newServer();
      const many = server.flow(group, 'many', async (flow) => {
        for (let i = 0; i < 20; i++) await flow.step('s', () => i);
        return 'never';
      }, { maxSteps: 10 });
      const big = server.flow(group, 'big', async (flow) => {
        try {
          await flow.step('huge', () => 'x'.repeat(5000));
        } catch (err) {
          return (err as { originalCode: string }).originalCode;
        }
        return 'stored';
      }, { maxValueBytes: 1000 });
      await server.run(group, 2);
      const client = server.client();
      const r = await result(server, await client.send(many));
      expect(r.status).toBe('failure');
      expect(r.error?.originalCode).toBe('ERR_FLOW_LIMIT');
      expect(r.retriesUsed).toBe(0);
      expect((await result(server, await client.send(big))).value).toBe('ERR_VALUE_TOO_LARGE');
      const unknown = await client.with({ retryCount: 0 }).send(group, 'no-such-flow');
      const u = await result(server, unknown);
      expect(u.error?.originalCode).toBe('ERR_UNKNOWN_TASK');
    });

    it('expires the journal with the flow\'s state', async () => {
      const server = newServer({ statusExpires: 1, resultExpires: 1 });
      const f = server.flow(group, 'short', async (flow) => flow.step('s', () => 'v'));
      await server.run(group, 1);
      const client = server.client();
      const id = await client.send(f);
      expect((await result(server, id)).value).toBe('v');
      expect((await client.getFlow(id))?.steps).toHaveLength(1);
      await sleep(2300);
      expect(await client.getFlow(id)).toBeNull();
    });

    it('refuses to run flows on a backend without journal storage', async () => {
      const inner = harness.backend();
      const bare: Backend = {
        kind: 'bare',
        connect: () => inner.connect(),
        close: () => inner.close(),
        write: (w) => inner.write(w),
        read: (id) => inner.read(id),
        readMany: (ids) => inner.readMany(ids),
        readResult: (id) => inner.readResult(id),
        delete: (id) => inner.delete(id),
      };
      const server = newServer({ backend: bare });
      server.flow(group, 'f', async () => 1);
      await expect(server.run(group, 1)).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
      await inner.close();
    });
  });
}

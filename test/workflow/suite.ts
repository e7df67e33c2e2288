/**
 * Behaviour of workflows of plain tasks (`client.chain` / `group` / `chord`), run over several
 * broker+backend pairs: each rule of the workflows design has a test here that fails without it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../src/backend.js';
import type { Broker } from '../../src/broker.js';
import { Server, chain, chord, group, silentLogger, task, taskRef, type ServerOptions, type Settled, type TaskCtl, type TaskId, type TaskResult } from '../../src/index.js';
import { until } from '../core/suite.js';

/** Broker and backend of one test; all instances share a namespace. */
export interface WorkflowHarness {
  broker(): Broker;
  backend(): Backend;
  /** Server options over the suite's own (e.g. short expiries for a store that cannot be swept). */
  options?: Partial<ServerOptions>;
  teardown?(): Promise<void>;
}

/** Registers the workflow behaviour suite for one broker+backend pair. */
export function workflowSuite(name: string, makeHarness: () => WorkflowHarness): void {
  describe(`workflows: ${name}`, () => {
    let harness: WorkflowHarness;
    let servers: Server[];
    let g1: string;
    let g2: string;
    const fast: ServerOptions = {
      logger: silentLogger, leaseMs: 2000, abortPollMs: 50, fetchWaitMs: 300,
      unknownTaskRetryMs: 300, unknownTaskRetryDelayMs: 50, abandonAfterMs: 200,
      sendDefaults: { backoff: { type: 'fixed', delayMs: 20 } },
    };
    const result = <R>(s: Server, id: TaskId<R> | string): Promise<TaskResult<R>> => s.client().getResult<R>(id, 30_000, 20);

    /** A server with math tasks in g1 and text tasks in g2 (steps in two groups), both running. */
    const setup = async () => {
      const server = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...harness.options });
      servers.push(server);
      const calls = new Map<string, number>();
      const count = (k: string): void => void calls.set(k, (calls.get(k) ?? 0) + 1);
      const add = server.add(g1, 'add', (a: number, b: number) => (count('add'), a + b));
      const double = server.add(g1, 'double', (n: number) => (count('double'), n * 2));
      const toLabel = server.add(g2, 'label', (n: number) => (count('label'), `n=${n}`));
      const sum = server.add(g2, 'sum', (ns: number[]) => (count('sum'), ns.reduce((a, b) => a + b, 0)));
      const fail = server.add(g1, 'fail', (_n: number): number => {
        count('fail');
        throw Object.assign(new Error('boom'), { code: 'E_BOOM' });
      });
      const even = server.add(g1, 'even', (n: number): number => {
        if (n % 2 === 1) throw Object.assign(new Error(`odd ${n}`), { code: 'E_ODD' });
        return n;
      });
      let flaky = 0;
      const flakyDouble = server.add(g1, 'flaky', (n: number) => {
        count('flaky');
        if (++flaky < 3) throw new Error(`flaky ${flaky}`);
        return n * 2;
      });
      const block = server.add(g2, 'block', (ctl: TaskCtl, n: number) => new Promise<number>((resolve, reject) => {
        count('block');
        ctl.signal.addEventListener('abort', () => (count('blockAborted'), reject(new Error('aborted'))), { once: true });
        void resolve; void n;
      }), { ctl: true });
      await Promise.all([server.run(g1, 8), server.run(g2, 8)]);
      return { server, client: server.client(), calls, even, add, double, toLabel, sum, fail, flakyDouble, block };
    };

    beforeEach(() => {
      harness = makeHarness();
      servers = [];
      g1 = `wf-${randomUUID().slice(0, 8)}`;
      g2 = `${g1}-b`;
    });

    afterEach(async () => {
      for (const s of servers) {
        await s.broker.purge(g1).catch(() => undefined);
        await s.broker.purge(g2).catch(() => undefined);
        await s.shutdown(1000);
      }
      await harness.teardown?.();
    });

    it('chains steps in two groups, passes each value along, uses one task twice, and lists every step', async () => {
      const { server, client, calls, add, double, toLabel } = await setup();
      const id = await client.chain(task(add, 1, 2), task(add, 10), task(double).with({ retryCount: 5 }), task(toLabel));
      const r = await result(server, id);
      expect(r.status).toBe('success');
      expect(r.value).toBe('n=26');
      expect(calls.get('add')).toBe(2);
      const w = await client.getWorkflow(id);
      expect(w?.status).toBe('success');
      expect(w?.value).toBe('n=26');
      expect(w?.steps.map((s) => [s.path, s.group, s.name, s.status, s.attempts, s.value])).toEqual([
        ['0', g1, 'add', 'success', 1, 3],
        ['1', g1, 'add', 'success', 1, 13],
        ['2', g1, 'double', 'success', 1, 26],
        ['3', g2, 'label', 'success', 1, 'n=26'],
      ]);
      // Each step is an ordinary task, visible on its own.
      const step = w?.steps[1];
      expect(step?.id).toBeDefined();
      expect((await client.getStatus<number>(step?.id ?? ''))?.value).toBe(13);
      expect(step?.finishedAt?.getTime()).toBeGreaterThanOrEqual(step?.startedAt?.getTime() ?? Infinity);
    });

    it('retries inside a step with its own retryCount, and waits runAfter before sending a step', async () => {
      const { server, client, calls, add, flakyDouble, toLabel } = await setup();
      const id = await client.chain(task(add, 2, 3), task(flakyDouble).with({ retryCount: 2, backoff: { type: 'fixed', delayMs: 20 } }), task(toLabel).with({ runAfter: 300 }));
      expect((await result(server, id)).value).toBe('n=10');
      expect(calls.get('flaky')).toBe(3);
      const w = await client.getWorkflow(id);
      expect(w?.steps[1]).toMatchObject({ status: 'success', attempts: 3 });
      // The last step was sent no earlier than runAfter after the previous one ended.
      expect((w?.steps[2]?.sentAt?.getTime() ?? 0) - (w?.steps[1]?.finishedAt?.getTime() ?? Infinity)).toBeGreaterThanOrEqual(290);
    });

    it('a failure in the middle ends the workflow with that step\'s error; later steps never run', async () => {
      const { server, client, calls, add, fail, toLabel } = await setup();
      const id = await client.chain(task(add, 1, 2), task(fail).with({ retryCount: 1 }), task(toLabel));
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      expect(r.error).toMatchObject({ originalCode: 'E_BOOM', message: 'step 1 ended failure: boom' });
      expect(calls.get('fail')).toBe(2);
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((s) => s.status)).toEqual(['success', 'failure', 'waiting']);
      expect(w?.steps[1]?.error).toMatchObject({ code: 'E_BOOM' });
      expect(calls.get('label')).toBeUndefined();
    });

    it('an expired step ends the workflow (expireAt per step)', async () => {
      const { server, client, calls, add, double, toLabel } = await setup();
      const id = await client.chain(task(add, 1, 2), task(double).with({ runAfter: 200, expireAt: Date.now() + 100 }), task(toLabel));
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      expect(r.error?.message).toContain('expired');
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((s) => s.status)).toEqual(['success', 'expired', 'waiting']);
      expect(calls.get('double')).toBeUndefined();
      expect(calls.get('label')).toBeUndefined();
    });

    it('abort of the workflow aborts the running step and never starts the rest', async () => {
      const { server, client, calls, add, block, toLabel } = await setup();
      const id = await client.chain(task(add, 1, 2), task(block), task(toLabel));
      await until(() => calls.get('block') === 1, 20_000, 'the blocking step');
      expect(await client.abort(id)).toBe(true);
      await until(() => calls.get('blockAborted') === 1, 20_000, 'the step\'s abort signal');
      expect((await result(server, id)).status).toBe('aborted');
      const w = await client.getWorkflow(id);
      await until(async () => (await client.getWorkflow(id))?.steps[1]?.status === 'aborted', 20_000, 'the step aborted');
      expect(w?.steps[2]?.status).toBe('waiting');
      expect(calls.get('label')).toBeUndefined();
    });

    it('abort of a workflow in a counted fan-out aborts every running item and never runs the callback', async () => {
      const { server, client, calls, block, sum } = await setup();
      const id = await client.chord([1, 2, 3].map((n) => task(block, n)), task(sum));
      await until(() => calls.get('block') === 3, 20_000, 'the blocking items');
      expect(await client.abort(id)).toBe(true);
      await until(() => calls.get('blockAborted') === 3, 20_000, 'every item\'s abort signal');
      expect((await result(server, id)).status).toBe('aborted');
      await until(async () => (await client.getWorkflow(id))?.steps.filter((s) => s.status === 'aborted').length === 3, 20_000, 'the items aborted');
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((s) => [s.path, s.status])).toEqual([['0', 'aborted'], ['1', 'aborted'], ['2', 'aborted'], ['cb', 'waiting']]);
      expect(w?.steps[0]?.id).toBe(`${id}/items#0[0]`);
      expect(calls.get('sum')).toBeUndefined();
    });

    it('a chord completes when a child\'s worker died after storing its success and before counting in and acking', async () => {
      const server = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...harness.options, leaseMs: 300 });
      servers.push(server);
      const g3 = `${g1}-c`;
      let sums = 0;
      const plus = server.add(g3, 'plus', (n: number, prev: number) => n + prev + 1);
      const first = server.add(g1, 'first', () => 0);
      const sum = server.add(g1, 'sum', (ns: number[]) => (sums++, ns.reduce((a, b) => a + b, 0)));
      await server.run(g1, 2);
      const client = server.client();
      const id = await client.chain(task(first), chord([task(plus, 1), task(plus, 2), task(plus, 3)], task(sum)));
      // A "worker" that takes one child, stores its success (value 100) and dies before its ack.
      const d = await until(async () => (await server.broker.fetch(g3, 1, { leaseMs: 300, waitMs: 200 }))[0], 20_000, 'a child message');
      const childId = (JSON.parse(d.body) as { id: string }).id;
      const now = Date.now();
      await server.backend.write({
        state: { v: 1, id: childId, group: g3, name: 'plus', status: 'success', retriesUsed: 0, retriesLeft: 3, finishedAt: now, updatedAt: now },
        stateTtl: 60, result: JSON.stringify({ json: 100 }), resultTtl: 60, guard: 'notSuccess',
      });
      // The real workers run the others; the redelivery finds that child final, acks it and wakes the workflow.
      await server.run(g3, 2);
      const r = await result(server, id);
      expect(r.status).toBe('success');
      const values = (await client.getWorkflow(id))?.steps.filter((st) => st.name === 'plus').map((st) => st.value);
      expect(values).toHaveLength(3);
      expect(values).toContain(100);
      expect(r.value).toBe((values as number[]).reduce((a, b) => a + b, 0));
      expect(sums).toBe(1);
      await server.broker.purge(g3).catch(() => undefined);
    });

    it('a group of 50 gives its values in order; a chord of 50 passes them to its callback once', async () => {
      const { server, client, calls, add, sum } = await setup();
      const items = Array.from({ length: 50 }, (_, i) => task(add, i, 1000));
      const gid = await client.group(items);
      expect((await result(server, gid)).value).toEqual(Array.from({ length: 50 }, (_, i) => i + 1000));
      const cid = await client.chord(Array.from({ length: 50 }, (_, i) => task(add, i, 0)), task(sum));
      expect((await result(server, cid)).value).toBe(1225);
      expect(calls.get('sum')).toBe(1);
      const w = await client.getWorkflow(cid);
      expect(w?.steps).toHaveLength(51);
      expect(w?.steps[50]).toMatchObject({ path: 'cb', name: 'sum', status: 'success', value: 1225 });
      // The workflow is a flow too: getFlow shows its fan-out as one step, and no engine signals.
      const f = await client.getFlow(cid);
      expect(f?.steps.map((st) => [st.key, st.kind, st.status, st.value])).toEqual([['items#0', 'calls', 'done', { fanIn: 50 }], ['cb#0', 'call', 'done', 1225]]);
      expect(f?.signals).toEqual({});
    });

    it('group failure policy: failFast fails the workflow and skips the callback; settled collects every outcome', async () => {
      const { server, client, calls, add, fail, sum } = await setup();
      const cid = await client.chord([task(add, 1, 1), task(fail, 1).with({ retryCount: 0 }), task(add, 2, 2)], task(sum));
      const r = await result(server, cid);
      expect(r.status).toBe('failure');
      expect(r.error?.message).toContain('boom');
      expect(calls.get('sum')).toBeUndefined();
      // The other items were left to finish.
      const w = await client.getWorkflow(cid);
      await until(async () => (await client.getWorkflow(cid))?.steps.filter((s) => s.status === 'success').length === 2, 20_000, 'the siblings');
      expect(w?.steps[3]?.status).toBe('waiting');

      const sid = await client.group([task(add, 1, 1), task(fail, 1).with({ retryCount: 0 })], { onFailure: 'settled' });
      const s = await result(server, sid);
      expect(s.status).toBe('success');
      expect(s.value?.[0]).toEqual({ status: 'success', value: 2 });
      expect(s.value?.[1]).toMatchObject({ status: 'failure', error: { code: 'E_BOOM', name: 'Error' } });
    });

    it('a counted fan-in wakes the workflow once, by the child that completes the count — also when children of a settled one fail', async () => {
      // A broker that counts the wake-up messages published for each flow id.
      const inner = harness.broker();
      const wakes = new Map<string, number>();
      const broker = new Proxy(inner, {
        get(target, prop) {
          if (prop === 'publish') {
            return (group: string, body: string, options?: Parameters<Broker['publish']>[2]) => {
              const m = JSON.parse(body) as { id: string; flow?: { wake?: boolean } };
              if (m.flow?.wake === true) wakes.set(m.id, (wakes.get(m.id) ?? 0) + 1);
              return target.publish(group, body, options);
            };
          }
          const v: unknown = Reflect.get(target, prop, target);
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const server = new Server({ broker, backend: harness.backend(), ...fast, ...harness.options, leaseMs: 20_000 });
      servers.push(server);
      const add = server.add(g1, 'add', (a: number, b: number) => a + b);
      const even = server.add(g1, 'even', (n: number): number => {
        if (n % 2 === 1) throw Object.assign(new Error(`odd ${n}`), { code: 'E_ODD' });
        return n;
      });
      const sum = server.add(g1, 'sum', (ns: number[]) => ns.reduce((a, b) => a + b, 0));
      const statuses = server.add(g1, 'statuses', (xs: Array<Settled<number>>) => xs.map((x) => x.status).join(','));
      await server.run(g1, 8);
      const client = server.client();
      const ok = await client.chord(Array.from({ length: 20 }, (_, i) => task(add, i, 0)), task(sum));
      expect((await result(server, ok)).value).toBe(190);
      const mixed = await client.chord([0, 1, 2, 3, 4, 5].map((n) => task(even, n).with({ retryCount: 0 })), task(statuses), { onFailure: 'settled' });
      expect((await result(server, mixed)).value).toBe('success,failure,success,failure,success,failure');
      // One wake-up from the child that completed the count, one from the callback.
      expect(wakes.get(ok)).toBe(2);
      expect(wakes.get(mixed)).toBe(2);
    });

    it('a settled chord of mixed tasks (one counted fan-in) passes every outcome, in order, to its callback once', async () => {
      const { server, client, calls, even, add } = await setup();
      let callbacks = 0;
      const outcomes = server.add(g2, 'outcomes', (xs: Array<Settled<number>>) => (callbacks++, xs.map((x) => (x.status === 'success' ? x.value : `${x.status}:${x.error.code ?? ''}`))));
      const items = [task(even, 0), task(even, 1), task(add, 5, 5), task(even, 3), task(even, 4)].map((t) => t.with({ retryCount: 0 }));
      const id = await client.chord(items, task(outcomes), { onFailure: 'settled' });
      const r = await result(server, id);
      expect(r.status).toBe('success');
      expect(r.value).toEqual([0, 'failure:E_ODD', 10, 'failure:E_ODD', 4]);
      expect(callbacks).toBe(1);
      expect(calls.get('add')).toBe(1);
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((st) => [st.path, st.name, st.status])).toEqual([
        ['0', 'even', 'success'], ['1', 'even', 'failure'], ['2', 'add', 'success'], ['3', 'even', 'failure'], ['4', 'even', 'success'], ['cb', 'outcomes', 'success'],
      ]);
      expect(w?.steps[0]?.id).toBe(`${id}/items#0[0]`);
    });

    it('a counted fan-out fails fast with the failed item\'s position and error', async () => {
      const { server, client, calls, even, sum } = await setup();
      const id = await client.chord([0, 2, 3, 4].map((n) => task(even, n).with({ retryCount: 0 })), task(sum));
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      expect(r.error).toMatchObject({ originalCode: 'E_ODD', message: 'step 2 ended failure: odd 3' });
      expect(calls.get('sum')).toBeUndefined();
      await until(async () => (await client.getWorkflow(id))?.steps.filter((s) => s.status === 'success').length === 3, 20_000, 'the siblings');
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((s) => [s.path, s.status])).toEqual([['0', 'success'], ['1', 'success'], ['2', 'failure'], ['3', 'success'], ['cb', 'waiting']]);
    });

    it('nests groups, chords and chains inside a chain', async () => {
      const { server, client, add, double, sum, toLabel } = await setup();
      const id = await client.chain(
        task(add, 1, 2),
        group([task(add, 1), task(double)]),
        task(sum),
        chord([task(add, 1), chain(task(double), task(double))], task(sum)),
        task(toLabel),
      );
      // 3 -> [4, 6] -> 10 -> [11, 40] -> 51
      expect((await result(server, id)).value).toBe('n=51');
      const w = await client.getWorkflow(id);
      expect(w?.steps.map((s) => s.path)).toEqual(['0', '1.0', '1.1', '2', '3.0', '3.1.0', '3.1.1', '3.cb', '4']);
    });

    it('runs parallel nested branches (chains of different lengths, a delayed task) as child workflows, replay-safe', async () => {
      const { server, client, add, double, sum, fail } = await setup();
      const ids = await Promise.all(Array.from({ length: 10 }, () =>
        client.chord([chain(task(add, 1, 1), task(double), task(double)), chain(task(add, 2, 2), task(add, 1)), task(add, 5, 5).with({ runAfter: 50 })], task(sum))));
      const rs = await Promise.all(ids.map((id) => result(server, id)));
      expect(rs.map((r) => [r.status, r.value])).toEqual(Array(10).fill(['success', 23]));
      const w = await client.getWorkflow(ids[0] as string);
      expect(w?.steps.map((s) => [s.path, s.name, s.status, s.value])).toEqual([
        ['0.0', 'add', 'success', 2], ['0.1', 'double', 'success', 4], ['0.2', 'double', 'success', 8],
        ['1.0', 'add', 'success', 4], ['1.1', 'add', 'success', 5], ['2', 'add', 'success', 10], ['cb', 'sum', 'success', 23],
      ]);
      const bad = await client.group([chain(task(add, 1, 1), task(fail).with({ retryCount: 0 })), task(add, 1, 1)]);
      const r = await result(server, bad);
      expect(r.status).toBe('failure');
      expect(r.error).toMatchObject({ originalCode: 'E_BOOM', message: 'step 0.1 ended failure: boom' });
      expect((await client.getWorkflow(bad))?.steps.map((s) => s.status)).toEqual(['success', 'failure', 'success']);
    });

    it('a flow called as a child that ends in a wake-up run wakes its parent at once (not at its re-check)', async () => {
      const server = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...harness.options });
      servers.push(server);
      const plus = server.add(g1, 'plus', async (n: number) => (await new Promise((r) => setTimeout(r, 300)), n + 1));
      // Woken by its child's wake-up message (which names no parent), it ends in that run.
      const inner = server.flow(g1, 'inner', async (flow, n: number) => flow.call('plus', plus, n));
      const outer = server.flow(g1, 'outer', async (flow, n: number) => flow.call('inner', inner, n), { recheckMs: 600_000 });
      await server.run(g1, 4);
      expect((await result(server, await server.client().send(outer, 1))).value).toBe(2);
    });

    it('a chain sent twice with one explicit id runs once', async () => {
      const { server, client, calls, add, double } = await setup();
      const id = `wf-${randomUUID()}`;
      const a = await client.with({ id }).chain(task(add, 1, 2), task(double));
      const b = await client.with({ id }).chain(task(add, 1, 2), task(double));
      expect(b).toBe(a);
      expect((await result(server, a)).value).toBe(6);
      expect(calls.get('add')).toBe(1);
    });

    it('a wrong argument at run time fails the step with ERR_BAD_ARGS', async () => {
      const { server, client } = await setup();
      server.add(g1, 'typed', (s: string) => s.length, { args: ['string'] });
      const num = server.add(g1, 'num', () => 5);
      // A sender whose reference is wrong about the task (no compile-time check can see that).
      const id = await client.chain(task(num), task(taskRef<[n: number], number>(g1, 'typed')));
      const r = await result(server, id);
      expect(r.status).toBe('failure');
      const w = await client.getWorkflow(id);
      expect(w?.steps[1]?.error?.code).toBe('ERR_BAD_ARGS');
    });

    it('the workflow\'s state, journal, steps and results expire with statusExpires / resultExpires', async () => {
      const server = new Server({ broker: harness.broker(), backend: harness.backend(), ...fast, ...harness.options, statusExpires: 4, resultExpires: 2 });
      servers.push(server);
      const add = server.add(g1, 'add', (a: number, b: number) => a + b);
      const sum = server.add(g1, 'sum', (ns: number[]) => ns.reduce((a, b) => a + b, 0));
      await server.run(g1, 4);
      const client = server.client();
      // A chain, a batched fan-out and a nested branch (a child workflow with its own journal).
      const id = await client.chain(task(add, 1, 2), chord([task(add, 1), task(add, 2)], task(sum)), group([chain(task(add, 1), task(add, 1)), task(add, 0)]));
      expect((await result(server, id)).value).toEqual([11, 9]);
      const w = await client.getWorkflow(id);
      const steps = (w?.steps ?? []).map((s) => s.id);
      expect(steps).toHaveLength(7);
      const ids = [id, ...steps.filter((s): s is string => s !== undefined), `${id}/2.0#0`];
      expect(ids).toHaveLength(9);
      const backend = server.backend;
      const journal = backend.journal;
      if (journal === undefined) throw new Error('the suite needs a backend with a flow journal');
      await until(async () => {
        const states = await backend.readMany(ids);
        const results = await Promise.all(ids.map((i) => backend.readResult(i)));
        const journals = await Promise.all([id, `${id}/2.0#0`].map((i) => journal.read(i)));
        return states.every((s) => s === null) && results.every((r) => r === null)
          && journals.every((j) => j.entries.length === 0 && Object.keys(j.signals).length === 0);
      }, 60_000, 'the workflow, its journals, steps and results expired');
      expect(await client.getWorkflow(id)).toBeNull();
    });
  });
}

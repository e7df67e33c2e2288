/**
 * Compile-time contract of durable flows: `npm test` type-checks this file, so every
 * `@ts-expect-error` must be an error and every `expectTypeOf` must hold. The typed flow also runs
 * (embedded memory broker and backend), so the checked types are the ones the values have.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { Server, silentLogger, type FlowCallbackInfo, type FlowInfo, type StepContext, type TaskId, type TaskRef, type TaskResult } from '../src/index.js';

describe('types of flows', () => {
  it('a flow is a typed task: its arguments, its value, its steps, calls, fan-outs, maps and waits', async () => {
    const server = new Server({ logger: silentLogger });
    const double = server.add('flt-kids', 'double', (n: number) => n * 2);
    const label = server.add('flt-kids', 'label', (n: number, unit: string) => `${n} ${unit}`);
    let seen: { at: Date; total: number } | undefined;

    const typed = server.flow('flt', 'typed', async (flow, orderId: string, items: number[]) => {
      const at = await flow.step('load', async (ctx) => {
        expectTypeOf(ctx).toEqualTypeOf<StepContext>();
        return new Date(0);
      });
      expectTypeOf(at).toEqualTypeOf<Date>(); // Awaited, not Promise<Date>
      const n = await flow.step('count', () => items.length, { retryCount: 2, backoff: 'fixed', timeout: 5_000 });
      expectTypeOf(n).toEqualTypeOf<number>();
      await flow.sleep('nap', 1);
      const d = await flow.call('double', double, n);
      expectTypeOf(d).toEqualTypeOf<number>();
      const l = await flow.callWith('label', label, [d, 'items'], { retryCount: 0 });
      expectTypeOf(l).toEqualTypeOf<string>();
      const all = await flow.callMany('doubles', double, items.map((i) => [i] as [number]), { concurrency: 2 });
      expectTypeOf(all).toEqualTypeOf<number[]>();
      const some = await flow.callMany('maybe', double, [[1], [2]], { onFailure: 'ignore' });
      expectTypeOf(some).toEqualTypeOf<Array<number | undefined>>();
      const strs = await flow.map('strs', items, async (item, i) => `${i}:${item}`, { concurrency: 2 });
      expectTypeOf(strs).toEqualTypeOf<string[]>();
      const ok = await flow.waitFor<boolean>('approval');
      expectTypeOf(ok).toEqualTypeOf<boolean>();
      expectTypeOf(await flow.waitFor('any', { timeoutMs: 60_000 }).catch(() => null)).toEqualTypeOf<unknown>();
      expectTypeOf(flow.patched('v2')).toEqualTypeOf<boolean>();

      if (false as boolean) {
        // @ts-expect-error a child called with an argument of the wrong type
        await flow.call('bad', double, 'x');
        // @ts-expect-error a child called with too few arguments
        await flow.call('bad', label, 1);
        // @ts-expect-error an argument list of the wrong shape in a fan-out
        await flow.callMany('bad', double, [['x']]);
        // @ts-expect-error a step needs a name
        await flow.step(() => 1);
        // @ts-expect-error sleep takes milliseconds
        await flow.sleep('bad', '1s');
      }
      return { orderId, at, total: d + all.reduce((a, b) => a + b, 0), label: l, some, strs, ok };
    }, {
      onSuccess: (value, info) => {
        expectTypeOf(value.at).toEqualTypeOf<Date>();
        expectTypeOf(info).toEqualTypeOf<FlowCallbackInfo>();
        seen = { at: value.at, total: value.total };
      },
      onFailure: (err) => {
        expectTypeOf(err).toEqualTypeOf<Error>();
      },
    });
    type Value = { orderId: string; at: Date; total: number; label: string; some: Array<number | undefined>; strs: string[]; ok: boolean };
    expectTypeOf(typed).toEqualTypeOf<TaskRef<[orderId: string, items: number[]], Value>>();

    await Promise.all([server.run('flt', 2), server.run('flt-kids', 2)]);
    const client = server.client();
    try {
      const id = await client.send(typed, 'o-1', [1, 2, 3]);
      expectTypeOf(id).toEqualTypeOf<TaskId<Value>>();
      // @ts-expect-error the flow's arguments are checked like a task's
      void client.send(typed, 'o-1', ['x']).catch(() => undefined);
      // @ts-expect-error and their number
      void client.send(typed, 'o-1').catch(() => undefined);
      expectTypeOf(client.signal).parameters.toEqualTypeOf<[id: string | TaskId, name: string, payload?: unknown]>();
      await client.signal(id, 'approval', true);
      await client.signal(id, 'any', 'x');
      const r = await client.getResult(id, 20_000, 20);
      expectTypeOf(r).toEqualTypeOf<TaskResult<Value>>();
      expect(r.status).toBe('success');
      expect(r.value).toEqual({ orderId: 'o-1', at: new Date(0), total: 6 + 12, label: '6 items', some: [2, 4], strs: ['0:1', '1:2', '2:3'], ok: true });
      expect(r.value?.at).toBeInstanceOf(Date);
      const f = await client.getFlow(id);
      expectTypeOf(f).toEqualTypeOf<FlowInfo | null>();
      expect(f?.steps.map((s) => s.key).slice(0, 3)).toEqual(['load#0', 'count#0', 'nap#0']);
      // @ts-expect-error fromStep is a step name or key
      void client.restartFlow(id, { fromStep: 3 }).catch(() => undefined);
      await expect.poll(() => seen, { timeout: 10_000 }).toEqual({ at: new Date(0), total: 18 });
    } finally {
      await server.shutdown();
    }
  }, 30_000);
});

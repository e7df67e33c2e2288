/**
 * Compile-time contract of the public API. `npm test` type-checks this file (tsconfig.json includes
 * test/): every `@ts-expect-error` line must be an error and every `expectTypeOf` must hold, or tsc
 * fails. The calls run too, on the memory broker and backend, so the file also checks that the
 * typed calls behave as typed.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { Server, silentLogger, taskRef, type TaskCtl, type TaskId, type TaskRef, type TaskResult } from '../src/index.js';

describe('types of the public API', () => {
  it('typed references check arguments and carry the result type', async () => {
    const server = new Server({ logger: silentLogger });
    const add = server.add('types', 'add', (a: number, b: number) => a + b);
    expectTypeOf(add).toEqualTypeOf<TaskRef<[a: number, b: number], number>>();
    const slow = server.add('types', 'slow', async (s: string) => s.length);
    expectTypeOf(slow).toEqualTypeOf<TaskRef<[s: string], number>>();
    const client = server.client();
    await server.run('types', 1);
    try {
      const id = await client.send(add, 1, 2);
      expectTypeOf(id).toEqualTypeOf<TaskId<number>>();
      // @ts-expect-error wrong argument type
      void client.send(add, 1, 'x').catch(() => undefined);
      // @ts-expect-error too few arguments (the typed overload's error is reported)
      void client.send(add, 1).catch(() => undefined);
      // @ts-expect-error too many arguments
      void client.send(add, 1, 2, 3).catch(() => undefined);

      const ids = await client.sendMany(add, [[1, 2], [3, 4]]);
      expectTypeOf(ids).toEqualTypeOf<Array<TaskId<number>>>();
      // @ts-expect-error a wrong element in sendMany's argument list
      void client.sendMany(add, [[1, 'x']]).catch(() => undefined);

      const r = await client.getResult(id, 10_000);
      expectTypeOf(r).toEqualTypeOf<TaskResult<number>>();
      expectTypeOf(r.value).toEqualTypeOf<number | undefined>();
      if (r.isSuccess()) {
        expectTypeOf(r.value).toEqualTypeOf<number>();
        expect(r.value).toBe(3);
      } else {
        throw new Error('expected success');
      }

      // Untyped sends still compile.
      expectTypeOf(client.send('types', 'add', 1, 2)).toEqualTypeOf<Promise<TaskId>>();
    } finally {
      await server.shutdown(2000);
    }
  });

  it('a handler taking a TaskCtl first needs { ctl: true }', async () => {
    const server = new Server({ logger: silentLogger });
    const withCtl = server.add('types', 'ctl', (ctl: TaskCtl, n: number) => ctl.retriesUsed + n, { ctl: true });
    expectTypeOf(withCtl).toEqualTypeOf<TaskRef<[n: number], number>>();
    // @ts-expect-error registered without { ctl: true }
    server.add('types', 'ctl2', (ctl: TaskCtl, n: number) => ctl.retriesUsed + n);
    // @ts-expect-error registered with { ctl: false }
    server.add('types', 'ctl3', (ctl: TaskCtl) => ctl.id, { ctl: false });
    // A plain handler whose parameter is `any` or `unknown` is still plain.
    server.add('types', 'any', (x: any) => x as unknown); // eslint-disable-line @typescript-eslint/no-explicit-any
    server.add('types', 'unknown', (x: unknown) => x);
    // @ts-expect-error a plain handler with { ctl: true }
    server.add('types', 'plain-ctl', (x: number) => x, { ctl: true });
    await server.shutdown(100);
  });

  it('taskRef builds the same typed reference without a handler', () => {
    const handler = (a: number, b: number): number => a + b;
    expectTypeOf(taskRef<typeof handler>('types', 'add')).toEqualTypeOf<TaskRef<[a: number, b: number], number>>();
    expectTypeOf(taskRef<[string], boolean>('types', 'x')).toEqualTypeOf<TaskRef<[string], boolean>>();
  });
});

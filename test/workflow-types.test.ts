/**
 * Compile-time contract of workflows: `npm test` type-checks this file, so every
 * `@ts-expect-error` must be an error and every `expectTypeOf` must hold. The typed calls also run.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { Server, chain, chord, group, silentLogger, task, type Settled, type TaskId, type TaskStep } from '../src/index.js';

describe('types of workflows', () => {
  it('steps carry what they still need and what they return; chains check each link', async () => {
    const server = new Server({ logger: silentLogger });
    const add = server.add('wft', 'add', (a: number, b: number) => a + b);
    const double = server.add('wft', 'double', (n: number) => n * 2);
    const toLabel = server.add('wft', 'label', (n: number) => `n=${n}`);
    const shout = server.add('wft', 'shout', (s: string) => s.toUpperCase());
    const sum = server.add('wft', 'sum', (ns: number[]) => ns.reduce((a, b) => a + b, 0));

    expectTypeOf(task(add, 1, 2)).toEqualTypeOf<TaskStep<[], number>>();
    expectTypeOf(task(add, 1)).toEqualTypeOf<TaskStep<[b: number], number>>();
    expectTypeOf(task(double)).toEqualTypeOf<TaskStep<[n: number], number>>();
    // @ts-expect-error a bound argument of the wrong type
    task(add, 'x');
    // @ts-expect-error more arguments than the task takes
    task(add, 1, 2, 3);

    await server.run('wft', 2);
    const client = server.client();
    try {
      const id = await client.chain(task(add, 1, 2), task(double).with({ retryCount: 5 }), task(toLabel), task(shout));
      expectTypeOf(id).toEqualTypeOf<TaskId<string>>();
      expect((await client.getResult(id, 10_000, 20)).value).toBe('N=6');
      const again = await client.chain(task(add, 1, 2), task(add, 10));
      expectTypeOf(again).toEqualTypeOf<TaskId<number>>();
      expect((await client.getResult(again, 10_000, 20)).value).toBe(13);

      // @ts-expect-error the first step still needs an argument
      void client.chain(task(double), task(double)).catch(() => undefined);
      // @ts-expect-error a string is passed to a step that takes a number
      void client.chain(task(add, 1, 2), task(toLabel), task(double)).catch(() => undefined);
      // @ts-expect-error a step with all its arguments bound has no place for the previous value
      void client.chain(task(add, 1, 2), task(add, 3, 4)).catch(() => undefined);

      const g = await client.group([task(add, 1, 2), task(toLabel, 4)]);
      expectTypeOf(g).toEqualTypeOf<TaskId<[number, string]>>();
      expect((await client.getResult(g, 10_000, 20)).value).toEqual([3, 'n=4']);
      const s = await client.group([task(add, 1, 2)], { onFailure: 'settled' });
      expectTypeOf(s).toEqualTypeOf<TaskId<[Settled<number>]>>();
      // @ts-expect-error a group item needs all its arguments at the top level
      void client.group([task(double)]).catch(() => undefined);

      const c = await client.chord([task(add, 1, 2), task(add, 3, 4)], task(sum));
      expectTypeOf(c).toEqualTypeOf<TaskId<number>>();
      expect((await client.getResult(c, 10_000, 20)).value).toBe(10);
      // @ts-expect-error the callback takes a string, the group gives numbers
      void client.chord([task(add, 1, 2)], task(shout)).catch(() => undefined);

      const nested = await client.chain(task(add, 1, 2), group([task(add, 1), task(double)]), task(sum), chord([task(add, 1), task(double)], task(sum)), chain(task(toLabel), task(shout)));
      expectTypeOf(nested).toEqualTypeOf<TaskId<string>>();
      // 3 -> [4, 6] -> 10 -> [11, 20] -> 31 -> 'n=31' -> 'N=31'
      expect((await client.getResult(nested, 10_000, 20)).value).toBe('N=31');
      // @ts-expect-error a group of numbers passed to a step that takes a number
      void client.chain(task(add, 1, 2), group([task(double)]), task(double)).catch(() => undefined);
    } finally {
      await server.shutdown(1000);
    }
  });
});

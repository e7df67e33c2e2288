/** The wire form of a workflow's tree: one-task fan-outs travel as one batch, and expand back to the same tree. */
import { describe, expect, it } from 'vitest';
import { chain, chord, group, task, taskRef } from '../src/index.js';
import { compact, expand } from '../src/workflow/wire.js';

const add = taskRef<[a: number, b: number], number>('math', 'add');
const sum = taskRef<[ns: number[]], number>('math', 'sum');
const label = taskRef<[n: number], string>('text', 'label');
const shout = taskRef<[s: string], string>('text', 'shout');

describe('workflow wire form', () => {
  it('sends a fan-out of one task with equal controls as one batch, an eighth of the bytes, and expands it back', () => {
    const root = chord(Array.from({ length: 1000 }, (_, i) => task(add, i, 1)), task(sum)).node;
    const wire = compact(root);
    expect(wire).toMatchObject({ kind: 'chord', items: { group: 'math', name: 'add', options: {} } });
    expect(JSON.stringify(wire).length * 8).toBeLessThan(JSON.stringify(root).length);
    expect(expand(wire)).toEqual(root);
  });

  it('keeps items of several tasks or controls as nodes, nests, and passes a plain tree through', () => {
    const root = chain(
      task(add, 1),
      group([task(add, 1), task(add, 2).with({ retryCount: 1 })]),
      task(sum),
      chord([task(add, 1), task(add, 2)], chain(task(sum), task(label))),
      group([task(shout), chain(task(shout))]),
    ).node;
    const wire = compact(root);
    expect(wire).toMatchObject({ kind: 'chain', steps: [{ kind: 'task' }, { kind: 'group', items: [{ kind: 'task' }, { kind: 'task' }] }, { kind: 'task' }, { kind: 'chord', items: { name: 'add', args: [[1], [2]] } }, { kind: 'group' }] });
    expect(expand(wire)).toEqual(root);
    expect(expand(root)).toEqual(root);
  });
});

/**
 * The flow examples and the README's Flows snippet run: `examples/flows/close-order.ts` (GoTick's
 * order timeout) and `examples/flows/steps.ts` (vtask's two-step job, per-step retries, restart
 * from step 2, idempotent keyword) on the embedded default and on Redis (the examples' `--redis`:
 * a fresh key prefix, removed by the example); the README snippet on the embedded default.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = fileURLToPath(new URL('..', import.meta.url));
const example = (name: string): string => join(root, 'examples/flows', name);
const tsx = async (file: string, args: string[] = []): Promise<string[]> =>
  (await run(process.execPath, ['--import', 'tsx', file, ...args], { cwd: root, timeout: 60_000 })).stdout.split('\n');

describe('flow examples', () => {
  for (const args of [[], ['--redis']]) {
    const where = args.length === 0 ? 'the embedded default' : 'Redis';

    it(`close-order.ts runs on ${where}: sleep, child call, retried close, fan-out, signal before the wait, callback`, async () => {
      const lines = await tsx(example('close-order.ts'), args);
      expect(lines).toContain('status: success');
      const value = lines.find((l) => l.startsWith('value: '));
      expect(JSON.parse(value!.slice('value: '.length))).toMatchObject({ paid: false, sizes: ['a.png@256', 'b.png@256', 'c.png@256'], approved: true });
      expect(lines.some((l) => /^onSuccess\(.+\): closed=true approved=true$/.test(l))).toBe(true);
      // The close step failed once and passed on its retry; every other operation is done once.
      expect(lines.some((l) => /^ {2}step {2}close#0 +done +attempts=2$/.test(l))).toBe(true);
      expect(lines.some((l) => /^ {2}sleep grace#0 +done/.test(l))).toBe(true);
      expect(lines.some((l) => /^ {2}wait +approval#0 +done/.test(l))).toBe(true);
    }, 90_000);

    it(`steps.ts runs on ${where}: step 2 exhausts its retries, the restart from step 2 does not rerun step 1`, async () => {
      const lines = await tsx(example('steps.ts'), args);
      expect(lines).toContain('same id for the same keyword: true');
      expect(lines).toContain('first run: failure - step charge#0 failed: card service unavailable');
      expect(lines).toContain('runs so far: {"reserve":1,"charge":3}');
      expect(lines).toContain('after restart: success - paid 30 for R-A-1');
      expect(lines).toContain('runs in all: {"reserve":1,"charge":4}');
    }, 90_000);
  }

  it('the README Flows snippet runs to its end', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const code = /\n## Flows\n[^]*?\n```ts\n([^]*?)\n```\n/.exec(readme)?.[1];
    expect(code).toContain("server.flow('orders', 'closeOrder'");
    mkdirSync(join(root, '.scratch'), { recursive: true });
    const dir = mkdtempSync(join(root, '.scratch', 'flow-snippet-'));
    try {
      const file = join(dir, 'snippet.ts');
      writeFileSync(file, code!.replace("from 'tasuki'", `from '${join(root, 'src/index.js')}'`));
      const lines = await tsx(file);
      expect(lines).toContain('closed false');
      expect(lines).toContain('true 8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

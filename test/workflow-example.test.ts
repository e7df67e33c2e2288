/**
 * `examples/workflow.ts` (YTask's workflow example: `add` used twice, steps in two groups, per-step
 * controls, then a group and a chord) runs to the right values on the embedded default and on Redis
 * (the example's `--redis`: a fresh key prefix, removed by the example).
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const example = fileURLToPath(new URL('../examples/workflow.ts', import.meta.url));

describe('examples/workflow.ts', () => {
  for (const args of [[], ['--redis']]) {
    it(`runs on ${args.length === 0 ? 'the embedded default' : 'Redis'}: the chain with add twice, the group and the chord`, async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', example, ...args], { timeout: 60_000 });
      const lines = stdout.split('\n');
      expect(lines).toContain('chain: success result: 26');
      expect(lines).toContain('  step 0 group1/add: success, 1 attempt(s), value 3');
      expect(lines).toContain('  step 1 group1/add: success, 1 attempt(s), value 13');
      expect(lines).toContain('  step 2 group1/double: success, 1 attempt(s), value 26');
      expect(lines).toContain('  step 3 group2/label: success, 1 attempt(s), value "result: 26"');
      expect(lines).toContain('group: [ 6, 5 ]');
      expect(lines).toContain('chord: 6');
    }, 90_000);
  }
});

/**
 * The README's promises that can be checked mechanically:
 * - every ```ts block compiles (type-checked with tsc against the sources: `tasuki`, `tasuki/brokers/…`,
 *   `tasuki/backends/…`, `tasuki/postgres-tx`, `tasuki/metrics`, `tasuki/otel`, `tasuki/dashboard` and `tasuki/testing` are mapped to this checkout's modules, `./tasks.js` to
 *   `examples/tasks.ts`). How a snippet must be written to pass:
 *   - a complete program: its own imports, top-level `await` allowed (each snippet is a module);
 *   - a fragment (uses names it does not declare): put `<!-- snippet: fragment -->` on a line before
 *     the block (blank lines between are fine); it is compiled after the shared prelude below, which
 *     imports every public name of `tasuki` and the broker/backend classes and declares `server`,
 *     `client`, `broker`, `backend`, `MyBroker` and `MyBackend`;
 *   - a block that must not be compiled (pseudo code): `<!-- snippet: skip -->` before it.
 * - the output shown under "Install and quick start" is what `npm run quickstart` prints.
 * A failure names the heading of the snippet and tsc's messages.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** One fenced block of the README. */
interface Block {
  lang: string;
  code: string;
  heading: string;
  /** 1-based line of the opening fence. */
  line: number;
  mark: 'program' | 'fragment' | 'skip';
}

/** Fenced blocks with their heading and `<!-- snippet: … -->` mark. */
export function readmeBlocks(text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  let heading = '(top)';
  let mark: Block['mark'] = 'program';
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(l);
    if (open) {
      const fence = open[2] as string;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !(lines[j] as string).trim().startsWith(fence); j++) body.push(lines[j] as string);
      blocks.push({ lang: (open[3] as string).toLowerCase(), code: body.join('\n'), heading, line: i + 1, mark });
      mark = 'program';
      i = j;
      continue;
    }
    const h = /^#{1,6}\s+(.*)$/.exec(l);
    if (h) heading = (h[1] as string).trim();
    const m = /<!--\s*snippet:\s*(fragment|skip)\s*-->/.exec(l);
    if (m) mark = m[1] as Block['mark'];
    else if (l.trim() !== '' && !h) mark = 'program';
  }
  return blocks;
}

const PRELUDE = `import * as tasuki from 'tasuki';
import { Server, Client, taskRef, consoleLogger, silentLogger, TasukiError, type TaskCtl, type TaskRef, type TaskId, type TaskResult, type Broker, type Backend } from 'tasuki';
import { MemoryBroker } from 'tasuki/brokers/memory';
import { RedisBroker } from 'tasuki/brokers/redis';
import { RabbitMQBroker } from 'tasuki/brokers/rabbitmq';
import { MemoryBackend } from 'tasuki/backends/memory';
import { RedisBackend } from 'tasuki/backends/redis';
import { MemcacheBackend } from 'tasuki/backends/memcache';
import { MongoBackend } from 'tasuki/backends/mongo';
declare const server: Server;
declare const client: Client;
declare const broker: Broker;
declare const backend: Backend;
declare class MyBroker extends MemoryBroker {}
declare class MyBackend extends MemoryBackend {}
void tasuki; void taskRef; void consoleLogger; void silentLogger; void TasukiError; void RedisBroker; void RabbitMQBroker;
void RedisBackend; void MemcacheBackend; void MongoBackend; void Client; void Server;
export type Prelude = [TaskCtl, TaskRef, TaskId, TaskResult];
`;

describe('README', () => {
  const blocks = readmeBlocks(readme);
  const ts = blocks.filter((b) => (b.lang === 'ts' || b.lang === 'typescript') && b.mark !== 'skip');

  it('has TypeScript snippets, and the extractor sees fences and marks', () => {
    expect(ts.length).toBeGreaterThanOrEqual(5);
    const sample = readmeBlocks('# A\n<!-- snippet: fragment -->\n\n```ts\nx\n```\n## B\n```ts\ny\n```\n<!-- snippet: skip -->\n```ts\nz\n```\n');
    expect(sample.map((b) => [b.heading, b.mark, b.code])).toEqual([
      ['A', 'fragment', 'x'],
      ['B', 'program', 'y'],
      ['B', 'skip', 'z'],
    ]);
  });

  it('every ```ts snippet compiles against the sources', async () => {
    mkdirSync(join(root, '.scratch'), { recursive: true });
    const dir = mkdtempSync(join(root, '.scratch', 'readme-'));
    try {
      const files = ts.map((b, i) => {
        const name = `snippet-${String(i + 1).padStart(2, '0')}.ts`;
        const head = `// README.md line ${b.line}, section "${b.heading}"\n`;
        const text = b.mark === 'fragment' ? `${head}${PRELUDE}\n// ---- snippet ----\n${b.code}\n` : `${head}${b.code}\nexport {};\n`;
        writeFileSync(join(dir, name), text);
        return { name, block: b };
      });
      writeFileSync(join(dir, 'tasks.ts'), "export * from '../../examples/tasks.js';\n");
      const paths: Record<string, string[]> = {
        tasuki: ['../../src/index.ts'],
        'tasuki/testing': ['../../test/contract/index.ts'],
        'tasuki/brokers/*': ['../../brokers/*.ts'],
        'tasuki/backends/*': ['../../backends/*.ts'],
        'tasuki/postgres-tx': ['../../postgres/tx-adapters.ts'],
        'tasuki/metrics': ['../../metrics/index.ts'],
        'tasuki/otel': ['../../otel/index.ts'],
        'tasuki/dashboard': ['../../dashboard/index.ts'],
      };
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          extends: '../../tsconfig.json',
          compilerOptions: { noEmit: true, rootDir: '../..', baseUrl: '.', paths, allowImportingTsExtensions: true },
          include: ['*.ts'],
        }),
      );
      let out = '';
      try {
        await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir });
      } catch (err) {
        out = String((err as { stdout?: string }).stdout ?? err);
      }
      // Errors, grouped by snippet (only those in snippet files: the sources are type-checked by npm test).
      const failing = files
        .map(({ name, block }) => {
          const msgs = out.split('\n').filter((l) => l.includes(name));
          return msgs.length === 0 ? null : `README "${block.heading}" (line ${block.line}, ${block.mark}):\n  ${msgs.join('\n  ')}`;
        })
        .filter((x): x is string => x !== null);
      expect(failing.join('\n\n')).toBe('');
      expect(out.split('\n').filter((l) => /error TS/.test(l))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // One tsc run over every snippet and the sources they import: a minute or more on a loaded machine.
  }, 300_000);

  it('the quick start prints what the README shows', async () => {
    const section = readme.slice(readme.indexOf('## Install and quick start'));
    const shown = readmeBlocks(section).find((b) => b.lang === '');
    expect(shown).toBeDefined();
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(root, 'examples/quickstart.ts')], { cwd: root });
    expect(stdout.trim()).toBe((shown as Block).code.trim());
  });
});

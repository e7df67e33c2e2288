/**
 * The packed package works from CommonJS (`require('tasuki')`), as the README promises for Node ≥
 * 20.19 (require of ES modules): the sources are built into a temporary package directory, packed
 * with `npm pack`, the tarball unpacked into a temporary project's node_modules, and a `.cjs` file
 * there requires every entry point of the `exports` map (but `tasuki/testing`, which loads only
 * under vitest) and runs a task in memory.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'tasuki-cjs-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
/**
 * Every entry point of the package's `exports` map, as a user requires it; but `tasuki/testing`,
 * whose suites load only inside a vitest run.
 */
const entryPoints = Object.keys((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> }).exports)
  .filter((k) => k !== './testing')
  .map((k) => (k === '.' ? 'tasuki' : `tasuki/${k.slice(2)}`));
const requireEsm = major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);

describe('the packed package from CommonJS', () => {
  it.runIf(requireEsm)('require("tasuki") and its sub-paths load and run a task', async () => {
    const pkg = join(work, 'pkg');
    mkdirSync(pkg);
    for (const f of ['package.json', 'README.md', 'CHANGELOG.md']) copyFileSync(join(root, f), join(pkg, f));
    await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', join(pkg, 'dist'), '--sourceMap', 'false', '--declarationMap', 'false'], { cwd: root });
    await run('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', work], { cwd: pkg });
    const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
    expect(tgz).toBeDefined();

    const proj = join(work, 'proj');
    const target = join(proj, 'node_modules', 'tasuki');
    mkdirSync(target, { recursive: true });
    await run('tar', ['-xzf', join(work, tgz as string), '-C', target, '--strip-components=1']);
    // The runtime dependencies and the (optional peer) drivers, from this checkout's install.
    for (const dep of ['superjson', 'croner', 'commander', 'ioredis', 'amqplib', 'memjs', 'mongodb', 'pg', 'prom-client', '@opentelemetry']) {
      symlinkSync(join(root, 'node_modules', dep), join(proj, 'node_modules', dep));
    }
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'cjs-user', private: true }));
    writeFileSync(
      join(proj, 'test.cjs'),
      `
const { Server, TasukiError } = require('tasuki');
const { MemoryBroker } = require('tasuki/brokers/memory');
const { MemoryBackend } = require('tasuki/backends/memory');
for (const p of ${JSON.stringify(entryPoints)}) require(p);
(async () => {
  const server = new Server({ broker: new MemoryBroker(), backend: new MemoryBackend() });
  const add = server.add('math', 'add', (a, b) => a + b);
  await server.run('math', 1);
  const client = server.client();
  const r = await client.getResult(await client.send(add, 2, 3), 5000);
  await server.shutdown(1000);
  console.log(JSON.stringify({ value: r.value, typed: typeof TasukiError }));
})().catch((e) => { console.error(e); process.exit(1); });
`,
    );
    const { stdout } = await run(process.execPath, ['test.cjs'], { cwd: proj });
    expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toEqual({ value: 5, typed: 'function' });
  });
});

/**
 * Layout rules of the design, checked on the source: the core imports no driver, each broker and
 * backend loads only its own driver, every module named in package.json `exports` exists, no
 * shipped module uses `any`, and none is much over 400 lines.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DRIVERS = ['ioredis', 'amqplib', 'mongodb', 'memjs'];
/** Optional peer dependencies of the metrics and tracing modules: never reachable from the core. */
const TELEMETRY = ['prom-client', '@opentelemetry/api'];

/** Every bare package and every project file reachable from `file` through static and dynamic imports. */
function closure(file: string, seen = new Set<string>(), packages = new Set<string>()): Set<string> {
  if (seen.has(file)) return packages;
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) {
    const spec = m[1] as string;
    if (spec.startsWith('.')) closure(resolve(dirname(file), spec.replace(/\.js$/, '.ts')), seen, packages);
    else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
  }
  return packages;
}

const modules = (dir: string): string[] =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(root, dir, f));

/** The `.ts` modules of `dir` and of every folder below it. */
const modulesBelow = (dir: string): string[] => [
  ...modules(dir),
  ...readdirSync(join(root, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .flatMap((e) => modulesBelow(join(dir, e.name))),
];

/** The folders compiled into the package (`tsconfig.build.json`), and the dashboard's browser code. */
const SHIPPED = ['src', 'brokers', 'backends', 'postgres', 'metrics', 'otel', 'cli', 'dashboard', 'test/contract'];
/** Lines a module may have: each file is one idea a reader holds, none much over 400 lines. */
const MAX_LINES = 420;

describe('layout', () => {
  it('the core imports no driver', () => {
    for (const file of modulesBelow('src')) {
      const pk = [...closure(file)];
      expect(pk.filter((p) => DRIVERS.includes(p)), file).toEqual([]);
    }
  });

  it.each([
    ['brokers/memory.ts', []],
    ['brokers/redis.ts', ['ioredis']],
    ['brokers/rabbitmq.ts', ['amqplib']],
    ['backends/memory.ts', []],
    ['backends/redis.ts', ['ioredis']],
    ['backends/memcache.ts', ['memjs']],
    ['backends/mongo.ts', ['mongodb']],
  ])('%s loads only its own driver', (file, own) => {
    const pk = [...closure(join(root, file))].filter((p) => DRIVERS.includes(p));
    expect(pk.sort()).toEqual([...own].sort());
  });

  it('importing tasuki never loads prom-client or @opentelemetry/api (nor does any core module)', () => {
    expect([...closure(join(root, 'src/index.ts'))].filter((p) => TELEMETRY.includes(p) || p.startsWith('@opentelemetry/'))).toEqual([]);
    for (const file of modulesBelow('src')) {
      expect([...closure(file)].filter((p) => TELEMETRY.includes(p) || p.startsWith('@opentelemetry/')), file).toEqual([]);
    }
  });

  it.each([
    ['metrics/index.ts', ['prom-client']],
    ['otel/index.ts', ['@opentelemetry/api']],
  ])('%s loads only its own telemetry library and no driver', (file, own) => {
    const pk = [...closure(join(root, file))].filter((p) => TELEMETRY.includes(p) || DRIVERS.includes(p) || p.startsWith('@opentelemetry/'));
    expect(pk.sort()).toEqual([...own].sort());
  });

  it('every package export points at a source module', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: string }> };
    for (const [path, target] of Object.entries(pkg.exports)) {
      const source = target.import.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts');
      expect(existsSync(join(root, source)), `${path} -> ${source}`).toBe(true);
    }
  });

  it('shipped modules do not use any', () => {
    for (const file of SHIPPED.flatMap(modulesBelow)) {
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '')
        .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"/g, "''");
      expect(text.match(/(:\s*any\b|<any>|\bas any\b|any\[\])/g), file).toBeNull();
    }
  });

  it(`no shipped module is over ${MAX_LINES} lines`, () => {
    const files = SHIPPED.flatMap(modulesBelow);
    expect(files.length).toBeGreaterThan(100);
    const long = files
      .map((file) => ({ file: file.slice(root.length + 1), lines: readFileSync(file, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > MAX_LINES);
    expect(long).toEqual([]);
  });
});

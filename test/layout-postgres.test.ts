/**
 * Layout rules for the PostgreSQL modules: the core never reaches `pg`, the Postgres broker and
 * backend load only `pg` (no other driver), and the shared `postgres/` helpers use no `any`.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DRIVERS = ['ioredis', 'amqplib', 'mongodb', 'memjs', 'pg'];

/** Every bare package reachable from `file` through static and dynamic imports. */
function packagesOf(file: string, seen = new Set<string>(), packages = new Set<string>()): Set<string> {
  if (seen.has(file)) return packages;
  seen.add(file);
  for (const m of readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) {
    const spec = m[1] as string;
    if (spec.startsWith('.')) packagesOf(resolve(dirname(file), spec.replace(/\.js$/, '.ts')), seen, packages);
    else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
  }
  return packages;
}

const ts = (dir: string): string[] =>
  readdirSync(join(root, dir))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(root, dir, f));

describe('layout: postgres', () => {
  it('the core never loads pg', () => {
    for (const file of ts('src')) expect([...packagesOf(file)].filter((p) => p === 'pg'), file).toEqual([]);
  });

  it.each(['brokers/postgres.ts', 'brokers/postgres-outbox.ts', 'backends/postgres.ts'])('%s loads pg and no other driver', (file) => {
    expect([...packagesOf(join(root, file))].filter((p) => DRIVERS.includes(p))).toEqual(['pg']);
  });

  it('the transaction adapters (tasuki/postgres-tx) load no package: not pg, knex, kysely nor drizzle-orm', () => {
    expect([...packagesOf(join(root, 'postgres/tx-adapters.ts'))]).toEqual([]);
  });

  it('the shared postgres helpers use no any', () => {
    for (const file of [...ts('postgres'), ...ts('brokers').filter((f) => f.includes('postgres')), ...ts('backends').filter((f) => f.includes('postgres'))]) {
      const text = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/.*$/gm, '');
      expect(text.match(/(:\s*any\b|<any>|\bas any\b|any\[\])/g), file).toBeNull();
    }
  });
});

/**
 * Where the UI's static files come from: the built `assets/` folder beside this module (an
 * installed package: `dist/dashboard/assets/`), or — in a source checkout — the UI sources bundled
 * in memory once (`./bundle.ts`).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DashboardError } from './http.js';

/** One static file. */
export interface Asset {
  /** Its bytes. */
  body: Uint8Array;
  /** Its content type. */
  type: string;
}

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
};

function typeOf(name: string): string {
  return TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
}

let loaded: Promise<Map<string, Asset>> | undefined;

/** The UI's files, by name (loaded or built once per process). */
export function assets(): Promise<Map<string, Asset>> {
  loaded ??= load();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

async function load(): Promise<Map<string, Asset>> {
  const here = dirname(fileURLToPath(import.meta.url));
  const out = new Map<string, Asset>();
  const built = join(here, 'assets');
  if (existsSync(join(built, 'index.html'))) {
    for (const name of readdirSync(built)) out.set(name, { body: readFileSync(join(built, name)), type: typeOf(name) });
    return out;
  }
  const sources = join(here, 'ui');
  if (!existsSync(join(sources, 'main.ts'))) throw new DashboardError(500, 'ERR_DASHBOARD_ASSETS', `the dashboard UI is not built (no ${built}): run npm run build`);
  const { bundleUi } = await import('./bundle.js');
  for (const [name, body] of await bundleUi(sources)) out.set(name, { body, type: typeOf(name) });
  return out;
}

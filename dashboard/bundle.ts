/**
 * Builds the browser UI (`dashboard/ui/`): `main.ts` bundled by esbuild into one minified
 * `app.js` (no framework, no network), beside `index.html` and `style.css`. Used by the package
 * build (`scripts/build-dashboard.mjs` writes `dist/dashboard/assets/`) and, when the dashboard runs
 * from a source checkout, in memory at its first request. esbuild is a development dependency only:
 * an installed package serves the built files.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnsupportedError } from '../src/errors.js';

/** Static files of the UI, by name. */
export type UiFiles = Map<string, Uint8Array>;

/** The files copied as they are. */
const STATIC = ['index.html', 'style.css'];

/** Bundles the UI sources in `uiDir` (in memory). */
export async function bundleUi(uiDir: string): Promise<UiFiles> {
  let esbuild: typeof import('esbuild');
  try {
    esbuild = await import('esbuild');
  } catch {
    throw new UnsupportedError('building the dashboard UI needs esbuild (a development dependency); an installed package ships it built');
  }
  const result = await esbuild.build({
    entryPoints: [join(uiDir, 'main.ts')],
    bundle: true,
    minify: true,
    format: 'iife',
    target: ['es2022'],
    platform: 'browser',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
    outfile: 'app.js',
  });
  const files: UiFiles = new Map();
  for (const f of result.outputFiles) files.set('app.js', f.contents);
  for (const name of STATIC) files.set(name, readFileSync(join(uiDir, name)));
  return files;
}

/** Bundles the UI sources in `uiDir` and writes the files into `outDir`; resolves with their names. */
export async function writeUi(uiDir: string, outDir: string): Promise<string[]> {
  const files = await bundleUi(uiDir);
  mkdirSync(outDir, { recursive: true });
  for (const [name, body] of files) writeFileSync(join(outDir, name), body);
  return [...files.keys()];
}

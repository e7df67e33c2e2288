// Bundles the dashboard UI (dashboard/ui/) with esbuild into <dist>/dashboard/assets/, after tsc
// has built <dist> (it uses the compiled <dist>/dashboard/bundle.js). Part of `npm run build`.
// Usage: node scripts/build-dashboard.mjs [dist directory, default ./dist]
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = resolve(process.argv[2] ?? join(root, 'dist'));
const { writeUi } = await import(pathToFileURL(join(dist, 'dashboard/bundle.js')).href);
const out = join(dist, 'dashboard/assets');
const files = await writeUi(join(root, 'dashboard/ui'), out);
console.log(`dashboard UI: ${files.join(', ')} -> ${out}`);

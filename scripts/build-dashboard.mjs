// Bundles the dashboard UI (dashboard/ui/) into dist/dashboard/assets/ with esbuild, after tsc has
// built dist/ (it uses the compiled dist/dashboard/bundle.js). Part of `npm run build`.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { writeUi } = await import(join(root, 'dist/dashboard/bundle.js'));
const out = join(root, 'dist/dashboard/assets');
const files = await writeUi(join(root, 'dashboard/ui'), out);
console.log(`dashboard UI: ${files.join(', ')} -> ${out}`);

// Builds the browser assets the gateway embeds (see gateway/src/api/assets.rs):
//   dist/c2c-client.js            window.C2C, small; loads the next file when a call starts
//   dist/livekit-client.js        the pinned livekit-client as window.LivekitClient
//   dist/console/{index.html,app.js,style.css}
// Deterministic: same sources + same lockfile -> same bytes (no timestamps, no paths,
// no source maps). `--check` builds into a temp dir and fails if dist/ differs, which
// is how tests prove the committed dist/ is what the sources produce.
import { build } from 'esbuild';
import { mkdtempSync, mkdirSync, readFileSync, copyFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'c2c-web-')) : join(here, 'dist');

const common = {
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2020'],
  minify: true,
  legalComments: 'eof',
  sourcemap: false,
  charset: 'utf8',
  logLevel: 'warning',
  absWorkingDir: here,
};

mkdirSync(join(out, 'console'), { recursive: true });
await build({ ...common, entryPoints: ['src/c2c-client.js'], outfile: join(out, 'c2c-client.js') });
await build({ ...common, entryPoints: ['src/livekit-sdk.js'], outfile: join(out, 'livekit-client.js') });
await build({ ...common, entryPoints: ['src/console/app.js'], outfile: join(out, 'console', 'app.js') });
for (const f of ['index.html', 'style.css']) {
  copyFileSync(join(here, 'src', 'console', f), join(out, 'console', f));
}

if (check) {
  const files = ['c2c-client.js', 'livekit-client.js', 'console/index.html', 'console/app.js', 'console/style.css'];
  const differ = files.filter((f) => {
    try {
      return !readFileSync(join(out, f)).equals(readFileSync(join(here, 'dist', f)));
    } catch (_) {
      return true;
    }
  });
  // A file in dist/ that the build no longer makes would still be embedded and served.
  const dist = join(here, 'dist');
  const extra = readdirSync(dist, { recursive: true })
    .map((f) => f.split(sep).join('/'))
    .filter((f) => statSync(join(dist, f)).isFile() && !files.includes(f));
  rmSync(out, { recursive: true, force: true });
  if (differ.length || extra.length) {
    console.error(`web/dist is stale: ${[...differ, ...extra].join(', ')} differ from a fresh build; run npm run build in web/ and commit dist/`);
    process.exit(1);
  }
  console.log(`web/dist matches a fresh build (${files.length} files)`);
}

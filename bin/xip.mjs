#!/usr/bin/env node
// Entry point of the `xip` command. `make` compiles src/ to dist/ (tsc,
// tsconfig.build.json), so that each of its xip calls does not spend half a
// second loading TypeScript. dist/ runs only while its stamp is newer than
// everything under src/ (a file edited, added or removed since makes it
// stale); otherwise the sources run through tsx, as they always may.
import { readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The newest modification time under `dir`: its files, its subdirectories and itself (a removal changes that). */
function newest(dir) {
  let t = statSync(dir).mtimeMs;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = `${dir}/${e.name}`;
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function distIsCurrent() {
  try {
    return statSync(`${root}dist/.stamp`).mtimeMs > newest(`${root}src`);
  } catch {
    return false;
  }
}

const argv = process.argv.slice(2);
let cli;
if (distIsCurrent()) {
  // --verbose prints stacks: point them at src/.
  if (argv.includes('--verbose') || argv.includes('-v')) process.setSourceMapsEnabled(true);
  cli = await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
process.exitCode = await cli.main(argv);

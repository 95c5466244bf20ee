import { Option, type Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import type { GlobalOptions } from './common.ts';

/** `xip fresh-check` (make fresh-check): the README's make and make test in a new debootstrap root. */
export interface FreshCheckCommandOptions {
  debian?: string;
  keep?: boolean;
  json?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('fresh-check')
    .description("README's make + make test in a new debootstrap root (Debian 12|13)")
    .addOption(new Option('--debian <12|13>', 'Debian release of the root').env('DEBIAN'))
    .option('--keep', 'keep the root afterwards (mounts are removed all the same)')
    .option('--json', 'print the result as JSON');
}

export async function handler(g: GlobalOptions, o: FreshCheckCommandOptions): Promise<number> {
  const { freshCheck, formatFresh, releaseOf } = await import('../fresh.ts');
  const { REPO_ROOT } = await import('../context.ts');
  const release = releaseOf(o.debian);
  const r = await freshCheck({ repo: REPO_ROOT, release, keep: o.keep, workDir: g.buildDir ? `${g.buildDir}/fresh/debian-${release.version}` : undefined });
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  info(formatFresh(r));
  return EXIT.ok;
}

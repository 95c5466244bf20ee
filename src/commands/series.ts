import { join } from 'node:path';
import type { Command } from 'commander';
import { REPO_ROOT } from '../context.ts';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import type { GlobalOptions } from './common.ts';

/** `xip series`: the kernel patch series with the sender's From: and Signed-off-by:. */
export interface SeriesCommandOptions {
  from: string;
  out?: string;
}

export function define(program: Command): Command {
  return program
    .command('series')
    .description('the kernel patch series with your From: and Signed-off-by:')
    .requiredOption('--from <identity>', "'Full Name <user@example.org>'")
    .option('--out <dir>', 'where to write the patches (default: build/series)');
}

export async function handler(g: GlobalOptions, o: SeriesCommandOptions): Promise<number> {
  const { exportSeries } = await import('../kernel/series.ts');
  const out = o.out ?? join(g.buildDir ?? join(REPO_ROOT, 'build'), 'series');
  const files = exportSeries(join(REPO_ROOT, 'kernel', 'patches'), out, o.from);
  info(`${files.length} patches for ${o.from} in ${out}`);
  info(`check them (scripts/checkpatch.pl --strict ${out}/*.patch), then: git send-email --to linux-mips@vger.kernel.org ${out}/*.patch`);
  return EXIT.ok;
}

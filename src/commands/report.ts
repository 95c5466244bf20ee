import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip report`: the README results section, from bench/results-*.json. */
export interface ReportCommandOptions {
  missing?: string[];
}

export function define(program: Command): Command {
  return program
    .command('report')
    .description('rewrite the README results section from bench/results-*.json')
    .option('--missing <text...>', 'note a config that was not measured, and why');
}

export async function handler(g: GlobalOptions, o: ReportCommandOptions): Promise<number> {
  const { updateReadme } = await import('../report/readme.ts');
  const u = updateReadme(contextFrom(g).repo, { missing: o.missing });
  info(`${u.path}: ${u.changed ? 'results section rewritten' : 'results section already up to date'} from ${u.files.length} results file(s)`);
  return EXIT.ok;
}

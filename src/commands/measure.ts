import { Option, type Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, parseMem, wholeNumber, type GlobalOptions } from './common.ts';

/** `xip measure`: XIP against stock (RAM, minimum RAM, boot instructions, flash). */
export interface MeasureCommandOptions {
  sizes?: number[];
  minRam?: boolean;
  bootCost?: boolean;
  buildTime?: boolean;
  runs?: number;
  save?: boolean;
  json?: boolean;
}

/** --sizes: RAM sizes in MiB, comma-separated; "none" for none. */
const parseSizes = (v: string): number[] => (v === 'none' ? [] : v.split(',').map((s) => parseMem(s)));

export function define(program: Command): Command {
  return program
    .command('measure')
    .description('measure XIP against stock: RAM, min RAM, boot instructions, flash')
    .addOption(new Option('--sizes <MiB,...>', 'RAM sizes for the Memory: line (default 8,16,256; "none" to skip)').argParser(parseSizes))
    .option('--no-min-ram', 'skip the minimum-RAM bisection')
    .option('--no-boot-cost', 'skip the guest instruction counts')
    .option('--build-time', 'also time a clean build in a fresh clone and a no-op make (slow)')
    .addOption(new Option('--runs <n>', 'runs of each instruction count (default 2)').argParser(wholeNumber('--runs', 'give a whole number >= 1')))
    .option('--save', 'write bench/results-<config>.json')
    .option('--json', 'print every number as JSON');
}

export async function handler(g: GlobalOptions, o: MeasureCommandOptions): Promise<number> {
  const { measure, resultsPath, saveResults } = await import('../measure/index.ts');
  const { formatResults } = await import('../report/format.ts');
  const r = await measure({ ...g, sizes: o.sizes, minRam: o.minRam, bootCost: o.bootCost, buildTime: o.buildTime, runs: o.runs });
  if (o.save) {
    const p = resultsPath(contextFrom(g).repo, r.config);
    saveResults(r, p);
    info(`results: ${p}`);
  }
  process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatResults(r)}\n`);
  return EXIT.ok;
}

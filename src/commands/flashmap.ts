import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip flashmap`: the partition map of the board and loader (or of --flash-map), as the image, verify and the kernel use it. */
export interface FlashmapCommandOptions {
  markdown?: boolean;
  json?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('flashmap')
    .description('the flash partition map: what the image holds where, and mtdparts')
    .option('--markdown', 'as a Markdown table (the README tables are made with it)')
    .option('--json', 'as JSON partitions (a start for --flash-map FILE)');
}

export async function handler(g: GlobalOptions, o: FlashmapCommandOptions): Promise<number> {
  const { formatFlashMap, kernelCmdline } = await import('../boards/flashmap.ts');
  const { hex } = await import('../text.ts');
  const ctx = contextFrom(g);
  const b = ctx.board;
  if (o.json) {
    process.stdout.write(`${JSON.stringify(b.partitions, null, 2)}\n`);
    return EXIT.ok;
  }
  process.stdout.write(`${formatFlashMap(b, { markdown: o.markdown })}\n`);
  if (!o.markdown) {
    process.stdout.write(`  ${b.name}, loader ${b.loader}: kernel linked at ${hex(b.xipPhys, 8)} (CONFIG_XIP_PHYS_ADDR)\n  command line: ${kernelCmdline(b)}\n`);
  }
  return EXIT.ok;
}

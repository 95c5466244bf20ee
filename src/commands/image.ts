import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip image`: the flash image (shim + XIP vmlinux); prints its layout map. */
export interface ImageCommandOptions {
  force?: boolean;
  json?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('image')
    .description('assemble the flash image (a real board: its kernel partition)')
    .option('--force', 'assemble again even when up to date')
    .option('--json', 'print the image report (layout map) as JSON');
}

export async function handler(g: GlobalOptions, o: ImageCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  const { image } = await import('../pipeline.ts');
  const report = await image(ctx, { force: o.force });
  if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    const { formatLayout } = await import('../image/index.ts');
    process.stdout.write(`${formatLayout(report.layout)}\n`);
  }
  return EXIT.ok;
}

import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip build`: userspace, initramfs list, kernel configuration and kernel. */
export interface BuildCommandOptions {
  force?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('build')
    .description('build userspace + initramfs, configure and compile the kernel')
    .option('--force', 'run every stage even when up to date');
}

export async function handler(g: GlobalOptions, o: BuildCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  const { build } = await import('../pipeline.ts');
  await build(ctx, { ...g, force: o.force });
  return EXIT.ok;
}

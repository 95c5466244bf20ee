import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip source`: the prepared (unpacked + patched) kernel tree under build/src. */
export interface SourceCommandOptions {
  force?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('source')
    .description('unpack or copy the kernel and apply kernel/patches/ (build/src)')
    .option('--force', 'prepare again even when up to date');
}

export async function handler(g: GlobalOptions, o: SourceCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  const { sourceStage } = await import('../pipeline.ts');
  const s = await sourceStage(ctx, { ...g, force: o.force });
  info(`kernel source: Linux ${s.version} from ${s.origin}`);
  return EXIT.ok;
}

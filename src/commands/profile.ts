import type { Command } from 'commander';
import { getBoard } from '../boards/index.ts';
import { DEFAULTS, routerConfig } from '../context.ts';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, parseMem, type GlobalOptions } from './common.ts';

/** `xip profile`: record which pages of the router's programs its workload uses (for USERSPACE=router-profiled). */
export interface ProfileCommandOptions {
  mem?: number;
}

export function define(program: Command): Command {
  return program
    .command('profile')
    .description("record the pages the router's programs use (router-profiled)")
    .option('--mem <MiB>', 'RAM of the recording boot (default 256)', parseMem);
}

export async function handler(g: GlobalOptions, o: ProfileCommandOptions): Promise<number> {
  const { recordProfile } = await import('../userspace/record.ts');
  // Recorded on the all-compressed root: its page cache holds exactly what was read.
  const board = getBoard(g.board ?? DEFAULTS.board);
  const ctx = contextFrom(g, { config: routerConfig(board), variant: 'xip', userspace: 'router-cramfs', rootfs: undefined });
  const r = await recordProfile(ctx, o.mem ?? 256);
  info(`profile: ${r.path}`);
  for (const [file, f] of Object.entries(r.profile.files)) process.stdout.write(`${file}: ${f.pages.length} of ${Math.ceil(f.size / 4096)} pages used\n`);
  return EXIT.ok;
}

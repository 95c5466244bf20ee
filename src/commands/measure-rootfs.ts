import type { Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip measure-rootfs`: the router's root as an initramfs, as cramfs in flash, and with its code in place: flash and RAM. */
export interface MeasureRootfsCommandOptions {
  minRam?: boolean;
  save?: boolean;
  json?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('measure-rootfs')
    .description("flash and RAM of the router's root: initramfs, cramfs, cramfs XIP")
    .option('--no-min-ram', 'skip the minimum-RAM bisections')
    .option('--save', 'write bench/rootfs-<toolchain>.json')
    .option('--json', 'print the results as JSON');
}

export async function handler(g: GlobalOptions, o: MeasureRootfsCommandOptions): Promise<number> {
  const { measureRoots, formatRoots, rootResultsPath, saveRoots } = await import('../measure/rootfs.ts');
  const ctx = contextFrom(g);
  const r = await measureRoots({ board: ctx.board, toolchain: ctx.toolchain, minRam: o.minRam });
  if (o.save) {
    const p = rootResultsPath(ctx.repo, ctx.toolchain, ctx.board.name);
    saveRoots(r, p);
    info(`results: ${p}`);
  }
  process.stdout.write(o.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatRoots(r)}\n`);
  return EXIT.ok;
}

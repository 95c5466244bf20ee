import type { Command } from 'commander';
import { bootHandler, defineBoot } from './boot.ts';
import type { BootOptions, GlobalOptions } from './common.ts';

/** `xip run`: the boot of `xip boot`, interactive (Ctrl-A X quits); nothing is required of it. */
export const define = (program: Command): Command =>
  defineBoot(program, 'run', true, 'boot in QEMU interactively (Ctrl-A X quits)');

export const handler = (g: GlobalOptions, o: BootOptions): Promise<number> => bootHandler(g, o, true);

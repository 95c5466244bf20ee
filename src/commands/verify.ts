import type { Command } from 'commander';
import { contextFrom, type GlobalOptions } from './common.ts';

/** `xip verify`: the XIP layout rules on a vmlinux, its .config and the flash image. */
export interface VerifyCommandOptions {
  vmlinux?: string;
  dotConfig?: string;
  image?: string;
  json?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('verify')
    .description('check the XIP vmlinux and flash image layout rules')
    .option('--vmlinux <file>', 'ELF to check (default: the build of --variant)')
    .option('--dot-config <file>', '.config to check (default: the build of --variant)')
    .option('--image <file>', 'flash image to check (default: the build of --variant)')
    .option('--json', 'machine-readable report');
}

export async function handler(g: GlobalOptions, o: VerifyCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  const { verifyCommand } = await import('../verify/index.ts');
  return verifyCommand(ctx, { vmlinux: o.vmlinux, configFile: o.dotConfig, image: o.image, json: o.json });
}

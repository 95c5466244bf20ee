import type { Command } from 'commander';
import { EXIT, XipError } from '../errors.ts';
import type { GlobalOptions } from './common.ts';

/** `xip bench` (make bench): measure the minimal and router configs, save the results, rewrite the README section. */
export interface BenchCommandOptions {
  buildTime?: boolean;
}

export function define(program: Command): Command {
  return program
    .command('bench')
    .description('make bench: measure the minimal and router configs (or --config)')
    .option('--no-build-time', 'skip the (slow) clean and no-op build timing');
}

export async function handler(g: GlobalOptions, o: BenchCommandOptions): Promise<number> {
  const { bench } = await import('../measure/bench.ts');
  // --config (or CONFIG=): only that config; the README section still covers every results file.
  const configs = g.config ? [g.config] : undefined;
  const r = await bench({ board: g.board, toolchain: g.toolchain, buildDir: g.buildDir, buildTime: o.buildTime, configs });
  if (r.failed.length > 0) {
    throw new XipError(`bench: ${r.failed.length} config(s) failed`, { details: r.failed });
  }
  return EXIT.ok;
}

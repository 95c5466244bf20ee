import { Option, type Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, parseMem, parseSeconds, timeoutMs, type BootOptions, type GlobalOptions } from './common.ts';
import { qemuOf } from '../boards/board.ts';

/**
 * `xip boot`: boot the build in QEMU; the console markers and a power-off
 * are required. `xip run` (run.ts) is the same boot, interactive.
 */
export function defineBoot(program: Command, name: string, interactive: boolean, description: string): Command {
  return program
    .command(name)
    .description(description)
    .addOption(new Option('--mem <MiB>', 'guest RAM (default: the board default, 256 MiB on malta)').argParser(parseMem))
    .addOption(
      new Option('--timeout <seconds>', interactive ? 'stop after this long (default: never)' : 'fail after this long (default 60)').argParser(parseSeconds),
    )
    .option('--json', 'print the boot result as JSON');
}

export async function bootHandler(g: GlobalOptions, o: BootOptions, interactive: boolean): Promise<number> {
  const ctx = contextFrom(g);
  const { bootBuilt } = await import('../pipeline.ts');
  const r = await bootBuilt(ctx, { memMiB: o.mem ?? qemuOf(ctx.board).defaultMemMiB, timeoutMs: timeoutMs(o), interactive });
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  if (!interactive) {
    const { assertBooted } = await import('../qemu/runner.ts');
    assertBooted(r, `${ctx.variant} boot`);
    info(`boot ok in ${(r.ms / 1000).toFixed(1)}s: ${r.markersSeen.length} markers, QEMU exit ${r.exitCode}; log ${r.log ?? ctx.bootLog}`);
  }
  return EXIT.ok;
}

export const define = (program: Command): Command =>
  defineBoot(program, 'boot', false, 'boot in QEMU; require the console markers and a power-off');

export const handler = (g: GlobalOptions, o: BootOptions): Promise<number> => bootHandler(g, o, false);

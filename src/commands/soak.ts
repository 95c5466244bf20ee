import { Option, type Command } from 'commander';
import { EXIT } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, parseMem, parseSeconds, timeoutMs, wholeNumber, type BootOptions, type GlobalOptions } from './common.ts';
import { qemuOf } from '../boards/board.ts';

/** `xip soak` (make soak COUNT=n): boot the XIP image n times; one failed boot fails it. */
export interface SoakCommandOptions extends BootOptions {
  count: number;
}

export function define(program: Command): Command {
  return program
    .command('soak')
    .description('boot the XIP image N times; report failures and boot-time spread')
    .addOption(new Option('--count <n>', 'number of boots').argParser(wholeNumber('--count', 'give a whole number of boots, 1 or more')).default(50))
    .addOption(new Option('--mem <MiB>', 'guest RAM (default: the board default)').argParser(parseMem))
    .addOption(new Option('--timeout <seconds>', 'fail a boot after this long (default 60)').argParser(parseSeconds))
    .option('--json', 'print the soak report as JSON');
}

export async function handler(g: GlobalOptions, o: SoakCommandOptions): Promise<number> {
  const ctx = contextFrom(g);
  const { soak, formatSoak, assertSoaked } = await import('../soak.ts');
  const r = await soak(ctx, { count: o.count, memMiB: o.mem ?? qemuOf(ctx.board).defaultMemMiB, timeoutMs: timeoutMs(o) });
  if (o.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  info(formatSoak(r));
  assertSoaked(r);
  return EXIT.ok;
}

import { Option, type Command } from 'commander';
import { EXIT } from '../errors.ts';
import { badInput } from '../errors.ts';
import { info } from '../log.ts';
import { contextFrom, wholeNumber, type GlobalOptions } from './common.ts';

/** `xip size`: where flash and RAM go, or what changed between two builds. */
export interface SizeCommandOptions {
  json?: boolean;
  top?: number;
  diff?: string[];
  maxGrowth?: number;
}

export function define(program: Command): Command {
  return program
    .command('size')
    .argument('[build]', 'build directory or xip size --json file (default: the build of the options)')
    .description('where flash and RAM go, down to symbols and files; --diff A B')
    .option('--json', 'the whole tree as JSON (input for --diff)')
    .addOption(new Option('--top <n>', 'rows per table (default 15)').argParser(wholeNumber('--top', 'give a whole number >= 1')))
    .option('--diff <builds...>', 'compare two builds (directories or --json files): old new')
    .addOption(new Option('--max-growth <bytes>', 'with --diff: exit 1 when flash in use or static RAM grew by more').argParser(wholeNumber('--max-growth', 'give a number of bytes >= 0', 0)));
}

export async function handler(g: GlobalOptions, o: SizeCommandOptions, build?: string): Promise<number> {
  const { diffSizes, formatDiff, formatSize, loadSize, overGrowth, sizeOfBuiltDir } = await import('../size/index.ts');
  const top = o.top ?? 15;
  if (o.diff !== undefined) {
    if (o.diff.length !== 2 || build !== undefined) throw badInput(`--diff takes two builds, old then new (got ${o.diff.length + (build ? 1 : 0)}): xip size --diff build/A build/B`);
    const [a, b] = [loadSize(o.diff[0]!), loadSize(o.diff[1]!)];
    // A gate that silently skips flash would pass a build nobody imaged.
    if (o.maxGrowth !== undefined && (a.flash === undefined) !== (b.flash === undefined)) {
      throw badInput(`--max-growth: ${a.flash ? o.diff[1] : o.diff[0]} has no flash image and the other has; compare two XIP builds (or two stock ones)`);
    }
    const d = diffSizes(a, b, o.json ? 100 : top);
    process.stdout.write(o.json ? `${JSON.stringify(d, null, 2)}\n` : `${formatDiff(d, top)}\n`);
    if (o.maxGrowth !== undefined) {
      const over = overGrowth(d, o.maxGrowth);
      if (over.length > 0) {
        info(`size: ${over.join(', ')}: more than --max-growth ${o.maxGrowth}`);
        return EXIT.failed;
      }
      info(`size: within --max-growth ${o.maxGrowth} (flash ${d.flashUsed ? d.flashUsed.delta : 'n/a'}, RAM ${d.ram.delta} bytes)`);
    }
    return EXIT.ok;
  }
  if (o.maxGrowth !== undefined) throw badInput('--max-growth needs --diff A B: it limits the growth from A to B');
  const r = build !== undefined ? loadSize(build) : sizeOfBuiltDir(contextFrom(g).variantDir);
  process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : `${formatSize(r, top)}\n`);
  return EXIT.ok;
}

import { Argument, Option, type Command } from 'commander';
import { partitionOf } from '../boards/board.ts';
import { badInput, EXIT, XipError } from '../errors.ts';
import { contextFrom, type GlobalOptions } from './common.ts';

/**
 * `xip settings get|set IMAGE ...`: the settings partition (XSET,
 * docs/settings.md) inside a flash image file, read or written the way the
 * router's xset tool does it on the flash chip.
 */
export interface SettingsCommandOptions {
  json?: boolean;
  unset?: string[];
  /** The positional arguments after IMAGE (get: [KEY]; set: KEY=VALUE...), put here before the handler runs. */
  items?: string[];
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function define(program: Command): Command {
  return (
    program
      .command('settings')
      .description('read or change the settings partition of a flash image (XSET)')
      .addArgument(new Argument('<action>', 'get: print the settings (or one value); set: change them').choices(['get', 'set']))
      .argument('<image>', 'flash image file (as xip image writes it)')
      .argument('[items...]', 'get: [KEY]; set: KEY=VALUE... (KEY= sets an empty value)')
      .option('--json', 'get: seq, slot, settings and the state of both slots as JSON')
      .addOption(new Option('--unset <key>', 'set: remove KEY (repeat for more keys)').argParser(collect))
      // The handler gets positional arguments as strings only: hand the list over as an option.
      .hook('preAction', (_hooked, cmd) => {
        const items = cmd.processedArgs[2] as unknown;
        cmd.setOptionValue('items', Array.isArray(items) ? (items as string[]) : []);
      })
  );
}

export async function handler(g: GlobalOptions, o: SettingsCommandOptions, action?: string, image?: string): Promise<number> {
  const { existsSync, readFileSync, statSync } = await import('node:fs');
  const { writeFileAtomic } = await import('../fsutil.ts');
  const { hex } = await import('../text.ts');
  const f = await import('../settings/format.ts');
  const items = o.items ?? [];
  if (image === undefined || (action !== 'get' && action !== 'set')) throw badInput('usage: xip settings get IMAGE [KEY] [--json] | xip settings set IMAGE KEY=VALUE... [--unset KEY]...');
  if (action === 'get' && o.unset !== undefined) throw badInput('--unset is for xip settings set IMAGE [KEY=VALUE...] --unset KEY');
  if (action === 'set' && o.json) throw badInput('--json is for xip settings get IMAGE --json');
  if (action === 'get' && items.length > 1) throw badInput(`xip settings get takes one KEY at most (got ${items.length}); leave it out to list them all`);
  if (action === 'set' && items.length === 0 && o.unset === undefined) throw badInput('xip settings set: nothing to do; give KEY=VALUE... and/or --unset KEY');

  const b = contextFrom(g).board;
  const part = partitionOf(b.partitions, 'settings');
  if (part === undefined) {
    throw badInput(`${b.name}, loader ${b.loader}: the flash map has no settings partition; use a map that has one (the shim map of malta has one; xip flashmap shows the map)`);
  }
  if (!existsSync(image) || !statSync(image).isFile()) throw badInput(`${image}: no such flash image file; make one with xip image`);
  const size = statSync(image).size;
  if (size !== b.flashSize) {
    throw badInput(`${image}: ${size} bytes, not a ${b.name} flash image (${b.flashSize} bytes, ${hex(b.flashSize, 8)}); make one with xip image`);
  }
  const flash = new Uint8Array(readFileSync(image));
  const partition = flash.subarray(part.offset, part.offset + part.size);
  const where = `${image}: partition '${part.name}' (${hex(part.offset, 8)}+${hex(part.size, 8)})`;
  const wrap = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof XipError) throw new XipError(`${where}: ${err.message}`, { exitCode: err.exitCode, cause: err });
      throw err;
    }
  };
  const state = wrap(() => f.readSettings(partition, b.eraseSize));

  if (action === 'get') {
    const key = items[0];
    if (key !== undefined) {
      const problem = f.validateKey(key);
      if (problem) throw badInput(`xip settings get: ${problem}`);
      if (!Object.hasOwn(state.settings, key)) {
        process.stderr.write(`xip settings: '${key}' is not set (${state.slot === undefined ? 'no settings' : `seq ${state.seq} in slot ${state.slot}`})\n`);
        return EXIT.failed;
      }
    }
    if (o.json) {
      const settings = key === undefined ? state.settings : { [key]: state.settings[key]! };
      process.stdout.write(`${JSON.stringify({ seq: state.seq, slot: state.slot ?? null, settings, slots: state.slots }, null, 2)}\n`);
    } else if (key !== undefined) {
      process.stdout.write(`${state.settings[key]!}\n`);
    } else {
      process.stdout.write(f.formatPayload(state.settings));
    }
    return EXIT.ok;
  }

  const merged = f.mergeSettings(state.settings, f.parseAssignments(items), o.unset ?? []);
  const plan = wrap(() => f.planWrite(partition, b.eraseSize, merged));
  flash.set(f.applySteps(partition, plan.steps), part.offset);
  writeFileAtomic(image, flash);
  process.stdout.write(`settings: seq ${plan.seq} in slot ${plan.slot} (${plan.keys} keys)\n`);
  return EXIT.ok;
}

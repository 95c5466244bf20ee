import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Partition } from '../boards/board.ts';
import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { emptyPartition, mergeSettings, parseAssignments, writeSettings, type Settings } from './format.ts';

/** The settings every root-in-flash router image starts with (a repository file). */
export function settingsDefaultsPath(repo: string): string {
  return join(repo, 'userspace', 'lwrt', 'settings.defaults');
}

/** key=value lines of a settings file; blank lines and # comments are skipped. Bad lines: one line naming the file. */
export function readSettingsFile(file: string): Settings {
  if (!existsSync(file) || !statSync(file).isFile()) throw badInput(`settings file ${file} not found: give a file of key=value lines (SETTINGS=FILE)`);
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  try {
    return parseAssignments(lines);
  } catch (err) {
    throw badInput(`settings file ${file}: ${(err as Error).message}`);
  }
}

/**
 * What the image's settings partition holds at first: the repository's
 * defaults, then the user's file (SETTINGS=FILE) over them, and a random
 * admin token unless one of them sets it; written as the router's own
 * tool writes (slot 0, seq 1).
 */
export function initialSettings(ctx: BuildContext, part: Partition): { bytes: Uint8Array; settings: Settings } {
  let settings = readSettingsFile(settingsDefaultsPath(ctx.repo));
  if (ctx.settingsFile !== undefined) settings = mergeSettings(settings, readSettingsFile(ctx.settingsFile));
  if (settings.admin_token === undefined) settings = mergeSettings(settings, { admin_token: randomBytes(12).toString('hex') });
  return { bytes: writeSettings(emptyPartition(part.size), ctx.board.eraseSize, settings), settings };
}

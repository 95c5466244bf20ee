import { badInput } from '../errors.ts';
import { envList, skipReason } from '../testskip.ts';
import { BoardSchema, defaultLoader, LOADERS, qemuOf, type Board, type BoardData, type Loader, type Partition, type QemuSpec } from './board.ts';
import { withLoader } from './flashmap.ts';
import { malta } from './malta.ts';
import { maltaBe } from './malta-be.ts';
import { ar9331 } from './ar9331.ts';
import { mt7628 } from './mt7628.ts';

const BOARDS: readonly BoardData[] = [malta, maltaBe, mt7628, ar9331].map((b) => BoardSchema.parse(b));

export function boardNames(): string[] {
  return BOARDS.map((b) => b.name);
}

/** A board with one of its loaders (default: the shim) and that loader's flash map. */
export function getBoard(name: string, loader?: string, partitions?: Partition[], mapFile?: string): Board {
  const board = BOARDS.find((b) => b.name === name);
  if (!board) {
    throw badInput(`unknown board '${name}': use one of ${boardNames().join(', ')}`);
  }
  // The default: the boot shim on a board QEMU boots, the board's own loader on a real one.
  const chosen = loader ?? defaultLoader(board);
  if (!(LOADERS as readonly string[]).includes(chosen)) throw badInput(`unknown loader '${chosen}': use ${LOADERS.join(' or ')} (LOADER=uboot)`);
  return withLoader(board, chosen as Loader, partitions, mapFile);
}

/** A board QEMU boots (its qemu entry present), with a loader; one line naming the board otherwise. */
export function getQemuBoard(name: string, loader?: string): Board & { qemu: QemuSpec } {
  const b = getBoard(name, loader);
  return { ...b, qemu: qemuOf(b) };
}

/**
 * The environment variable that leaves boards out of `make test` (their
 * tests report skipped, naming it): CI runs malta-be and the real boards in
 * one of its two fresh roots only, to stay in its time limit. malta, the
 * board every other test uses, cannot be left out.
 */
export const SKIP_BOARDS_ENV = 'XIP_TEST_SKIP_BOARDS';

/** The boards $XIP_TEST_SKIP_BOARDS names (comma-separated); one line naming a wrong one. */
export function skippedBoards(value = process.env[SKIP_BOARDS_ENV]): string[] {
  const others = BOARDS.map((b) => b.name).filter((n) => n !== 'malta');
  return envList(SKIP_BOARDS_ENV, 'board', value, others, { malta: 'cannot be left out (every other test runs on it)' });
}

/** Why this run leaves the board out (the skip reason its tests report), or false when it runs. */
export function boardSkip(board: string): string | false {
  return skipReason(SKIP_BOARDS_ENV, skippedBoards(), board);
}

export { type Board, type Loader } from './board.ts';

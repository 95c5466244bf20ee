import { badInput } from '../errors.ts';
import { BoardSchema, LOADERS, type Board, type BoardData, type Loader, type Partition } from './board.ts';
import { withLoader } from './flashmap.ts';
import { malta } from './malta.ts';
import { maltaBe } from './malta-be.ts';

const BOARDS: readonly BoardData[] = [malta, maltaBe].map((b) => BoardSchema.parse(b));

export function boardNames(): string[] {
  return BOARDS.map((b) => b.name);
}

/** A board with one of its loaders (default: the shim) and that loader's flash map. */
export function getBoard(name: string, loader: string = 'shim', partitions?: Partition[], mapFile?: string): Board {
  const board = BOARDS.find((b) => b.name === name);
  if (!board) {
    throw badInput(`unknown board '${name}': use one of ${boardNames().join(', ')}`);
  }
  if (!(LOADERS as readonly string[]).includes(loader)) throw badInput(`unknown loader '${loader}': use ${LOADERS.join(' or ')} (LOADER=uboot)`);
  return withLoader(board, loader as Loader, partitions, mapFile);
}

export { type Board, type Loader } from './board.ts';

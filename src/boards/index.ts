import { badInput } from '../errors.ts';
import { BoardSchema, type Board } from './board.ts';
import { malta } from './malta.ts';

const BOARDS: readonly Board[] = [malta].map((b) => BoardSchema.parse(b));

export function boardNames(): string[] {
  return BOARDS.map((b) => b.name);
}

export function getBoard(name: string): Board {
  const board = BOARDS.find((b) => b.name === name);
  if (!board) {
    throw badInput(`unknown board '${name}': use one of ${boardNames().join(', ')}`);
  }
  return board;
}

export { type Board } from './board.ts';

import { existsSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import type { BuildContext } from '../context.ts';
import { capture } from '../proc.ts';
import { qemuOf } from '../boards/board.ts';

/** The machine and tools a measurement ran on, for the results file. */
export interface MachineInfo {
  date: string;
  cpu: string;
  cores: number;
  memMiB: number;
  node: string;
  qemu: string;
  clang: string;
  gcc: string;
  binutils: string;
  kernelVersion: string;
  gitCommit: string;
}

function firstLine(cmd: string, args: string[]): string {
  try {
    return capture(cmd, args).split('\n')[0]?.trim() ?? '';
  } catch {
    return `(${cmd} not found)`;
  }
}

export function machineInfo(ctx: BuildContext): MachineInfo {
  const info = join(ctx.variantDir, 'build-info.json');
  const kernelVersion = existsSync(info)
    ? String((JSON.parse(readFileSync(info, 'utf8')) as { kernelVersion?: string }).kernelVersion ?? '?')
    : '?';
  let gitCommit = '?';
  try {
    gitCommit = capture('git', ['-C', ctx.repo, 'rev-parse', '--short', 'HEAD']).trim();
  } catch {
    /* not a git checkout */
  }
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model ?? '?',
    cores: cpus().length,
    memMiB: Math.round(totalmem() / 1048576),
    node: process.version,
    qemu: firstLine(qemuOf(ctx.board).binary, ['--version']),
    clang: firstLine('clang', ['--version']),
    gcc: firstLine(`${ctx.board.crossCompile}gcc`, ['--version']),
    binutils: firstLine(`${ctx.board.crossCompile}ld`, ['--version']),
    kernelVersion,
    gitCommit,
  };
}

import { mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import type { Board } from '../boards/index.ts';
import type { BuildContext, Toolchain } from '../context.ts';
import { ET, parseElf, PT } from '../elf/elf32.ts';
import { XipError } from '../errors.ts';
import { run } from '../proc.ts';
import type { Hasher } from '../stamp.ts';

/**
 * Target programs: what the kernel's ELF loader takes as a static program
 * for the board, and the one build of the freestanding ones (C with raw
 * system calls, no libc: the boot-test init, the stress programs) with the
 * toolchain of the build (clang + ld.lld, or the gcc cross compiler).
 */

/**
 * Why `bytes` is not a static program of this board (ELF32 ET_EXEC, EM_MIPS,
 * its byte order, a PT_LOAD, no PT_INTERP), or undefined when it is one.
 */
export function staticProgramProblem(bytes: Uint8Array, board: Board): string | undefined {
  let elf;
  try {
    elf = parseElf(bytes);
  } catch (err) {
    if (err instanceof XipError) return 'is not a well-formed MIPS ELF32 file';
    throw err;
  }
  if (elf.endian !== board.endian) return `is ${elf.endian}-endian, the board is ${board.endian}-endian`;
  if (elf.type !== ET.EXEC) return 'is not a MIPS executable (ET_EXEC, EM_MIPS)';
  if (elf.segments.some((s) => s.type === PT.INTERP)) return 'asks for an interpreter (PT_INTERP): it must be static';
  if (!elf.segments.some((s) => s.type === PT.LOAD)) return 'has no PT_LOAD segment';
  return undefined;
}

const COMMON_FLAGS = [
  '-Os',
  '-static',
  '-nostdlib',
  '-ffreestanding',
  '-fno-pic',
  '-mno-abicalls',
  '-G0',
  '-fno-asynchronous-unwind-tables',
  '-fno-unwind-tables',
  '-fno-stack-protector',
  '-fno-ident',
  '-ffunction-sections',
  '-fdata-sections',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wl,--build-id=none',
  '-Wl,--gc-sections',
];

/** Compiler and arguments that build a freestanding static program (C sources + a link script) into the unstripped `out`. */
export function freestandingCompileCommand(
  board: Board,
  toolchain: Toolchain,
  sources: readonly string[],
  lds: string,
  out: string,
): { cmd: string; args: string[] } {
  const flags = [...COMMON_FLAGS, ...board.cpuFlags, `-Wl,-T,${lds}`, '-o', out, ...sources];
  if (toolchain !== 'gcc') {
    return { cmd: 'clang', args: [`--target=${board.clangTarget}`, '-fuse-ld=lld', ...flags] };
  }
  return { cmd: `${board.crossCompile}gcc`, args: flags };
}

/** What a freestanding build depends on besides its sources and link script (for stamps): the toolchain and the board. */
export function hashToolchainAndBoard(h: Hasher, ctx: BuildContext): void {
  h.value('toolchain', ctx.toolchain);
  h.value('board', JSON.stringify(ctx.board));
}

export interface FreestandingProgram {
  /** What it is called in messages: 'init', 'stress child'. */
  what: string;
  sources: readonly string[];
  /** Link script: one PT_LOAD, no MIPS ABI-flags header (userspace/init.lds). */
  lds: string;
  /** The stripped program must stay under this many bytes. */
  sizeLimit?: number;
}

/**
 * Build a freestanding program: compile and link, strip, check its size and
 * that the kernel will load it (staticProgramProblem), then write it to
 * outPath atomically. Nothing is left behind when a step fails.
 */
export async function buildFreestanding(ctx: BuildContext, p: FreestandingProgram, outPath: string): Promise<void> {
  const dir = dirname(outPath);
  mkdirSync(dir, { recursive: true });
  const unstripped = join(dir, `.${basename(outPath)}.${process.pid}.full.tmp`);
  const stripped = join(dir, `.${basename(outPath)}.${process.pid}.tmp`);
  const shown = (f: string) => relative(ctx.repo, f);
  try {
    const cc = freestandingCompileCommand(ctx.board, ctx.toolchain, p.sources, p.lds, unstripped);
    await run(cc.cmd, cc.args, { what: `${p.what} build (${ctx.toolchain})` });
    await run(`${ctx.board.crossCompile}strip`, ['-s', '-o', stripped, unstripped], { what: `${p.what} strip` });
    const size = statSync(stripped).size;
    if (p.sizeLimit !== undefined && size >= p.sizeLimit) {
      throw new XipError(
        `${p.what} (${ctx.toolchain}) is ${size} bytes stripped; the limit is under ${p.sizeLimit} bytes (${p.sizeLimit / 1024} KiB): make ${p.sources.map(shown).join(', ')} smaller`,
      );
    }
    const why = staticProgramProblem(readFileSync(stripped), ctx.board);
    if (why) throw new XipError(`${p.what} (${ctx.toolchain}): the linked program ${why}; check ${shown(p.lds)}`);
    renameSync(stripped, outPath);
  } finally {
    rmSync(unstripped, { force: true });
    rmSync(stripped, { force: true });
  }
}

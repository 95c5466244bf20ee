import { mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Board } from '../boards/index.ts';
import type { BuildContext, Toolchain } from '../context.ts';
import { XipError } from '../errors.ts';
import { run } from '../proc.ts';

/**
 * Builds userspace/init.c, the freestanding PID 1 of the boot test, with the
 * toolchain of the build (clang + ld.lld, or the gcc cross compiler), links
 * it with userspace/init.lds (a single PT_LOAD, no MIPS ABI-flags header),
 * strips it and writes it atomically. The stripped program must stay under
 * 1 KiB.
 */
export const INIT_SIZE_LIMIT = 1024;

/** Inputs of the init build (for content stamps). */
export function initSources(repo: string): string[] {
  return [join(repo, 'userspace', 'init.c'), join(repo, 'userspace', 'init.lds')];
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

/** Compiler and arguments that build `src` into the unstripped `out`. */
export function initCompileCommand(
  board: Board,
  toolchain: Toolchain,
  repo: string,
  out: string,
): { cmd: string; args: string[] } {
  const [src, lds] = initSources(repo) as [string, string];
  return freestandingCompileCommand(board, toolchain, [src], lds, out);
}

/**
 * The same compile for any freestanding static target program (C sources +
 * a link script), e.g. the stress programs of src/userspace/stress.ts.
 */
export function freestandingCompileCommand(
  board: Board,
  toolchain: Toolchain,
  sources: readonly string[],
  lds: string,
  out: string,
): { cmd: string; args: string[] } {
  const flags = [...COMMON_FLAGS, ...board.cpuFlags, `-Wl,-T,${lds}`, '-o', out, ...sources];
  if (toolchain === 'clang') {
    return { cmd: 'clang', args: [`--target=${board.clangTarget}`, '-fuse-ld=lld', ...flags] };
  }
  return { cmd: `${board.crossCompile}gcc`, args: flags };
}

export async function buildInit(ctx: BuildContext, outPath: string): Promise<void> {
  const dir = dirname(outPath);
  mkdirSync(dir, { recursive: true });
  const unstripped = join(dir, `.${basename(outPath)}.${process.pid}.full.tmp`);
  const stripped = join(dir, `.${basename(outPath)}.${process.pid}.tmp`);
  try {
    const cc = initCompileCommand(ctx.board, ctx.toolchain, ctx.repo, unstripped);
    await run(cc.cmd, cc.args, { what: `init build (${ctx.toolchain})` });
    await run(`${ctx.board.crossCompile}strip`, ['-s', '-o', stripped, unstripped], { what: 'init strip' });
    const size = statSync(stripped).size;
    if (size >= INIT_SIZE_LIMIT) {
      throw new XipError(
        `init (${ctx.toolchain}) is ${size} bytes stripped; the limit is under ${INIT_SIZE_LIMIT} bytes (1 KiB): make userspace/init.c smaller`,
      );
    }
    checkElf(readFileSync(stripped), ctx);
    renameSync(stripped, outPath);
  } finally {
    rmSync(unstripped, { force: true });
    rmSync(stripped, { force: true });
  }
}

/** The kernel's ELF loader must accept it: ELF32 EXEC for this board's byte order, MIPS, with a PT_LOAD. */
function checkElf(b: Buffer, ctx: BuildContext): void {
  const bad = (why: string) => new XipError(`init (${ctx.toolchain}): the linked program ${why}; check userspace/init.lds`);
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) throw bad('is not an ELF file');
  const le = b[5] === 1;
  if (b[4] !== 1 || le !== (ctx.board.endian === 'little')) throw bad(`is not ELF32 ${ctx.board.endian}-endian`);
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  if (u16(16) !== 2 || u16(18) !== 8) throw bad('is not a MIPS executable (ET_EXEC, EM_MIPS)');
  const phoff = u32(28);
  const phentsize = u16(42);
  const phnum = u16(44);
  let loads = 0;
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 32 > b.length) throw bad('has program headers past its end');
    const type = u32(o);
    if (type === 3) throw bad('asks for an interpreter (PT_INTERP): it must be static');
    if (type === 1) loads += 1;
  }
  if (loads === 0) throw bad('has no PT_LOAD segment');
}

import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { kernelCmdline } from '../boards/flashmap.ts';
import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { run } from '../proc.ts';

/** Sources of the boot shim: part of every image stamp. */
export function shimSources(repo: string): string[] {
  return [join(repo, 'firmware', 'shim', 'shim.S'), join(repo, 'firmware', 'shim', 'shim.ld')];
}

/** Offset of the shim's device tree pointer (firmware/shim/shim.S): 0, or the tree it passes (UHI boot protocol). */
export const SHIM_DTB_OFFSET = 0x24;

export interface ShimBuild {
  elf: string;
  bin: string;
  bytes: Uint8Array;
}

/** A C string literal for the assembler's preprocessor. */
function cString(s: string): string {
  if (/["\\\n]/.test(s)) throw badInput(`board cmdline ${JSON.stringify(s)} contains a quote, backslash or newline: the shim cannot pass it; change the board's cmdline`);
  return `"${s}"`;
}

/**
 * Assemble and link the boot shim for this board with the chosen toolchain.
 * The jump target comes from the linked vmlinux (kernel_entry), never typed in.
 */
export async function buildShim(ctx: BuildContext, kernelEntry: number): Promise<ShimBuild> {
  const dir = join(ctx.variantDir, 'shim');
  mkdirSync(dir, { recursive: true });
  const [src, lds] = shimSources(ctx.repo) as [string, string];
  const obj = join(dir, 'shim.o');
  const elf = join(dir, 'shim.elf');
  const bin = join(dir, 'shim.bin');
  const log = join(dir, 'shim-build.log');
  const b = ctx.board;
  const flags = [
    ...(b.endian === 'little' ? ['-EL'] : ['-EB']),
    ...b.cpuFlags,
    '-mno-abicalls',
    '-fno-pic',
    `-DSHIM_CMDLINE=${cString(kernelCmdline(b))}`,
    '-c',
    '-o',
    obj,
    src,
  ];
  if (ctx.toolchain !== 'gcc') {
    await run('clang', [`--target=${b.clangTarget}`, ...flags], { log, what: 'boot shim (clang)' });
  } else {
    await run(`${b.crossCompile}gcc`, flags, { log, what: 'boot shim (gcc)' });
  }
  const entry = `0x${(kernelEntry >>> 0).toString(16)}`;
  await run(`${b.crossCompile}ld`, ['-T', lds, '--defsym', `kernel_entry=${entry}`, '-o', elf, obj], {
    log,
    what: 'boot shim link',
  });
  // objcopy writes a temporary file, never shim.bin itself: a failed or
  // interrupted objcopy must not leave half a shim for the next image; the
  // temporary file goes away whichever way this ends.
  const tmp = `${bin}.tmp`;
  try {
    await run(`${b.crossCompile}objcopy`, ['-O', 'binary', elf, tmp], { log, what: 'boot shim objcopy' });
    const bytes = readFileSync(tmp);
    writeFileAtomic(bin, bytes);
    return { elf, bin, bytes: new Uint8Array(bytes) };
  } finally {
    rmSync(tmp, { force: true });
  }
}

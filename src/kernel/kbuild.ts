import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { BuildContext } from '../context.ts';
import { run } from '../proc.ts';

/**
 * Invoking kbuild: always out of tree (O=ctx.kbuildDir), so one prepared
 * source tree serves every board, config, variant and toolchain.
 */
export function makeVars(ctx: BuildContext, srcTree: string): string[] {
  const vars = ['-C', srcTree, `O=${ctx.kbuildDir}`, `ARCH=${ctx.board.arch}`, `CROSS_COMPILE=${ctx.board.crossCompile}`];
  // clang: clang with GNU binutils; llvm: LLVM=1, clang with ld.lld, llvm-objcopy, llvm-nm, llvm-ar.
  if (ctx.toolchain === 'clang') vars.push('CC=clang');
  if (ctx.toolchain === 'llvm') vars.push('LLVM=1');
  return vars;
}

/** The make goals of a variant: vmlinux, plus the compressed vmlinuz for stock (the size baseline) or the flash image xipImage for xip. */
export function kernelTargets(ctx: BuildContext): string[] {
  return ctx.variant === 'stock' ? ['vmlinux', 'vmlinuz'] : ['vmlinux', 'xipImage'];
}

/** Files the kernel stage leaves behind. */
export function kernelOutputs(ctx: BuildContext): string[] {
  const out = [ctx.vmlinux, ctx.dotConfig];
  if (ctx.variant === 'stock') out.push(vmlinuzPath(ctx));
  else out.push(join(ctx.kbuildDir, 'arch', ctx.board.arch, 'boot', 'xipImage'));
  return out;
}

export function vmlinuzPath(ctx: BuildContext): string {
  // arch/mips/Makefile links the compressed image at the top of O=, not under arch/mips/boot.
  return join(ctx.kbuildDir, 'vmlinuz');
}

/** A kbuild progress line: "  CC      kernel/fork.o", "  LD      vmlinux". */
export function progressLine(line: string): string | undefined {
  const m = /^ {2}([A-Z][A-Z0-9_]*(?: \[[A-Z]\])?)\s+(\S.*)$/.exec(line);
  return m ? `${m[1]} ${m[2]}` : undefined;
}

export function jobs(): number {
  const fromEnv = Number(process.env.XIP_JOBS);
  return Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : Math.max(1, availableParallelism());
}

/**
 * The environment of a kernel build. KBUILD_BUILD_TIMESTAMP is pinned
 * (to SOURCE_DATE_EPOCH when set, else 1970-01-01 00:00:00 UTC) unless given: usr/
 * passes it to gen_init_cpio as the mtime of every initramfs entry, so the
 * embedded cpio (and the version banner) depend only on the inputs.
 */
export function kernelEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  if (env.KBUILD_BUILD_TIMESTAMP !== undefined && env.KBUILD_BUILD_TIMESTAMP !== '') return env;
  const epoch = env.SOURCE_DATE_EPOCH !== undefined && /^\d+$/.test(env.SOURCE_DATE_EPOCH) ? Number(env.SOURCE_DATE_EPOCH) : 0;
  // The banner shows the text as it is; usr/ converts it with date -d.
  const iso = new Date(epoch * 1000).toISOString();
  return { ...env, KBUILD_BUILD_TIMESTAMP: `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` };
}

/**
 * Run make for the kernel. Everything make prints goes to ctx.kernelLog;
 * onProgress gets the current kbuild step. A failure throws an XipError
 * naming the log with its last lines.
 */
export async function makeKernel(
  ctx: BuildContext,
  srcTree: string,
  onProgress?: (text: string) => void,
): Promise<void> {
  await run('make', [...makeVars(ctx, srcTree), `-j${jobs()}`, ...kernelTargets(ctx)], {
    log: ctx.kernelLog,
    env: kernelEnv(),
    what: `kernel build (${ctx.variant}, ${ctx.toolchain})`,
    tailLines: 40,
    onLine: (line) => {
      const p = progressLine(line);
      if (p) onProgress?.(p);
    },
  });
}

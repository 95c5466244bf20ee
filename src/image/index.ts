import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kseg0 } from '../boards/board.ts';
import type { BuildContext } from '../context.ts';
import { PF, readElf } from '../elf/elf32.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { assembleFlash, checkFits, checkXipImage, describeLayout, placeSegments, type Layout } from './layout.ts';
import { buildShim, shimSources } from './shim.ts';

export { formatLayout, flashBudget, flashBudgetLimit, swapWords, type Layout, type Region } from './layout.ts';
export { shimSources };

export interface ImageReport {
  image: string;
  size: number;
  kernelEntry: number;
  shimSize: number;
  /** The kernel's data is stored deflated (CONFIG_XIP_DEFLATED_DATA). */
  deflated: boolean;
  layout: Layout;
}

/** The kernel's own flash image (make xipImage), next to vmlinux. */
export function xipImagePath(ctx: BuildContext): string {
  return join(ctx.kbuildDir, 'arch', 'mips', 'boot', 'xipImage');
}

/**
 * Build the flash image of an XIP kernel: the boot shim, then the kernel's
 * xipImage at XIP_PHYS_ADDR, checked byte for byte against vmlinux's load
 * segments (or, with deflated data, against what its data inflates to),
 * pre-swapped for the board's loader. Written atomically.
 */
export async function buildImage(ctx: BuildContext): Promise<ImageReport> {
  if (ctx.variant !== 'xip') {
    throw badInput(`the ${ctx.variant} variant has no flash image: it boots with -kernel (use --variant xip)`);
  }
  const elf = readElf(ctx.vmlinux);
  const entrySym = elf.findSymbol('kernel_entry');
  if (!entrySym || entrySym.shndx === 0) throw badInput(`${ctx.vmlinux}: no kernel_entry symbol: not a MIPS kernel`);
  const placements = placeSegments(elf, ctx.board);
  const xipPath = xipImagePath(ctx);
  if (!existsSync(xipPath)) throw badInput(`${xipPath} is missing: the kernel was built without the xipImage target; run make kernel`);
  const kernel = checkXipImage(elf, placements, new Uint8Array(readFileSync(xipPath)), ctx.board);
  const flashBase = kseg0(ctx.board.flashPhys);
  const textEnd = placements.reduce((m, p) => {
    const exec = (p.segment.flags & PF.X) !== 0;
    return exec ? Math.max(m, (p.segment.vaddr + p.segment.memsz) >>> 0) : m;
  }, flashBase);
  const kernelOffset = ctx.board.xipPhys - ctx.board.flashPhys;
  const size = (kernelOffset + kernel.bytes.length + 3) & ~3;
  checkFits(size, textEnd, ctx.board);
  const shim = await buildShim(ctx, entrySym.value);
  const image = assembleFlash(shim.bytes, kernel.bytes, ctx.board);
  writeFileAtomic(ctx.imagePath, image);
  const deflatedEnd = kernel.deflated ? ctx.board.xipPhys + kernel.bytes.length : undefined;
  return {
    image: ctx.imagePath,
    size: image.length,
    kernelEntry: entrySym.value >>> 0,
    shimSize: shim.bytes.length,
    deflated: kernel.deflated,
    layout: describeLayout(elf, ctx.board, shim.bytes.length, image.length, deflatedEnd),
  };
}

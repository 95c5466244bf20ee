import { kseg0 } from '../boards/board.ts';
import type { BuildContext } from '../context.ts';
import { PF, readElf } from '../elf/elf32.ts';
import { badInput } from '../errors.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { assemble, checkFits, describeLayout, imageEnd, placeSegments, type Layout } from './layout.ts';
import { buildShim, shimSources } from './shim.ts';

export { formatLayout, flashBudget, flashBudgetLimit, swapWords, type Layout, type Region } from './layout.ts';
export { shimSources };

export interface ImageReport {
  image: string;
  size: number;
  kernelEntry: number;
  shimSize: number;
  layout: Layout;
}

/**
 * Build the flash image of an XIP kernel: the boot shim, then vmlinux's
 * segments at their load addresses, pre-swapped for the board's loader.
 * Written atomically to the variant's directory.
 */
export async function buildImage(ctx: BuildContext): Promise<ImageReport> {
  if (ctx.variant !== 'xip') {
    throw badInput(`the ${ctx.variant} variant has no flash image: it boots with -kernel (use --variant xip)`);
  }
  const elf = readElf(ctx.vmlinux);
  const entrySym = elf.findSymbol('kernel_entry');
  if (!entrySym || entrySym.shndx === 0) throw badInput(`${ctx.vmlinux}: no kernel_entry symbol: not a MIPS kernel`);
  const placements = placeSegments(elf, ctx.board);
  const size = imageEnd(placements);
  const flashBase = kseg0(ctx.board.flashPhys);
  const textEnd = placements.reduce((m, p) => {
    const exec = (p.segment.flags & PF.X) !== 0;
    return exec ? Math.max(m, (p.segment.vaddr + p.segment.memsz) >>> 0) : m;
  }, flashBase);
  checkFits(size, textEnd, ctx.board);
  const shim = await buildShim(ctx, entrySym.value);
  const image = assemble(elf, placements, shim.bytes, ctx.board);
  writeFileAtomic(ctx.imagePath, image);
  return {
    image: ctx.imagePath,
    size: image.length,
    kernelEntry: entrySym.value >>> 0,
    shimSize: shim.bytes.length,
    layout: describeLayout(elf, ctx.board, shim.bytes.length, image.length),
  };
}

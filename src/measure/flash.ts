import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import type { ImageReport } from '../image/index.ts';
import { readImageReport } from '../image/stage.ts';

/**
 * What the flash image holds, by part, against the board's budget: taken
 * from the image stage's own report (src/image/stage.ts), not recomputed.
 */
export interface FlashPart {
  name: string;
  bytes: number;
}

export interface FlashUse {
  /** Bytes of the chip in use (every region but the free ones). */
  imageBytes: number;
  budgetBytes: number;
  freeBytes: number;
  /** shim, text, rodata, init, initramfs, data image (in image order). */
  parts: FlashPart[];
}

/** Region names of the image report mapped to the parts the issue names. */
const PART_OF: Record<string, string> = {
  'boot shim': 'shim',
  'U-Boot': 'loader',
  'kernel text': 'text',
  'rodata + tables': 'rodata',
  'init code + tables': 'init',
  'init (rest)': 'init',
  initramfs: 'initramfs',
  'data image (to RAM)': 'data image',
  'data image (deflated)': 'data image',
};

export function flashUse(report: ImageReport): FlashUse {
  const parts: FlashPart[] = [];
  for (const r of report.layout.regions) {
    if (r.name === 'free') continue;
    const name = PART_OF[r.name] ?? r.name;
    const p = parts.find((x) => x.name === name);
    if (p) p.bytes += r.size;
    else parts.push({ name, bytes: r.size });
  }
  return {
    imageBytes: report.layout.used,
    budgetBytes: report.layout.budget,
    freeBytes: report.layout.budget - report.layout.used,
    parts,
  };
}

export function flashUseOf(ctx: BuildContext): FlashUse {
  const r = readImageReport(ctx);
  if (!r) throw badInput(`no image report for ${ctx.variantDir}: assemble the image first (xip --config ${ctx.config} image, or make)`);
  return flashUse(r);
}

import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BuildContext } from '../context.ts';
import { writeFileAtomic } from '../fsutil.ts';
import { runStage, type HashCache, type StageOutcome } from '../stamp.ts';
import { buildImage, vendorKernelPath, xipImagePath, type ImageReport } from './index.ts';
import { shimSources } from './shim.ts';
import { patchesOf, recipePath } from './uboot-build.ts';
import { ubootPin } from './uboot.ts';
import { userspacePaths } from '../context.ts';
import { rootfsImagePath } from '../userspace/flashroot.ts';
import { getProfile } from '../userspace/profiles.ts';
import { settingsDefaultsPath } from '../settings/initial.ts';

/** Where the image build leaves its report (layout map, sizes), read back when up to date. */
export function imageReportPath(ctx: BuildContext): string {
  return join(ctx.variantDir, 'image-report.json');
}

export function readImageReport(ctx: BuildContext): ImageReport | undefined {
  const p = imageReportPath(ctx);
  return existsSync(p) ? (JSON.parse(readFileSync(p, 'utf8')) as ImageReport) : undefined;
}

/**
 * Stage 4 (xip only): the whole flash image. Inputs: vmlinux, xipImage, the
 * shim sources, the board data with its flash map, the U-Boot recipe and
 * patches or the stock pin, the toolchain (and, as in every stamp, the
 * toolkit's code).
 * The image is then published as build/out/xip-bios.bin, also when the
 * stage was up to date (another variant may have been published since).
 */
export async function imageStage(
  ctx: BuildContext,
  o: { force?: boolean; cache?: HashCache; stampPath: string },
): Promise<{ outcome: StageOutcome; report: ImageReport }> {
  const outcome = await runStage({
    name: `image ${basename(ctx.variantDir)}`,
    stampPath: o.stampPath,
    cache: o.cache,
    force: o.force,
    inputs: (h) => {
      h.file('vmlinux', ctx.vmlinux);
      // What goes into flash: deflate-xip-data.sh or KGZIP may change it with vmlinux unchanged.
      h.file('xipImage', xipImagePath(ctx));
      for (const f of shimSources(ctx.repo)) h.file(f.slice(ctx.repo.length + 1), f);
      h.value('board', JSON.stringify(ctx.board));
      // The source-built U-Boot: its recipe and patches (its cache is keyed by them too).
      if (ctx.board.loader === 'uboot') for (const f of [recipePath(ctx.repo, ctx.board), ...patchesOf(ctx.repo)]) h.file(f.slice(ctx.repo.length + 1), f);
      // The stock binary: the pin of this host's Debian release.
      if (ctx.board.loader === 'uboot-stock') h.value('uboot-stock', JSON.stringify(ubootPin(ctx.board)));
      h.value('toolchain', ctx.toolchain);
      // A root in flash: its cramfs, and the kernel build's device tree the shim's is made from.
      if (getProfile(ctx.userspace).flashRootfs) {
        h.file('rootfs.cramfs', rootfsImagePath(userspacePaths(ctx).dir));
        // Its settings partition's first contents.
        h.file('settings.defaults', settingsDefaultsPath(ctx.repo));
        if (ctx.settingsFile !== undefined) h.file('settings', ctx.settingsFile);
        if (ctx.board.deviceTree) h.file('board.dtb', join(ctx.kbuildDir, ctx.board.deviceTree.dtb));
      }
    },
    outputs: [ctx.imagePath, imageReportPath(ctx), ...(ctx.board.loader === 'vendor' ? [vendorKernelPath(ctx)] : [])],
    run: async () => {
      const report = await buildImage(ctx);
      writeFileAtomic(imageReportPath(ctx), `${JSON.stringify(report, null, 2)}\n`);
      return `${report.size}-byte flash image (${report.loader}), ${report.layout.used} bytes used (${((report.layout.used / report.layout.budget) * 100).toFixed(1)}%)`;
    },
  });
  publishImage(ctx);
  const report = readImageReport(ctx);
  if (!report) throw new Error(`image stage left no report at ${imageReportPath(ctx)}`);
  return { outcome, report };
}

/** Copy the variant's image to build/out/xip-bios.bin (a real board's kernel partition contents to build/out/<board>-kernel-partition.bin) unless it is already there. */
export function publishImage(ctx: BuildContext): void {
  const img = readFileSync(ctx.board.loader === 'vendor' ? vendorKernelPath(ctx) : ctx.imagePath);
  if (existsSync(ctx.publishedImage) && readFileSync(ctx.publishedImage).equals(img)) return;
  writeFileAtomic(ctx.publishedImage, img);
}

import { basename, join } from 'node:path';
import type { BuildContext } from '../context.ts';
import { minimalInitramfs } from './initramfs.ts';
import { INIT_MARKERS } from './markers.ts';
import type { BootExpectation, UserspaceBuild } from './types.ts';
import { buildFreestanding, hashToolchainAndBoard } from './program.ts';

/**
 * Builds userspace/init.c, the freestanding PID 1 of the boot test, with the
 * toolchain of the build, linked with userspace/init.lds (a single PT_LOAD,
 * no MIPS ABI-flags header), stripped and written atomically
 * (src/userspace/program.ts). The stripped program must stay under 1 KiB.
 */
export const INIT_SIZE_LIMIT = 1024;

/** Inputs of the init build (for content stamps). */
export function initSources(repo: string): string[] {
  return [join(repo, 'userspace', 'init.c'), join(repo, 'userspace', 'init.lds')];
}

export async function buildInit(ctx: BuildContext, outPath: string): Promise<void> {
  const [src, lds] = initSources(ctx.repo) as [string, string];
  await buildFreestanding(ctx, { what: 'init', sources: [src], lds, sizeLimit: INIT_SIZE_LIMIT }, outPath);
}

/** The freestanding PID 1 of userspace/init.c: prints its markers and powers off. */
export const initBuild: UserspaceBuild = {
  name: 'init',
  description: 'freestanding PID 1 (userspace/init.c): markers, then power-off',
  inputs(h, ctx) {
    hashToolchainAndBoard(h, ctx);
    for (const f of initSources(ctx.repo)) h.file(basename(f), f);
  },
  async build(ctx, dir) {
    const init = join(dir, 'init');
    await buildInit(ctx, init);
    return minimalInitramfs(init);
  },
};

export const initBoot: BootExpectation = { markers: INIT_MARKERS };

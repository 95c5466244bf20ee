import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { initBoot, initBuild } from './init.ts';
import type { BootExpectation, UserspaceBuild } from './types.ts';
import { rootfsBoot, rootfsBuild, routerBoot, routerBuild, routerCramfsBuild, routerProfiledBuild, routerUnsafeBuild, routerXipBuild } from './router.ts';
import { stressBoot, stressBuild } from './stress.ts';

export type { BootExpectation, BootSession, UserspaceBuild } from './types.ts';

/** A profile's build and boot under one name (for callers that want both, e.g. a min-RAM search's timeout). */
export type UserspaceProfile = UserspaceBuild & BootExpectation;

/**
 * Every profile, by name: how its userspace is built, and what a boot of it
 * expects (types.ts). A new profile is one file and one entry here.
 */
const PROFILES = new Map<string, { build: UserspaceBuild; boot: BootExpectation }>(
  [
    { build: initBuild, boot: initBoot },
    { build: stressBuild, boot: stressBoot },
    { build: routerBuild, boot: routerBoot },
    { build: rootfsBuild, boot: rootfsBoot },
    { build: routerXipBuild, boot: routerBoot },
    { build: routerCramfsBuild, boot: routerBoot },
    { build: routerProfiledBuild, boot: routerBoot },
    { build: routerUnsafeBuild, boot: routerBoot },
  ].map((p) => [p.build.name, p]),
);

export function profileNames(): string[] {
  return [...PROFILES.keys()];
}

function entry(name: string): { build: UserspaceBuild; boot: BootExpectation } {
  const p = PROFILES.get(name);
  if (!p) throw badInput(`unknown userspace '${name}': use one of ${profileNames().join(', ')} (USERSPACE=...)`);
  return p;
}

/** What builds the userspace of this name (the pipeline's userspace stage). */
export function userspaceBuild(name: string): UserspaceBuild {
  return entry(name).build;
}

/** What a boot of this userspace expects (the pipeline's boot). */
export function bootExpectation(name: string): BootExpectation {
  return entry(name).boot;
}

export function getProfile(name: string): UserspaceProfile {
  const p = entry(name);
  return { ...p.build, ...p.boot };
}

/** A root in flash is found through the device tree the boot shim passes: refused with another loader, before any work. */
export function checkFlashRootLoader(ctx: BuildContext): void {
  if (getProfile(ctx.userspace).flashRootfs && ctx.board.loader !== 'shim') {
    throw badInput(`userspace '${ctx.userspace}' keeps its root in flash, which the kernel finds in the device tree the boot shim passes: use LOADER=shim (U-Boot would have to pass it with bootm; not done yet)`);
  }
}

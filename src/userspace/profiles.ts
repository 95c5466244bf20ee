import { join } from 'node:path';
import type { Board } from '../boards/index.ts';
import type { BuildContext } from '../context.ts';
import { badInput } from '../errors.ts';
import { DEFAULT_MARKERS } from '../qemu/markers.ts';
import type { Hasher } from '../stamp.ts';
import { buildInit } from './init.ts';
import { minimalInitramfs, type InitramfsEntry } from './initramfs.ts';
import { stressProfile } from './stress.ts';
import { rootfsProfile, routerProfile } from './router.ts';

/**
 * The host side of one boot, for a userspace that needs one: extra QEMU
 * arguments (a NIC with a port forward), the console lines as they come,
 * and a close when QEMU has ended.
 */
export interface BootSession {
  extraArgs: string[];
  onLine(line: string): void;
  close(): void;
}

/**
 * A userspace profile: what goes into the initramfs embedded in the kernel,
 * and what a boot must print to count as a success. The kernel is linked
 * with its initramfs, so each profile gets its own build directory
 * (see context.ts); the default profile of a config keeps the plain name.
 */
export interface UserspaceProfile {
  name: string;
  description: string;
  /** Every input of the build but the toolkit's code (in every stamp already), for the userspace stage's stamp. */
  inputs(h: Hasher, ctx: BuildContext): void;
  /** Build what the initramfs needs under dir; return its entries. */
  build(ctx: BuildContext, dir: string): Promise<InitramfsEntry[]>;
  /** Console lines a boot must show, in order. */
  markers: readonly string[];
  /** How long a boot may take before it counts as a hang (ms). */
  bootTimeoutMs?: number;
  /** What a boot needs from the host (the router: a NIC, and a request that powers it off). */
  bootSession?(board: Board): Promise<BootSession>;
}

/** The freestanding PID 1 of userspace/init.c: prints the markers and powers off. */
export const initProfile: UserspaceProfile = {
  name: 'init',
  description: 'freestanding PID 1 (userspace/init.c): markers, then power-off',
  inputs(h, ctx) {
    h.value('toolchain', ctx.toolchain);
    h.value('board', JSON.stringify(ctx.board));
    h.file('init.c', join(ctx.repo, 'userspace', 'init.c'));
    h.file('init.lds', join(ctx.repo, 'userspace', 'init.lds'));
  },
  async build(ctx, dir) {
    const init = join(dir, 'init');
    await buildInit(ctx, init);
    return minimalInitramfs(init);
  },
  markers: DEFAULT_MARKERS,
};

/** Every profile, by name. A new profile is one file and one entry here. */
const PROFILES = new Map<string, UserspaceProfile>([initProfile, stressProfile, routerProfile, rootfsProfile].map((p) => [p.name, p]));

export function profileNames(): string[] {
  return [...PROFILES.keys()];
}

export function getProfile(name: string): UserspaceProfile {
  const p = PROFILES.get(name);
  if (!p) throw badInput(`unknown userspace '${name}': use one of ${profileNames().join(', ')} (USERSPACE=...)`);
  return p;
}

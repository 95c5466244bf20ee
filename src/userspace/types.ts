import type { BuildContext } from '../context.ts';
import type { Hasher } from '../stamp.ts';
import type { FlashRootfs } from './flashroot.ts';
import type { InitramfsEntry } from './initramfs.ts';

/**
 * A userspace profile is two things under one name (registry:
 * profiles.ts): what builds the initramfs embedded in the kernel, and what
 * a boot of it must show and needs from the host. The build side knows
 * nothing of QEMU; the boot side is plain data (markers, a timeout) and an
 * optional host-side session, which the pipeline hands to the QEMU runner.
 */

/**
 * What builds a userspace: the initramfs embedded in the kernel. The kernel
 * is linked with its initramfs, so each profile gets its own build directory
 * (see context.ts); the default profile of a config keeps the plain name.
 */
export interface UserspaceBuild {
  name: string;
  description: string;
  /** Every input of the build but the toolkit's code (in every stamp already), for the userspace stage's stamp. */
  inputs(h: Hasher, ctx: BuildContext): void;
  /**
   * A root filesystem in flash (cramfs, src/userspace/flashroot.ts): build()
   * then also writes rootfsImagePath(dir), and the entries it returns are
   * only what the kernel needs before it mounts that root.
   */
  flashRootfs?: FlashRootfs;
  /** Kernel options this profile sets on top of the root-in-flash ones (a control build). */
  kconfig?: string;
  /** Build what the initramfs needs under dir; return its entries. */
  build(ctx: BuildContext, dir: string): Promise<InitramfsEntry[]>;
}

/**
 * The host side of one boot, for a userspace that needs one: extra QEMU
 * arguments (a NIC with a port forward), the console lines as the runner
 * streams them, and a close when QEMU has ended, which resolves once the
 * session's own work (requests still in flight) is over.
 */
export interface BootSession {
  extraArgs: string[];
  onLine(line: string): void;
  close(): Promise<void>;
}

/** What a boot of a userspace expects. */
export interface BootExpectation {
  /** Console lines a boot must show, in order. */
  markers: readonly string[];
  /** How long a boot may take before it counts as a hang (ms; default: the runner's). */
  bootTimeoutMs?: number;
  /** What a boot needs from the host (the router: a NIC, and a request that powers it off). */
  bootSession?(ctx: BuildContext): Promise<BootSession>;
}

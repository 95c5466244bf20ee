import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBoard, type Board, type Loader } from './boards/index.ts';
import { readFlashMap } from './boards/flashmap.ts';
import { defaultLoader } from './boards/board.ts';
import { badInput } from './errors.ts';
import { sha256 } from './fsutil.ts';

export const VARIANTS = ['xip', 'stock'] as const;
export const TOOLCHAINS = ['clang', 'gcc', 'llvm'] as const;
export type Variant = (typeof VARIANTS)[number];
export type Toolchain = (typeof TOOLCHAINS)[number];

/** What a build is when nothing is said: the CLI shows these as its defaults. */
export const DEFAULTS = { board: 'malta', variant: 'xip', toolchain: 'clang', loader: 'shim' } as const satisfies {
  board: string;
  variant: Variant;
  toolchain: Toolchain;
  loader: Loader;
};

/** Root of this repository (the folder holding package.json). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Where everything of one build lives. One prepared kernel source tree under
 * build/src serves every board, config, variant and toolchain; each of those
 * combinations gets its own directory with an out-of-tree (O=) kernel build.
 */
export interface BuildContext {
  repo: string;
  /** SETTINGS: the user's initial settings for the image (absolute), if given. */
  settingsFile?: string;
  buildDir: string;
  board: Board;
  /** defconfig file name, e.g. xip_qemu_malta_defconfig (from kernel/configs/). */
  config: string;
  variant: Variant;
  toolchain: Toolchain;
  /** What boots the kernel (board.loader): the shim or U-Boot. */
  loader: Loader;
  /** Userspace profile in the initramfs (src/userspace/profiles.ts). */
  userspace: string;
  /** Staged rootfs directory (LWRT_ROOTFS) embedded by the 'rootfs' profile, absolute. */
  rootfs?: string;
  /** build/<board>/<config>/<variant>-<toolchain>[-<userspace>, unless it is the config's default][-uboot][-map-<hash of a --flash-map>] */
  variantDir: string;
  /** O= directory of the kernel build. */
  kbuildDir: string;
  vmlinux: string;
  dotConfig: string;
  /** Flash image of this variant (xip only). */
  imagePath: string;
  /** The published image of the last `xip image`: build/out/xip-bios.bin; a real board's kernel partition contents: build/out/<board>-kernel-partition.bin */
  publishedImage: string;
  bootLog: string;
  /** Make output of the kernel build. */
  kernelLog: string;
}

export interface ContextOptions {
  board?: string;
  config?: string;
  variant?: string;
  toolchain?: string;
  loader?: string;
  /** A flash map file (JSON partitions) instead of the board's map for the loader. */
  flashMap?: string;
  userspace?: string;
  /** LWRT_ROOTFS: a staged rootfs; selects the router config and the 'rootfs' profile unless they are given. */
  rootfs?: string;
  /** SETTINGS: key=value lines the image's settings partition starts with, over userspace/lwrt/settings.defaults. */
  settings?: string;
  buildDir?: string;
}

/** The defconfig file name: `xip_qemu_malta` and `xip_qemu_malta_defconfig` both name kernel/configs/xip_qemu_malta_defconfig. */
export function defconfigName(config: string): string {
  return config.endsWith('_defconfig') ? config : `${config}_defconfig`;
}

/** The userspace a config gets unless told otherwise: the router config runs the router. */
export function defaultUserspace(board: Board, config: string): string {
  return board.defconfigs.router !== undefined && config === board.defconfigs.router ? 'router' : 'init';
}

/** The board's router defconfig, for the commands that build the router whatever CONFIG says (profile, measure-rootfs). */
export function routerConfig(board: Pick<Board, 'name' | 'defconfigs'>): string {
  if (board.defconfigs.router === undefined) throw badInput(`board ${board.name} has no router defconfig (defconfigs.router): the router cannot be built for it`);
  return board.defconfigs.router;
}

const isOneOf = <T extends string>(values: readonly T[], v: string): v is T => (values as readonly string[]).includes(v);

/**
 * The build context of these options. The xip command has checked its
 * options already (commander: choices, parsers); the checks here are for
 * the callers that pass strings of their own (measure, bench, tests).
 */
export function makeContext(opts: ContextOptions = {}): BuildContext {
  const mapFile = opts.flashMap !== undefined && opts.flashMap !== '' ? resolve(opts.flashMap) : undefined;
  const custom = mapFile !== undefined ? readFlashMap(mapFile) : undefined;
  const board = getBoard(opts.board ?? DEFAULTS.board, opts.loader, custom, mapFile);
  const variant = opts.variant ?? DEFAULTS.variant;
  if (!isOneOf(VARIANTS, variant)) {
    throw badInput(`unknown variant '${variant}': use ${VARIANTS.join(' or ')}`);
  }
  const toolchain = opts.toolchain ?? DEFAULTS.toolchain;
  if (!isOneOf(TOOLCHAINS, toolchain)) {
    throw badInput(`unknown toolchain '${toolchain}': use ${TOOLCHAINS.join(', ')} (TOOLCHAIN=gcc)`);
  }
  const rootfs = opts.rootfs !== undefined && opts.rootfs !== '' ? resolve(opts.rootfs) : undefined;
  const config = defconfigName(opts.config ?? (rootfs !== undefined ? (board.defconfigs.router ?? board.defconfigs.minimal) : board.defconfigs.minimal));
  const buildDir = resolve(opts.buildDir ?? join(REPO_ROOT, 'build'));
  const userspace = opts.userspace ?? (rootfs !== undefined ? 'rootfs' : defaultUserspace(board, config));
  if (rootfs !== undefined && userspace !== 'rootfs') {
    throw badInput(`LWRT_ROOTFS is embedded by the 'rootfs' userspace, not '${userspace}': drop USERSPACE=${userspace} or LWRT_ROOTFS`);
  }
  if (!/^[a-z0-9_-]+$/.test(userspace)) {
    throw badInput(`userspace '${userspace}': give a profile name (lower-case letters, digits, - and _)`);
  }
  const suffix = (userspace === defaultUserspace(board, config) ? '' : `-${userspace}`) + (board.loader === defaultLoader(board) ? '' : `-${board.loader}`) + (custom ? `-map-${sha256(JSON.stringify(custom)).slice(0, 8)}` : '');
  const variantDir = join(buildDir, board.name, config.replace(/_defconfig$/, ''), `${variant}-${toolchain}${suffix}`);
  const kbuildDir = join(variantDir, 'kbuild');
  return {
    repo: REPO_ROOT,
    buildDir,
    board,
    config,
    variant,
    toolchain,
    loader: board.loader,
    userspace,
    rootfs,
    settingsFile: opts.settings !== undefined && opts.settings !== '' ? resolve(opts.settings) : undefined,
    variantDir,
    kbuildDir,
    vmlinux: join(kbuildDir, 'vmlinux'),
    dotConfig: join(kbuildDir, '.config'),
    // A real board's chip image leaves its loader and calibration erased: only verify reads it (chip-check.bin).
    imagePath: join(variantDir, board.loader === 'vendor' ? 'chip-check.bin' : 'xip-bios.bin'),
    publishedImage: join(buildDir, 'out', board.loader === 'vendor' ? `${board.name}-kernel-partition.bin` : 'xip-bios.bin'),
    bootLog: join(variantDir, 'boot.log'),
    kernelLog: join(variantDir, 'kernel-build.log'),
  };
}

export function defconfigPath(ctx: BuildContext): string {
  const p = join(ctx.repo, 'kernel', 'configs', ctx.config);
  if (!existsSync(p)) {
    throw badInput(`defconfig '${ctx.config}' not found in kernel/configs/: pick one of the files there (CONFIG=...)`);
  }
  return p;
}

/** Where a build's userspace stage works: PID 1, the initramfs list, a flash root filesystem. */
export function userspacePaths(ctx: BuildContext) {
  const dir = join(ctx.variantDir, 'userspace');
  return { dir, init: join(dir, 'init'), list: join(dir, 'initramfs.list') };
}

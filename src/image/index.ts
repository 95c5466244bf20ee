import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { kseg0, partitionOf, type Board, type Partition } from '../boards/board.ts';
import { kernelCmdline, kernelPartition, ubootKernelAddress, withRootfsPartition } from '../boards/flashmap.ts';
import { xipDeviceTree } from '../boards/xipdtb.ts';
import { userspacePaths, type BuildContext } from '../context.ts';
import { FLASH_ROOT_CMDLINE, ROOTFS_PARTITION, rootfsImagePath } from '../userspace/flashroot.ts';
import { initialSettings } from '../settings/initial.ts';
import { checkFlashRootLoader, getProfile } from '../userspace/profiles.ts';
import { PF, readElf } from '../elf/elf32.ts';
import { badInput } from '../errors.ts';
import { sha256, writeFileAtomic } from '../fsutil.ts';
import { hex } from '../text.ts';
import { assembleFlash, checkFits, checkXipImage, describeLayout, placeSegments, type Layout, type PartitionContent } from './layout.ts';
import { buildShim, SHIM_DTB_OFFSET, shimSources } from './shim.ts';
import { fetchUboot } from './uboot.ts';
import { buildUboot } from './uboot-build.ts';
import { ubootEnv, uImageHeader } from './uboot-formats.ts';
import { vendorKernel, type VendorKernel } from './vendor.ts';

export { formatLayout, flashBudget, swapWords, type Layout, type Region } from './layout.ts';
export { shimSources };

export interface ImageReport {
  image: string;
  /** Bytes of the image file: the whole chip. */
  size: number;
  loader: BuildContext['board']['loader'];
  partitions: Partition[];
  kernelEntry: number;
  /** Bytes of the loader (the shim, or U-Boot's u-boot.bin). */
  loaderBytes: number;
  /** The U-Boot the image holds: built from Debian's source (loader uboot) or the stock package (uboot-stock). */
  uboot?: { from: 'source' | 'stock'; package: string; version: string; sha256: string; bin: string };
  /** The saved U-Boot environment written to its partition (loader uboot). */
  ubootEnv?: Record<string, string>;
  /** The XIP uImage header in front of the kernel (loader uboot): bootm's load and entry addresses. */
  uimage?: { name: string; load: number; entry: number; dataBytes: number };
  /**
   * A real board's own loader (loader vendor): the file to write to the
   * kernel partition (the chip image beside it leaves the board's loader,
   * environment and calibration erased, for verify only), the command that
   * boots it, and TP-Link's header when the loader needs one.
   */
  vendor?: { loader: string; kernelFile: string; partition: string; offset: number; bytes: number; bootcmd: string; tplink?: VendorKernel['tplink'] };
  /** The device tree the boot shim passes (a root filesystem in flash): where, how big, its bootargs. */
  deviceTree?: { address: number; bytes: number; bootargs: string };
  /** The root filesystem in flash (cramfs) and its partition. */
  rootfs?: { partition: string; offset: number; bytes: number };
  /** The settings partition's first contents (keys only: the admin token is a secret), when the image has them. */
  settings?: { partition: string; offset: number; keys: string[] };
  /** The kernel's data is stored deflated (CONFIG_XIP_DEFLATED_DATA). */
  deflated: boolean;
  layout: Layout;
}

/**
 * The environment the image saves for U-Boot: the kernel command line
 * (with the flash map as mtdparts), bootm of the kernel partition's KSEG0
 * address, the board's boot delay.
 */
export function defaultUbootEnv(board: Board): Record<string, string> {
  const kernel = ubootKernelAddress(board);
  return {
    baudrate: '115200',
    bootargs: kernelCmdline(board),
    bootcmd: `bootm 0x${kernel.toString(16)}`,
    bootdelay: String(board.uboot?.bootdelay ?? 1),
  };
}

/** The kernel's own flash image (make xipImage), next to vmlinux. */
export function xipImagePath(ctx: BuildContext): string {
  return join(ctx.kbuildDir, 'arch', 'mips', 'boot', 'xipImage');
}

/** A real board's kernel partition contents (loader vendor): the file a user writes there. */
export function vendorKernelPath(ctx: BuildContext): string {
  return join(ctx.variantDir, 'kernel-partition.bin');
}

/** The uImage name of a build: what U-Boot's bootm and mkimage -l print. */
export function uImageName(ctx: BuildContext): string {
  return `XIP ${ctx.config.replace(/_defconfig$/, '')}`.slice(0, 31);
}

/**
 * The device tree the shim passes when the root is in flash: the one the
 * kernel build made for the board, with the command line (the board's and
 * the root's), the chip the kernel executes from disabled, and the root's
 * partition as an mtd-rom map.
 */
function rootfsDeviceTree(ctx: BuildContext, board: Board): { blob: Uint8Array; bootargs: string } {
  const dt = board.deviceTree;
  if (!dt) throw badInput(`board ${board.name} has no deviceTree entry: a root filesystem in flash needs one (see src/boards/malta.ts)`);
  const base = join(ctx.kbuildDir, dt.dtb);
  if (!existsSync(base)) throw badInput(`${base} is missing: the kernel build made no device tree for ${board.name}; run make kernel`);
  const root = partitionOf(board.partitions, 'rootfs')!;
  // The chip's CFI node is disabled and the root has its own map: no mtdparts= (MTD_CMDLINE_PARTS is off too).
  const bootargs = `${board.cmdline} ${FLASH_ROOT_CMDLINE}`;
  // physmap maps a power-of-two window (it rounds a region's size down to one): the map starts at the root and
  // spans the next power of two; what follows the root in it is free flash, read-only.
  const window = 2 ** Math.ceil(Math.log2(root.size));
  if (root.offset + window > board.flashSize) {
    throw badInput(`the root's read-only map must be a power of two (physmap): ${window} bytes from ${hex(root.offset, 6)} pass the end of the ${board.flashSize}-byte chip; place the rootfs partition lower or make the root smaller`);
  }
  const over = board.partitions.find((p) => p.content !== 'rootfs' && p.content !== 'free' && p.offset < root.offset + window && p.offset + p.size > root.offset);
  if (over) {
    throw badInput(`the root's read-only map (${window} bytes from ${hex(root.offset, 6)}, a power of two for physmap) covers partition '${over.name}': leave free flash after the rootfs partition up to that size (a smaller kernel or root; for the router, TOOLCHAIN=gcc builds the smaller kernel)`);
  }
  // The settings partition: a CFI map of its own, written by the router (docs/settings.md).
  const settings = partitionOf(board.partitions, 'settings');
  if (settings && (settings.size & (settings.size - 1)) !== 0) {
    throw badInput(`settings partition '${settings.name}' is ${settings.size} bytes: physmap maps a power of two, so make it one (e.g. two 64 KiB sectors)`);
  }
  const blob = xipDeviceTree(new Uint8Array(readFileSync(base)), {
    bootargs,
    flash: { nodePath: dt.flashNode, base: board.flashPhys, bankWidth: dt.bankWidth },
    rom: { name: 'xip-rom', offset: root.offset, size: window, partitions: [{ label: ROOTFS_PARTITION, offset: 0, size: root.size }] },
    cfi: settings ? { name: 'xip-settings', offset: settings.offset, size: settings.size, partitions: [{ label: settings.name, offset: 0, size: settings.size }] } : undefined,
  });
  return { blob, bootargs };
}

/**
 * Build the flash image of an XIP kernel, partition by partition of the
 * board's flash map: the loader (the boot shim, U-Boot built from Debian's
 * source with its saved environment, or Debian's stock U-Boot binary),
 * the kernel's xipImage at XIP_PHYS_ADDR (behind a legacy uImage header
 * for U-Boot's bootm), checked byte for byte against vmlinux's load
 * segments (or, with deflated data, against what its data inflates to),
 * erased flash elsewhere, pre-swapped for the board's loader. Written
 * atomically.
 */
export async function buildImage(ctx: BuildContext): Promise<ImageReport> {
  if (ctx.variant !== 'xip') {
    throw badInput(`the ${ctx.variant} variant has no flash image: it boots with -kernel (use --variant xip)`);
  }
  let board = ctx.board;
  const elf = readElf(ctx.vmlinux);
  const entrySym = elf.findSymbol('kernel_entry');
  if (!entrySym || entrySym.shndx === 0) throw badInput(`${ctx.vmlinux}: no kernel_entry symbol: not a MIPS kernel`);
  const placements = placeSegments(elf, board);
  const xipPath = xipImagePath(ctx);
  if (!existsSync(xipPath)) throw badInput(`${xipPath} is missing: the kernel was built without the xipImage target; run make kernel`);
  const kernel = checkXipImage(elf, placements, new Uint8Array(readFileSync(xipPath)), board);
  const textEnd = placements.reduce((m, p) => {
    const exec = (p.segment.flags & PF.X) !== 0;
    return exec ? Math.max(m, (p.segment.vaddr + p.segment.memsz) >>> 0) : m;
  }, kseg0(board.flashPhys));
  checkFits(kernel.bytes.length, textEnd, board);
  const flashRoot = getProfile(ctx.userspace).flashRootfs;
  let rootfsBytes: Uint8Array | undefined;
  if (flashRoot) {
    checkFlashRootLoader(ctx);
    const fsPath = rootfsImagePath(userspacePaths(ctx).dir);
    if (!existsSync(fsPath)) throw badInput(`${fsPath} is missing: build the userspace first (xip --userspace ${ctx.userspace} build)`);
    rootfsBytes = new Uint8Array(readFileSync(fsPath));
    board = { ...board, partitions: withRootfsPartition(board, kernel.bytes.length, rootfsBytes.length) };
  }
  const loaderPart = partitionOf(board.partitions, 'loader')!;
  const kernelPart = kernelPartition(board);
  const contents: PartitionContent[] = [];
  let uboot: ImageReport['uboot'];
  let uimage: ImageReport['uimage'];
  let env: Record<string, string> | undefined;
  let kernelBytes: Uint8Array = kernel.bytes;
  let deviceTree: ImageReport['deviceTree'];
  let vendorInfo: ImageReport['vendor'];
  if (board.loader === 'shim') {
    const shim = await buildShim(ctx, entrySym.value);
    let loaderBytes = shim.bytes;
    if (rootfsBytes) {
      const dt = rootfsDeviceTree(ctx, board);
      // The tree follows the shim, 8-byte aligned; the shim's word at 0x24 points at it (KSEG0).
      const at = Math.ceil(shim.bytes.length / 8) * 8;
      if (at + dt.blob.length > loaderPart.size) {
        throw badInput(`the boot shim (${shim.bytes.length} bytes) and the device tree it passes (${dt.blob.length} bytes) do not fit partition '${loaderPart.name}' (${loaderPart.size} bytes): give the loader a larger partition (FLASH_MAP)`);
      }
      loaderBytes = new Uint8Array(at + dt.blob.length);
      loaderBytes.set(shim.bytes);
      loaderBytes.set(dt.blob, at);
      const address = kseg0(board.flashPhys + loaderPart.offset + at);
      new DataView(loaderBytes.buffer).setUint32(SHIM_DTB_OFFSET, address, board.endian === 'little');
      deviceTree = { address, bytes: dt.blob.length, bootargs: dt.bootargs };
    }
    contents.push({ partition: loaderPart, bytes: loaderBytes });
  } else if (board.loader === 'vendor') {
    // The board's own loader, environment and calibration stay on the board: the chip image leaves them erased.
    const vk = vendorKernel(board, kernel.bytes, entrySym.value >>> 0, uImageName(ctx));
    kernelBytes = vk.bytes;
    uimage = vk.uimage;
    vendorInfo = {
      loader: board.vendor!.name,
      kernelFile: vendorKernelPath(ctx),
      partition: kernelPart.name,
      offset: kernelPart.offset,
      bytes: vk.bytes.length,
      bootcmd: `bootm 0x${board.vendor!.bootm.toString(16)}`,
      tplink: vk.tplink,
    };
  } else {
    let bin: string;
    if (board.loader === 'uboot') {
      const ub = await buildUboot(ctx.repo, board, ctx.buildDir);
      bin = ub.bin;
      uboot = { from: 'source', package: 'u-boot', version: ub.version, sha256: sha256(readFileSync(bin)), bin };
    } else {
      const ub = await fetchUboot(board, ctx.buildDir);
      bin = ub.path;
      uboot = { from: 'stock', package: ub.package, version: ub.version, sha256: ub.sha256, bin };
    }
    contents.push({ partition: loaderPart, bytes: new Uint8Array(readFileSync(bin)) });
    // load = where the data already is: bootm then runs it in place ("XIP Kernel Image").
    const name = uImageName(ctx);
    const header = uImageHeader(kernel.bytes, { load: kseg0(board.xipPhys), entry: entrySym.value, name });
    kernelBytes = new Uint8Array(header.length + kernel.bytes.length);
    kernelBytes.set(header);
    kernelBytes.set(kernel.bytes, header.length);
    uimage = { name, load: kseg0(board.xipPhys), entry: entrySym.value >>> 0, dataBytes: kernel.bytes.length };
    if (board.loader === 'uboot') {
      // Boots by itself, as a router does: the saved bootcmd runs bootm of the kernel partition.
      const envPart = partitionOf(board.partitions, 'uboot-env')!;
      env = defaultUbootEnv(board);
      contents.push({ partition: envPart, bytes: ubootEnv(env, envPart.size, board.endian) });
    }
    // uboot-stock: the environment partition stays erased (that binary cannot start with a saved one: README "U-Boot").
  }
  contents.push({ partition: kernelPart, bytes: kernelBytes });
  const rootPart = partitionOf(board.partitions, 'rootfs');
  if (rootfsBytes && rootPart) contents.push({ partition: rootPart, bytes: rootfsBytes });
  // A router with its root in flash keeps its settings there (docs/settings.md); other builds leave the partition erased.
  const settingsPart = partitionOf(board.partitions, 'settings');
  let settingsKeys: string[] | undefined;
  if (flashRoot && settingsPart) {
    const first = initialSettings(ctx, settingsPart);
    contents.push({ partition: settingsPart, bytes: first.bytes });
    settingsKeys = Object.keys(first.settings);
  }
  const image = assembleFlash(contents, board);
  // What a user writes to a real board: the kernel partition only, never the chip image.
  if (vendorInfo) writeFileAtomic(vendorInfo.kernelFile, kernelBytes);
  writeFileAtomic(ctx.imagePath, image);
  const deflatedEnd = kernel.deflated ? board.xipPhys + kernel.bytes.length : undefined;
  // A real board's loader is its own: the image holds none.
  const loaderBytes = board.loader === 'vendor' ? 0 : contents[0]!.bytes.length;
  return {
    image: ctx.imagePath,
    size: image.length,
    loader: board.loader,
    partitions: board.partitions,
    kernelEntry: entrySym.value >>> 0,
    loaderBytes,
    uboot,
    ubootEnv: env,
    uimage,
    vendor: vendorInfo,
    deviceTree,
    rootfs: rootfsBytes && rootPart ? { partition: rootPart.name, offset: rootPart.offset, bytes: rootfsBytes.length } : undefined,
    settings: settingsPart && settingsKeys ? { partition: settingsPart.name, offset: settingsPart.offset, keys: settingsKeys } : undefined,
    deflated: kernel.deflated,
    layout: describeLayout(elf, board, loaderBytes, kernel.bytes.length, deflatedEnd, rootfsBytes?.length),
  };
}

import { existsSync, readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import { badInput } from '../errors.ts';
import { parseJsonText } from '../fsutil.ts';
import { hex, renderTable } from '../text.ts';
import { LOADERS, PARTITION_CONTENTS, PartitionSchema, UIMAGE_HEADER_SIZE, kseg0, mapOf, partitionOf, type Board, type BoardData, type Loader, type Partition } from './board.ts';

const h = (n: number) => hex(n, 8);

/** Sizes as mtdparts and people write them: 4k, 3584k, 1m. */
function sizeText(n: number): string {
  if (n % 0x100000 === 0) return `${n / 0x100000}m`;
  if (n % 1024 === 0) return `${n / 1024}k`;
  return String(n);
}

/**
 * Check one partition map against its chip. Every error names the
 * partition and what to change.
 */
export function checkFlashMap(board: BoardData, loader: Loader, parts: readonly Partition[], file?: string): void {
  const where = file !== undefined ? `flash map ${file} (${board.name}, ${loader})` : `${board.name} flash map (${loader})`;
  const names = new Set<string>();
  let end = 0;
  for (const p of parts) {
    if (names.has(p.name)) throw badInput(`${where}: partition name '${p.name}' is used twice: rename one`);
    names.add(p.name);
    if (p.offset < end) throw badInput(`${where}: partition '${p.name}' at ${h(p.offset)} overlaps the one before it (ends at ${h(end)}): list partitions in flash order without overlap`);
    end = p.offset + p.size;
    if (end > board.flashSize) throw badInput(`${where}: partition '${p.name}' ends at ${h(end)}, ${end - board.flashSize} bytes past the ${h(board.flashSize)}-byte chip: shrink it`);
    if (!p.readOnly && (p.offset % board.eraseSize !== 0 || p.size % board.eraseSize !== 0)) {
      throw badInput(`${where}: writable partition '${p.name}' (${h(p.offset)}+${h(p.size)}) is not whole ${h(board.eraseSize)}-byte erase sectors: align it or make it read-only`);
    }
  }
  const settings = parts.filter((p) => p.content === 'settings');
  if (settings.length > 1) throw badInput(`${where}: ${settings.length} partitions hold settings, there may be one`);
  if (settings[0] && (settings[0].readOnly || settings[0].size < 2 * board.eraseSize)) {
    throw badInput(`${where}: settings partition '${settings[0].name}' must be writable and at least two ${h(board.eraseSize)}-byte erase sectors (its two slots, docs/settings.md)`);
  }
  for (const content of ['loader', 'kernel'] as const) {
    const n = parts.filter((p) => p.content === content).length;
    if (n !== 1) throw badInput(`${where}: ${n} partitions hold the ${content}, there must be exactly one`);
  }
  if (partitionOf(parts, 'loader')!.offset !== 0) throw badInput(`${where}: the loader partition must start at offset 0, where the CPU resets`);
  for (const p of parts.filter((q) => q.content === 'calibration')) {
    if (!p.readOnly) throw badInput(`${where}: calibration partition '${p.name}' must be read-only: it holds the unit's own radio calibration, which nothing can restore once it is overwritten`);
  }
  // A U-Boot of ours keeps its environment in the map's uboot-env partition; a vendor loader may keep none (TP-Link's).
  if (loader === 'uboot' || loader === 'uboot-stock') {
    const env = partitionOf(parts, 'uboot-env');
    const want = board.uboot?.env;
    if (!env) throw badInput(`${where}: no uboot-env partition: U-Boot keeps its environment in one`);
    if (want && (env.offset !== want.offset || env.size !== want.size)) {
      throw badInput(`${where}: partition '${env.name}' must be where U-Boot keeps its environment (offset ${h(want.offset)}, size ${h(want.size)}, built into U-Boot), not ${h(env.offset)}+${h(env.size)}`);
    }
    if (env.readOnly) throw badInput(`${where}: partition '${env.name}' must be writable: U-Boot's saveenv writes it`);
  }
  for (const p of parts) {
    if (!p.readOnly && p.offset < board.loaderSwapBytes) {
      throw badInput(`${where}: writable partition '${p.name}' starts at ${h(p.offset)}, inside the first ${h(board.loaderSwapBytes)} bytes that are word-swapped at every start (what is written there would come back swapped): move it to ${h(board.loaderSwapBytes)} or above`);
    }
  }
}

/**
 * A flash map of the user's (--flash-map FILE, FLASH_MAP=): a JSON array of
 * partitions ({"name", "offset", "size", "readOnly", "content"}), read and
 * checked like the board's own. Throws one line naming the file.
 */
export function readFlashMap(file: string): Partition[] {
  if (!existsSync(file) || !statSync(file).isFile()) throw badInput(`flash map ${file} not found (or not a file): give a JSON file with the partitions (see xip flashmap --json)`);
  return parseJsonText(
    z.array(PartitionSchema),
    readFileSync(file, 'utf8'),
    `flash map ${file}`,
    `each partition needs name, offset, size, readOnly and content (${PARTITION_CONTENTS.join(', ')}); start from xip flashmap --json`,
  );
}

/** The board with `loader` chosen: its checked partition map (or `custom`) and the kernel's flash address. */
export function withLoader(board: BoardData, loader: Loader, custom?: Partition[], file?: string): Board {
  const parts = custom ?? board.flashMaps[mapOf(loader)];
  const offered = LOADERS.filter((l) => board.flashMaps[mapOf(l)] !== undefined && (l !== 'uboot' || board.uboot) && (l !== 'uboot-stock' || board.uboot?.stock) && (l !== 'vendor' || board.vendor));
  if (!offered.includes(loader)) throw badInput(`board ${board.name} has no ${loader} loader: use LOADER=${offered.join(' or LOADER=')}`);
  if (!parts) throw badInput(`board ${board.name} has no ${mapOf(loader)} flash map: use LOADER=${offered.join(' or LOADER=')}`);
  checkFlashMap(board, loader, parts, file);
  const kernel = partitionOf(parts, 'kernel')!;
  const header = loader === 'shim' ? 0 : loader === 'vendor' ? board.vendor!.headerBytes : UIMAGE_HEADER_SIZE;
  return { ...board, loader, partitions: parts.map((p) => ({ ...p })), xipPhys: board.flashPhys + kernel.offset + header };
}

/** The kernel partition of a board (there is exactly one). */
export function kernelPartition(board: Board): Partition {
  return partitionOf(board.partitions, 'kernel')!;
}

/**
 * The map with a partition for a root filesystem of rootfsBytes: the
 * map's own rootfs partition if it has one, or else one carved out of the
 * kernel partition, as OpenWrt splits its firmware partition: the kernel
 * keeps its stored bytes rounded up to an erase sector, the root follows
 * in whole sectors, and what is left is free. Throws naming what does not fit.
 */
export function withRootfsPartition(board: Board, kernelBytes: number, rootfsBytes: number): Partition[] {
  const own = partitionOf(board.partitions, 'rootfs');
  if (own) {
    if (rootfsBytes > own.size) throw badInput(`partition '${own.name}' (${own.size} bytes) is ${rootfsBytes - own.size} bytes too small for the ${rootfsBytes}-byte root filesystem: grow it in the flash map`);
    return board.partitions;
  }
  const k = kernelPartition(board);
  const round = (n: number) => Math.ceil(n / board.eraseSize) * board.eraseSize;
  const rootStart = round(board.xipPhys - board.flashPhys + kernelBytes);
  const rootSize = round(rootfsBytes);
  const free = k.offset + k.size - (rootStart + rootSize);
  if (free < 0) {
    throw badInput(`partition '${k.name}' has ${k.offset + k.size - rootStart} bytes after the kernel (from ${h(rootStart)}); the ${rootfsBytes}-byte root filesystem needs ${rootSize}: make the root smaller or the kernel partition larger`);
  }
  const out: Partition[] = [];
  for (const p of board.partitions) {
    if (p !== k) {
      out.push(p);
      continue;
    }
    out.push({ ...k, size: rootStart - k.offset });
    out.push({ name: 'rootfs', offset: rootStart, size: rootSize, readOnly: true, content: 'rootfs' });
    if (free > 0) out.push({ name: 'free', offset: rootStart + rootSize, size: free, readOnly: true, content: 'free' });
  }
  return out;
}

/** KSEG0 address of the kernel partition: what U-Boot's bootm is given (the uImage header starts there). */
export function ubootKernelAddress(board: Board): number {
  return kseg0(board.flashPhys + kernelPartition(board).offset);
}

/** `mtdparts=<chip>:<size>@<offset>(<name>)[ro],...`: the kernel's view of the map (MTD_CMDLINE_PARTS). */
export function mtdparts(board: Board): string {
  const list = board.partitions.map((p) => `${sizeText(p.size)}@0x${p.offset.toString(16)}(${p.name})${p.readOnly ? 'ro' : ''}`);
  return `mtdparts=${board.mtdId}:${list.join(',')}`;
}

/** The command line the loader passes: the board's, then the flash map. */
export function kernelCmdline(board: Board): string {
  return `${board.cmdline} ${mtdparts(board)}`;
}

const CONTENT_TEXT: Record<Partition['content'], string> = {
  loader: 'loader',
  'uboot-env': 'U-Boot environment',
  kernel: 'XIP kernel',
  rootfs: 'root filesystem (cramfs, read-only map)',
  settings: 'settings (two slots, docs/settings.md)',
  calibration: 'radio calibration (never written)',
  free: 'free',
};

/** The map as a table: a Markdown one for the README, or a plain one for the terminal. */
export function formatFlashMap(board: Board, o: { markdown?: boolean } = {}): string {
  const rows = board.partitions.map((p) => [
    p.name,
    `0x${p.offset.toString(16).padStart(6, '0')}`,
    `0x${(p.offset + p.size).toString(16).padStart(6, '0')}`,
    `${(p.size / 1024).toFixed(p.size % 1024 === 0 ? 0 : 1)} KiB`,
    h(board.flashPhys + p.offset),
    p.readOnly ? 'ro' : 'rw',
    p.content === 'kernel' && board.loader !== 'shim'
      ? `XIP kernel (${board.loader === 'vendor' && board.vendor?.format === 'tplink-lzma' ? 'TP-Link header and LZMA jump' : 'uImage'}, kernel at +${hex(board.xipPhys - board.flashPhys - p.offset)})`
      : p.content === 'loader'
        ? board.loader === 'shim'
          ? 'boot shim'
          : board.loader === 'uboot'
            ? 'U-Boot (Debian source, firmware/u-boot/)'
            : board.loader === 'vendor'
              ? `${board.vendor?.name ?? 'vendor loader'} (the board's, kept)`
              : `U-Boot (Debian ${board.uboot?.stock?.package ?? 'u-boot'})`
        : CONTENT_TEXT[p.content],
  ]);
  const head = ['partition', 'offset', 'end', 'size', 'physical', 'kernel', 'holds'];
  return renderTable(head, rows, o.markdown ? { markdown: true, align: ['l', 'l', 'l', 'r', 'l', 'l', 'l'] } : { indent: '  ' });
}

import { join } from 'node:path';
import { PF, PT, parseElf } from '../elf/elf32.ts';
import { PAGE } from './cramfs.ts';
import type { InitramfsEntry } from './initramfs.ts';
import { DEV_NODES } from './rootfs.ts';

/**
 * A root filesystem that stays in flash: cramfs in its own partition of the
 * chip, mounted by the kernel from an mtd-rom map (no CFI commands to the
 * chip it executes from) with `root=mtd:rootfs`. Its programs' pages that
 * are stored uncompressed and page-aligned are mapped straight from flash
 * into user space (cramfs' direct mapping, CRAMFS_MTD): they execute in
 * place and take no RAM; the rest is compressed and read into the page
 * cache on demand.
 */

/** Which pages of a file are stored for execution in place. */
export type XipPolicy = 'none' | 'text' | 'profile';

/** What a flash-root profile declares (src/userspace/types.ts). */
export interface FlashRootfs {
  xip: XipPolicy;
}

/** The MTD partition (and DT label) that holds the root filesystem. */
export const ROOTFS_PARTITION = 'rootfs';

/** What the kernel is told on its command line to mount it. init is the router's script. */
export const FLASH_ROOT_CMDLINE = `root=mtd:${ROOTFS_PARTITION} rootfstype=cramfs ro init=/init`;

/**
 * Kernel options on top of the config's defconfig: MTD with physmap's
 * mtd-rom binding and fixed partitions from the device tree (map_rom sends
 * the chip no commands and supports point(), which cramfs needs to map
 * pages), cramfs on MTD only (no block layer), and the command line from
 * the device tree the loader passes (UHI, series patch 13). For the
 * settings partition: the CFI driver for malta's Intel command-set chip
 * with its XIP-aware write path (MTD_XIP, series patches 14-15: probe,
 * program and erase run from RAM with interrupts off); /dev/mtdN is always built.
 */
export const FLASH_ROOT_KCONFIG = [
  'CONFIG_MTD=y',
  'CONFIG_MTD_OF_PARTS=y',
  'CONFIG_MTD_PHYSMAP=y',
  'CONFIG_MTD_PHYSMAP_OF=y',
  'CONFIG_MTD_ROM=y',
  'CONFIG_MTD_CFI=y',
  'CONFIG_MTD_CFI_INTELEXT=y',
  '# CONFIG_MTD_CFI_AMDSTD is not set',
  '# CONFIG_MTD_CFI_STAA is not set',
  '# CONFIG_MTD_JEDECPROBE is not set',
  'CONFIG_MTD_XIP=y',
  'CONFIG_MISC_FILESYSTEMS=y',
  'CONFIG_CRAMFS=y',
  'CONFIG_CRAMFS_MTD=y',
  // The command line is the tree's bootargs alone (UHI passes no argv; Malta would append a console= of its own).
  'CONFIG_MIPS_CMDLINE_FROM_DTB=y',
  // /proc/PID/pagemap: the router's /cgi-bin/pages shows where program pages are (flash or RAM).
  'CONFIG_PROC_PAGE_MONITOR=y',
  '',
].join('\n');

/**
 * The initramfs a flash-root kernel still embeds: what the kernel needs
 * before it mounts the root (a console for PID 1's stdio, /root to mount
 * it on). No /init, so the kernel goes on to mount root=.
 */
export const FLASH_ROOT_INITRAMFS: readonly InitramfsEntry[] = [
  { type: 'dir', name: '/dev', mode: 0o755, uid: 0, gid: 0 },
  DEV_NODES.find((n) => n.name === '/dev/console')!,
  { type: 'dir', name: '/root', mode: 0o700, uid: 0, gid: 0 },
];

/** The cramfs image a flash-root profile's build leaves in its userspace directory. */
export function rootfsImagePath(userspaceDir: string): string {
  return join(userspaceDir, 'rootfs.cramfs');
}


/**
 * The pages of an ELF program that hold its executable load segments
 * (PT_LOAD with PF_X), by file offset: what the kernel maps read-only and
 * executable, and so what can be used in place. Not an ELF: none.
 */
export function textPages(data: Uint8Array): number[] {
  if (data.length < 52 || data[0] !== 0x7f || data[1] !== 0x45 || data[2] !== 0x4c || data[3] !== 0x46 || data[4] !== 1) return [];
  let segments;
  try {
    segments = parseElf(data).segments;
  } catch {
    return [];
  }
  const pages = new Set<number>();
  for (const s of segments) {
    if (s.type !== PT.LOAD || (s.flags & PF.X) === 0 || s.filesz === 0) continue;
    const first = Math.floor(s.offset / PAGE);
    const last = Math.floor((s.offset + s.filesz - 1) / PAGE);
    for (let p = first; p <= last; p++) pages.add(p);
  }
  return [...pages].sort((a, b) => a - b);
}

/** The page chooser of a policy that needs no profile, for mkcramfs ('profile': src/userspace/xipprofile.ts). */
export function xipPagesOf(policy: Exclude<XipPolicy, 'profile'>): (path: string, data: Uint8Array) => number[] {
  return policy === 'text' ? (_path, data) => textPages(data) : () => [];
}

/** One page of a program mapping, as the router's /cgi-bin/pages prints it. */
export interface MappedPage {
  /** Permissions of the mapping, as in /proc/PID/maps (r-xp, rw-p, ...). */
  perms: string;
  vaddr: number;
  /** Physical address, or undefined when the page is not present. */
  phys?: number;
}

/** One mapping /cgi-bin/pages introduces: "map PERMS START-END OFFSET" (OFFSET: /proc/PID/maps' hex offset column). */
export interface PageMapping {
  perms: string;
  start: number;
  end: number;
  offset: number;
}

/** The "map" lines of /cgi-bin/pages. */
export function parseMappings(text: string): PageMapping[] {
  const out: PageMapping[] = [];
  for (const line of text.split('\n')) {
    const m = /^map ([r-][w-][x-][ps]) ([0-9a-f]+)-([0-9a-f]+) ([0-9a-f]+)$/.exec(line.trim());
    if (m) out.push({ perms: m[1]!, start: parseInt(m[2]!, 16), end: parseInt(m[3]!, 16), offset: parseInt(m[4]!, 16) });
  }
  return out;
}

/** Parse /cgi-bin/pages: "PERMS VADDR PHYS|-" per line, hex without 0x. Other lines are skipped. */
export function parsePages(text: string): MappedPage[] {
  const out: MappedPage[] = [];
  for (const line of text.split('\n')) {
    const m = /^([r-][w-][x-][ps]) ([0-9a-f]{8}) ([0-9a-f]{8}|-)$/.exec(line.trim());
    if (!m) continue;
    out.push({ perms: m[1]!, vaddr: parseInt(m[2]!, 16), phys: m[3] === '-' ? undefined : parseInt(m[3]!, 16) });
  }
  return out;
}

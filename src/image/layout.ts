import { KSEG1, kseg0, physOfKseg0, type Board, type Partition } from '../boards/board.ts';
import { kernelPartition } from '../boards/flashmap.ts';
import { PT, type ElfFile, type Segment } from '../elf/elf32.ts';
import { badInput, XipError } from '../errors.ts';
import { hex as hexWord, renderTable } from '../text.ts';
import { inflateRawSync } from 'node:zlib';

/**
 * The gzip member at the start of `bytes` as the kernel's
 * deflate-xip-data.sh writes it and __inflate_kernel_data() reads it
 * (gzip -n: a 10-byte header, flags 0), inflated, and the offset just past
 * its 8-byte trailer. Throws with the reason.
 */
export function inflateMemberAt(bytes: Uint8Array): { data: Uint8Array; end: number } {
  if (bytes.length < 18 || bytes[0] !== 0x1f || bytes[1] !== 0x8b || bytes[2] !== 8 || bytes[3] !== 0) throw new Error('no gzip header 1f 8b 08 00 (the kernel reads no optional fields)');
  const r = inflateRawSync(bytes.subarray(10), { info: true }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
  const end = 10 + r.engine.bytesWritten + 8;
  if (end > bytes.length) throw new Error('the member has no trailer');
  return { data: new Uint8Array(r.buffer), end };
}

/** inflateMemberAt(), allowing at most `slack` bytes after the member. */
export function inflateMember(bytes: Uint8Array, slack = 0): Uint8Array {
  const { data, end } = inflateMemberAt(bytes);
  if (bytes.length - end > slack) throw new Error(`${bytes.length - end} bytes follow the member`);
  return data;
}

/**
 * Flash image layout: where each part of an XIP vmlinux goes in the flash
 * image, and the loader's byte swap. Pure functions over parsed ELF data,
 * so they can be tested without a kernel.
 */

/** A PT_LOAD segment with its place in the flash image. */
export interface Placement {
  segment: Segment;
  /** Byte offset in the flash image. */
  offset: number;
}

/** The KSEG0/KSEG1 boundary: flash-resident code must end below it. */
export const SEGMENT_BOUNDARY = KSEG1;

/**
 * The flash budget: the whole chip. QEMU's byte swap of the board's first
 * loaderSwapBytes (malta: 0x3e0000) is undone by pre-swapping exactly that
 * range, so bytes beyond it are usable as stored. The one place the budget
 * is computed (image assembly, its layout map, verify and the measurements).
 */
export function flashBudget(board: Board): number {
  return board.flashSize;
}

/** Addresses as whole words: 0x1fc01000. */
const hex = (n: number): string => hexWord(n, 8);

function kib(n: number): string {
  return `${(n / 1024).toFixed(1)} KiB`;
}

/**
 * Place every loadable segment of vmlinux in the flash image by its load
 * address (p_paddr). Fails when the kernel is not linked for this board's
 * flash (a stock kernel), overlaps the shim, or does not fit.
 */
export function placeSegments(elf: ElfFile, board: Board): Placement[] {
  const flashBase = kseg0(board.flashPhys);
  const shimEnd = board.xipPhys - board.flashPhys;
  const loads = elf.segments.filter((s) => s.type === PT.LOAD && s.filesz > 0);
  if (loads.length === 0) throw badInput(`${elf.name}: no loadable segment: not a kernel image`);
  const placements: Placement[] = [];
  for (const seg of loads) {
    const offset = (seg.paddr - flashBase) >>> 0;
    if (seg.paddr < flashBase || offset >= board.flashSize) {
      throw badInput(
        `${elf.name}: segment ${seg.index} loads at ${hex(seg.paddr)}, outside ${board.name}'s flash ` +
          `(${hex(flashBase)}..${hex(flashBase + board.flashSize)}): build the xip variant (CONFIG_XIP_KERNEL=y), not stock`,
      );
    }
    if (offset < shimEnd) {
      throw badInput(
        `${elf.name}: segment ${seg.index} loads at ${hex(seg.paddr)}, in front of ${board.name}'s kernel address ${hex(board.xipPhys)} (${board.loader} flash map): ` +
          `rebuild the kernel with the same LOADER and FLASH_MAP (make kernel)`,
      );
    }
    placements.push({ segment: seg, offset });
  }
  placements.sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < placements.length; i++) {
    const prev = placements[i - 1]!;
    const cur = placements[i]!;
    if (prev.offset + prev.segment.filesz > cur.offset) {
      throw badInput(`${elf.name}: segments ${prev.segment.index} and ${cur.segment.index} overlap in flash`);
    }
  }
  return placements;
}

/** End offset of the image (4-byte aligned) for these placements. */
export function imageEnd(placements: readonly Placement[]): number {
  const last = placements.reduce((m, p) => Math.max(m, p.offset + p.segment.filesz), 0);
  return (last + 3) & ~3;
}

/**
 * Check that the kernel's flash bytes fit its partition and that
 * flash-resident code stays below the KSEG0/KSEG1 boundary. Throws naming
 * the partition and by how much.
 */
export function checkFits(kernelBytes: number, textEnd: number, board: Board): void {
  const part = kernelPartition(board);
  const end = board.xipPhys - board.flashPhys + kernelBytes;
  const partEnd = part.offset + part.size;
  if (end > partEnd) {
    throw new XipError(
      `partition '${part.name}' (${hex(part.offset)}..${hex(partEnd)}, ${kib(part.size)}) overflows by ${end - partEnd} bytes (${kib(end - partEnd)}): ` +
        `the kernel needs ${kernelBytes} bytes from ${hex(board.xipPhys)}; trim the kernel config or the initramfs, or grow '${part.name}' in ${board.name}'s ${board.loader} flash map`,
    );
  }
  if (textEnd > SEGMENT_BOUNDARY) {
    throw new XipError(
      `flash-resident kernel ends at ${hex(textEnd)}, ${textEnd - SEGMENT_BOUNDARY} bytes past the ` +
        `${hex(SEGMENT_BOUNDARY)} segment boundary that j/jal cannot cross: trim the kernel or move CONFIG_XIP_PHYS_ADDR down`,
    );
  }
}

/** Swap the bytes of every 32-bit word in [0, min(len, n)) in place. Its own inverse. */
export function swapWords(image: Uint8Array, n: number): void {
  const end = Math.min(image.length, n) & ~3;
  for (let i = 0; i < end; i += 4) {
    const a = image[i]!;
    const b = image[i + 1]!;
    image[i] = image[i + 3]!;
    image[i + 1] = image[i + 2]!;
    image[i + 2] = b;
    image[i + 3] = a;
  }
}

/** One region of the layout map, in physical addresses. */
export interface Region {
  name: string;
  start: number;
  end: number;
  size: number;
  /** Share of the flash budget, 0..1. */
  share: number;
}

export interface Layout {
  budget: number;
  used: number;
  regions: Region[];
}

function sym(elf: ElfFile, name: string): number {
  const s = elf.findSymbol(name);
  if (!s || s.shndx === 0) throw badInput(`${elf.name}: symbol ${name} missing: not an XIP vmlinux built from this patch series`);
  return s.value >>> 0;
}

/** Read a 32-bit word at a flash-resident virtual address from the segment that holds it. */
function readWord(elf: ElfFile, vaddr: number): number | undefined {
  for (const seg of elf.segments) {
    if (seg.type !== PT.LOAD || vaddr < seg.vaddr || vaddr + 4 > seg.vaddr + seg.filesz) continue;
    const data = elf.segmentData(seg);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return view.getUint32(vaddr - seg.vaddr, elf.endian === 'little');
  }
  return undefined;
}

/**
 * The layout map of the whole chip, partition by partition: the loader,
 * the kernel's text, read-only data, init (code, tables), initramfs and
 * data image, what is left free in each partition, and the partitions the
 * image leaves to their owners (U-Boot's environment): each with its share
 * of the budget.
 */
export function describeLayout(elf: ElfFile, board: Board, loaderBytes: number, kernelBytes: number, deflatedEnd?: number, rootfsBytes?: number): Layout {
  const budget = flashBudget(board);
  const toPhys = physOfKseg0;
  const at = (off: number) => board.flashPhys + off;
  const text = sym(elf, '_text');
  const etext = sym(elf, '_etext');
  const endRodata = sym(elf, '__end_rodata');
  const exiprom = sym(elf, '_exiprom');
  const dataLoc = sym(elf, '__data_loc');
  const edataLoc = sym(elf, '_edata_loc');
  const rdStart = elf.findSymbol('__initramfs_start');
  const rdSizeSym = elf.findSymbol('__initramfs_size');
  const rdSize = rdStart && rdSizeSym ? (readWord(elf, rdSizeSym.value) ?? 0) : 0;

  const raw: [string, number, number][] = [];
  for (const p of board.partitions) {
    const end = at(p.offset + p.size);
    if (p.content === 'loader') {
      if (board.loader === 'vendor') raw.push([`${board.vendor?.name ?? 'vendor loader'} (the board's)`, at(p.offset), end]);
      else {
        raw.push([board.loader === 'shim' ? 'boot shim' : 'U-Boot', at(p.offset), at(p.offset + loaderBytes)]);
        raw.push(['free', at(p.offset + loaderBytes), end]);
      }
    } else if (p.content === 'kernel') {
      raw.push([board.loader === 'vendor' && board.vendor?.format === 'tplink-lzma' ? 'TP-Link header + LZMA jump' : 'uImage header', at(p.offset), board.xipPhys]);
      raw.push(['kernel text', toPhys(text), toPhys(etext)]);
      raw.push(['rodata + tables', toPhys(etext), toPhys(endRodata)]);
      if (rdStart && rdSize > 0) {
        const rs = toPhys(rdStart.value);
        raw.push(['init code + tables', toPhys(endRodata), rs]);
        raw.push(['initramfs', rs, rs + rdSize]);
        raw.push(['init (rest)', rs + rdSize, toPhys(exiprom)]);
      } else {
        raw.push(['init code + tables', toPhys(endRodata), toPhys(exiprom)]);
      }
      if (deflatedEnd === undefined) raw.push(['data image (to RAM)', toPhys(dataLoc), toPhys(edataLoc)]);
      else raw.push(['data image (deflated)', toPhys(dataLoc), deflatedEnd]);
      raw.push(['free', board.xipPhys + kernelBytes, end]);
    } else if (p.content === 'rootfs') {
      const used = Math.min(rootfsBytes ?? p.size, p.size);
      raw.push(['root filesystem (cramfs)', at(p.offset), at(p.offset + used)]);
      raw.push(['free', at(p.offset + used), end]);
    } else if (p.content === 'free') {
      raw.push(['free', at(p.offset), end]);
    } else {
      raw.push([p.name, at(p.offset), end]);
    }
  }
  const regions = raw
    .filter(([, s, e]) => e > s)
    .map(([name, start, end]) => ({ name, start, end, size: end - start, share: (end - start) / budget }));
  const free = regions.filter((r) => r.name === 'free').reduce((n, r) => n + r.size, 0);
  return { budget, used: budget - free, regions };
}

export function formatLayout(l: Layout): string {
  const rows = l.regions.map((r) => [r.name, hex(r.start), hex(r.end), r.size, kib(r.size), `${(r.share * 100).toFixed(1).padStart(5)}%`]);
  const table = renderTable(['region', 'start', 'end', 'bytes', 'size', 'budget'], rows, {
    indent: '  ',
    align: ['l', 'l', 'l', 'r', 'r', 'r'],
    minWidths: [21, 10, 10, 8, 11, 6],
  });
  return `${table}\n  ${l.used} bytes of ${l.budget} used (${((l.used / l.budget) * 100).toFixed(1)}% of the flash), ${l.budget - l.used} free`;
}

/** What goes into flash at XIP_PHYS_ADDR: the kernel's xipImage, checked against vmlinux. */
export interface KernelFlash {
  bytes: Uint8Array;
  /** The data load image is a gzip member (CONFIG_XIP_DEFLATED_DATA). */
  deflated: boolean;
  /** Bytes of the data load image in vmlinux (what RAM receives). */
  dataRaw: number;
}

/**
 * Check arch/mips/boot/xipImage against vmlinux: it must be vmlinux's load
 * segments as placed in flash, byte for byte, except that with deflated
 * data everything from __data_loc on is one gzip member that inflates to
 * exactly the data segment. Returns what to put in flash; throws naming
 * the first difference.
 */
export function checkXipImage(elf: ElfFile, placements: readonly Placement[], xipImage: Uint8Array, board: Board): KernelFlash {
  const base = board.xipPhys - board.flashPhys;
  const end = imageEnd(placements);
  const cut = new Uint8Array(end - base);
  for (const p of placements) cut.set(elf.segmentData(p.segment), p.offset - base);
  const dataLoc = sym(elf, '__data_loc');
  const flashBase = kseg0(board.flashPhys);
  const split = dataLoc - flashBase - base;
  const dataRaw = sym(elf, '_edata_loc') - dataLoc;
  const firstDiff = (a: Uint8Array, b: Uint8Array, n: number): number => {
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
    return -1;
  };
  const name = 'arch/mips/boot/xipImage';
  if (sym(elf, '_text') !== flashBase + base) {
    throw new XipError(`${elf.name} is linked at ${hex(sym(elf, '_text'))}, not at ${board.name}'s XIP address ${hex(flashBase + base)} (${board.loader} flash map): rebuild the kernel with the same LOADER and FLASH_MAP (make kernel)`);
  }
  // The kernel says which form it expects: the inflater is linked in only with CONFIG_XIP_DEFLATED_DATA.
  const deflated = elf.findSymbol('__inflate_kernel_data') !== undefined;
  if (!deflated) {
    if (xipImage.length !== split + dataRaw) throw new XipError(`${name} is ${xipImage.length} bytes, vmlinux says ${split + dataRaw}: rebuild the kernel (make kernel)`);
    const d = firstDiff(xipImage, cut, xipImage.length);
    if (d >= 0) throw new XipError(`${name} differs from ${elf.name} at byte ${d} (flash address ${hex(board.flashPhys + base + d)}): rebuild the kernel (make kernel)`);
    return { bytes: xipImage, deflated: false, dataRaw };
  }
  const d = firstDiff(xipImage, cut, Math.min(split, xipImage.length));
  if (xipImage.length < split || d >= 0) {
    throw new XipError(`${name} (${xipImage.length} bytes) does not match ${elf.name}${d >= 0 ? ` at byte ${d}` : ` (it ends before __data_loc at ${split})`}: rebuild the kernel (make kernel)`);
  }
  let data: Uint8Array;
  try {
    data = inflateMember(xipImage.subarray(split));
  } catch (e) {
    throw new XipError(`${name}: the deflated data at __data_loc is not the gzip member the kernel reads (${(e as Error).message}): rebuild the kernel (make kernel)`);
  }
  if (data.length !== dataRaw) throw new XipError(`${name}: its deflated data inflates to ${data.length} bytes, vmlinux's data is ${dataRaw}: rebuild the kernel`);
  const dd = firstDiff(data, cut.subarray(split), dataRaw);
  if (dd >= 0) throw new XipError(`${name}: its deflated data differs from vmlinux's at _sdata+${dd}: rebuild the kernel`);
  return { bytes: xipImage, deflated: true, dataRaw };
}

/** What goes into one partition: bytes from its start (the rest stays erased). */
export interface PartitionContent {
  partition: Partition;
  bytes: Uint8Array;
}

/**
 * The whole chip: each partition's bytes at its offset, erased (0xff)
 * elsewhere, pre-swapped for the loader. Throws naming a partition its
 * content overflows.
 */
export function assembleFlash(contents: readonly PartitionContent[], board: Board): Uint8Array {
  const image = new Uint8Array(board.flashSize).fill(0xff);
  for (const { partition: p, bytes } of contents) {
    if (bytes.length > p.size) throw new XipError(`partition '${p.name}' (${kib(p.size)}) overflows by ${bytes.length - p.size} bytes: its ${p.content} is ${bytes.length} bytes`);
    image.set(bytes, p.offset);
  }
  if (board.endian === 'little' && board.loaderSwapBytes > 0) swapWords(image, board.loaderSwapBytes);
  return image;
}

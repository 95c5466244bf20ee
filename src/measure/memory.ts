import { physOfKseg0 } from '../boards/board.ts';
import { readElf, type ElfFile } from '../elf/elf32.ts';
import { badInput } from '../errors.ts';
import { parseMemoryLine } from '../qemu/markers.ts';

/**
 * The kernel's `Memory:` line, every field, and what a boot log says about
 * where RAM went. Pure functions over console text, tested against
 * recorded boots (test/fixtures/boot-logs/).
 *
 *   Memory: 6084K/8192K available (1745K kernel code, 496K rwdata, 148K rodata,
 *           158K init, 172K bss, 1868K reserved, 0K cma-reserved)
 *
 * mm/mm_init.c computes the parenthesised sizes from linker symbols
 * (_etext - _stext, _edata - _sdata, ...): for an XIP kernel "kernel code",
 * "rodata" and most of "init" are in flash and take no RAM. `reserved` is
 * every page the page allocator never got (pages below the kernel, the
 * kernel's RAM image, memblock allocations such as struct pages).
 */
export interface MemoryFields {
  availableKiB: number;
  totalKiB: number;
  kernelCodeKiB: number;
  rwdataKiB: number;
  rodataKiB: number;
  initKiB: number;
  bssKiB: number;
  reservedKiB: number;
  cmaReservedKiB: number;
}

/** The Memory: line's fields in the order the kernel prints them, with its labels. */
export const MEMORY_FIELDS: readonly [keyof MemoryFields, string][] = [
  ['availableKiB', 'available'],
  ['totalKiB', 'total'],
  ['kernelCodeKiB', 'kernel code'],
  ['rwdataKiB', 'rwdata'],
  ['rodataKiB', 'rodata'],
  ['initKiB', 'init'],
  ['bssKiB', 'bss'],
  ['reservedKiB', 'reserved'],
  ['cmaReservedKiB', 'cma-reserved'],
];

/** The fields in the parentheses ("1745K kernel code, ..."). */
const PARENTHESISED = MEMORY_FIELDS.slice(2);

/** Every field of a `Memory:` line; undefined when the line is not one (or lacks a field). */
export function parseMemoryFields(line: string): MemoryFields | undefined {
  const base = parseMemoryLine(line);
  if (!base) return undefined;
  const inner = /available \(([^)]*)\)/.exec(line)?.[1];
  if (inner === undefined) return undefined;
  const out: Partial<MemoryFields> = { ...base };
  for (const part of inner.split(',')) {
    const m = /^\s*(\d+)K ([a-z -]+?)\s*$/.exec(part);
    if (!m) continue;
    const f = PARENTHESISED.find(([, label]) => label === m[2]);
    if (f) out[f[0]] = Number(m[1]);
  }
  out.cmaReservedKiB ??= 0;
  for (const [k] of PARENTHESISED) if (out[k] === undefined) return undefined;
  return out as MemoryFields;
}

/** The first `Memory:` line of a console log, parsed. */
export function memoryFromLog(log: string): MemoryFields | undefined {
  for (const line of log.split('\n')) {
    if (!line.includes('Memory:')) continue;
    const f = parseMemoryFields(line.replace(/\r/g, ''));
    if (f) return f;
  }
  return undefined;
}

/**
 * Early hash tables the kernel sizes from RAM: `Dentry cache hash table
 * entries: 1024 (order: 0, 4096 bytes, linear)`. Only the dentry and inode
 * caches come from memblock (vfs_caches_init_early() in start_kernel, before
 * the page allocator exists) and so count in `reserved`; the mount caches
 * are allocated later from the page allocator and count against `available`.
 */
export const MEMBLOCK_HASH_TABLES = ['Dentry cache', 'Inode-cache'];

export interface HashTable {
  name: string;
  bytes: number;
}

export function hashTablesFromLog(log: string): HashTable[] {
  const out: HashTable[] = [];
  for (const line of log.split('\n')) {
    const m = /(?:^|\] )([A-Za-z][\w -]*?) hash table entries: \d+ \(order: -?\d+, (\d+) bytes/.exec(line);
    if (m?.[1] && m[2] && MEMBLOCK_HASH_TABLES.includes(m[1].trim())) out.push({ name: m[1].trim(), bytes: Number(m[2]) });
  }
  return out;
}

/** Sizes in a vmlinux that the RAM targets are stated in (bytes). */
export interface KernelSizes {
  /** _etext - _text */
  text: number;
  /** __end_rodata - _etext (read-only data and tables after the text) */
  rodata: number;
  /** _einittext - _sinittext */
  initText: number;
  /** _end - _sdata: the kernel's RAM image (data + bss) under XIP */
  ramImage: number;
  /** First RAM byte the kernel uses (physical): _sdata for XIP, _text for stock. */
  ramStartPhys: number;
}

export function kernelSizes(elfOrPath: ElfFile | string): KernelSizes {
  const elf = typeof elfOrPath === 'string' ? readElf(elfOrPath) : elfOrPath;
  const sym = (n: string) => {
    const s = elf.findSymbol(n);
    if (!s || s.shndx === 0) throw badInput(`${elf.name}: symbol ${n} missing: give a Linux vmlinux with its symbol table`);
    return s.value >>> 0;
  };
  const xip = elf.findSymbol('__data_loc') !== undefined;
  const ramStart = xip ? sym('_sdata') : sym('_text');
  return {
    text: sym('_etext') - sym('_text'),
    rodata: sym('__end_rodata') - sym('_etext'),
    initText: sym('_einittext') - sym('_sinittext'),
    ramImage: sym('_end') - ramStart,
    ramStartPhys: physOfKseg0(ramStart),
  };
}

/**
 * Where the RAM of a boot went, from its Memory: line and log plus the
 * kernel's symbols. Everything in KiB.
 *   belowKernel   RAM below the kernel's first RAM byte, never given to the
 *                 page allocator (e.g. malta's first MiB: the exception
 *                 vectors and what YAMON would use, reserved by its DTB)
 *   kernelImage   the kernel's RAM image (_sdata.._end for XIP, _text.._end for stock)
 *   hashTables    dentry/inode/mount hash tables printed in the log
 *   otherReserved the rest of `reserved`: struct pages (mem_map), the page
 *                 allocator's and memblock's own allocations, percpu, log buffer ...
 *   available     free pages handed to the page allocator at mem_init
 */
export interface RamAccount {
  totalKiB: number;
  availableKiB: number;
  reservedKiB: number;
  belowKernelKiB: number;
  kernelImageKiB: number;
  hashTablesKiB: number;
  otherReservedKiB: number;
}

export function accountRam(mem: MemoryFields, sizes: KernelSizes, hashTables: HashTable[]): RamAccount {
  const belowKernelKiB = sizes.ramStartPhys / 1024;
  const kernelImageKiB = Math.ceil(sizes.ramImage / 4096) * 4;
  const hashTablesKiB = hashTables.reduce((s, h) => s + Math.ceil(h.bytes / 4096) * 4, 0);
  return {
    totalKiB: mem.totalKiB,
    availableKiB: mem.availableKiB,
    reservedKiB: mem.reservedKiB,
    belowKernelKiB,
    kernelImageKiB,
    hashTablesKiB,
    otherReservedKiB: mem.reservedKiB - belowKernelKiB - kernelImageKiB - hashTablesKiB,
  };
}

/**
 * Bytes of reserved RAM per page of RAM, from two boots of the same kernel
 * at different sizes: the growth of `reserved` (less the printed hash
 * tables) over the growth of pages. On a FLATMEM kernel this is
 * sizeof(struct page) plus what else scales with RAM.
 */
export function reservedPerPage(
  a: { mem: MemoryFields; hashTables: HashTable[] },
  b: { mem: MemoryFields; hashTables: HashTable[] },
): number | undefined {
  const pages = (b.mem.totalKiB - a.mem.totalKiB) / 4;
  if (pages <= 0) return undefined;
  const ht = (x: HashTable[]) => x.reduce((s, h) => s + Math.ceil(h.bytes / 4096) * 4096, 0);
  return ((b.mem.reservedKiB - a.mem.reservedKiB) * 1024 - (ht(b.hashTables) - ht(a.hashTables))) / pages;
}

/**
 * The first line of a console log that says memory ran out (the OOM
 * killer, an allocation failure), or undefined: a boot that hangs or
 * cannot power off at a small size usually ran out of memory first.
 */
export function oomLineFromLog(log: string): string | undefined {
  for (const raw of log.split('\n')) {
    const line = raw.replace(/\r/g, '').trim();
    if (/invoked oom-killer|Out of memory|page allocation failure|deadlocked on memory/.test(line)) return line;
  }
  return undefined;
}

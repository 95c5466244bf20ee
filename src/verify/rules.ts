/**
 * The six `xip verify` rules, as pure functions over already-read inputs:
 * the parsed vmlinux, the kernel .config and the flash image bytes. Each
 * rule returns ok/FAIL, a one-line summary with the numbers that decided it,
 * detail lines, and the same numbers as data for --json.
 *
 * Addresses are unsigned 32-bit numbers throughout. On MIPS32 the vmlinux
 * program headers carry KSEG0 addresses in p_paddr as well as p_vaddr, so
 * "load address in flash" means a KSEG0 address in the flash window.
 */
import { KSEG1, kseg0, type Board } from '../boards/board.ts';
import { PF, PT, SHF, type ElfFile, type Segment } from '../elf/elf32.ts';
import { flashBudget, inflateMemberAt, swapWords } from '../image/layout.ts';
import { kernelPartition, ubootKernelAddress } from '../boards/flashmap.ts';
import { parseUbootEnv, parseUImageHeader, UIMAGE_HEADER_BYTES } from '../image/uboot-formats.ts';
import { configValue } from '../kernel/kconfig.ts';
import { findNode, getString, getStrings, parseFdt } from '../boards/fdt.ts';
import { regOf } from '../boards/xipdtb.ts';
import { readCramfs } from '../userspace/cramfs.ts';
import { SHIM_DTB_OFFSET } from '../image/shim.ts';
import { checkVendorKernel, uImageKernelProblems } from '../image/vendor.ts';
import { hex } from '../text.ts';
import { readSettings } from '../settings/format.ts';

/**
 * With CONFIG_XIP_DEFLATED_DATA the writable segment's load image in flash
 * is one gzip member (from p_paddr to the end of the image) that inflates
 * to its file bytes: rules 2, 4 and 5 take that into account.
 */
export function dataDeflated(config: Map<string, string>): boolean {
  return configValue(config, 'XIP_DEFLATED_DATA') === 'y';
}

export { inflateMember } from '../image/layout.ts';

export interface RuleResult {
  id: number;
  title: string;
  ok: boolean;
  /** The numbers that decided it, one line. */
  summary: string;
  /** More lines (what exactly is wrong), shown under a failing rule. */
  details: string[];
  data: Record<string, unknown>;
}

export interface RuleInputs {
  board: Board;
  elf: ElfFile;
  /** The kernel .config as parseConfig (kernel/kconfig.ts) reads it: name without CONFIG_ -> value, 'n' when not set. */
  config: Map<string, string>;
  /** Flash image bytes as stored in the file (still byte-swapped), or null when there is no image. */
  image: Uint8Array | null;
  /** Size of the image file even when its bytes were not read (too large). */
  imageSize: number | null;
  imagePath: string;
}

/** Symbols of the buffers the kernel fills with generated code at run time: must be in RAM. */
export const RAM_BUFFER_SYMBOLS = [
  'handle_tlbl',
  'handle_tlbs',
  'handle_tlbm',
  'tlbmiss_handler_setup_pgd_start',
  '__clear_page_start',
  '__copy_page_start',
] as const;
/** Entry points that flash code calls (register-jump trampolines into the RAM buffers): must be in flash. */
export const FLASH_ENTRY_SYMBOLS = ['clear_page', 'copy_page', 'tlbmiss_handler_setup_pgd'] as const;

/**
 * ld.lld always emits a MIPS .got, flagged writable, holding only its two
 * reserved words when nothing is position-independent; a non-PIC kernel
 * never writes them. Any bigger .got in flash fails rule 3.
 */
export const MAX_UNUSED_GOT_BYTES = 8;

/**
 * Sections flagged read-only in the objects that the kernel still writes at
 * boot, so they belong in RAM: trap_init() sorts __dbe_table in place.
 */
export const WRITTEN_AT_BOOT_SECTIONS = ['__dbe_table'] as const;
/**
 * Options that patch kernel text at run time, or assume it is in RAM: must be
 * off under XIP. (The BPF JIT is not among them: it writes its programs into
 * vmalloc memory and calls helpers through a register.)
 */
export const TEXT_PATCHING_OPTIONS = [
  'CONFIG_JUMP_LABEL',
  'CONFIG_KPROBES',
  'CONFIG_FTRACE',
  'CONFIG_FUNCTION_TRACER',
  'CONFIG_DYNAMIC_FTRACE',
  'CONFIG_KGDB',
  'CONFIG_KEXEC',
  'CONFIG_CRASH_DUMP',
] as const;
/** The shim's magic at image offset 0x18: the bytes 'XIPS' (.ascii), read as a little-endian word on either byte order. */
export const SHIM_MAGIC = 0x53504958;
export const SHIM_MAGIC_OFFSET = 0x18;
export const SHIM_TARGET_OFFSET = 0x20;

/**
 * The device tree the shim passes (a root filesystem in flash): it must lie
 * in the loader partition, 8-byte aligned, and parse; every mtd-rom map it
 * describes must stay off the kernel's flash, from its start to the end of
 * what it stores (the kernel claims that range), and hold a cramfs that
 * reads back whole. A cfi-flash map (the CFI driver writes through it, from
 * RAM: MTD_XIP) must be exactly a writable partition of the board's map,
 * off the kernel and off every mtd-rom map (a pointed CFI device refuses
 * writes, and a command to the chip reaches whatever else is on it).
 */
function checkShimDeviceTree(img: Uint8Array, address: number, board: Board, kernelEnd: number): { problems: string[]; text: string } {
  const loader = board.partitions.find((p) => p.content === 'loader')!;
  // The shim may pass a KSEG0 or a KSEG1 address of the flash.
  const phys = (address & 0x1fffffff) >>> 0;
  const off = phys - board.flashPhys;
  const seg = address >>> 29;
  if ((seg !== 4 && seg !== 5) || off < loader.offset || off + 40 > loader.offset + loader.size) {
    return { problems: [`the shim's device tree pointer ${hex(address)} is not a KSEG0/KSEG1 address in the loader partition '${loader.name}'`], text: '' };
  }
  // libfdt refuses a tree that is not 8-byte aligned, and the kernel would take its built-in one instead.
  if (address % 8 !== 0) return { problems: [`the shim's device tree at ${hex(address)} is not 8-byte aligned: the kernel would ignore it`], text: '' };
  const problems: string[] = [];
  const roms: string[] = [];
  try {
    const fdt = parseFdt(img.subarray(off, loader.offset + loader.size), `device tree at ${hex(address)}`);
    const chosen = findNode(fdt.root, '/chosen');
    if (!(chosen && getString(chosen, 'bootargs'))) problems.push(`device tree at ${hex(address)} has no /chosen/bootargs: the kernel would boot without a command line`);
    const kindOf = (c: (typeof fdt.root.children)[number]) => {
      const compat = getStrings(c, 'compatible') ?? [];
      return compat.includes('mtd-rom') ? 'mtd-rom' : compat.includes('cfi-flash') && getString(c, 'status') !== 'disabled' ? 'cfi-flash' : undefined;
    };
    const maps = fdt.root.children.flatMap((n) => {
      const kind = kindOf(n);
      if (!kind) return [];
      roms.push(n.name);
      const reg = regOf(fdt.root, n);
      if (!reg || reg.length !== 1) {
        problems.push(`device tree node ${n.name}: reg is not one (address, size) pair`);
        return [];
      }
      return [{ n, kind, start: reg[0]![0], size: reg[0]![1] }];
    });
    for (const { n, kind, start, size } of maps) {
      // The kernel claims its flash from its start to the end of what it stored: a map over it would not bind.
      if (start < kernelEnd && start + size > board.xipPhys) problems.push(`device tree node ${n.name} (${kind}) maps ${hex(start)}+${hex(size)}, over the kernel's flash (${hex(board.xipPhys)}..${hex(kernelEnd)}): the kernel claims it`);
      if (kind === 'mtd-rom') {
        const at = start - board.flashPhys;
        try {
          readCramfs(img.subarray(at, Math.min(img.length, at + size)));
        } catch (e) {
          problems.push(`device tree node ${n.name}: no valid cramfs at ${hex(start)}: ${(e as Error).message}`);
        }
        continue;
      }
      if (maps.some((m) => m.kind === 'mtd-rom' && start < m.start + m.size && m.start < start + size)) problems.push(`device tree node ${n.name} (cfi-flash) overlaps an mtd-rom map: the writable part of the chip needs a map of its own`);
      const part = board.partitions.find((p) => board.flashPhys + p.offset === start && p.size === size);
      if (!part || part.readOnly) problems.push(`device tree node ${n.name} (cfi-flash) maps ${hex(start)}+${hex(size)}, which is not a writable partition of the flash map: the CFI driver would write there`);
    }
  } catch (e) {
    problems.push((e as Error).message);
  }
  return { problems, text: `device tree at ${hex(address)} (${roms.join(', ') || 'no mtd-rom map'})` };
}

/** The settings partition (docs/settings.md): erased, or a current slot that reads back; a slot with the magic that fails its checks, with no valid one, is a problem. */
function checkSettings(img: Uint8Array, board: Board): { problem?: string; text?: string } {
  const part = board.partitions.find((p) => p.content === 'settings');
  if (!part || img.length < part.offset + part.size) return {};
  const bytes = img.subarray(part.offset, part.offset + part.size);
  if (bytes.every((b) => b === 0xff)) return { text: `settings '${part.name}' erased` };
  try {
    const s = readSettings(bytes, board.eraseSize);
    const states = s.slots.map((x, i) => `slot ${i}: ${x.valid ? 'valid' : x.reason}`).join(', ');
    if (s.slot === undefined) {
      const damaged = s.slots.some((x) => !x.valid && !['erased', 'no magic', 'bad magic'].includes(x.reason));
      return damaged ? { problem: `settings partition '${part.name}' has a damaged slot and no valid one (${states})` } : { text: `settings '${part.name}' hold no slot (${states})` };
    }
    return { text: `settings '${part.name}' slot ${s.slot} seq ${s.seq}, ${Object.keys(s.settings).length} keys` };
  } catch (e) {
    return { problem: `settings partition '${part.name}': ${(e as Error).message}` };
  }
}

function flagsText(f: number): string {
  return `${f & PF.R ? 'R' : '-'}${f & PF.W ? 'W' : '-'}${f & PF.X ? 'X' : '-'}`;
}

function segText(s: Segment): string {
  return `LOAD #${s.index} vaddr ${hex(s.vaddr)} paddr ${hex(s.paddr)} ${flagsText(s.flags)} filesz ${hex(s.filesz)} memsz ${hex(s.memsz)}`;
}

/** Address ranges of the board, all KSEG0. */
export function boardRanges(board: Board) {
  const flashBase = kseg0(board.flashPhys);
  const flashEnd = flashBase + board.flashSize; // may be exactly 2^31+..., kept as a JS number
  const xipAddr = kseg0(board.xipPhys);
  const ramBase = kseg0(board.ramPhys);
  const inFlash = (a: number): boolean => a >= flashBase && a < flashEnd;
  /** KSEG0 RAM: cached, unmapped, below KSEG1 and outside the flash window. */
  const inRam = (a: number): boolean => a >= ramBase && a < KSEG1 && !inFlash(a);
  return { flashBase, flashEnd, xipAddr, ramBase, inFlash, inRam };
}

function loads(elf: ElfFile): Segment[] {
  return elf.segments.filter((s) => s.type === PT.LOAD && s.memsz > 0);
}

/** Rule 1: a LOAD segment with VMA == LMA == KSEG0 + XIP_PHYS_ADDR, R-X. */
export function rule1(inp: RuleInputs): RuleResult {
  const { xipAddr } = boardRanges(inp.board);
  const title = 'kernel text executes in place from flash';
  const segs = loads(inp.elf);
  const at = segs.filter((s) => s.vaddr === xipAddr);
  const good = at.find((s) => s.paddr === xipAddr && s.flags & PF.R && s.flags & PF.X && !(s.flags & PF.W));
  const data = { xipAddr, segments: at.map((s) => ({ index: s.index, vaddr: s.vaddr, paddr: s.paddr, flags: s.flags, filesz: s.filesz })) };
  if (good) {
    return { id: 1, title, ok: true, summary: `${segText(good)} at KSEG0 + XIP_PHYS_ADDR ${hex(inp.board.xipPhys)}`, details: [], data };
  }
  const why = at.length
    ? `the LOAD segment at ${hex(xipAddr)} is ${at.map((s) => `paddr ${hex(s.paddr)} ${flagsText(s.flags)}`).join(', ')} (need paddr ${hex(xipAddr)}, R-X, not writable)`
    : `no LOAD segment at ${hex(xipAddr)} (KSEG0 + XIP_PHYS_ADDR ${hex(inp.board.xipPhys)}); first LOAD is at ${segs[0] ? hex(segs[0].vaddr) : 'nowhere'}`;
  return { id: 1, title, ok: false, summary: why, details: segs.map(segText), data };
}

/** Rule 2: a writable RAM segment whose load address lies inside the flash image. */
export function rule2(inp: RuleInputs): RuleResult {
  const r = boardRanges(inp.board);
  const title = 'writable data is loaded from flash into RAM';
  const segs = loads(inp.elf);
  // The flash image's extent when there is one, else the whole flash window.
  const imageEnd = inp.imageSize !== null ? r.flashBase + inp.imageSize : r.flashEnd;
  const within = inp.imageSize !== null ? `the flash image [${hex(r.flashBase)}, ${hex(imageEnd)})` : `the flash window [${hex(r.flashBase)}, ${hex(r.flashEnd)}) (no image)`;
  const writable = segs.filter((s) => s.flags & PF.W);
  const details: string[] = [];
  let found: Segment | undefined;
  for (const s of writable) {
    const inRam = r.inRam(s.vaddr) && r.inRam(s.vaddr + s.memsz - 1);
    // Deflated data takes less flash than its file size: it must start inside the image.
    const loadIn = s.paddr >= r.flashBase && (dataDeflated(inp.config) ? s.paddr < imageEnd : s.paddr + s.filesz <= imageEnd);
    if (inRam && loadIn) {
      found ??= s;
    } else {
      details.push(`${segText(s)}: ${!inRam ? 'not in RAM' : `load range [${hex(s.paddr)}, ${hex(s.paddr + s.filesz)}) not inside ${within}`}`);
    }
  }
  // Load ranges in flash must not overlap each other (they share the image).
  const flashLoads = segs.filter((s) => s.filesz > 0 && r.inFlash(s.paddr)).sort((a, b) => a.paddr - b.paddr);
  const overlaps: string[] = [];
  for (let i = 1; i < flashLoads.length; i++) {
    const a = flashLoads[i - 1]!;
    const b = flashLoads[i]!;
    if (a.paddr + a.filesz > b.paddr) overlaps.push(`LOAD #${a.index} [${hex(a.paddr)}, ${hex(a.paddr + a.filesz)}) overlaps LOAD #${b.index} at ${hex(b.paddr)}`);
  }
  const data = {
    segment: found ? { index: found.index, vaddr: found.vaddr, paddr: found.paddr, filesz: found.filesz, memsz: found.memsz } : null,
    dataLoc: inp.elf.findSymbol('__data_loc')?.value ?? null,
    sdata: inp.elf.findSymbol('_sdata')?.value ?? null,
    limit: imageEnd,
    overlaps,
  };
  if (found && overlaps.length === 0) {
    return {
      id: 2,
      title,
      ok: true,
      summary: `LOAD #${found.index} RAM ${hex(found.vaddr)}..${hex(found.vaddr + found.memsz)} loads from flash ${dataDeflated(inp.config) ? `${hex(found.paddr)}.. (deflated, to the end of the image)` : `${hex(found.paddr)}..${hex(found.paddr + found.filesz)}`} (inside ${hex(r.flashBase)}..${hex(imageEnd)})`,
      details: [],
      data,
    };
  }
  const summary = !found
    ? writable.length
      ? `no writable segment loads from flash: ${writable.map((s) => `LOAD #${s.index} vaddr ${hex(s.vaddr)} paddr ${hex(s.paddr)}`).join(', ')}; need vaddr in RAM, paddr inside ${within}`
      : 'no writable LOAD segment at all'
    : `${overlaps.length} overlapping load range(s) in flash`;
  return { id: 2, title, ok: false, summary, details: [...details, ...overlaps], data };
}

/** Where each named symbol is (null: not defined), and which ones are missing or not in `side`. */
function placeSymbols(elf: ElfFile, names: readonly string[], inSide: (a: number) => boolean, side: string) {
  const at: Record<string, number | null> = {};
  const wrong: string[] = [];
  for (const n of names) {
    const s = elf.findSymbol(n);
    at[n] = s && s.shndx !== 0 ? s.value : null;
    if (!s || s.shndx === 0) wrong.push(`${n} missing`);
    else if (!inSide(s.value)) wrong.push(`${n} at ${hex(s.value)} is not in ${side}`);
  }
  return { at, wrong };
}

/** Rule 3: sections and generated-code buffers on the right side. */
export function rule3(inp: RuleInputs): RuleResult {
  const r = boardRanges(inp.board);
  const title = 'flash holds no writable data, RAM no code except the generated-code buffers and the MTD_XIP write path';
  const elf = inp.elf;
  // The buffers are .xiptext input sections, which the generic DATA_DATA puts
  // into .data: the one RAM section allowed to be executable is the one
  // holding them.
  const bufferAddrs = RAM_BUFFER_SYMBOLS.map((n) => elf.findSymbol(n)).flatMap((b) => (b && b.shndx !== 0 ? [b.value >>> 0] : []));
  const holdsBuffers = (a: number, size: number): boolean => r.inRam(a) && bufferAddrs.some((b) => b >= a && b < a + size);
  const bufferSections: string[] = [];
  const alloc = elf.sections.filter((s) => s.flags & SHF.ALLOC && s.size > 0);
  const writableInFlash: string[] = [];
  const codeInRam: string[] = [];
  let flashCount = 0;
  let ramCount = 0;
  for (const s of alloc) {
    const what = `${s.name || `section ${s.index}`} ${hex(s.addr)} size ${hex(s.size)} flags ${s.flags & SHF.WRITE ? 'W' : ''}A${s.flags & SHF.EXECINSTR ? 'X' : ''}`;
    if (r.inFlash(s.addr)) {
      flashCount++;
      if (s.flags & SHF.WRITE && !(s.name === '.got' && s.size <= MAX_UNUSED_GOT_BYTES)) writableInFlash.push(what);
    } else if (r.inRam(s.addr)) {
      ramCount++;
      const readOnlyOrCode = s.flags & SHF.EXECINSTR || !(s.flags & SHF.WRITE);
      const buffersHere = holdsBuffers(s.addr, s.size);
      if (buffersHere) bufferSections.push(s.name);
      const allowed = buffersHere || (!(s.flags & SHF.EXECINSTR) && (WRITTEN_AT_BOOT_SECTIONS as readonly string[]).includes(s.name));
      if (readOnlyOrCode && !allowed) codeInRam.push(what);
    }
  }
  const { at: buffers, wrong: bufWrong } = placeSymbols(elf, RAM_BUFFER_SYMBOLS, r.inRam, 'RAM');
  const { at: entries, wrong: entryWrong } = placeSymbols(elf, FLASH_ENTRY_SYMBOLS, r.inFlash, 'flash');
  const ok = writableInFlash.length === 0 && codeInRam.length === 0 && bufWrong.length === 0 && entryWrong.length === 0;
  const data = {
    flashSections: flashCount,
    ramSections: ramCount,
    writableInFlash,
    codeOrReadOnlyInRam: codeInRam,
    bufferSections,
    buffers,
    entries,
  };
  if (ok) {
    return {
      id: 3,
      title,
      ok,
      summary: `${flashCount} sections in flash none writable, ${ramCount} in RAM none code but ${bufferSections.join(', ') || 'none'}, which holds the generated-code buffers (and, with MTD_XIP, the flash write path); ${RAM_BUFFER_SYMBOLS.length} buffers in RAM, ${FLASH_ENTRY_SYMBOLS.length} entry points in flash`,
      details: [],
      data,
    };
  }
  const parts: string[] = [];
  if (writableInFlash.length) parts.push(`${writableInFlash.length} writable section(s) in flash`);
  if (codeInRam.length) parts.push(`${codeInRam.length} code/read-only section(s) in RAM`);
  if (bufWrong.length) parts.push(`buffers: ${bufWrong.slice(0, 3).join(', ')}${bufWrong.length > 3 ? ', ...' : ''}`);
  if (entryWrong.length) parts.push(`entry points: ${entryWrong.join(', ')}`);
  const details = [
    ...writableInFlash.map((w) => `writable in flash: ${w}`),
    ...codeInRam.slice(0, 20).map((w) => `code/read-only in RAM: ${w}`),
    ...(codeInRam.length > 20 ? [`... and ${codeInRam.length - 20} more sections in RAM`] : []),
    ...bufWrong.map((w) => `buffer ${w}`),
    ...entryWrong.map((w) => `entry point ${w}`),
  ];
  return { id: 3, title, ok, summary: parts.join('; '), details, data };
}

/** Rule 4: the image fits the chip, the kernel its partition of the board's flash map; flash text stays below KSEG1. */
export function rule4(inp: RuleInputs): RuleResult {
  const r = boardRanges(inp.board);
  const b = inp.board;
  const title = 'the image fits the flash';
  const limit = flashBudget(b);
  const limitName = `the ${hex(limit)}-byte flash`;
  const part = kernelPartition(b);
  const partEnd = part.offset + part.size;
  const front = b.xipPhys - b.flashPhys;
  const problems: string[] = [];
  const segs = loads(inp.elf);
  // Flash-resident parts: what executes from flash and what is loaded from it.
  let flashTextEnd = 0;
  for (const s of segs) {
    if (r.inFlash(s.vaddr)) {
      flashTextEnd = Math.max(flashTextEnd, s.vaddr + s.memsz);
      if (s.vaddr + s.memsz > KSEG1) problems.push(`LOAD #${s.index} runs to ${hex(s.vaddr + s.memsz)}, past the ${hex(KSEG1)} segment boundary`);
    }
    if (s.filesz > 0 && r.inFlash(s.paddr) && s.paddr - r.flashBase < front) {
      problems.push(`LOAD #${s.index} at ${hex(s.paddr)} lies in front of the kernel's address ${hex(kseg0(b.xipPhys))} (${b.loader} flash map)`);
    }
  }
  // j and jal reach only their own 256 MiB region: all of the flash-resident kernel must be in the one it starts in.
  const textStart = kseg0(b.xipPhys);
  if (flashTextEnd > 0 && textStart >>> 28 !== (flashTextEnd - 1) >>> 28) {
    problems.push(`flash text runs from ${hex(textStart)} to ${hex(flashTextEnd)}, across a 256 MiB boundary that j and jal cannot cross: move CONFIG_XIP_PHYS_ADDR (the kernel partition) down`);
  }
  // What the image must leave alone: the radio calibration, and a real board's own loader.
  const untouchable = b.partitions.filter((p) => p.content === 'calibration' || (b.loader === 'vendor' && (p.content === 'loader' || p.content === 'uboot-env')));
  if (inp.image) {
    for (const p of untouchable) {
      const bytes = inp.image.subarray(p.offset, Math.min(inp.image.length, p.offset + p.size));
      const at = bytes.findIndex((x) => x !== 0xff);
      if (at >= 0) problems.push(`the image writes partition '${p.name}' (${p.content}, byte ${hex(p.offset + at)}): it must leave it erased, as the board's own stays there`);
    }
  }
  const flashLoadEnd = flashLoadEndOf(inp);
  const exiprom = inp.elf.findSymbol('_exiprom')?.value;
  if (exiprom !== undefined && exiprom >= r.flashBase && exiprom > KSEG1) problems.push(`_exiprom ${hex(exiprom)} is past ${hex(KSEG1)}`);
  const needed = flashLoadEnd > 0 ? flashLoadEnd - r.flashBase : 0;
  if (needed > partEnd) problems.push(`vmlinux's flash part ends at offset ${hex(needed)}, ${needed - partEnd} bytes past partition '${part.name}' (ends at ${hex(partEnd)})`);
  const size = inp.imageSize;
  if (size === null) problems.push(`no flash image at ${inp.imagePath} (build it: xip image; or pass one: xip verify --image <file>)`);
  else {
    if (size > limit) problems.push(`image is ${hex(size)} bytes, more than ${limitName}`);
    if (size % 4 !== 0) problems.push(`image length ${size} is not a multiple of 4`);
    if (size < needed) problems.push(`image is ${hex(size)} bytes but vmlinux's flash part ends at ${hex(needed)}`);
  }
  const data = { imageSize: size, limit, flashSize: b.flashSize, swapBytes: b.loaderSwapBytes, kernelPartition: { name: part.name, offset: part.offset, size: part.size }, flashTextStart: textStart, flashTextEnd, flashNeeded: needed, exiprom: exiprom ?? null, leftErased: untouchable.map((p) => p.name) };
  if (problems.length === 0) {
    const free = partEnd - needed;
    return {
      id: 4,
      title,
      ok: true,
      summary: `image ${hex(size ?? 0)} bytes <= ${limitName}; kernel in partition '${part.name}' up to ${hex(needed)} (${free} bytes free to ${hex(partEnd)}); flash text ${hex(textStart)}..${hex(flashTextEnd)} in one 256 MiB region, below ${hex(KSEG1)}${untouchable.length ? `; ${untouchable.map((p) => `'${p.name}'`).join(', ')} left erased` : ''}`,
      details: [],
      data,
    };
  }
  return { id: 4, title, ok: false, summary: problems[0]! + (problems.length > 1 ? ` (+${problems.length - 1} more)` : ''), details: problems, data };
}

/**
 * The KSEG0 end of what the kernel stores in flash (0: nothing): its
 * segments' bytes, and deflated data to the end of its gzip member (read
 * from the image when there is one; rule 5 checks the member).
 */
function flashLoadEndOf(inp: RuleInputs, unswapped?: Uint8Array): number {
  const r = boardRanges(inp.board);
  let end = 0;
  for (const s of loads(inp.elf)) {
    if (s.filesz === 0 || !r.inFlash(s.paddr)) continue;
    const deflatedData = dataDeflated(inp.config) && (s.flags & PF.W) !== 0;
    end = Math.max(end, deflatedData ? s.paddr + deflatedBytes(inp, s.paddr - r.flashBase, unswapped) : s.paddr + s.filesz);
  }
  return end;
}

/** Bytes of the gzip member at image offset `off` (0 when there is no image or no member there); `unswapped`: the image already unswapped. */
function deflatedBytes(inp: RuleInputs, off: number, unswapped?: Uint8Array): number {
  if (!inp.image || off >= inp.image.length) return 0;
  try {
    return inflateMemberAt((unswapped ?? unswap(inp.image, inp.board.loaderSwapBytes)).subarray(off)).end;
  } catch {
    return 0;
  }
}

/** Undo the loader's per-32-bit-word byte swap over [0, min(size, n)). Returns a copy. */
export function unswap(image: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(image);
  swapWords(out, n);
  return out;
}

/** Rule 5: each segment's bytes are in the image at p_paddr - flash base; the shim jumps to kernel_entry. */
export function rule5(inp: RuleInputs): RuleResult {
  const r = boardRanges(inp.board);
  const title = 'the flash image matches vmlinux';
  const entrySym = inp.elf.findSymbol('kernel_entry');
  const entry = entrySym && entrySym.shndx !== 0 ? entrySym.value : null;
  if (!inp.image) {
    const why = inp.imageSize === null ? `no flash image at ${inp.imagePath} (build it: xip image; or pass one: xip verify --image <file>)` : `image of ${inp.imageSize} bytes is too large to compare`;
    return { id: 5, title, ok: false, summary: why, details: [], data: { imagePresent: inp.imageSize !== null, kernelEntry: entry } };
  }
  const img = unswap(inp.image, inp.board.loaderSwapBytes);
  const little = inp.board.endian === 'little';
  const dv = new DataView(img.buffer, img.byteOffset, img.byteLength);
  const problems: string[] = [];
  const compared: { index: number; imageOffset: number; bytes: number; firstMismatch: number | null }[] = [];
  let total = 0;
  for (const s of loads(inp.elf)) {
    if (s.filesz === 0) continue;
    const off = s.paddr - r.flashBase;
    if (!r.inFlash(s.paddr)) {
      problems.push(`LOAD #${s.index} loads at ${hex(s.paddr)}, outside the flash window: it cannot be in the image`);
      compared.push({ index: s.index, imageOffset: off, bytes: 0, firstMismatch: null });
      continue;
    }
    if (dataDeflated(inp.config) && s.flags & PF.W) {
      // The rest of the image from p_paddr on is a gzip member of the segment's bytes.
      const want = inp.elf.segmentData(s);
      let got: Uint8Array | undefined;
      let why = '';
      try {
        // The member runs to the end of the kernel; erased flash (0xff) follows it to the partition's end.
        const kp = kernelPartition(inp.board);
        const partEnd = kp.offset + kp.size;
        const m = inflateMemberAt(img.subarray(off, Math.min(img.length, partEnd)));
        const after = img.subarray(off + m.end, Math.min(img.length, partEnd));
        const stray = after.findIndex((x) => x !== 0xff);
        if (stray >= 0) throw new Error(`byte ${hex(off + m.end + stray)} after the member is not erased flash`);
        got = m.data;
      } catch (e) {
        why = (e as Error).message;
      }
      const first = got === undefined ? 0 : want.findIndex((b, i) => got[i] !== b);
      const equal = got !== undefined && got.length === want.length && first < 0;
      compared.push({ index: s.index, imageOffset: off, bytes: want.length, firstMismatch: equal ? null : off });
      total += want.length;
      if (!equal) {
        problems.push(
          got === undefined
            ? `LOAD #${s.index}: the image from ${hex(off)} is not a gzip member (${why}), though CONFIG_XIP_DEFLATED_DATA=y`
            : `LOAD #${s.index}: the deflated data at ${hex(off)} inflates to ${got.length} bytes, vmlinux has ${want.length}${first >= 0 ? `, first difference at byte ${hex(first)}` : ''}`,
        );
      }
      continue;
    }
    if (off + s.filesz > img.length) {
      problems.push(`LOAD #${s.index} needs image bytes [${hex(off)}, ${hex(off + s.filesz)}) but the image ends at ${hex(img.length)}`);
      compared.push({ index: s.index, imageOffset: off, bytes: 0, firstMismatch: null });
      continue;
    }
    const want = inp.elf.segmentData(s);
    let mismatch = -1;
    let diff = 0;
    for (let i = 0; i < want.length; i++) {
      if (img[off + i] !== want[i]) {
        if (mismatch < 0) mismatch = i;
        diff++;
      }
    }
    compared.push({ index: s.index, imageOffset: off, bytes: want.length, firstMismatch: mismatch < 0 ? null : off + mismatch });
    total += want.length;
    if (mismatch >= 0) {
      problems.push(
        `LOAD #${s.index} differs from the image at offset ${hex(off + mismatch)} (segment byte ${hex(mismatch)}: image ${hex(img[off + mismatch]!)}, vmlinux ${hex(want[mismatch]!)}; ${diff} bytes differ)`,
      );
    }
  }
  let magic: number | null = null;
  let target: number | null = null;
  let loaderText = '';
  if (inp.board.loader === 'vendor') {
    // A real board's own loader: the kernel partition starts with what it boots (src/image/vendor.ts).
    const kp = kernelPartition(inp.board);
    const c = checkVendorKernel(inp.board, img.subarray(kp.offset, kp.offset + kp.size), entry);
    problems.push(...c.problems);
    loaderText = c.text;
  } else if (inp.board.loader !== 'shim') {
    // A legacy uImage header in front of the kernel: bootm runs it in place only if load is where its data lies.
    const off = inp.board.xipPhys - inp.board.flashPhys - UIMAGE_HEADER_BYTES;
    try {
      const hd = parseUImageHeader(img.subarray(off), img.subarray(off + UIMAGE_HEADER_BYTES));
      magic = 0x27051956;
      target = hd.entry;
      if (hd.load !== kseg0(inp.board.xipPhys)) problems.push(`uImage load address ${hex(hd.load)} is not where its data lies (${hex(kseg0(inp.board.xipPhys))}): bootm would copy it instead of running it in place`);
      problems.push(...uImageKernelProblems(hd, entry));
      loaderText = `uImage header at +${hex(off)} valid (CRCs ok), load ${hex(hd.load)}, entry kernel_entry ${hex(hd.entry)}`;
      if (inp.board.loader === 'uboot') {
        // The source-built U-Boot boots by itself: its saved environment must be valid and bootm this uImage.
        const envPart = inp.board.partitions.find((p) => p.content === 'uboot-env')!;
        const want = `bootm ${hex(ubootKernelAddress(inp.board))}`;
        try {
          const env = parseUbootEnv(img.subarray(envPart.offset, envPart.offset + envPart.size), inp.board.endian);
          if (env.bootcmd !== want) problems.push(`U-Boot environment: bootcmd is '${env.bootcmd ?? ''}', not '${want}'`);
          else loaderText += `; U-Boot environment at +${hex(envPart.offset)} valid, bootcmd '${want}'`;
        } catch (e) {
          problems.push(`U-Boot environment at +${hex(envPart.offset)}: ${(e as Error).message}`);
        }
      }
    } catch (e) {
      problems.push(`no valid uImage header at +${hex(off)}: ${(e as Error).message}`);
    }
  } else if (img.length >= SHIM_TARGET_OFFSET + 4) {
    magic = dv.getUint32(SHIM_MAGIC_OFFSET, true);
    target = dv.getUint32(SHIM_TARGET_OFFSET, little);
    if (magic !== SHIM_MAGIC) problems.push(`shim magic at ${hex(SHIM_MAGIC_OFFSET)} is ${hex(magic)}, expected ${hex(SHIM_MAGIC)} ('XIPS')`);
    if (entry === null) problems.push('vmlinux has no kernel_entry symbol');
    else if (target !== entry) problems.push(`shim jumps to ${hex(target)} (word at ${hex(SHIM_TARGET_OFFSET)}), but kernel_entry is ${hex(entry)}`);
    loaderText = `shim magic ok, jumps to kernel_entry ${hex(entry ?? 0)}`;
    const dtb = dv.getUint32(SHIM_DTB_OFFSET, little);
    if (dtb !== 0) {
      const dt = checkShimDeviceTree(img, dtb, inp.board, inp.board.flashPhys + (flashLoadEndOf(inp, img) - boardRanges(inp.board).flashBase));
      problems.push(...dt.problems);
      loaderText += `; ${dt.text}`;
    }
  } else problems.push(`image of ${img.length} bytes is too short for the shim header`);
  const settings = checkSettings(img, inp.board);
  if (settings.problem) problems.push(settings.problem);
  else if (settings.text) loaderText += `; ${settings.text}`;
  const data = { imageSize: img.length, unswapped: Math.min(img.length, inp.board.loaderSwapBytes), segments: compared, bytesCompared: total, shimMagic: magic, shimTarget: target, kernelEntry: entry };
  if (problems.length === 0) {
    return {
      id: 5,
      title,
      ok: true,
      summary: `${compared.length} segment(s), ${total} bytes equal at ${compared.map((c) => `+${hex(c.imageOffset)}`).join(', ')}; ${loaderText}`,
      details: [],
      data,
    };
  }
  return { id: 5, title, ok: false, summary: problems[0]! + (problems.length > 1 ? ` (+${problems.length - 1} more)` : ''), details: problems, data };
}

/** Rule 6: CONFIG_XIP_KERNEL=y and no option that patches kernel text. */
export function rule6(inp: RuleInputs): RuleResult {
  const title = 'the kernel config is XIP and patches no text';
  const xip = configValue(inp.config, 'XIP_KERNEL');
  const on = TEXT_PATCHING_OPTIONS.filter((o) => ['y', 'm'].includes(configValue(inp.config, o)));
  const problems: string[] = [];
  if (xip !== 'y') problems.push(`CONFIG_XIP_KERNEL is ${xip === 'n' ? 'not set' : `=${xip}`}`);
  if (on.length) problems.push(`text-patching options on: ${on.map((o) => `${o}=${configValue(inp.config, o)}`).join(' ')}`);
  const data = { xipKernel: xip === 'n' ? null : xip, textPatchingOn: on, checked: [...TEXT_PATCHING_OPTIONS] };
  if (problems.length === 0) {
    return { id: 6, title, ok: true, summary: `CONFIG_XIP_KERNEL=y; ${TEXT_PATCHING_OPTIONS.length} text-patching options off`, details: [], data };
  }
  return { id: 6, title, ok: false, summary: problems.join('; '), details: problems, data };
}

export const RULES = [rule1, rule2, rule3, rule4, rule5, rule6] as const;

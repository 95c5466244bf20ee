import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { KSEG0, KSEG1, physOfKseg0 } from '../boards/board.ts';
import { type ElfFile, parseElf, PT, SHF, SHN, STB, STT, type Sym } from '../elf/elf32.ts';
import { badInput } from '../errors.ts';
import { readArchive } from './archive.ts';
import type { SizeNode } from './types.ts';

/**
 * Which object file of the build each vmlinux symbol came from. The kernel
 * is linked from thin archives (vmlinux.a, then lib/lib.a and friends), so
 * the object files are all still in the build directory: their symbol
 * tables name what each defines. A name defined once is settled at once;
 * a static name defined in several files (there are many `init`s) is
 * settled by the STT_FILE symbol the linker keeps in front of each file's
 * locals, then by size, then by its neighbour in the image. An assembler
 * label (no size) owns the bytes up to the next symbol, but never past the
 * end of its own section in its object file.
 */
/** One definition of a name in an object file. */
export interface ObjectDef {
  /** Path relative to the build directory. */
  obj: string;
  size: number;
  /** STB_LOCAL, STB_GLOBAL or STB_WEAK. */
  bind: number;
  /** Bytes from the symbol to the end of its section there: how far an assembler label can reach. */
  room: number;
}

/**
 * An object's unnamed .rodata bytes: those of `.rodata.<function>`
 * sections (a compiler's per-function jump tables) count only if the
 * function survived the linker's --gc-sections; the rest (strings, plain
 * .rodata) always.
 */
export interface UnnamedRodata {
  always: number;
  byFunction: Map<string, number>;
}

export interface ObjectIndex {
  /** name → the objects that define it. */
  defs: Map<string, ObjectDef[]>;
  /**
   * Per object, the bytes of its .rodata input sections that no symbol
   * covers: string literals (merged across files by the linker) and
   * unnamed tables. The weights by which vmlinux's own unnamed .rodata is
   * shared out (an estimate: merging removes duplicates).
   */
  unnamedRodata: Map<string, UnnamedRodata>;
}

/** The archives the final link reads, in link order (see the kernel's scripts/link-vmlinux.sh and .vmlinux.o.cmd). */
function linkedArchives(kbuild: string): string[] {
  const cmd = join(kbuild, '.vmlinux.o.cmd');
  const found = existsSync(cmd) ? [...readFileSync(cmd, 'utf8').matchAll(/(\S+\.a)\b/g)].map((m) => m[1]!) : ['vmlinux.a'];
  return [...new Set(found)].map((a) => join(kbuild, a)).filter((a) => existsSync(a));
}

function objectFiles(kbuild: string): { path: string; data?: Uint8Array }[] {
  const out: { path: string; data?: Uint8Array }[] = [];
  const walk = (archive: string, depth: number) => {
    for (const m of readArchive(archive)) {
      if (m.data === undefined && m.path.endsWith('.a') && depth < 4) walk(m.path, depth + 1);
      else out.push(m);
    }
  };
  for (const a of linkedArchives(kbuild)) walk(a, 0);
  // Objects the last link step adds outside the archives.
  for (const extra of ['init/version-timestamp.o', '.vmlinux.export.o', '.tmp_vmlinux2.kallsyms.o', '.tmp_vmlinux.kallsyms2.o']) {
    if (existsSync(join(kbuild, extra))) out.push({ path: join(kbuild, extra) });
  }
  return out;
}

export function indexObjects(kbuild: string): ObjectIndex {
  if (!existsSync(join(kbuild, 'vmlinux.a'))) throw badInput(`${kbuild}: no vmlinux.a, so no object files to attribute symbols to; build the kernel first (xip build)`);
  const defs: ObjectIndex['defs'] = new Map();
  const unnamedRodata = new Map<string, UnnamedRodata>();
  for (const m of objectFiles(kbuild)) {
    if (m.data === undefined && !existsSync(m.path)) throw badInput(`${m.path}: object file of the kernel build missing; rebuild the kernel (xip build)`);
    let elf: ElfFile;
    try {
      elf = parseElf(m.data ?? readFileSync(m.path), m.path);
    } catch {
      continue; // not an ELF object (an empty member, a data file)
    }
    const obj = m.data === undefined ? relative(kbuild, m.path) : m.path;
    const rodata = new Set(elf.sections.filter((x) => x.name.startsWith('.rodata') && (x.flags & SHF.ALLOC) !== 0).map((x) => x.index));
    const unnamed = new Map(elf.sections.filter((x) => rodata.has(x.index)).map((x) => [x.index, x.size]));
    for (const s of elf.symbols) {
      if (s.shndx === SHN.UNDEF || s.shndx >= SHN.LORESERVE || s.name === '') continue;
      if (s.type !== STT.FUNC && s.type !== STT.OBJECT && s.type !== STT.NOTYPE) continue;
      if (unnamed.has(s.shndx)) unnamed.set(s.shndx, unnamed.get(s.shndx)! - s.size);
      const section = elf.sections[s.shndx];
      const def: ObjectDef = { obj, size: s.size, bind: s.bind, room: section ? Math.max(0, section.size - s.value) : 0 };
      const list = defs.get(s.name);
      if (list) list.push(def);
      else defs.set(s.name, [def]);
    }
    const entry: UnnamedRodata = { always: 0, byFunction: new Map() };
    const functions = new Set(elf.symbols.filter((x) => x.type === STT.FUNC).map((x) => x.name));
    for (const [i, bytes] of unnamed) {
      if (bytes <= 0) continue;
      const fn = /^\.rodata\.(.+)$/.exec(elf.sections[i]!.name)?.[1];
      if (fn !== undefined && functions.has(fn)) entry.byFunction.set(fn, (entry.byFunction.get(fn) ?? 0) + bytes);
      else entry.always += bytes;
    }
    if (entry.always > 0 || entry.byFunction.size > 0) unnamedRodata.set(obj, entry);
  }
  return { defs, unnamedRodata };
}

/** A vmlinux symbol placed in an address space (physical flash, or RAM virtual) with its object. */
export interface PlacedSymbol {
  name: string;
  addr: number;
  size: number;
  obj: string;
  /** Sizeless (an assembler label): it covers up to the next symbol, at most \`room\` bytes. */
  label: boolean;
  /** A label's bytes to the end of its input section in its object: what it can own at most. */
  room?: number;
}

const stem = (p: string) => basename(p).replace(/\.[^.]+$/, '');

/** A placed vmlinux symbol and the definition it was matched to. */
export interface KernelSymbol {
  sym: Sym;
  obj: string;
  label: boolean;
  room: number;
}

/**
 * The object behind each block of local symbols: the linker keeps an
 * STT_FILE symbol (the source's file name) in front of each object's
 * locals. Several objects may share the file name (fs/inode.c and
 * fs/proc/inode.c): the block belongs to the one that defines all of its
 * names.
 */
function blockObjects(elf: ElfFile, index: ObjectIndex): Map<number, string> {
  const owner = new Map<number, string>();
  let file: string | undefined;
  let block: number[] = [];
  const settle = () => {
    if (file === undefined || block.length === 0) return;
    let cands: Set<string> | undefined;
    for (const i of block) {
      const here = new Set((index.defs.get(elf.symbols[i]!.name) ?? []).filter((d) => d.bind === STB.LOCAL && stem(d.obj) === file).map((d) => d.obj));
      if (here.size === 0) continue;
      cands = cands ? new Set([...cands].filter((o) => here.has(o))) : here;
    }
    const obj = cands && cands.size > 0 ? [...cands][0]! : undefined;
    if (obj !== undefined) for (const i of block) owner.set(i, obj);
  };
  elf.symbols.forEach((s, i) => {
    if (s.type === STT.FILE) {
      settle();
      file = stem(s.name);
      block = [];
    } else if (s.bind === STB.LOCAL) block.push(i);
    else {
      settle();
      file = undefined;
      block = [];
    }
  });
  settle();
  return owner;
}

/**
 * Every symbol of vmlinux that takes bytes (functions, objects, assembler
 * labels of an object file), with the object it came from. Symbols the
 * linker script defines (`_etext`, `__start___ex_table`) are left out:
 * they mark places, they own no bytes. A global symbol is matched to the
 * strong definition when a weak one exists too (kernel/sys_ni.c's stubs).
 */
export function kernelSymbols(elf: ElfFile, index: ObjectIndex): KernelSymbol[] {
  const out: KernelSymbol[] = [];
  const blocks = blockObjects(elf, index);
  let previous = '';
  elf.symbols.forEach((s, i) => {
    if (s.shndx === SHN.UNDEF || s.shndx >= SHN.LORESERVE || s.name === '') return;
    if (s.type !== STT.FUNC && s.type !== STT.OBJECT && s.type !== STT.NOTYPE) return;
    const defs = index.defs.get(s.name);
    if (!defs) return;
    let c = defs.filter((d) => d.bind === s.bind);
    const block = blocks.get(i);
    if (block !== undefined && c.some((d) => d.obj === block)) c = c.filter((d) => d.obj === block);
    if (c.length > 1) {
      const sized = c.filter((d) => d.size === s.size);
      if (sized.length > 0) c = sized;
    }
    if (c.length === 0) c = defs;
    const pick = c.find((d) => d.obj === previous) ?? c[0]!;
    previous = pick.obj;
    out.push({ sym: s, obj: pick.obj, label: s.size === 0, room: pick.room });
  });
  return out;
}

/** The subsystem an object file belongs to: arch/mips/kernel, drivers/mtd, kernel/sched, mm, init. */
export function subsystemOf(obj: string): string {
  const dirs = dirname(obj).split('/').filter((p) => p !== '.' && p !== '');
  if (dirs.length === 0) return '(top level)';
  return dirs.slice(0, dirs[0] === 'arch' ? 3 : 2).join('/');
}

/** Bytes between symbols up to this many are the preceding object's alignment padding; more is "(no symbol)". */
export const PADDING_MAX = 32;

const NO_SYMBOL = '(no symbol)';
const PADDING = '(padding)';

/**
 * The tree of one address range [start, end): subsystems → objects →
 * symbols. Every byte lands somewhere: symbol bytes in their symbol, short
 * gaps in the preceding object's "(padding)", longer ones (string literals
 * the linker merged, tables a linker script gathers) in "(no symbol)". So
 * the children always add up to end - start.
 */
export interface Span {
  name: string;
  start: number;
  end: number;
}

export function attributeRange(name: string, start: number, end: number, symbols: readonly PlacedSymbol[], sections: readonly Span[] = []): SizeNode {
  const syms = symbols.filter((s) => s.addr < end && (s.label ? s.addr >= start : s.addr + s.size > start)).sort((a, b) => a.addr - b.addr || b.size - a.size);
  const bySub = new Map<string, Map<string, Map<string, number>>>();
  // Bytes no symbol covers, by the output section they are in (tables a linker script gathers have a section of their own).
  const unattributed = new Map<string, number>();
  const count = (sec: string, n: number) => n > 0 && unattributed.set(sec, (unattributed.get(sec) ?? 0) + n);
  const ordered = [...sections].sort((a, b) => a.start - b.start);
  const noSymbol = (from: number, to: number) => {
    let pos = from;
    for (const sec of ordered) {
      const a = Math.max(pos, sec.start);
      const b = Math.min(to, sec.end);
      if (b <= a) continue;
      count('', a - pos);
      count(sec.name, b - a);
      pos = b;
    }
    count('', to - pos);
  };
  const add = (obj: string, sym: string, bytes: number) => {
    if (bytes <= 0) return;
    const sub = subsystemOf(obj);
    let objs = bySub.get(sub);
    if (!objs) bySub.set(sub, (objs = new Map()));
    let names = objs.get(obj);
    if (!names) objs.set(obj, (names = new Map()));
    names.set(sym, (names.get(sym) ?? 0) + bytes);
  };
  let cursor = start;
  let last: PlacedSymbol | undefined;
  const gap = (to: number) => {
    const n = to - cursor;
    if (n <= 0) return;
    if (last && n <= PADDING_MAX) add(last.obj, PADDING, n);
    else noSymbol(cursor, to);
    cursor = to;
  };
  for (let i = 0; i < syms.length; i++) {
    const s = syms[i]!;
    const from = Math.max(s.addr, start);
    let to = Math.min(s.addr + s.size, end);
    if (s.label) {
      // An assembler label owns the code up to the next symbol that starts after it, within its own section.
      const next = syms.slice(i + 1).find((n) => n.addr > s.addr);
      to = Math.min(next ? next.addr : end, end, s.addr + (s.room ?? Infinity));
    }
    if (to <= cursor) continue;
    if (from > cursor) gap(from);
    add(s.obj, s.name, to - Math.max(from, cursor));
    cursor = to;
    last = s;
  }
  gap(end);
  const children: SizeNode[] = [];
  for (const [sub, objs] of bySub) {
    const objNodes: SizeNode[] = [];
    for (const [obj, names] of objs) {
      const symNodes: SizeNode[] = [...names].map(([n, bytes]) => ({ name: n, bytes, kind: n === PADDING ? 'other' : 'symbol' }));
      objNodes.push(node(obj, 'object', symNodes));
    }
    children.push(node(sub, 'subsystem', objNodes));
  }
  for (const [sec, bytes] of unattributed) {
    children.push({ name: sec === '' ? NO_SYMBOL : `${NO_SYMBOL} ${sec}`, bytes, kind: 'other', note: 'bytes no symbol of an object file covers: merged string literals, tables a linker script gathers, alignment' });
  }
  return node(name, 'region', children);
}

export const UNNAMED_SHARE = '(strings, unnamed data)';

/** Each linked object's weight for shareUnnamed: its unnamed .rodata that made it into vmlinux, as far as can be told. */
export function rodataWeights(index: ObjectIndex, linked: readonly KernelSymbol[]): Map<string, number> {
  const objs = new Set(linked.map((x) => x.obj));
  const kept = new Set(linked.map((x) => `${x.obj}\0${x.sym.name}`));
  const out = new Map<string, number>();
  for (const [obj, u] of index.unnamedRodata) {
    if (!objs.has(obj)) continue;
    let w = u.always;
    for (const [fn, bytes] of u.byFunction) if (kept.has(`${obj}\0${fn}`)) w += bytes;
    if (w > 0) out.set(obj, w);
  }
  return out;
}

/**
 * Share the bytes of the region's `(no symbol) <section>` node out to the
 * objects by weight (largest remainder, so the total stays exact), each
 * share a symbol-level node marked estimated. The linker merges string
 * literals across files and keeps no record of whose they were; the
 * objects' own unnamed .rodata bytes say roughly.
 */
export function shareUnnamed(region: SizeNode, section: string, weights: ReadonlyMap<string, number>): SizeNode {
  const name = `${NO_SYMBOL} ${section}`;
  const loose = region.children?.find((c) => c.name === name);
  const total = [...weights.values()].reduce((n, w) => n + w, 0);
  if (!loose || total <= 0) return region;
  const shares = [...weights].map(([obj, w]) => ({ obj, exact: (loose.bytes * w) / total }));
  const given = shares.map((x) => ({ obj: x.obj, bytes: Math.floor(x.exact), rest: x.exact - Math.floor(x.exact) }));
  let left = loose.bytes - given.reduce((n, x) => n + x.bytes, 0);
  for (const g of [...given].sort((a, b) => b.rest - a.rest || a.obj.localeCompare(b.obj))) {
    if (left-- <= 0) break;
    g.bytes++;
  }
  // A copy: the region given stays as it was.
  const subs = new Map((region.children ?? []).filter((c) => c.kind === 'subsystem').map((c) => [c.name, structuredClone(c)]));
  const others = (region.children ?? []).filter((c) => c.kind !== 'subsystem' && c !== loose);
  for (const g of given) {
    if (g.bytes === 0) continue;
    const sub = subs.get(subsystemOf(g.obj)) ?? { name: subsystemOf(g.obj), kind: 'subsystem' as const, bytes: 0, children: [] };
    subs.set(sub.name, sub);
    let obj = sub.children!.find((c) => c.name === g.obj);
    if (!obj) sub.children!.push((obj = { name: g.obj, kind: 'object', bytes: 0, children: [] }));
    obj.children!.push({ name: UNNAMED_SHARE, bytes: g.bytes, kind: 'other', estimated: true, note: `a share of the ${loose.bytes} bytes of ${section} no symbol covers, by this object's own unnamed ${section} bytes (string literals the linker merged, tables)` });
    obj.bytes += g.bytes;
    sub.bytes += g.bytes;
  }
  for (const sub of subs.values()) {
    for (const o of sub.children ?? []) o.children?.sort((a, b) => b.bytes - a.bytes);
    sub.children?.sort((a, b) => b.bytes - a.bytes);
  }
  return node(region.name, 'region', [...subs.values(), ...others]);
}

/** A node whose bytes are its children's sum, children largest first. */
export function node(name: string, kind: SizeNode['kind'], children: SizeNode[]): SizeNode {
  children.sort((a, b) => b.bytes - a.bytes || a.name.localeCompare(b.name));
  return { name, kind, bytes: children.reduce((n, c) => n + c.bytes, 0), children };
}

const KSEG_SIZE = KSEG1 - KSEG0;

/** Where a symbol's bytes are stored: its load address (the flash copy of .data), as a physical address. */
export function loadPhys(elf: ElfFile, vaddr: number): number | undefined {
  for (const seg of elf.segments) {
    if (seg.type !== PT.LOAD || vaddr < seg.vaddr || vaddr >= seg.vaddr + seg.filesz) continue;
    const lma = (seg.paddr + (vaddr - seg.vaddr)) >>> 0;
    return lma >= KSEG0 && lma < KSEG0 + 2 * KSEG_SIZE ? (lma - KSEG0) % KSEG_SIZE : lma;
  }
  return undefined;
}

/** The allocated sections of vmlinux that live in RAM: all of them for a stock kernel, the ones outside the flash window for XIP. */
export function ramSections(elf: ElfFile, flash?: { phys: number; size: number }) {
  return elf.sections.filter((s) => {
    if ((s.flags & SHF.ALLOC) === 0 || s.size === 0) return false;
    if (!flash) return true;
    const phys = physOfKseg0(s.addr);
    return !(phys >= flash.phys && phys < flash.phys + flash.size);
  });
}

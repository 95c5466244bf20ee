/**
 * A small, defensive ELF32 reader for MIPS kernels (vmlinux), little- and
 * big-endian: file header, program headers, section headers with names,
 * and the .symtab symbols with their .strtab names.
 *
 * Every address, offset and size is an unsigned 32-bit JS number (x >>> 0);
 * nothing is ever sign-extended the way nm and System.map print MIPS32
 * kernel addresses (ffffffff9fc01000).
 *
 * Bad input never crashes, hangs or allocates without bound: every count and
 * every (offset, size) pair is checked against the file length before it is
 * used, and each problem ends in one badInput XipError (exit code 2) that
 * names the file and what is wrong with it.
 */
import { readFileSync, statSync } from 'node:fs';
import { badInput, XipError } from '../errors.ts';

export const EM_MIPS = 8;

export const ET = { REL: 1, EXEC: 2, DYN: 3, CORE: 4 } as const;
export const PT = { NULL: 0, LOAD: 1, DYNAMIC: 2, INTERP: 3, NOTE: 4, SHLIB: 5, PHDR: 6, TLS: 7 } as const;
export const PF = { X: 1, W: 2, R: 4 } as const;
export const SHT = {
  NULL: 0,
  PROGBITS: 1,
  SYMTAB: 2,
  STRTAB: 3,
  RELA: 4,
  HASH: 5,
  DYNAMIC: 6,
  NOTE: 7,
  NOBITS: 8,
  REL: 9,
  DYNSYM: 11,
  SYMTAB_SHNDX: 18,
} as const;
export const SHF = { WRITE: 1, ALLOC: 2, EXECINSTR: 4 } as const;
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
export const SHN = { UNDEF: 0, LORESERVE: 0xff00, ABS: 0xfff1, COMMON: 0xfff2, XINDEX: 0xffff } as const;

const EHDR_SIZE = 52;
const PHDR_SIZE = 32;
const SHDR_SIZE = 40;
const SYM_SIZE = 16;
const PN_XNUM = 0xffff;

export interface Segment {
  index: number;
  type: number;
  offset: number;
  vaddr: number;
  paddr: number;
  filesz: number;
  memsz: number;
  /** PF_X=1 PF_W=2 PF_R=4 */
  flags: number;
  align: number;
}

export interface Section {
  index: number;
  name: string;
  type: number;
  /** SHF_WRITE=1 SHF_ALLOC=2 SHF_EXECINSTR=4 */
  flags: number;
  addr: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: number;
  entsize: number;
}

export interface Sym {
  name: string;
  value: number;
  size: number;
  /** STT_* (st_info & 0xf) */
  type: number;
  /** STB_* (st_info >> 4) */
  bind: number;
  /** Section index, or SHN_ABS / SHN_COMMON / SHN_UNDEF. */
  shndx: number;
  /** st_other (visibility). */
  other: number;
}

export interface ElfFile {
  name: string;
  endian: 'little' | 'big';
  /** e_type: ET_EXEC=2 for a vmlinux. */
  type: number;
  /** e_machine: always EM_MIPS (8) here. */
  machine: number;
  flags: number;
  entry: number;
  segments: Segment[];
  sections: Section[];
  /** Symbols of .symtab in table order, without the null symbol at index 0. */
  symbols: Sym[];
  /** First defined symbol of that name (else the first undefined one). */
  findSymbol(name: string): Sym | undefined;
  /** The file bytes of a segment (p_filesz bytes; a view, not a copy). */
  segmentData(s: Segment): Uint8Array;
  /** The file bytes of a section (a view); empty for SHT_NOBITS. */
  sectionData(s: Section): Uint8Array;
  /** The section with that name, if any. */
  findSection(name: string): Section | undefined;
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

/**
 * Parse an ELF32 MIPS file held in memory. `name` is used in error messages
 * (pass the path). Throws a badInput XipError (exit code 2) for anything
 * that is not a well-formed MIPS ELF32 file.
 */
export function parseElf(buf: Uint8Array, name = '<buffer>'): ElfFile {
  const len = buf.length;
  const fail = (problem: string, fix = 'pass a complete MIPS32 vmlinux (rebuild it if it was cut short)'): XipError =>
    badInput(`${name}: ${problem}; ${fix}`);

  if (len === 0) throw fail('empty file, not an ELF file');
  if (len < 4 || buf[0] !== 0x7f || buf[1] !== 0x45 || buf[2] !== 0x4c || buf[3] !== 0x46) {
    throw fail('not an ELF file (no \\x7fELF magic)', 'pass the kernel\'s vmlinux, not vmlinuz or an image');
  }
  if (len < 16) throw fail(`truncated ELF identification (${len} bytes, need 16)`);
  const cls = buf[4];
  if (cls === 2) throw fail('64-bit ELF (ELFCLASS64)', 'xip reads MIPS32 (ELFCLASS32) kernels only');
  if (cls !== 1) throw fail(`unknown ELF class ${cls} (expected 1, ELFCLASS32)`);
  const data = buf[5];
  if (data !== 1 && data !== 2) throw fail(`unknown ELF data encoding ${data} (expected 1 little or 2 big endian)`);
  const little = data === 1;
  if (buf[6] !== 1) throw fail(`unsupported ELF version ${buf[6]} in e_ident (expected 1)`);
  if (len < EHDR_SIZE) throw fail(`truncated ELF header (${len} bytes, need ${EHDR_SIZE})`);

  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (o: number): number => dv.getUint16(o, little);
  const u32 = (o: number): number => dv.getUint32(o, little);

  const type = u16(16);
  const machine = u16(18);
  if (machine !== EM_MIPS) {
    throw fail(`not a MIPS ELF (e_machine ${machine}, expected ${EM_MIPS} EM_MIPS)`, 'pass a vmlinux built for MIPS');
  }
  const version = u32(20);
  if (version !== 1) throw fail(`unsupported ELF version ${version} (expected 1)`);
  const entry = u32(24);
  const phoff = u32(28);
  const shoff = u32(32);
  const flags = u32(36);
  const phentsize = u16(42);
  let phnum = u16(44);
  const shentsize = u16(46);
  let shnum = u16(48);
  let shstrndx = u16(50);

  /** [off, off+size) must lie inside the file. Numbers stay below 2^53, no overflow. */
  const checkRange = (what: string, off: number, size: number): void => {
    if (off > len || size > len - off) {
      throw fail(`${what} (offset ${hex(off)}, ${size} bytes) runs past the end of the file (${len} bytes)`);
    }
  };

  // Section header table, including extended numbering (e_shnum == 0 or
  // e_shstrndx == SHN_XINDEX or e_phnum == PN_XNUM: real values in section 0).
  if (shoff !== 0 || shnum !== 0) {
    if (shentsize !== SHDR_SIZE) throw fail(`section header size ${shentsize} (expected ${SHDR_SIZE})`);
    if (shoff < EHDR_SIZE) throw fail(`section header table at ${hex(shoff)} overlaps the ELF header`);
    checkRange('section header 0', shoff, SHDR_SIZE);
    if (shnum === 0) shnum = u32(shoff + 20); // sh_size of section 0
    if (shstrndx === SHN.XINDEX) shstrndx = u32(shoff + 24); // sh_link of section 0
    if (phnum === PN_XNUM) phnum = u32(shoff + 28); // sh_info of section 0
    // Bound the count by the file size before allocating anything.
    if (shnum > Math.floor((len - shoff) / SHDR_SIZE)) {
      throw fail(`section header table (offset ${hex(shoff)}, ${shnum} entries of ${SHDR_SIZE} bytes) runs past the end of the file (${len} bytes)`);
    }
  } else {
    shstrndx = 0;
  }

  if (phnum !== 0) {
    if (phentsize !== PHDR_SIZE) throw fail(`program header size ${phentsize} (expected ${PHDR_SIZE})`);
    if (phoff < EHDR_SIZE) throw fail(`program header table at ${hex(phoff)} overlaps the ELF header`);
    if (phnum > Math.floor(Math.max(0, len - phoff) / PHDR_SIZE)) {
      throw fail(`program header table (offset ${hex(phoff)}, ${phnum} entries of ${PHDR_SIZE} bytes) runs past the end of the file (${len} bytes)`);
    }
  }

  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * PHDR_SIZE;
    const s: Segment = {
      index: i,
      type: u32(o),
      offset: u32(o + 4),
      vaddr: u32(o + 8),
      paddr: u32(o + 12),
      filesz: u32(o + 16),
      memsz: u32(o + 20),
      flags: u32(o + 24),
      align: u32(o + 28),
    };
    if (s.type !== PT.NULL && s.filesz > 0) checkRange(`segment ${i} (type ${hex(s.type)})`, s.offset, s.filesz);
    if (s.type === PT.LOAD) {
      if (s.memsz < s.filesz) throw fail(`LOAD segment ${i} has p_memsz ${hex(s.memsz)} smaller than p_filesz ${hex(s.filesz)}`);
      if (s.vaddr + s.memsz > 0x100000000) throw fail(`LOAD segment ${i} (vaddr ${hex(s.vaddr)}, ${hex(s.memsz)} bytes) wraps past 4 GiB`);
      if (s.paddr + s.memsz > 0x100000000) throw fail(`LOAD segment ${i} (paddr ${hex(s.paddr)}, ${hex(s.memsz)} bytes) wraps past 4 GiB`);
    }
    segments.push(s);
  }

  const sections: Section[] = [];
  const nameOffs: number[] = [];
  for (let i = 0; i < shnum; i++) {
    const o = shoff + i * SHDR_SIZE;
    const s: Section = {
      index: i,
      name: '',
      type: u32(o + 4),
      flags: u32(o + 8),
      addr: u32(o + 12),
      offset: u32(o + 16),
      size: u32(o + 20),
      link: u32(o + 24),
      info: u32(o + 28),
      addralign: u32(o + 32),
      entsize: u32(o + 36),
    };
    const nameOff = u32(o);
    if (i > 0 && s.type !== SHT.NULL && s.type !== SHT.NOBITS && s.size > 0) {
      checkRange(`section ${i}`, s.offset, s.size);
    }
    sections.push(s);
    nameOffs.push(nameOff);
  }

  // Section names from the section header string table.
  if (shnum > 0 && shstrndx !== SHN.UNDEF) {
    if (shstrndx >= shnum) throw fail(`e_shstrndx ${shstrndx} is out of range (${shnum} sections)`);
    const strsec = sections[shstrndx]!;
    if (strsec.type !== SHT.STRTAB) {
      throw fail(`section name table (section ${shstrndx}) has type ${strsec.type}, not SHT_STRTAB`);
    }
    const table = new StringTable(buf, strsec.offset, strsec.size, `section name table (section ${shstrndx})`, fail);
    for (let i = 1; i < shnum; i++) {
      sections[i]!.name = table.get(nameOffs[i]!, `name of section ${i}`);
    }
  }

  // Symbols: every SHT_SYMTAB section (a vmlinux has exactly one, .symtab).
  const symbols: Sym[] = [];
  for (const sec of sections) {
    if (sec.type !== SHT.SYMTAB) continue;
    const what = `symbol table ${sec.name || `(section ${sec.index})`}`;
    if (sec.entsize !== SYM_SIZE) throw fail(`${what} has entry size ${sec.entsize} (expected ${SYM_SIZE})`);
    if (sec.size % SYM_SIZE !== 0) throw fail(`${what} size ${sec.size} is not a multiple of ${SYM_SIZE}`);
    if (sec.link === 0 || sec.link >= shnum) throw fail(`${what} links to string table ${sec.link}, out of range (${shnum} sections)`);
    const strsec = sections[sec.link]!;
    if (strsec.type !== SHT.STRTAB) throw fail(`${what} links to section ${sec.link}, which is not a string table`);
    const table = new StringTable(buf, strsec.offset, strsec.size, `string table ${strsec.name || `(section ${sec.link})`}`, fail);
    const count = sec.size / SYM_SIZE; // bounded: the section lies inside the file
    for (let i = 1; i < count; i++) {
      const o = sec.offset + i * SYM_SIZE;
      const info = buf[o + 12]!;
      symbols.push({
        name: table.get(u32(o), `name of symbol ${i} in ${sec.name || 'symbol table'}`),
        value: u32(o + 4),
        size: u32(o + 8),
        type: info & 0xf,
        bind: info >> 4,
        other: buf[o + 13]!,
        shndx: u16(o + 14),
      });
    }
  }

  let byName: Map<string, Sym> | undefined;
  const findSymbol = (n: string): Sym | undefined => {
    if (!byName) {
      byName = new Map();
      for (const s of symbols) {
        const prev = byName.get(s.name);
        if (!prev || (prev.shndx === SHN.UNDEF && s.shndx !== SHN.UNDEF)) byName.set(s.name, s);
      }
    }
    return byName.get(n);
  };

  return {
    name,
    endian: little ? 'little' : 'big',
    type,
    machine,
    flags,
    entry,
    segments,
    sections,
    symbols,
    findSymbol,
    segmentData(s: Segment): Uint8Array {
      if (s.filesz === 0) return new Uint8Array(0);
      checkRange(`segment ${s.index}`, s.offset, s.filesz);
      return buf.subarray(s.offset, s.offset + s.filesz);
    },
    sectionData(s: Section): Uint8Array {
      if (s.type === SHT.NOBITS || s.type === SHT.NULL || s.size === 0) return new Uint8Array(0);
      checkRange(`section ${s.index}`, s.offset, s.size);
      return buf.subarray(s.offset, s.offset + s.size);
    },
    findSection(n: string): Section | undefined {
      return sections.find((s) => s.name === n);
    },
  };
}

/** NUL-terminated strings inside one string table section, checked and cached. */
class StringTable {
  private readonly cache = new Map<number, string>();
  private readonly bytes: Buffer;

  constructor(
    buf: Uint8Array,
    offset: number,
    private readonly size: number,
    private readonly what: string,
    private readonly fail: (problem: string) => XipError,
  ) {
    // The section's range was checked against the file when it was read.
    this.bytes = Buffer.from(buf.buffer, buf.byteOffset + offset, size);
  }

  get(off: number, owner: string): string {
    const hit = this.cache.get(off);
    if (hit !== undefined) return hit;
    if (off >= this.size) {
      throw this.fail(`${owner}: string offset ${hex(off)} is past the end of the ${this.what} (${this.size} bytes)`);
    }
    const end = this.bytes.indexOf(0, off);
    if (end < 0) throw this.fail(`${owner}: string at ${hex(off)} in the ${this.what} is not NUL-terminated`);
    const s = this.bytes.toString('utf8', off, end);
    this.cache.set(off, s);
    return s;
  }
}

/**
 * Read and parse an ELF32 MIPS file. A missing, unreadable or malformed
 * file ends in a badInput XipError (exit code 2) naming the path.
 */
export function readElf(path: string): ElfFile {
  let size: number;
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw badInput(`${path}: is a directory, not an ELF file; pass the path of vmlinux`);
    size = st.size;
  } catch (err) {
    if (err instanceof XipError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw badInput(`${path}: no such file; build it first (make kernel) or pass the right path`);
    throw badInput(`${path}: cannot read it (${code ?? String(err)}); check the path and its permissions`);
  }
  if (size > 0x7fffffff) throw badInput(`${path}: ${size} bytes is far too large for a MIPS32 vmlinux; pass the right file`);
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw badInput(`${path}: cannot read it (${code ?? String(err)}); check the path and its permissions`);
  }
  return parseElf(buf, path);
}

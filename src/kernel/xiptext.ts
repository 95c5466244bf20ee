import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseElf, SHF, SHT, STT } from '../elf/elf32.ts';

/**
 * With CONFIG_MTD_XIP the code that commands the flash chip the kernel
 * executes from is marked __xipram and runs from RAM (.xiptext); while the
 * chip is busy it must not call into flash. The calls it makes on purpose
 * (get_chip(), mutex_lock(), printk(), ...) happen with the chip back in
 * read-array mode; the danger is a helper the compiler was free to emit
 * out of line: a "static inline" from a header (an MMIO accessor, a
 * barrier, the irq flags, a map_word helper) becomes a local function in
 * the object's ordinary text, in flash, and the first call with the chip
 * busy hangs the kernel. Which helpers the compiler outlines depends on
 * the compiler and its version (series patches 15 and 16 fixed those clang
 * 14/19 and gcc 12/14 outline).
 *
 * This finds them without booting: in the objects that hold __xipram code,
 * every relocation of .xiptext that refers to code of the same object
 * outside .xiptext names a local function; a function that the driver's
 * own source defines was placed by its authors (it runs outside the busy
 * window), anything else came from a header and was outlined.
 */

/** The objects that hold __xipram code (CFI command sets, probes, map accessors), relative to the kbuild and source trees. */
export const XIP_AWARE_OBJECTS = [
  'drivers/mtd/chips/cfi_probe.o',
  'drivers/mtd/chips/cfi_util.o',
  'drivers/mtd/chips/cfi_cmdset_0001.o',
  'drivers/mtd/chips/cfi_cmdset_0002.o',
  'drivers/mtd/chips/jedec_probe.o',
  'drivers/mtd/maps/map_funcs.o',
] as const;

export interface OutlinedHelper {
  object: string;
  /** The function the RAM code refers to, in the object's flash text. */
  fn: string;
}

export interface XipTextCheck {
  /** Objects of the list that the build has. */
  checked: string[];
  /** References from .xiptext to local code in flash that the driver's source does not define. */
  outlined: OutlinedHelper[];
}

/** MIPS relocation types (REL: the addend is in the instruction). */
const R_MIPS_26 = 4;
const R_MIPS_HI16 = 5;
const R_MIPS_LO16 = 6;

/** A compiler's clone suffixes: get_chip.constprop.0 is get_chip. */
function baseName(name: string): string {
  let n = name;
  for (;;) {
    const m = /^(.*)\.(constprop|isra|part|cold|lto_priv)(\.\d+)?$/.exec(n);
    if (!m) return n;
    n = m[1]!;
  }
}

/** Does this C source define a function of that name (a line that starts a definition with it)? */
export function definesFunction(source: string, fn: string): boolean {
  const esc = fn.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^[A-Za-z_][^;=(){}]*\\b${esc}\\s*\\(`, 'm').test(source);
}

export function checkXipText(kbuildDir: string, srcTree: string): XipTextCheck {
  const checked: string[] = [];
  const outlined: OutlinedHelper[] = [];
  for (const object of XIP_AWARE_OBJECTS) {
    const path = join(kbuildDir, object);
    if (!existsSync(path)) continue;
    checked.push(object);
    const elf = parseElf(new Uint8Array(readFileSync(path)), path);
    const xiptext = elf.sections.find((s) => s.name === '.xiptext');
    if (!xiptext) continue;
    const cfile = join(srcTree, object.replace(/\.o$/, '.c'));
    const source = existsSync(cfile) ? readFileSync(cfile, 'utf8') : '';
    const seen = new Set<string>();
    const little = elf.endian === 'little';
    const code = elf.sectionData(xiptext);
    const insn = (at: number) => new DataView(code.buffer, code.byteOffset, code.byteLength).getUint32(at, little);
    const note = (fn: string) => {
      if (seen.has(fn)) return;
      seen.add(fn);
      if (!definesFunction(source, fn)) outlined.push({ object, fn });
    };
    for (const rel of elf.sections.filter((s) => s.type === SHT.REL && s.info === xiptext.index)) {
      const data = elf.sectionData(rel);
      const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
      // A section-relative %hi waiting for its %lo (the pair of a long call: lui + addiu).
      let hi: { symIndex: number; value: number } | undefined;
      for (let off = 0; off + 8 <= data.length; off += 8) {
        const at = dv.getUint32(off, little);
        const info = dv.getUint32(off + 4, little);
        const symIndex = info >>> 8;
        const type = info & 0xff;
        const sym = symIndex > 0 ? elf.symbols[symIndex - 1] : undefined;
        if (!sym || sym.shndx === 0 || sym.shndx >= elf.sections.length) continue;
        const sec = elf.sections[sym.shndx]!;
        if ((sec.flags & SHF.EXECINSTR) === 0 || sec.index === xiptext.index) continue; // not code, or RAM code itself
        if (sym.type !== STT.SECTION) {
          note(baseName(sym.name));
          continue;
        }
        const named = sec.name.replace(/^\.text\.(unlikely\.)?/, '');
        if (named !== '.text') {
          note(baseName(named)); // -ffunction-sections: the section names the function
          continue;
        }
        // One .text for the whole object: the addend in the instruction says where, a function symbol says what.
        let target: number | undefined;
        if (type === R_MIPS_26) target = (insn(at) & 0x03ffffff) << 2;
        else if (type === R_MIPS_HI16) hi = { symIndex, value: (insn(at) & 0xffff) << 16 };
        else if (type === R_MIPS_LO16 && hi?.symIndex === symIndex) {
          target = (hi.value + ((insn(at) << 16) >> 16)) >>> 0;
          hi = undefined;
        }
        if (target === undefined) continue;
        const fnSym = elf.symbols.find((s) => s.shndx === sec.index && s.type === STT.FUNC && target! >= s.value && target! < s.value + Math.max(s.size, 1));
        note(fnSym ? baseName(fnSym.name) : `.text+0x${target.toString(16)}`);
      }
    }
  }
  return { checked, outlined };
}

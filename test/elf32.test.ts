import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseElf, readElf, type ElfFile } from '../src/elf/elf32.ts';
import { XipError } from '../src/errors.ts';
import { capture } from '../src/proc.ts';
import { buildElf, xipKernelSpec, type SynthElf } from './fixtures/elf/synth.ts';
import { findRealKernels, IN_CI } from './fixtures/elf/kernels.ts';

const tmp = mkdtempSync(join(tmpdir(), 'elf32-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function expectBadInput(fn: () => unknown, pattern: RegExp): XipError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof XipError, `expected XipError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes('\n'), 'message is one line');
    return err;
  }
  assert.fail(`expected a badInput XipError matching ${pattern}`);
}

function u16(b: Uint8Array, o: number, v: number, little = true): void {
  new DataView(b.buffer, b.byteOffset).setUint16(o, v, little);
}
function u32(b: Uint8Array, o: number, v: number, little = true): void {
  new DataView(b.buffer, b.byteOffset).setUint32(o, v >>> 0, little);
}

function checkRoundTrip(spec: SynthElf, e: ElfFile): void {
  assert.equal(e.endian, spec.endian ?? 'little');
  assert.equal(e.machine, 8);
  assert.equal(e.type, 2);
  assert.equal(e.entry, spec.entry);
  assert.equal(e.segments.length, spec.segments.length);
  // Sections: null, the given ones, then .symtab .strtab .shstrtab.
  assert.deepEqual(
    e.sections.map((s) => s.name),
    ['', ...spec.sections.map((s) => s.name), '.symtab', '.strtab', '.shstrtab'],
  );
  for (const s of spec.sections) {
    const got = e.findSection(s.name);
    assert.ok(got, s.name);
    assert.equal(got.addr, s.addr >>> 0, `${s.name} addr`);
    assert.equal(got.flags, s.flags ?? 2);
    assert.equal(got.type, s.type ?? 1);
    if (s.data) {
      assert.equal(got.size, s.data.length);
      assert.deepEqual(e.sectionData(got), s.data, `${s.name} bytes`);
    } else {
      assert.equal(got.size, s.size);
      assert.equal(e.sectionData(got).length, 0, 'NOBITS has no file bytes');
    }
  }
  // Segments: the bytes of each segment are its sections' bytes at their address distance.
  spec.segments.forEach((seg, i) => {
    const got = e.segments[i]!;
    const first = spec.sections.find((s) => s.name === seg.sections[0])!;
    assert.equal(got.vaddr, first.addr);
    assert.equal(got.paddr, seg.paddr ?? first.addr);
    assert.equal(got.flags, seg.flags);
    assert.equal(got.type, 1);
    const bytes = e.segmentData(got);
    assert.equal(bytes.length, got.filesz);
    for (const n of seg.sections) {
      const s = spec.sections.find((x) => x.name === n)!;
      if (s.data) assert.deepEqual(bytes.subarray(s.addr - first.addr, s.addr - first.addr + s.data.length), s.data);
    }
    assert.ok(got.memsz >= got.filesz);
  });
  // Symbols, in table order, with unsigned values.
  assert.equal(e.symbols.length, spec.symbols?.length ?? 0);
  spec.symbols?.forEach((s, i) => {
    const got = e.symbols[i]!;
    assert.equal(got.name, s.name);
    assert.equal(got.value, s.value >>> 0);
    assert.ok(got.value >= 0);
    assert.equal(got.size, s.size ?? 0);
    assert.equal(got.type, s.type ?? 0);
    assert.equal(got.bind, s.bind ?? 1);
    const want = typeof s.section === 'string' ? e.findSection(s.section)!.index : (s.section ?? 0xfff1);
    assert.equal(got.shndx, want);
  });
}

describe('ELF32 reader on synthetic files', () => {
  for (const endian of ['little', 'big'] as const) {
    it(`round-trips a ${endian}-endian XIP-shaped kernel`, () => {
      const spec = xipKernelSpec(endian);
      const { bytes } = buildElf(spec);
      const e = parseElf(bytes, `synthetic-${endian}`);
      checkRoundTrip(spec, e);
      assert.equal(e.findSymbol('kernel_entry')?.value, 0x9e001100);
      assert.equal(e.findSymbol('_sdata')?.value, 0x80100000);
      assert.equal(e.findSymbol('no_such_symbol'), undefined);
      // Addresses above 2^31 stay positive (no sign extension).
      assert.equal(e.segments[0]!.vaddr, 0x9e001000);
      assert.equal(e.segments[1]!.paddr, 0x9e003800);
    });
  }

  it('reads big- and little-endian files identically apart from the byte order', () => {
    const le = parseElf(buildElf(xipKernelSpec('little')).bytes);
    const be = parseElf(buildElf(xipKernelSpec('big')).bytes);
    const strip = (e: ElfFile) => ({ segments: e.segments, sections: e.sections, symbols: e.symbols, entry: e.entry });
    assert.deepEqual(strip(le), strip(be));
  });

  it('prefers a defined symbol over an undefined one of the same name', () => {
    const spec = xipKernelSpec();
    spec.symbols = [
      { name: 'dup', value: 0, section: 0 },
      { name: 'dup', value: 0x9e001010, section: '.text' },
    ];
    const e = parseElf(buildElf(spec).bytes);
    assert.equal(e.findSymbol('dup')?.value, 0x9e001010);
  });

  it('accepts an ELF without section headers', () => {
    const { bytes } = buildElf(xipKernelSpec());
    u32(bytes, 32, 0); // e_shoff
    u16(bytes, 48, 0); // e_shnum
    u16(bytes, 50, 0); // e_shstrndx
    const e = parseElf(bytes);
    assert.equal(e.sections.length, 0);
    assert.equal(e.symbols.length, 0);
    assert.equal(e.segments.length, 2);
  });

  it('handles extended section numbering (e_shnum = 0, e_shstrndx = SHN_XINDEX)', () => {
    const { bytes, layout } = buildElf(xipKernelSpec());
    const shnum = new DataView(bytes.buffer).getUint16(48, true);
    const shstrndx = new DataView(bytes.buffer).getUint16(50, true);
    u16(bytes, 48, 0);
    u16(bytes, 50, 0xffff);
    u32(bytes, layout.shoff + 20, shnum); // section 0 sh_size
    u32(bytes, layout.shoff + 24, shstrndx); // section 0 sh_link
    const e = parseElf(bytes);
    assert.equal(e.sections.length, shnum);
    assert.equal(e.sections[shstrndx]!.name, '.shstrtab');
  });

  describe('bad input: one line, exit code 2, names the file', () => {
    const good = () => buildElf(xipKernelSpec());
    const cases: [string, () => Uint8Array, RegExp][] = [
      ['empty file', () => new Uint8Array(0), /^f\.elf: empty file/],
      ['not ELF', () => new Uint8Array(Buffer.from('#!/bin/sh\necho hi\n')), /^f\.elf: not an ELF file/],
      ['ELFCLASS64', () => { const b = good().bytes; b[4] = 2; return b; }, /^f\.elf: 64-bit ELF/],
      ['bad class', () => { const b = good().bytes; b[4] = 7; return b; }, /unknown ELF class 7/],
      ['bad data encoding', () => { const b = good().bytes; b[5] = 0; return b; }, /data encoding 0/],
      ['EM_X86_64', () => { const b = good().bytes; u16(b, 18, 62); return b; }, /not a MIPS ELF \(e_machine 62/],
      ['truncated header', () => good().bytes.slice(0, 30), /truncated ELF header \(30 bytes/],
      ['truncated ident', () => good().bytes.slice(0, 10), /truncated ELF identification/],
      ['huge e_phnum', () => { const b = good().bytes; u16(b, 44, 0xfffe); return b; }, /program header table .*65534 entries.* past the end/],
      ['huge e_shnum', () => { const b = good().bytes; u16(b, 48, 0xfffe); return b; }, /section header table .*65534 entries.* past the end/],
      ['e_shnum via section 0 absurd', () => { const { bytes: b, layout } = good(); u16(b, 48, 0); u32(b, layout.shoff + 20, 0xffffffff); return b; }, /4294967295 entries/],
      ['e_phoff past end', () => { const b = good().bytes; u32(b, 28, 0xfffffff0); return b; }, /program header table \(offset 0xfffffff0/],
      ['e_shoff past end', () => { const b = good().bytes; u32(b, 32, 0xfffffff0); return b; }, /section header 0 \(offset 0xfffffff0/],
      ['phdr table overlapping header', () => { const b = good().bytes; u32(b, 28, 4); return b; }, /overlaps the ELF header/],
      ['wrong e_phentsize', () => { const b = good().bytes; u16(b, 42, 56); return b; }, /program header size 56/],
      ['wrong e_shentsize', () => { const b = good().bytes; u16(b, 46, 64); return b; }, /section header size 64/],
      ['e_shstrndx out of range', () => { const b = good().bytes; u16(b, 50, 200); return b; }, /e_shstrndx 200 is out of range/],
      ['e_shstrndx not a string table', () => { const b = good().bytes; u16(b, 50, 1); return b; }, /section name table \(section 1\) has type 1/],
      ['segment offset past end', () => { const { bytes: b, layout } = good(); u32(b, layout.phoff + 4, 0x7ffffff0); return b; }, /segment 0 .* runs past the end/],
      ['segment filesz past end', () => { const { bytes: b, layout } = good(); u32(b, layout.phoff + 32 + 16, 0xffffffff); return b; }, /segment 1 .* runs past the end/],
      ['memsz < filesz', () => { const { bytes: b, layout } = good(); u32(b, layout.phoff + 20, 4); return b; }, /p_memsz 0x4 smaller than p_filesz/],
      ['segment wraps 4 GiB', () => { const { bytes: b, layout } = good(); u32(b, layout.phoff + 8, 0xfffff000); return b; }, /wraps past 4 GiB/],
      ['section past end', () => { const { bytes: b, layout } = good(); u32(b, layout.shoff + 40 + 20, 0x10000000); return b; }, /section 1 .* runs past the end/],
      ['section name offset out of range', () => { const { bytes: b, layout } = good(); u32(b, layout.shoff + 40, 0x100000); return b; }, /name of section 1: string offset 0x100000 is past the end/],
      ['unterminated string table', () => {
        const { bytes: b, layout } = good();
        const off = layout.sectionOffsets.get('.shstrtab')!;
        const idx = layout.sectionIndex.get('.shstrtab')!;
        const size = new DataView(b.buffer).getUint32(layout.shoff + idx * 40 + 20, true);
        b[off + size - 1] = 0x41;
        return b;
      }, /not NUL-terminated/],
      ['symbol name out of range', () => {
        const { bytes: b, layout } = good();
        u32(b, layout.sectionOffsets.get('.symtab')! + 16, 0xdeadbeef);
        return b;
      }, /name of symbol 1 .* string offset 0xdeadbeef is past the end/],
      ['symtab bad entsize', () => {
        const { bytes: b, layout } = good();
        u32(b, layout.shoff + layout.sectionIndex.get('.symtab')! * 40 + 36, 24);
        return b;
      }, /entry size 24/],
      ['symtab links out of range', () => {
        const { bytes: b, layout } = good();
        u32(b, layout.shoff + layout.sectionIndex.get('.symtab')! * 40 + 24, 999);
        return b;
      }, /links to string table 999, out of range/],
      ['symtab links to a non-string table', () => {
        const { bytes: b, layout } = good();
        u32(b, layout.shoff + layout.sectionIndex.get('.symtab')! * 40 + 24, 1);
        return b;
      }, /links to section 1, which is not a string table/],
    ];
    for (const [what, make, re] of cases) {
      it(what, () => {
        const bytes = make();
        expectBadInput(() => parseElf(bytes, 'f.elf'), re);
      });
    }

    it('a missing file names the path', () => {
      expectBadInput(() => readElf(join(tmp, 'nope', 'vmlinux')), /nope\/vmlinux: no such file/);
    });
    it('a directory is refused', () => {
      mkdirSync(join(tmp, 'dir'));
      expectBadInput(() => readElf(join(tmp, 'dir')), /dir: is a directory/);
    });
    it('readElf reports the path of a malformed file', () => {
      const p = join(tmp, 'short.elf');
      writeFileSync(p, buildElf(xipKernelSpec()).bytes.slice(0, 200));
      expectBadInput(() => readElf(p), new RegExp(`^${p.replace(/[.]/g, '\\.')}: .*past the end`));
    });
  });
});

// ---- Cross-check against llvm-readelf (the oracle, in tests only) ----------

interface ReadelfView {
  entry: number;
  segments: { type: number; offset: number; vaddr: number; paddr: number; filesz: number; memsz: number; flags: number; align: number }[];
  sections: { index: number; name: string; type: number; flags: number; addr: number; offset: number; size: number; link: number; info: number; addralign: number; entsize: number }[];
  symbols: { name: string; value: number; size: number; type: number; bind: number; other: number; shndx: number }[];
}

/* eslint-disable @typescript-eslint/no-explicit-any */
function readelfJson(path: string): ReadelfView {
  const out = capture(
    'llvm-readelf',
    ['--elf-output-style=JSON', '--file-header', '--program-headers', '--sections', '--symbols', path],
    { what: 'llvm-readelf' },
  );
  const top = JSON.parse(out) as any[];
  // LLVM 14 nests each file's report under its name; LLVM 15 and later (Debian 13's 19) put it at the top.
  const f = (top[0].ElfHeader ? top[0] : Object.values(top[0])[0]) as any;
  const num = (v: any): number => (typeof v === 'string' ? Number(v) : v);
  // LLVM 14 writes enums as {Value: name, RawValue: n} and flags as {RawFlags: n};
  // LLVM 15 and later as {Name: name, Value: n} and {Value: n, Flags: [...]}.
  const raw = (x: any): number => (typeof x.RawValue === 'number' ? x.RawValue : x.Value);
  const flags = (x: any): number => (typeof x.RawFlags === 'number' ? x.RawFlags : x.Value);
  const text = (x: any): string => (typeof x.Value === 'string' ? x.Value : x.Name);
  return {
    entry: num(f.ElfHeader.Entry),
    segments: (f.ProgramHeaders ?? []).map((p: any) => {
      const h = p.ProgramHeader;
      return {
        type: raw(h.Type),
        offset: h.Offset,
        vaddr: h.VirtualAddress,
        paddr: h.PhysicalAddress,
        filesz: h.FileSize,
        memsz: h.MemSize,
        flags: flags(h.Flags),
        align: h.Alignment,
      };
    }),
    sections: (f.Sections ?? []).map((x: any) => {
      const s = x.Section;
      return {
        index: s.Index,
        name: text(s.Name),
        type: raw(s.Type),
        flags: flags(s.Flags),
        addr: s.Address,
        offset: s.Offset,
        size: s.Size,
        link: s.Link,
        info: s.Info,
        addralign: s.AddressAlignment,
        entsize: s.EntrySize,
      };
    }),
    // readelf lists the null symbol first; our reader leaves it out.
    symbols: (f.Symbols ?? []).slice(1).map((x: any) => {
      const s = x.Symbol;
      return {
        // readelf shows section symbols (st_name 0) under their section's name; the raw name is empty.
        name: raw(s.Type) === 3 && raw(s.Name) === 0 ? '' : text(s.Name),
        value: s.Value,
        size: s.Size,
        type: raw(s.Type),
        bind: raw(s.Binding),
        other: typeof s.Other === 'number' ? s.Other : flags(s.Other),
        shndx: raw(s.Section),
      };
    }),
  };
}

function crossCheck(path: string): { segments: number; sections: number; symbols: number } {
  const ours = readElf(path);
  const oracle = readelfJson(path);
  assert.equal(ours.entry, oracle.entry, 'entry');
  const segs = ours.segments.map(({ index: _i, ...s }) => s);
  assert.deepEqual(segs, oracle.segments, 'program headers');
  assert.deepEqual(ours.sections, oracle.sections, 'section headers');
  assert.equal(ours.symbols.length, oracle.symbols.length, 'symbol count');
  for (let i = 0; i < ours.symbols.length; i++) {
    const a = ours.symbols[i]!;
    const b = oracle.symbols[i]!;
    // deepEqual per symbol gives a readable message naming the first difference.
    assert.deepEqual({ ...a }, b, `symbol ${i + 1} (${b.name})`);
  }
  for (const s of ours.symbols) assert.ok(s.value >= 0 && s.value <= 0xffffffff && Number.isInteger(s.value));
  return { segments: ours.segments.length, sections: ours.sections.length, symbols: ours.symbols.length };
}

describe('ELF32 reader agrees with llvm-readelf', () => {
  for (const endian of ['little', 'big'] as const) {
    it(`on a synthetic ${endian}-endian kernel`, () => {
      const p = join(tmp, `synth-${endian}.elf`);
      writeFileSync(p, buildElf(xipKernelSpec(endian)).bytes);
      const n = crossCheck(p);
      assert.ok(n.symbols > 10);
    });
  }

  it('on toolchain-made MIPS objects (gcc and clang, LE and BE)', (t) => {
    const src = join(tmp, 'prog.c');
    writeFileSync(src, 'int counter = 3; int table[64]; static int hidden(int x) { return x * counter; }\nint main(void) { return hidden(table[1]); }\n');
    const made: string[] = [];
    const tries: [string, string[]][] = [
      ['mipsel-linux-gnu-gcc', ['-O2', '-c', '-o', join(tmp, 'gcc-el.o'), src]],
      ['clang', ['--target=mipsel-linux-gnu', '-O2', '-c', '-o', join(tmp, 'clang-el.o'), src]],
      ['clang', ['--target=mips-linux-gnu', '-O2', '-c', '-o', join(tmp, 'clang-be.o'), src]],
    ];
    for (const [cc, args] of tries) {
      capture(cc, args, { what: cc });
      made.push(args[args.indexOf('-o') + 1]!);
    }
    for (const p of made) {
      const n = crossCheck(p);
      assert.ok(n.symbols >= 3, `${p}: symbols read`);
    }
    assert.equal(readElf(made[2]!).endian, 'big');
    t.diagnostic(`cross-checked ${made.length} compiler outputs`);
  });

  const kernels = findRealKernels();
  if (kernels.length === 0) {
    it('on real kernels (none built yet)', (t) => {
      if (IN_CI) assert.fail('no vmlinux found under build/**/kbuild/: `make test` must build the kernels first');
      t.skip('no vmlinux found under build/**/kbuild/: build a kernel to run this check');
    });
  }
  for (const k of kernels) {
    it(`on ${k.path}`, (t) => {
      const n = crossCheck(k.path);
      assert.ok(n.segments >= 1 && n.sections > 10 && n.symbols > 1000, `looks like a kernel: ${JSON.stringify(n)}`);
      const e = readElf(k.path);
      const text = e.findSymbol('_text');
      assert.ok(text && text.value >= 0x80000000, '_text is a KSEG0 address, unsigned');
      t.diagnostic(`${n.segments} segments, ${n.sections} sections, ${n.symbols} symbols match llvm-readelf`);
    });
  }
});


import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { getBoard } from '../src/boards/index.ts';
import { buildProgram } from '../src/cli.ts';
import { makeContext } from '../src/context.ts';
import { XipError } from '../src/errors.ts';
import { formatReport, verify, verifyCommand, type VerifyReport } from '../src/verify/index.ts';
import { unswap } from '../src/verify/rules.ts';
import { dotConfig, makeImage, type ImageOptions } from './fixtures/elf/image.ts';
import { findRealKernels, IN_CI } from './fixtures/elf/kernels.ts';
import { buildElf, xipKernelSpec, type SynthElf } from './fixtures/elf/synth.ts';

const malta = getBoard('malta');
const tmp = mkdtempSync(join(tmpdir(), 'verify-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;

interface Case {
  spec?: (s: SynthElf) => void;
  image?: ImageOptions | null;
  /** Edit the finished (swapped) image bytes. */
  editImage?: (img: Uint8Array) => Uint8Array;
  config?: Record<string, string | null>;
}

function run(c: Case = {}): VerifyReport {
  const dir = join(tmp, String(n++));
  const spec = xipKernelSpec('little');
  c.spec?.(spec);
  const elf = buildElf(spec).bytes;
  const vmlinux = join(`${dir}-vmlinux`);
  const cfg = join(`${dir}-config`);
  const image = join(`${dir}-image.bin`);
  writeFileSync(vmlinux, elf);
  writeFileSync(cfg, dotConfig(c.config));
  if (c.image !== null) {
    let img = makeImage(malta, elf, c.image ?? {});
    if (c.editImage) img = c.editImage(img);
    writeFileSync(image, img);
  }
  return verify({ board: malta, vmlinux, dotConfig: cfg, image });
}

/** The synthetic kernel's .rodata (in flash) turned into a writable .got, optionally of `size` bytes. */
function rodataAsGot(s: SynthElf, size?: number): void {
  const sec = s.sections[1]!;
  for (const seg of s.segments) seg.sections = seg.sections.map((n) => (n === sec.name ? '.got' : n));
  for (const sym of s.symbols ?? []) if (sym.section === sec.name) sym.section = '.got';
  sec.name = '.got';
  sec.flags = 3;
  if (size !== undefined) sec.data = new Uint8Array(size);
}

function rule(r: VerifyReport, id: number) {
  return r.rules.find((x) => x.id === id)!;
}

describe('verify on a synthetic XIP kernel', () => {
  it('passes every rule on a well-formed kernel, config and image', () => {
    const r = run();
    assert.deepEqual(r.failed, [], formatReport(r));
    assert.equal(r.ok, true);
    assert.equal(r.rules.length, 6);
    assert.deepEqual(r.rules.map((x) => x.id), [1, 2, 3, 4, 5, 6]);
    // The numbers are there.
    assert.match(rule(r, 1).summary, /vaddr 0x9e001000 paddr 0x9e001000 R-X/);
    assert.match(rule(r, 2).summary, /RAM 0x80100000\.\..* loads from flash 0x9e003800/);
    assert.match(rule(r, 5).summary, /jumps to kernel_entry 0x9e001100/);
    const text = formatReport(r);
    for (let i = 1; i <= 6; i++) assert.match(text, new RegExp(`^rule ${i} ok `, 'm'));
    assert.match(text, /^summary: all 6 rules hold/m);
  });

  it('the test image really is byte-swapped (undoing the swap is needed)', () => {
    const elf = buildElf(xipKernelSpec()).bytes;
    const img = makeImage(malta, elf);
    const un = unswap(img, malta.loaderSwapBytes);
    assert.deepEqual([...un.subarray(0x18, 0x1c)], [0x58, 0x49, 0x50, 0x53], "'XIPS' after un-swapping");
    assert.notDeepEqual([...img.subarray(0x18, 0x1c)], [0x58, 0x49, 0x50, 0x53]);
  });

  const failing: [string, Case, number[]][] = [
    ['rule 1: text segment writable', { spec: (s) => (s.segments[0]!.flags = 7) }, [1]],
    ['rule 1: text linked at the wrong flash address', {
      spec: (s) => {
        s.segments[0]!.paddr = 0x9e002000; // VMA != LMA
      },
    }, [1, 2, 5]],
    ['rule 2: data loaded in RAM (LMA == VMA)', { spec: (s) => delete s.segments[1]!.paddr }, [2, 5]],
    ['rule 2: data loaded from outside the flash window', { spec: (s) => (s.segments[1]!.paddr = 0x90000000) }, [2, 5]],
    ['rule 3: writable section in flash', { spec: (s) => (s.sections[1]!.flags = 3) }, [3]],
    ['rule 3: code section in RAM outside the buffers', {
      spec: (s) => {
        s.sections[3]!.flags = 6; // .data becomes AX
      },
    }, [3]],
    ['rule 3: a read-only section in RAM', { spec: (s) => (s.sections[3]!.flags = 2) }, [3]],
    ['rule 3: a TLB handler buffer missing', { spec: (s) => (s.symbols = s.symbols!.filter((x) => x.name !== 'handle_tlbm')) }, [3]],
    ['rule 3: clear_page entry point in RAM', {
      spec: (s) => {
        const cp = s.symbols!.find((x) => x.name === 'clear_page')!;
        cp.value = 0x80100010;
        cp.section = '.xip.ramtext';
      },
    }, [3]],
    ['rule 3: copy page buffer in flash', {
      spec: (s) => {
        const b = s.symbols!.find((x) => x.name === '__copy_page_start')!;
        b.value = 0x9e001400;
        b.section = '.text';
      },
    }, [3]],
    ['rule 4: image larger than the flash chip', { image: { padTo: 0x400004 } }, [4]],
    ['rule 4: image length not a multiple of 4', { editImage: (img) => { const b = new Uint8Array(img.length + 2); b.set(img); return b; } }, [4]],
    ['rule 4: _exiprom past 0xa0000000', { spec: (s) => (s.symbols!.find((x) => x.name === '_exiprom')!.value = 0xa0000010) }, [4]],
    ['rule 5: one byte of text differs', { editImage: (img) => { img[0x1234]! ^= 0x40; return img; } }, [5]],
    ['rule 5: shim jumps elsewhere', { image: { target: 0x9e001000 } }, [5]],
    ['rule 5: shim magic wrong', { image: { magic: 0x12345678 } }, [5]],
    ['rule 5: image not byte-swapped', { image: { noSwap: true } }, [5]],
    ['rules 2, 4, 5: image cut short', { editImage: (img) => img.slice(0, 0x2000) }, [2, 4, 5]],
    ['rule 6: CONFIG_XIP_KERNEL not set', { config: { CONFIG_XIP_KERNEL: null } }, [6]],
    ['rule 6: CONFIG_JUMP_LABEL=y', { config: { CONFIG_JUMP_LABEL: 'y' } }, [6]],
    ['rule 6: CONFIG_KPROBES=y and CONFIG_FUNCTION_TRACER=y', { config: { CONFIG_KPROBES: 'y', CONFIG_FUNCTION_TRACER: 'y' } }, [6]],
    ['rule 6: CONFIG_KEXEC=y', { config: { CONFIG_KEXEC: 'y' } }, [6]],
    ['rule 3: a writable .got in flash bigger than ld.lld\'s two reserved words', { spec: (s) => rodataAsGot(s) }, [3]],
    ['rules 4, 5: no image', { image: null }, [4, 5]],
  ];
  for (const [what, c, want] of failing) {
    it(`fails ${what}`, () => {
      const r = run(c);
      assert.deepEqual(r.failed, want, formatReport(r));
      assert.equal(r.ok, false);
      const text = formatReport(r);
      for (const id of want) assert.match(text, new RegExp(`^rule ${id} FAIL `, 'm'));
      assert.match(text, new RegExp(`^summary: ${6 - want.length} of 6 rules hold; FAIL: ${want.map((id) => `rule ${id}`).join(', ')}`, 'm'));
    });
  }

  it('accepts CONFIG_BPF_JIT=y (the JIT writes vmalloc memory, not kernel text)', () => {
    const r = run({ config: { CONFIG_BPF_JIT: 'y' } });
    assert.equal(r.ok, true, formatReport(r));
  });

  it('accepts the writable .got ld.lld leaves in flash while it holds only its two reserved words', () => {
    const r = run({ spec: (s) => rodataAsGot(s, 8) });
    assert.equal(rule(r, 3).ok, true, formatReport(r));
  });

  // __dbe_table is flagged read-only by the assembler but sorted in place at boot: RAM is right for it.
  it('accepts a read-only __dbe_table in RAM (sorted in place at boot)', () => {
    const r = run({
      spec: (s) => {
        s.sections[3]!.flags = 2;
        s.sections[3]!.name = '__dbe_table';
        s.segments[1]!.sections = s.segments[1]!.sections.map((n) => (n === '.data' ? '__dbe_table' : n));
        for (const y of s.symbols ?? []) if (y.section === '.data') y.section = '__dbe_table';
      },
    });
    assert.deepEqual(r.failed, [], formatReport(r));
  });

  it('names the numbers that decided a failure', () => {
    const r = run({ editImage: (img) => { img[0x1234]! ^= 0x40; return img; } });
    // Stored byte 0x1234 is flash byte 0x1237 once the word swap is undone.
    assert.match(rule(r, 5).summary, /differs from the image at offset 0x1237 \(segment byte 0x237: /);
    const r6 = run({ config: { CONFIG_JUMP_LABEL: 'y' } });
    assert.match(rule(r6, 6).summary, /CONFIG_JUMP_LABEL=y/);
    const r4 = run({ image: { padTo: 0x400004 } });
    assert.match(rule(r4, 4).summary, /0x400004 bytes, more than the 0x400000-byte flash/);
  });

  it('a big-endian kernel on a big-endian board with no loader swap passes', () => {
    const board = { ...malta, name: 'malta-be', endian: 'big' as const, loaderSwapBytes: 0 };
    const elf = buildElf(xipKernelSpec('big')).bytes;
    const p = join(tmp, 'be');
    writeFileSync(`${p}-vmlinux`, elf);
    writeFileSync(`${p}-config`, dotConfig());
    writeFileSync(`${p}-image`, makeImage(board, elf));
    const r = verify({ board, vmlinux: `${p}-vmlinux`, dotConfig: `${p}-config`, image: `${p}-image` });
    assert.deepEqual(r.failed, [], formatReport(r));
  });

  it('JSON output carries the same data and the command returns 1 on failure', () => {
    const elf = buildElf(xipKernelSpec()).bytes;
    const p = join(tmp, 'cmd');
    writeFileSync(`${p}-vmlinux`, elf);
    writeFileSync(`${p}-config`, dotConfig({ CONFIG_KGDB: 'y' }));
    writeFileSync(`${p}-image`, makeImage(malta, elf));
    const ctx = makeContext({ buildDir: join(tmp, 'build') });
    const out: string[] = [];
    const orig = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = verifyCommand(ctx, { vmlinux: `${p}-vmlinux`, configFile: `${p}-config`, image: `${p}-image`, json: true });
    } finally {
      process.stdout.write = orig;
    }
    assert.equal(code, 1);
    const j = JSON.parse(out.join('')) as VerifyReport;
    assert.equal(j.ok, false);
    assert.deepEqual(j.failed, [6]);
    assert.equal(j.rules.length, 6);
    assert.deepEqual((j.rules[5]!.data as { textPatchingOn: string[] }).textPatchingOn, ['CONFIG_KGDB']);
  });

  describe('bad input ends in exit code 2', () => {
    const expect2 = (fn: () => unknown, re: RegExp) => {
      assert.throws(fn, (err: unknown) => {
        assert.ok(err instanceof XipError, String(err));
        assert.equal(err.exitCode, 2);
        assert.match(err.message, re);
        return true;
      });
    };
    const good = join(tmp, 'good');
    writeFileSync(`${good}-vmlinux`, buildElf(xipKernelSpec()).bytes);
    writeFileSync(`${good}-config`, dotConfig());
    it('missing vmlinux', () => {
      expect2(() => verify({ board: malta, vmlinux: join(tmp, 'none'), dotConfig: `${good}-config`, image: join(tmp, 'none.bin') }), /none: no such file/);
    });
    it('vmlinux that is not ELF', () => {
      expect2(() => verify({ board: malta, vmlinux: `${good}-config`, dotConfig: `${good}-config`, image: join(tmp, 'none.bin') }), /not an ELF file/);
    });
    it('missing .config, with a hint that names the real option (--dot-config)', () => {
      expect2(() => verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: join(tmp, 'no-config'), image: join(tmp, 'none.bin') }), /no such kernel \.config.*xip verify --dot-config <file>/);
    });
    it('a .config path that is a directory', () => {
      expect2(() => verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: tmp, image: join(tmp, 'none.bin') }), /is a directory, not a kernel \.config.*--dot-config/);
    });
    it('a .config that is not one', () => {
      expect2(() => verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: `${good}-vmlinux`, image: join(tmp, 'none.bin') }), /not a kernel \.config.*--dot-config/);
    });
    it('every hint names an option xip verify has', () => {
      const p = buildProgram().commands.find((c) => c.name() === 'verify')!;
      const options = new Set(p.options.map((o) => o.long));
      const hints: string[] = [];
      for (const dotConfig of [join(tmp, 'no-config'), tmp, `${good}-vmlinux`]) {
        try {
          verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig, image: join(tmp, 'none.bin') });
        } catch (e) {
          hints.push((e as Error).message);
        }
      }
      try {
        verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: `${good}-config`, image: tmp });
      } catch (e) {
        hints.push((e as Error).message);
      }
      const r = verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: `${good}-config`, image: join(tmp, 'none.bin') });
      hints.push(...r.rules.flatMap((x) => [x.summary, ...x.details]));
      const named = hints.flatMap((h) => [...h.matchAll(/xip verify (--[a-z-]+)/g)].map((m) => m[1]!));
      assert.ok(named.includes('--dot-config') && named.includes('--image'), named.join(' '));
      for (const o of named) assert.ok(options.has(o), `${o} is not an option of xip verify`);
      assert.ok(!hints.some((h) => h.includes('--config-file')));
    });
    it('an image path that is a directory', () => {
      expect2(() => verify({ board: malta, vmlinux: `${good}-vmlinux`, dotConfig: `${good}-config`, image: tmp }), /is a directory, not a flash image/);
    });
  });
});

describe('verify on real kernels', () => {
  const kernels = findRealKernels();
  const stock = kernels.filter((k) => k.variant === 'stock' && k.dotConfig);
  if (stock.length === 0) {
    it('stock vmlinux (none built yet)', (t) => {
      if (IN_CI) assert.fail('no stock vmlinux with .config found under /tmp/kdev or build/**/kbuild/: `make test` must build it first');
      t.skip('no stock vmlinux found: build one to run this check');
    });
  }
  for (const k of stock) {
    it(`fails on the stock kernel ${k.path}, naming every rule`, (t) => {
      const r = verify({ board: k.board, vmlinux: k.path, dotConfig: k.dotConfig!, image: join(tmp, 'stock-has-no-image.bin') });
      t.diagnostic(`verify took ${r.ms} ms; failed: ${r.failed.join(', ')}`);
      assert.equal(r.ok, false);
      for (const id of [1, 2, 3, 4, 5, 6]) assert.ok(r.failed.includes(id), `rule ${id} fails on stock:\n${formatReport(r)}`);
      assert.match(rule(r, 1).summary, /no LOAD segment at 0x9e001000/);
      assert.match(rule(r, 6).summary, /CONFIG_XIP_KERNEL is not set/);
    });
  }
  // An XIP vmlinux without an image (a dev build): the rules that need only
  // vmlinux and .config must hold, the image rules must fail for want of an image.
  for (const k of kernels.filter((x) => x.variant === 'xip' && x.dotConfig && !x.image)) {
    it(`XIP kernel ${k.path} without image: rules 1, 2 and 6 hold, 4 and 5 fail`, (t) => {
      const r = verify({ board: k.board, vmlinux: k.path, dotConfig: k.dotConfig!, image: join(tmp, 'no-image.bin') });
      t.diagnostic(`verify took ${r.ms} ms; failed: ${r.failed.join(', ')}`);
      if (!rule(r, 3).ok) t.diagnostic(`rule 3 (not asserted on dev builds): ${rule(r, 3).summary}`);
      for (const id of [1, 2, 6]) assert.ok(rule(r, id).ok, `rule ${id}:\n${formatReport(r)}`);
      for (const id of [4, 5]) assert.ok(!rule(r, id).ok, `rule ${id} needs an image`);
    });
  }
  // An XIP kernel with its image next to it (a `make` build): verify must pass.
  const xipBuilt = kernels.filter((k) => k.variant === 'xip' && k.dotConfig && k.image);
  for (const k of xipBuilt) {
    it(`passes on the XIP build ${k.path} with its image`, (t) => {
      const r = verify({ board: k.board, vmlinux: k.path, dotConfig: k.dotConfig!, image: k.image! });
      t.diagnostic(`verify took ${r.ms} ms`);
      assert.deepEqual(r.failed, [], formatReport(r));
    });
  }
  if (xipBuilt.length === 0) {
    it('XIP build with image (none built yet)', (t) => {
      if (IN_CI) assert.fail('no XIP vmlinux with xip-bios.bin under build/**: `make test` must build it first');
      t.skip('no XIP build with an image under build/: run make to check verify passes on it');
    });
  }
});

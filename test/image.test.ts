import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { getBoard } from '../src/boards/index.ts';
import { partitionOf } from '../src/boards/board.ts';
import { makeContext } from '../src/context.ts';
import { parseElf } from '../src/elf/elf32.ts';
import { XipError } from '../src/errors.ts';
import {
  assembleFlash,
  checkXipImage,
  checkFits,
  describeLayout,
  flashBudget,
  formatLayout,
  imageEnd,
  placeSegments,
  swapWords,
} from '../src/image/layout.ts';
import { buildShim } from '../src/image/shim.ts';
import { verify } from '../src/verify/index.ts';
import { dotConfig } from './fixtures/elf/image.ts';
import { buildElf, xipKernelSpec } from './fixtures/elf/synth.ts';

const malta = getBoard('malta');
const tmp = mkdtempSync(join(tmpdir(), 'image-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A shim-shaped blob: magic at 0x18, jump target at 0x20, as firmware/shim/shim.S lays it out. */
/** The flash image from a loader blob and the kernel's flash bytes, by malta's shim map. */
function flashOf(loader: Uint8Array, kernel: Uint8Array, board = malta): Uint8Array {
  return assembleFlash(
    [
      { partition: partitionOf(board.partitions, 'loader')!, bytes: loader },
      { partition: partitionOf(board.partitions, 'kernel')!, bytes: kernel },
    ],
    board,
  );
}

function fakeShim(entry: number): Uint8Array {
  const shim = new Uint8Array(0x220);
  const dv = new DataView(shim.buffer);
  dv.setUint32(0x18, 0x53504958, true);
  dv.setUint32(0x20, entry, true);
  return shim;
}

describe('flash image layout', () => {
  const elf = parseElf(buildElf(xipKernelSpec('little')).bytes, 'synthetic');

  it('places each loadable segment at its load address relative to the flash base', () => {
    const p = placeSegments(elf, malta);
    assert.equal(p.length, 2);
    assert.equal(p[0]!.offset, 0x1000, 'text at XIP_PHYS_ADDR - flash base');
    assert.equal(p[1]!.offset, p[1]!.segment.paddr - 0x9e000000, 'data image at its LMA');
    assert.equal(imageEnd(p) % 4, 0);
  });

  it('assembles an image that `xip verify` accepts, swapped over exactly the loader range', () => {
    const p = placeSegments(elf, malta);
    const entry = elf.findSymbol('kernel_entry')!.value;
    const base = malta.xipPhys - malta.flashPhys;
    const kernel = new Uint8Array(imageEnd(p) - base);
    for (const x of p) kernel.set(elf.segmentData(x.segment), x.offset - base);
    const image = flashOf(fakeShim(entry), kernel);
    assert.equal(image.length, malta.flashSize, 'the whole chip');
    // Undo the swap and compare every segment byte for byte.
    const plain = new Uint8Array(image);
    swapWords(plain, malta.loaderSwapBytes);
    for (const { segment, offset } of p) {
      assert.deepEqual(plain.subarray(offset, offset + segment.filesz), elf.segmentData(segment));
    }
    assert.equal(plain[0x300], 0xff, 'gap between shim and kernel is erased flash');
    // The independent verifier agrees (rules 4 and 5 read the image).
    const v = join(tmp, 'vmlinux');
    const i = join(tmp, 'image.bin');
    const c = join(tmp, 'config');
    writeFileSync(v, buildElf(xipKernelSpec('little')).bytes);
    writeFileSync(i, image);
    writeFileSync(c, dotConfig());
    const report = verify({ board: malta, vmlinux: v, dotConfig: c, image: i });
    const r4 = report.rules.find((r) => r.id === 4)!;
    const r5 = report.rules.find((r) => r.id === 5)!;
    assert.ok(r4.ok, r4.summary);
    assert.ok(r5.ok, r5.summary);
  });

  it('refuses a kernel linked to run from RAM (the stock variant) with a hint', () => {
    const spec = xipKernelSpec('little');
    for (const s of spec.segments) s.paddr = 0x80100000;
    spec.sections[0]!.addr = 0x80100000;
    const stock = parseElf(buildElf(spec).bytes, 'stock-vmlinux');
    assert.throws(() => placeSegments(stock, malta), (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /outside malta's flash.*xip variant/);
      return true;
    });
  });

  it('refuses a kernel that overlaps the boot shim area', () => {
    const spec = xipKernelSpec('little');
    spec.sections[0]!.addr = 0x9e000800;
    const bad = parseElf(buildElf(spec).bytes, 'low-vmlinux');
    assert.throws(() => placeSegments(bad, malta), /in front of malta's kernel address 0x1e001000 \(shim flash map\): rebuild the kernel/);
  });

  it('takes the whole chip as the budget; says which partition a kernel overflows and by how much', () => {
    assert.equal(flashBudget(malta), 0x400000, 'malta: all 4 MiB (the swapped range is pre-swapped, the rest stored as is)');
    // The shim map's kernel partition runs to the settings partition at 0x3e0000.
    const room = 0x3e0000 - 0x1000;
    assert.doesNotThrow(() => checkFits(room, 0x9fe00000, malta));
    assert.throws(() => checkFits(room + 100, 0x9fe00000, malta), (e: unknown) => {
      assert.ok(e instanceof XipError);
      assert.match(e.message, /partition 'kernel' \(0x00001000\.\.0x003e0000, 3964\.0 KiB\) overflows by 100 bytes/);
      assert.match(e.message, /grow 'kernel' in malta's shim flash map/);
      return true;
    });
    const ub = getBoard('malta', 'uboot');
    assert.throws(() => checkFits(0x390000, 0x9fe00000, ub), /partition 'kernel' \(0x00050000\.\.0x003e0000, 3648\.0 KiB\) overflows by 64 bytes/, 'U-Boot map: the uImage header counts');
    assert.throws(() => checkFits(room, 0xa0000010, malta), /16 bytes past the 0xa0000000 segment boundary/);
    assert.throws(() => flashOf(new Uint8Array(0x1001), new Uint8Array(4)), /partition 'loader' \(4\.0 KiB\) overflows by 1 bytes/);
  });

  it('swaps 32-bit words only within the given range, and is its own inverse', () => {
    const a = Uint8Array.from({ length: 16 }, (_, i) => i);
    const b = new Uint8Array(a);
    swapWords(b, 8);
    assert.deepEqual([...b.subarray(0, 8)], [3, 2, 1, 0, 7, 6, 5, 4]);
    assert.deepEqual([...b.subarray(8)], [...a.subarray(8)]);
    swapWords(b, 8);
    assert.deepEqual(b, a);
  });

  it('describes the layout region by region, naming a missing symbol', () => {
    const p = placeSegments(elf, malta);
    const size = imageEnd(p);
    // The synthetic kernel lacks __end_rodata: describeLayout names the missing symbol.
    assert.throws(() => describeLayout(elf, malta, 0x220, size - 0x1000), /symbol __end_rodata missing/);
    const spec = xipKernelSpec('little');
    const syms = spec.symbols ?? [];
    const etext = syms.find((s) => s.name === '_etext')!.value;
    const exiprom = syms.find((s) => s.name === '_exiprom')!.value;
    syms.push({ name: '__end_rodata', value: etext + 0x800, section: '.rodata' });
    spec.symbols = syms;
    const full = parseElf(buildElf(spec).bytes, 'synthetic');
    const l = describeLayout(full, malta, 0x220, size - 0x1000);
    const names = l.regions.map((r) => r.name);
    assert.deepEqual(names.slice(0, 4), ['boot shim', 'free', 'kernel text', 'rodata + tables']);
    assert.deepEqual(names.slice(-2), ['free', 'settings'], 'the settings partition is reserved, written or not');
    assert.equal(l.regions.at(-1)!.end, malta.flashPhys + malta.flashSize, 'the map runs to the end of the chip');
    assert.equal(l.used, malta.flashSize - l.regions.filter((r) => r.name === 'free').reduce((n, r) => n + r.size, 0));
    const text = l.regions.find((r) => r.name === 'kernel text')!;
    assert.equal(text.size, etext - 0x9e001000);
    assert.ok(exiprom > etext);
    assert.match(formatLayout(l), /bytes of 4194304 used \(\d+\.\d% of the flash\), \d+ free/);
  });
});

describe('boot shim build', () => {
  // Fake tools on PATH: clang writes its arguments to $FAKE_ARGS (when set),
  // ld does nothing, objcopy writes its output file and succeeds, or writes
  // half of it and fails (FAKE_OBJCOPY=fail).
  const bin = join(tmp, 'fake-tools');
  mkdirSync(bin, { recursive: true });
  const tool = (name: string, body: string) => {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  };
  tool('clang', '[ -z "$FAKE_ARGS" ] || printf "%s\\n" "$@" > "$FAKE_ARGS"');
  tool('mipsel-linux-gnu-ld', 'exit 0');
  tool('mipsel-linux-gnu-objcopy', 'for out; do :; done; printf SHIM > "$out"; [ "$FAKE_OBJCOPY" != fail ]');
  const withFakeTools = async <T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> => {
    const saved = { ...process.env };
    Object.assign(process.env, { PATH: `${bin}:${process.env.PATH}` }, env);
    try {
      return await fn();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  };
  const ctx = makeContext({ buildDir: join(tmp, 'shim-build') });
  const shimDir = join(ctx.variantDir, 'shim');

  it('leaves shim.bin and no temporary file', async () => {
    const s = await withFakeTools({}, () => buildShim(ctx, 0x9e001000));
    assert.equal(readFileSync(s.bin, 'utf8'), 'SHIM');
    assert.deepEqual(readdirSync(shimDir).filter((f) => f.includes('tmp')), []);
  });

  it("assembles for the board's CPU: its cpuFlags, its clang target", async () => {
    const argsFile = join(tmp, 'clang-args');
    await withFakeTools({ FAKE_ARGS: argsFile }, () => buildShim(ctx, 0x9e001000));
    const args = readFileSync(argsFile, 'utf8').split('\n');
    assert.ok(args.includes('-march=mips32r2') && args.includes('--target=mipsel-linux-gnu'), args.join(' '));
    const other = { ...ctx, board: { ...ctx.board, cpuFlags: ['-march=mips32r6', '-mtune=p5600'] } };
    await withFakeTools({ FAKE_ARGS: argsFile }, () => buildShim(other, 0x9e001000));
    const otherArgs = readFileSync(argsFile, 'utf8').split('\n');
    assert.ok(otherArgs.includes('-march=mips32r6') && otherArgs.includes('-mtune=p5600'), otherArgs.join(' '));
    assert.ok(!otherArgs.includes('-march=mips32r2'), 'no ISA of its own');
  });

  it('a failing objcopy leaves no shim.bin.tmp behind, and no new shim.bin', async () => {
    rmSync(shimDir, { recursive: true, force: true });
    await assert.rejects(
      withFakeTools({ FAKE_OBJCOPY: 'fail' }, () => buildShim(ctx, 0x9e001000)),
      (e: unknown) => e instanceof XipError && /boot shim objcopy failed/.test(e.message),
    );
    assert.equal(existsSync(join(shimDir, 'shim.bin.tmp')), false, 'shim.bin.tmp removed');
    assert.equal(existsSync(join(shimDir, 'shim.bin')), false);
  });
});

describe("the kernel's xipImage against vmlinux (checkXipImage)", () => {
  const elf = parseElf(buildElf(xipKernelSpec('little')).bytes, 'synthetic');
  // The same kernel built with CONFIG_XIP_DEFLATED_DATA: the inflater is linked in.
  const deflSpec = xipKernelSpec('little');
  deflSpec.symbols!.push({ name: '__inflate_kernel_data', value: 0x9e001200, type: 2, size: 0x40, section: '.text' });
  const elfD = parseElf(buildElf(deflSpec).bytes, 'synthetic');
  const placed = placeSegments(elf, malta);
  const base = malta.xipPhys - malta.flashPhys;
  const cut = new Uint8Array(imageEnd(placed) - base);
  for (const p of placed) cut.set(elf.segmentData(p.segment), p.offset - base);
  const split = elf.findSymbol('__data_loc')!.value - (0x80000000 + malta.xipPhys);
  const withData = (data: Uint8Array) => {
    const out = new Uint8Array(split + data.length);
    out.set(cut.subarray(0, split));
    out.set(data, split);
    return out;
  };

  it('takes an xipImage equal to the load segments; the flash image holds it at XIP_PHYS_ADDR, erased around, swapped', () => {
    const k = checkXipImage(elf, placed, cut, malta);
    assert.equal(k.deflated, false);
    const flash = flashOf(fakeShim(0x9e001100), k.bytes);
    const plain = new Uint8Array(flash);
    swapWords(plain, malta.loaderSwapBytes);
    assert.deepEqual(plain.subarray(base, base + cut.length), cut);
    assert.equal(plain[0x300], 0xff, 'erased between shim and kernel');
    assert.equal(new DataView(plain.buffer).getUint32(0x20, true), 0x9e001100, 'shim header');
  });

  it('takes deflated data that inflates to exactly the data segment, when the kernel has the inflater', () => {
    const k = checkXipImage(elfD, placed, withData(gzipSync(cut.subarray(split))), malta);
    assert.equal(k.deflated, true);
  });

  it('refuses one byte of text changed, naming the flash address', () => {
    const bad = new Uint8Array(cut);
    bad[0x40]! ^= 1;
    assert.throws(() => checkXipImage(elf, placed, bad, malta), (e: unknown) => e instanceof XipError && /differs from synthetic at byte 64 \(flash address 0x1e001040\)/.test(e.message));
  });

  it('refuses a cut-short xipImage by its length, and deflated data for a kernel without the inflater', () => {
    assert.throws(() => checkXipImage(elf, placed, cut.subarray(0, cut.length - 8), malta), /is \d+ bytes, vmlinux says \d+/);
    assert.throws(() => checkXipImage(elf, placed, withData(gzipSync(cut.subarray(split))), malta), /vmlinux says/);
  });

  it('refuses deflated data that differs, is no gzip member, carries a file name, or has bytes after it', () => {
    const other = new Uint8Array(cut.subarray(split));
    other[5]! ^= 0xff;
    assert.throws(() => checkXipImage(elfD, placed, withData(gzipSync(other)), malta), /differs from vmlinux's at _sdata\+5/);
    assert.throws(() => checkXipImage(elfD, placed, withData(new Uint8Array(40).fill(7)), malta), /not the gzip member the kernel reads/);
    const named = new Uint8Array(gzipSync(cut.subarray(split)));
    named[3] = 8; // FNAME: the kernel's inflater refuses any header flag
    assert.throws(() => checkXipImage(elfD, placed, withData(named), malta), /no gzip header 1f 8b 08 00/);
    const trailing = new Uint8Array([...gzipSync(cut.subarray(split)), 0, 0]);
    assert.throws(() => checkXipImage(elfD, placed, withData(trailing), malta), /2 bytes follow the member/);
  });
});

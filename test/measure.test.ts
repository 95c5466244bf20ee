import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../src/context.ts';
import { parseElf } from '../src/elf/elf32.ts';
import type { ImageReport } from '../src/image/index.ts';
import { countRate, serialToFile } from '../src/measure/bootcost.ts';
import { flashUse } from '../src/measure/flash.ts';
import { decodeWord, encodeWord, framePacket, isStopReply, parsePackets } from '../src/measure/gdb.ts';
import {
  accountRam,
  hashTablesFromLog,
  kernelSizes,
  memoryFromLog,
  oomLineFromLog,
  parseMemoryFields,
  reservedPerPage,
} from '../src/measure/memory.ts';
import { findMinRam, type Attempt } from '../src/measure/minram.ts';
import { bootCostMethod, memoryOfBoot } from '../src/measure/index.ts';
import { EXIT, XipError } from '../src/errors.ts';
import { getQemuBoard } from '../src/boards/index.ts';

const malta = getQemuBoard('malta');
import { buildElf, xipKernelSpec } from './fixtures/elf/synth.ts';

/**
 * The measuring code against console logs of real boots
 * (test/fixtures/measure/, see the README there), the bisection against a
 * fake boot, the gdb packet layer against hand-made packets.
 */
const dir = join(REPO_ROOT, 'test', 'fixtures', 'measure');
const fixture = (name: string) => readFileSync(join(dir, name), 'utf8');

describe('Memory: line', () => {
  it('every field of a real XIP boot at 8 MiB', () => {
    assert.deepEqual(memoryFromLog(fixture('ram-xip-8M.log')), {
      availableKiB: 6084,
      totalKiB: 8192,
      kernelCodeKiB: 1745,
      rwdataKiB: 496,
      rodataKiB: 148,
      initKiB: 158,
      bssKiB: 172,
      reservedKiB: 1868,
      cmaReservedKiB: 0,
    });
  });

  it('a real stock boot at 8 MiB', () => {
    const m = memoryFromLog(fixture('ram-stock-8M.log'));
    assert.equal(m?.availableKiB, 4012);
    assert.equal(m?.reservedKiB, 3940);
    assert.equal(m?.initKiB, 216);
  });

  it('the line with a printk timestamp, CRLF, and without cma-reserved', () => {
    const line =
      '[    0.000000] Memory: 5304K/8192K available (1234K kernel code, 56K rwdata, 78K rodata, 90K init, 12K bss, 2888K reserved)\r';
    const m = parseMemoryFields(line.replace(/\r/g, ''));
    assert.equal(m?.kernelCodeKiB, 1234);
    assert.equal(m?.reservedKiB, 2888);
    assert.equal(m?.cmaReservedKiB, 0);
  });

  it('the line that says memory ran out', () => {
    // The OOM killer runs (for the kernel's own allocation) before the panic.
    assert.match(oomLineFromLog(fixture('minram-xip-2304K.log')) ?? '', /^swapper invoked oom-killer: gfp_mask=0x40cc0\(GFP_KERNEL/);
    assert.equal(
      oomLineFromLog('LWRT-READY: up\r\npoweroff invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0\r\n'),
      'poweroff invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0',
    );
    assert.equal(oomLineFromLog(fixture('minram-xip-2368K.log')), undefined);
  });

  it('an incomplete line is not a Memory: line', () => {
    assert.equal(parseMemoryFields('Memory: 5304K/8192K available (1234K kernel code, 56K rwdata)'), undefined);
    assert.equal(parseMemoryFields('Memory: lots'), undefined);
    assert.equal(memoryFromLog('no such line\n'), undefined);
  });

  it('the memblock hash tables only (the mount caches come from the page allocator)', () => {
    assert.deepEqual(hashTablesFromLog(fixture('ram-xip-8M.log')), [
      { name: 'Dentry cache', bytes: 4096 },
      { name: 'Inode-cache', bytes: 4096 },
    ]);
    assert.deepEqual(
      hashTablesFromLog(fixture('ram-stock-16M.log')).map((h) => h.bytes),
      [8192, 4096],
    );
  });

  it('reserved per page from two sizes of a real boot: 32 bytes (struct page on 32-bit MIPS)', () => {
    const at = (f: string) => {
      const log = fixture(f);
      return { mem: memoryFromLog(log)!, hashTables: hashTablesFromLog(log) };
    };
    assert.equal(reservedPerPage(at('ram-xip-8M.log'), at('ram-xip-16M.log')), 32);
    assert.equal(reservedPerPage(at('ram-stock-8M.log'), at('ram-stock-16M.log')), 32);
    assert.equal(reservedPerPage(at('ram-xip-16M.log'), at('ram-xip-8M.log')), undefined);
  });
});

function synthKernel() {
  const spec = xipKernelSpec('little');
  const text = spec.symbols!.find((s) => s.name === '_text')!.value;
  const etext = spec.symbols!.find((s) => s.name === '_etext')!.value;
  spec.symbols!.push(
    { name: '__end_rodata', value: etext + 0x100, section: 0xfff1 },
    { name: '_sinittext', value: etext + 0x100, section: 0xfff1 },
    { name: '_einittext', value: etext + 0x180, section: 0xfff1 },
  );
  return { elf: parseElf(buildElf(spec).bytes, 'synth-vmlinux'), spec, text, etext };
}

describe('a boot that must succeed', () => {
  const failedWith = (re: RegExp) => (e: unknown) => {
    assert.ok(e instanceof XipError, String(e));
    assert.equal(e.exitCode, EXIT.failed, 'a failed measurement (1), not bad input (2)');
    assert.match(e.message, re);
    return true;
  };
  it('a boot failure during measure exits 1, naming the failure and the log', () => {
    assert.throws(
      () => memoryOfBoot({ ok: false, failure: { kind: 'panic', line: 'Kernel panic - not syncing: Out of memory' } }, 'xip at 8 MiB', '/m/ram-xip-8M.log'),
      failedWith(/^xip at 8 MiB did not boot \(panic: Kernel panic - not syncing: Out of memory\); log \/m\/ram-xip-8M\.log$/),
    );
  });
  it('a boot without a complete Memory: line exits 1 too', () => {
    assert.throws(() => memoryOfBoot({ ok: true, memoryLine: 'Memory: 5304K/8192K available (' }, 'stock at 8 MiB', '/m/l'), failedWith(/no complete Memory: line in \/m\/l/));
  });
  it('the fields of a good boot', () => {
    const line = 'Memory: 5304K/8192K available (1234K kernel code, 56K rwdata, 78K rodata, 90K init, 12K bss, 2888K reserved, 0K cma-reserved)';
    assert.equal(memoryOfBoot({ ok: true, memoryLine: line }, 'x', 'l').availableKiB, 5304);
  });
});

describe('kernel sizes and the RAM account', () => {
  it('text, rodata, init text and the RAM image from the symbols of an XIP vmlinux', () => {
    const { elf, spec, text, etext } = synthKernel();
    const sym = (n: string) => spec.symbols!.find((s) => s.name === n)!.value;
    const k = kernelSizes(elf);
    assert.equal(k.text, etext - text);
    assert.equal(k.rodata, 0x100);
    assert.equal(k.initText, 0x80);
    assert.equal(k.ramImage, sym('_end') - sym('_sdata'));
    assert.equal(k.ramStartPhys, (sym('_sdata') - 0x80000000) >>> 0);
  });

  it('a vmlinux without the symbols is bad input', () => {
    const spec = xipKernelSpec('little');
    assert.throws(() => kernelSizes(parseElf(buildElf(spec).bytes, 'no-rodata')), /__end_rodata missing/);
  });

  it('the real XIP boot at its minimum: reserved splits into below-kernel, RAM image, hash tables, the rest', () => {
    const log = fixture('minram-xip-2368K.log');
    const mem = memoryFromLog(log)!;
    const a = accountRam(
      mem,
      { text: 0, rodata: 0, initText: 0, ramImage: 0x801b5290 - 0x80100000, ramStartPhys: 0x100000 },
      hashTablesFromLog(log),
    );
    assert.equal(a.totalKiB, 2368);
    assert.equal(a.availableKiB, 292);
    assert.equal(a.belowKernelKiB, 1024);
    assert.equal(a.kernelImageKiB, 728); // 0xb5290 bytes rounded up to pages
    assert.equal(a.hashTablesKiB, 8);
    assert.equal(a.belowKernelKiB + a.kernelImageKiB + a.hashTablesKiB + a.otherReservedKiB, a.reservedKiB);
  });
});

describe('minimum RAM bisection (fake boot)', () => {
  const fake = (minKiB: number, log: number[] = []) => async (kib: number): Promise<Attempt> => {
    log.push(kib);
    return kib >= minKiB ? { kib, ok: true } : { kib, ok: false, failure: { kind: 'panic', line: `too small: ${kib}` } };
  };

  it('finds the exact 64 KiB step and the reason one step below fails', async () => {
    const tried: number[] = [];
    const r = await findMinRam(fake(2368, tried));
    assert.equal(r.minKiB, 2368);
    assert.deepEqual(r.below, { kib: 2304, ok: false, failure: { kind: 'panic', line: 'too small: 2304' } });
    // Whole MiB first (16, 8, 4, 2, 3), then 64 KiB steps inside 2..3 MiB.
    assert.deepEqual(tried.slice(0, 5), [16384, 8192, 4096, 2048, 3072]);
    assert.ok(tried.slice(5).every((k) => k > 2048 && k < 3072 && k % 64 === 0), tried.join(','));
    assert.equal(new Set(tried).size, tried.length, 'no size booted twice');
    assert.equal(r.attempts.length, tried.length);
  });

  it('a minimum on a whole MiB, and one above the first guess (doubling)', async () => {
    assert.equal((await findMinRam(fake(5 * 1024))).minKiB, 5120);
    const r = await findMinRam(fake(40 * 1024 + 640));
    assert.equal(r.minKiB, 41600);
    assert.equal(r.below?.kib, 41536);
  });

  it('a kernel that never boots is an error, not a number', async () => {
    await assert.rejects(findMinRam(fake(1 << 30), { maxMiB: 64 }), /does not boot even at 64 MiB: panic/);
  });

  it('a kernel that boots with almost nothing: no failing size below it', async () => {
    const r = await findMinRam(fake(64));
    assert.equal(r.minKiB, 64);
    assert.equal(r.below, undefined);
  });

  it('a step that does not divide 1 MiB is refused', async () => {
    await assert.rejects(findMinRam(fake(2048), { stepKiB: 100 }), /must divide 1024/);
  });
});

describe('gdb remote protocol', () => {
  it('frames packets with the modulo-256 checksum', () => {
    assert.equal(framePacket('g'), '$g#67');
    assert.equal(framePacket('Z0,9fddb908,4'), `$Z0,9fddb908,4#${checksum('Z0,9fddb908,4')}`);
    assert.equal(framePacket(''), '$#00');
  });

  it('splits a stream into packets, dropping acks and keeping a partial one', () => {
    const r = parsePackets('+$OK#9a+$T05thread:01;#07$S0');
    assert.deepEqual(r.packets, ['OK', 'T05thread:01;']);
    assert.equal(r.rest, '$S0');
    assert.throws(() => parsePackets('$OK#00'), /bad checksum/);
  });

  it('decodes register words in target byte order', () => {
    assert.equal(decodeWord('08b9dd9f', 'little'), 0x9fddb908);
    assert.equal(decodeWord('9fddb908', 'big'), 0x9fddb908);
    assert.equal(encodeWord(160_000_000, 'little'), '00688909');
    assert.throws(() => decodeWord('xx', 'little'), /not a 32-bit register/);
  });

  it('knows a stop reply', () => {
    assert.ok(isStopReply('T05thread:01;'));
    assert.ok(isStopReply('S05'));
    assert.ok(isStopReply('W00'));
    assert.ok(!isStopReply('OK'));
    assert.ok(!isStopReply(''));
  });
});

function checksum(p: string): string {
  let s = 0;
  for (const c of p) s = (s + c.charCodeAt(0)) & 0xff;
  return s.toString(16).padStart(2, '0');
}

describe('boot-cost QEMU arguments', () => {
  it('moves the console from the stdio pipe to a file', () => {
    assert.deepEqual(serialToFile(['-nographic', '-serial', 'stdio', '-bios', 'x'], '/t/c.log'), [
      '-nographic',
      '-serial',
      'file:/t/c.log',
      '-bios',
      'x',
    ]);
    assert.throws(() => serialToFile(['-nographic'], '/t/c.log'), /no '-serial stdio'/);
  });

  it("the Count rate is the board's (QEMU malta: 160 MHz)", () => {
    assert.equal(countRate(malta), malta.qemu.countHz);
    assert.equal(malta.qemu.countHz, 160_000_000);
    assert.equal(countRate({ ...malta, qemu: { ...malta.qemu, machine: 'other', countHz: 100_000_000 } }), 100_000_000);
  });

  it("the method names the boards' Count rates", () => {
    const other = { ...malta, name: 'other', qemu: { ...malta.qemu, countHz: 12_500_000 } };
    assert.match(bootCostMethod([malta]), /QEMU's Count rate \(160 MHz\) and returns/);
    assert.match(bootCostMethod([malta, { ...malta, name: 'twin' }]), /QEMU's Count rate \(160 MHz\) and returns/);
    assert.match(bootCostMethod([malta, other]), /QEMU's Count rate \(160 MHz on malta; 12\.5 MHz on other\) and returns/);
  });
});

describe('flash use from the image report', () => {
  it('parts of a real image report, grouped as the issue names them', () => {
    const rep = JSON.parse(fixture('image-report.json')) as ImageReport;
    const f = flashUse(rep);
    assert.deepEqual(
      f.parts.map((p) => p.name),
      ['shim', 'text', 'rodata', 'init', 'initramfs', 'data image'],
    );
    assert.equal(f.imageBytes, rep.layout.used);
    assert.equal(f.budgetBytes, 0x3e0000);
    assert.equal(f.freeBytes, 0x3e0000 - rep.layout.used);
    const init = rep.layout.regions.filter((r) => r.name.startsWith('init ')).reduce((s, r) => s + r.size, 0);
    assert.equal(f.parts.find((p) => p.name === 'init')?.bytes, init);
    // Everything in the image is in a part, except the alignment gaps between them.
    const sum = f.parts.reduce((s, p) => s + p.bytes, 0);
    assert.ok(sum <= f.imageBytes && f.imageBytes - sum < 8192, `${sum} of ${f.imageBytes}`);
  });
});

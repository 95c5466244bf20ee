import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { kseg0, partitionOf } from '../src/boards/board.ts';
import { boardSkip } from '../src/boards/index.ts';
import { findNode, getStrings, parseFdt } from '../src/boards/fdt.ts';
import { makeContext, userspacePaths, type Toolchain } from '../src/context.ts';
import { readImageReport } from '../src/image/stage.ts';
import { readElf, PT } from '../src/elf/elf32.ts';
import { vendorKernelPath } from '../src/image/index.ts';
import { parseUImageHeader } from '../src/image/uboot-formats.ts';
import { TPLINK, jumpTarget, lzmaAloneInflate } from '../src/image/vendor.ts';
import { parseConfig, configValue } from '../src/kernel/kconfig.ts';
import { runXip, xipLogged } from './fixtures/cli.ts';

/**
 * The real boards QEMU has no model of: each is built with both compilers
 * from its board file and defconfig, its image made for the boot loader
 * the board ships with, and `xip verify` run on it. What can be checked
 * without the board is checked from the binaries: the device tree built
 * into the kernel is the board's, no driver may command the flash
 * controller the kernel executes from, the RAM part stays off the
 * exception vectors, the kernel partition holds exactly what the board's
 * loader needs, and verify fails when any of it is disturbed.
 */
const BOARDS = [
  // needs: what the board cannot start without (CLK_MTMIPS: plat_time_init() panics with no CPU clock, and the UARTs get theirs from it).
  { name: 'mt7628', compatible: 'vocore,vocore2', dtb: 'DTB_VOCORE2', spi: 'SPI_MT7621', console: 'console=ttyS2,115200', needs: ['CLK_MTMIPS', 'SERIAL_8250_CONSOLE', 'SERIAL_OF_PLATFORM'] },
  { name: 'ar9331', compatible: 'tplink,tl-mr3020', dtb: 'DTB_TL_MR3020', spi: 'SPI_ATH79', console: 'console=ttyATH0,115200', needs: ['SERIAL_AR933X_CONSOLE'] },
] as const;

const tmp = mkdtempSync(join(tmpdir(), 'xip-realboards-'));

/**
 * The AR9331's router (the TL-MR3020 is a 4/32 router): the router kernel
 * (ag71xx, the AR9331 switch through DSA, netfilter NAT) with the router
 * userspace in its initramfs must fit the kernel partition in front of the
 * settings and the ART, for the TP-Link loader. Built with gcc, the smaller
 * kernel (as on malta); README gives the clang size, measured once.
 */
describe('ar9331 router (gcc): built and verified, not booted', { timeout: 40 * 60 * 1000 }, () => {
  const skip = boardSkip('ar9331');
  const ctx = makeContext({ board: 'ar9331', variant: 'xip', toolchain: 'gcc', config: 'lwrt_ar9331_tl_mr3020_defconfig' });
  it('builds with the router userspace, fits the kernel partition, and verify passes', { skip }, async () => {
    assert.equal(ctx.userspace, 'router');
    const cli = (args: string[], timeoutMs: number) => xipLogged(['--board', 'ar9331', '--toolchain', 'gcc', '--config', 'lwrt_ar9331_tl_mr3020', ...args], timeoutMs);
    for (const [step, ms] of [['build', 35 * 60 * 1000], ['image', 2 * 60 * 1000], ['verify', 60 * 1000]] as const) {
      const r = await cli([step], ms);
      assert.equal(r.code, 0, `${step}:\n${r.out}`);
    }
    const cfg = parseConfig(readFileSync(ctx.dotConfig, 'utf8'));
    for (const on of ['XIP_KERNEL', 'AG71XX', 'NET_DSA_AR9331', 'NF_TABLES', 'NFT_MASQ', 'BRIDGE', 'XIP_DEFLATED_DATA']) assert.equal(configValue(cfg, on), 'y', `CONFIG_${on}`);
    for (const off of ['SPI', 'SPI_ATH79', 'MTD']) assert.equal(configValue(cfg, off), 'n', `CONFIG_${off}`);
    // The router's busybox is in the initramfs, in flash.
    assert.match(readFileSync(userspacePaths(ctx).list, 'utf8'), /^file \/bin\/busybox /m);
    const initramfs = readImageReport(ctx)!.layout.regions.find((r) => r.name === 'initramfs');
    assert.ok(initramfs && initramfs.size > 100 * 1024, `initramfs region: ${JSON.stringify(initramfs)}`);
    const part = readFileSync(vendorKernelPath(ctx));
    const k = partitionOf(ctx.board.partitions, 'kernel')!;
    assert.ok(part.length <= k.size, `${part.length} bytes in the ${k.size}-byte kernel partition`);
  });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

for (const b of BOARDS) {
  for (const toolchain of ['clang', 'gcc'] as Toolchain[]) {
    const ctx = makeContext({ board: b.name, variant: 'xip', toolchain });
    const cli = (args: string[], timeoutMs: number) => xipLogged(['--board', b.name, '--toolchain', toolchain, ...args], timeoutMs);

    describe(`${b.name} (${toolchain}): built and verified, not booted`, { timeout: 40 * 60 * 1000 }, () => {
      const skip = boardSkip(b.name);
      it('builds, makes the kernel partition for the board loader, and verify passes', { skip }, async () => {
        let r = await cli(['build'], 35 * 60 * 1000);
        assert.equal(r.code, 0, r.out);
        r = await cli(['image'], 2 * 60 * 1000);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, new RegExp(`write it to partition 'kernel' at flash offset 0x${partitionOf(ctx.board.partitions, 'kernel')!.offset.toString(16)} only`));
        assert.ok(existsSync(vendorKernelPath(ctx)));
        r = await cli(['verify'], 60 * 1000);
        assert.equal(r.code, 0, `xip verify:\n${r.out}`);
        assert.match(r.out, /all 6 rules hold/);
      });

      it("the config: XIP, the board's built-in device tree and command line, no driver on the flash controller", { skip }, () => {
        const cfg = parseConfig(readFileSync(ctx.dotConfig, 'utf8'));
        assert.equal(configValue(cfg, 'XIP_KERNEL'), 'y');
        assert.equal(configValue(cfg, b.dtb), 'y');
        assert.equal(configValue(cfg, 'BUILTIN_DTB'), 'y');
        assert.equal(configValue(cfg, 'XIP_PHYS_ADDR'), `0x${ctx.board.xipPhys.toString(16)}`);
        assert.equal(configValue(cfg, 'CMDLINE'), `"${b.console}"`);
        assert.equal(configValue(cfg, 'CMDLINE_OVERRIDE'), 'y');
        for (const off of ['SPI', b.spi, 'MTD']) assert.equal(configValue(cfg, off), 'n', `CONFIG_${off} must be off`);
        for (const on of b.needs) assert.equal(configValue(cfg, on), 'y', `CONFIG_${on} must be on`);
      });

      it("vmlinux: the built-in tree is the board's, and the RAM part starts at the board's link address", { skip }, () => {
        const elf = readElf(ctx.vmlinux);
        const start = elf.findSymbol('__dtb_start')!.value >>> 0;
        const end = elf.findSymbol('__dtb_end')!.value >>> 0;
        assert.ok(end > start, 'a device tree is built in');
        const seg = elf.segments.find((s) => s.type === PT.LOAD && start >= s.vaddr >>> 0 && end <= (s.vaddr + s.filesz) >>> 0)!;
        const fdt = parseFdt(elf.segmentData(seg).subarray(start - (seg.vaddr >>> 0), end - (seg.vaddr >>> 0)));
        assert.equal(getStrings(findNode(fdt.root, '/')!, 'compatible')?.[0], b.compatible);
        const sdata = elf.findSymbol('_sdata')!.value >>> 0;
        assert.equal(sdata, ctx.board.linkAddress);
        // Off the exception vectors the kernel writes at the start of RAM (cpu_probe reserves the first page).
        assert.ok(sdata >= 0x80001000, `_sdata ${sdata.toString(16)}`);
      });

      it("the kernel partition is what the board's loader boots, and the chip image leaves the board's own partitions erased", { skip }, () => {
        const part = readFileSync(vendorKernelPath(ctx));
        const chip = readFileSync(ctx.imagePath);
        const k = partitionOf(ctx.board.partitions, 'kernel')!;
        assert.ok(chip.subarray(k.offset, k.offset + part.length).equals(part));
        for (const p of ctx.board.partitions.filter((q) => q.content !== 'kernel')) {
          assert.ok(chip.subarray(p.offset, p.offset + p.size).every((x) => x === 0xff), `${p.name} erased`);
        }
        const entry = readElf(ctx.vmlinux).findSymbol('kernel_entry')!.value >>> 0;
        const v = ctx.board.vendor!;
        if (v.format === 'uimage') {
          const hd = parseUImageHeader(part, part.subarray(64));
          assert.equal(hd.load, v.bootm);
          assert.equal(hd.entry, entry);
          assert.equal(hd.comp, 0);
        } else {
          const dv = new DataView(part.buffer, part.byteOffset, part.byteLength);
          assert.equal(dv.getUint32(0), TPLINK.version);
          assert.equal(dv.getUint32(TPLINK.kernelLoad), v.trampolineLoad);
          const code = lzmaAloneInflate(part.subarray(TPLINK.headerBytes, TPLINK.headerBytes + dv.getUint32(TPLINK.kernelLength)));
          assert.equal(jumpTarget(code, ctx.board.endian), entry);
        }
        assert.equal(kseg0(ctx.board.xipPhys), readElf(ctx.vmlinux).findSymbol('_text')!.value >>> 0);
      });

      it('verify fails on a changed kernel byte and on a write into the calibration or loader partition', { skip }, async () => {
        const chip = readFileSync(ctx.imagePath);
        const k = partitionOf(ctx.board.partitions, 'kernel')!;
        const cases: [string, number, RegExp][] = [
          ['kernel', ctx.board.xipPhys - ctx.board.flashPhys + 0x100, /rule 5 FAIL/],
          ['calibration', partitionOf(ctx.board.partitions, 'calibration')!.offset + 4, /rule 4 FAIL.*writes partition/],
          ['loader', 8, /rule 4 FAIL.*writes partition/],
          // The load address the loader reads: the uImage header's (byte 16), TP-Link's (0x74).
          ['header', k.offset + (ctx.board.vendor!.format === 'uimage' ? 16 : TPLINK.kernelLoad), /rule 5 FAIL/],
        ];
        for (const [what, at, want] of cases) {
          const bad = Buffer.from(chip);
          bad[at] = bad[at]! ^ 0x5a;
          const file = join(tmp, `${b.name}-${toolchain}-${what}.bin`);
          writeFileSync(file, bad);
          const r = await runXip(['--board', b.name, '--toolchain', toolchain, 'verify', '--image', file]);
          assert.equal(r.code, 1, `${what}: ${r.out}`);
          assert.match(r.out, want, what);
        }
        copyFileSync(ctx.imagePath, join(tmp, 'same.bin'));
        const r = await runXip(['--board', b.name, '--toolchain', toolchain, 'verify', '--image', join(tmp, 'same.bin')]);
        assert.equal(r.code, 0, r.out);
      });

      it('boot is refused with one line: QEMU has no model of the board', { skip }, async () => {
        const r = await runXip(['--board', b.name, '--toolchain', toolchain, 'boot']);
        assert.equal(r.code, 2, r.out);
        assert.match(r.stderr.trim(), new RegExp(`^xip: error: board ${b.name} cannot be booted here: QEMU has no model of it`));
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      });
    });
  }
}

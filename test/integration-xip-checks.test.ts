import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { kseg0 } from '../src/boards/board.ts';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type Toolchain } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { xipImagePath } from '../src/image/index.ts';
import { inflateMember } from '../src/image/layout.ts';
import { parseConfig } from '../src/kernel/kconfig.ts';
import { xipLogged } from './fixtures/cli.ts';
import { DEFAULT_MARKERS, parseMemoryLine } from '../src/qemu/markers.ts';
import { boot } from '../src/qemu/runner.ts';
import { skippable } from './fixtures/skip.ts';

/**
 * The kernel series' own features, in one config (kernel/configs/
 * xipchecks_qemu_malta_defconfig) booted from the flash image alone:
 *
 * - KALLSYMS_ALL + initcall_debug: the flash an XIP kernel runs from is above
 *   its RAM, so without the __is_kernel() patch every initcall prints as an
 *   address ("calling  0x9e0141e8");
 * - malta's DT flash node with MTD_PHYSMAP_OF: the CFI driver would switch
 *   the chip the kernel executes from (0x1e000000, the device, not QEMU's
 *   RAM copy at the reset vector) out of read mode and hang the boot; the
 *   kernel's claim on its flash makes the driver fail to bind instead, and
 *   the log says so;
 * - XIP_DEFLATED_DATA: the data image is stored deflated in flash and
 *   inflated at entry, at the smallest and the largest RAM size.
 */
const CONFIG = 'xipchecks_qemu_malta_defconfig';
const toolchain = (mergeEnv({}).toolchain ?? 'clang') as Toolchain;
const ctx = makeContext({ config: CONFIG, variant: 'xip', toolchain });
const tmp = mkdtempSync(join(tmpdir(), 'xip-checks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[], timeoutMs: number) => xipLogged(['--config', CONFIG, '--toolchain', toolchain, ...args], timeoutMs);

skippable('xipchecks', () => {
  describe(`XIP kernel series checks (${CONFIG}, ${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
    it('builds, assembles and verifies; the data image in flash is deflated and inflates to vmlinux data', async () => {
      let r = await cli(['build'], 55 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      r = await cli(['image'], 5 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /data image \(deflated\)/);
      r = await cli(['verify'], 60 * 1000);
      assert.equal(r.code, 0, `xip verify:\n${r.out}`);
      const cfg = parseConfig(readFileSync(ctx.dotConfig, 'utf8'));
      for (const sym of ['XIP_KERNEL', 'XIP_DEFLATED_DATA', 'KALLSYMS_ALL', 'MTD_PHYSMAP_OF', 'MTD_CFI_INTELEXT', 'MODVERSIONS']) assert.equal(cfg.get(sym), 'y', sym);
      // MODVERSIONS: the stubs are exported with a CRC, the RAM buffers not at all.
      const symvers = readFileSync(join(ctx.kbuildDir, 'vmlinux.symvers'), 'utf8');
      for (const f of ['clear_page', 'copy_page', 'tlbmiss_handler_setup_pgd']) assert.match(symvers, new RegExp(`^0x(?!0{8}\t)[0-9a-f]{8}\t${f}\tvmlinux\t`, 'm'), f);
      assert.doesNotMatch(symvers, /\t(clear|copy)_page_ram\t/);
      // The kernel is linked into the CFI flash device's window, not the reset-vector copy.
      assert.equal(Number(cfg.get('XIP_PHYS_ADDR')), ctx.board.xipPhys);
      const elf = readElf(ctx.vmlinux);
      const s = (n: string) => elf.findSymbol(n)!.value >>> 0;
      assert.equal(s('_xiprom'), kseg0(ctx.board.xipPhys));
      const raw = s('_edata_loc') - s('__data_loc');
      const img = readFileSync(xipImagePath(ctx));
      const split = s('__data_loc') - s('_xiprom');
      assert.ok(img.length - split < raw / 4, `deflated data is ${img.length - split} bytes of ${raw}`);
      // Exactly the member the kernel reads (gzip -n, nothing after it); the flash image is the whole chip,
      // the kernel's partition erased after xipImage (bytes beyond 0x3e0000 are stored unswapped).
      assert.equal(inflateMember(img.subarray(split)).length, raw);
      const flash = readFileSync(ctx.imagePath);
      assert.equal(flash.length, ctx.board.flashSize);
      const kernelEnd = ctx.board.xipPhys - ctx.board.flashPhys + img.length;
      assert.ok(flash.subarray((kernelEnd + 3) & ~3).every((b) => b === 0xff), 'erased after the kernel');
    });

    for (const mem of [8, 256]) {
      it(`boots at -m ${mem}M: initcalls by name, the flash driver refused, deflated data, clean power-off`, async () => {
        const r = await boot({ board: ctx.board, variant: 'xip', bios: ctx.imagePath, memMiB: mem, log: join(tmp, `checks-${mem}.log`) });
        const log = readFileSync(r.log!, 'utf8');
        assert.deepEqual(r.markersSeen, [...DEFAULT_MARKERS], `log ${r.log}\n${(r.tail ?? []).join('\n')}`);
        assert.equal(r.exitCode, 0);
        assert.equal(parseMemoryLine(r.memoryLine ?? '')?.totalKiB, mem * 1024, r.memoryLine);

        const calls = log.split('\n').filter((l) => /^calling {2}\S/.test(l));
        const byAddress = calls.filter((l) => /^calling {2}0x[0-9a-f]+ @/.test(l));
        assert.ok(calls.length >= 20, `only ${calls.length} initcall_debug lines`);
        assert.deepEqual(byAddress, [], 'initcalls printed as addresses: kallsyms does not see the flash part of the kernel');
        assert.match(log, /^calling {2}physmap_init\+0x0\/0x[0-9a-f]+ @ 1$/m);

        // The claim covers the kernel's flash image exactly: with deflated data, up to the end of the gzip member.
        const claim = `\\[mem 0x${ctx.board.xipPhys.toString(16)}-0x${(ctx.board.xipPhys + statSync(xipImagePath(ctx)).size - 1).toString(16)}\\]`;
        assert.match(log, new RegExp(`^XIP: kernel executes from flash ${claim}`, 'm'));
        assert.match(log, /^physmap-flash 1e000000\.flash: .*can't request region for resource \[mem 0x1e000000-0x1e3fffff\]$/m);
        assert.match(log, /^physmap-flash 1e000000\.flash: probe with driver physmap-flash failed with error -16$/m);
        assert.doesNotMatch(log, /physmap platform flash device/, 'the CFI driver bound to the chip the kernel runs from');
      });
    }
  });
});

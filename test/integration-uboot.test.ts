import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Partition } from '../src/boards/board.ts';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type Toolchain } from '../src/context.ts';
import { xipImagePath, type ImageReport } from '../src/image/index.ts';
import { swapWords } from '../src/image/layout.ts';
import { readImageReport } from '../src/image/stage.ts';
import { DEFAULT_MARKERS, parseMemoryLine } from '../src/qemu/markers.ts';
import { boot } from '../src/qemu/runner.ts';
import { buildAndCheck, inOrder, markerRes, ubootCli, ubootSourceSuite } from './fixtures/uboot-suite.ts';

/**
 * Booting like a router, from the flash chip alone:
 *
 * - LOADER=uboot: U-Boot built from Debian's source runs from the CFI chip
 *   (-drive if=pflash, a copy of the image), loads the saved environment
 *   the image holds and, untouched, runs its bootcmd: bootm of the kernel
 *   partition, which must run the legacy uImage in place ("XIP Kernel
 *   Image": its load address is where the kernel lies in flash), at 8 and
 *   256 MiB. Another bootargs in that partition is what the kernel prints.
 *   (test/fixtures/uboot-suite.ts; malta-be runs it too.)
 * - LOADER=uboot-stock: Debian's stock binary, at whose prompt the lab
 *   script types the bootargs and bootm (it cannot start with a saved
 *   environment); it needs 256 MiB.
 * - The uImage is checked by u-boot-tools (dumpimage -l) too.
 * - The whole chip is the budget: a flash map that puts the kernel so high
 *   that its data image (which head.S copies to RAM at boot) crosses
 *   0x3e0000, where QEMU stops swapping, boots; and the same image with
 *   those last bytes swapped like the rest does not (negative control).
 */
const toolchain = (mergeEnv({}).toolchain ?? 'clang') as Toolchain;
const tmp = mkdtempSync(join(tmpdir(), 'xip-uboot-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const cli = ubootCli('malta', toolchain);

ubootSourceSuite(toolchain);

describe(`Debian's stock U-Boot binary, driven at its prompt (LOADER=uboot-stock, ${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  it('assembles the pinned stock binary, the uImage and an erased environment partition', async () => {
    const { ctx, rep, chip, env } = await buildAndCheck('malta', toolchain, 'uboot-stock', tmp);
    assert.equal(rep.uboot!.from, 'stock');
    assert.ok(chip.subarray(env.offset, env.offset + env.size).every((b) => b === 0xff), 'erased: that binary cannot start with a saved environment');
    const r = await cli(['--loader', 'uboot-stock', 'boot', '--mem', '256'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const log = readFileSync(ctx.bootLog, 'utf8');
    inOrder(log, ctx.bootLog, [
      /^U-Boot 20\d\d\.\d\d/m,
      /bad CRC, using default environment/,
      /setenv bootargs '.* mem=256M'/,
      /bootm 0x9e050000/,
      /Load Address: 9e050040/,
      /XIP Kernel Image/,
      ...markerRes,
    ]);
    assert.match(log, /^XIP: kernel executes from flash \[mem 0x1e050040-/m);
    const memLine = /^Memory: .*$/m.exec(log)?.[0] ?? '';
    assert.equal(parseMemoryLine(memLine)?.totalKiB, 256 * 1024, memLine);
  });

  it('refuses a RAM size the stock binary cannot start with, in one line', async () => {
    const r = await cli(['--loader', 'uboot-stock', 'boot', '--mem', '64'], 60 * 1000);
    assert.equal(r.code, 2, r.out);
    assert.match(r.out, /xip: error: the stock U-Boot on malta needs 256 MiB of RAM .*--mem 256.*LOADER=uboot/);
  });
});

describe(`the whole chip is the budget (${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  it('a kernel placed so that its data image crosses 0x3e0000 boots from the flash; swapped past 0x3e0000 it does not', async () => {
    const shim = makeContext({ toolchain });
    for (const step of ['build', 'image']) {
      const r = await cli([step]);
      assert.equal(r.code, 0, `${step}:\n${r.out}`);
    }
    const size = readFileSync(xipImagePath(shim)).length;
    const b = shim.board;
    const offset = Math.floor((b.flashSize - size) / 0x1000) * 0x1000;
    const map: Partition[] = [
      { name: 'loader', offset: 0, size: 0x1000, readOnly: true, content: 'loader' },
      { name: 'spare', offset: 0x1000, size: offset - 0x1000, readOnly: true, content: 'free' },
      { name: 'kernel', offset, size: b.flashSize - offset, readOnly: true, content: 'kernel' },
    ];
    const mapFile = join(tmp, 'high-kernel.json');
    writeFileSync(mapFile, JSON.stringify(map));
    for (const step of ['build', 'image', 'verify']) {
      const r = await cli(['--flash-map', mapFile, step]);
      assert.equal(r.code, 0, `${step}:\n${r.out}`);
    }
    const ctx = makeContext({ toolchain, flashMap: mapFile });
    assert.equal(ctx.board.xipPhys, b.flashPhys + offset);
    const rep = readImageReport(ctx) as ImageReport;
    const data = rep.layout.regions.find((r) => r.name.startsWith('data image'))!;
    const swapEnd = b.flashPhys + b.loaderSwapBytes;
    assert.ok(data.start < swapEnd && data.end > swapEnd + 0x1000, `data image ${data.start.toString(16)}..${data.end.toString(16)} does not cross ${swapEnd.toString(16)}`);

    const good = await boot({ board: ctx.board, variant: 'xip', bios: ctx.imagePath, memMiB: 64, log: join(tmp, 'high.log') });
    assert.deepEqual(good.markersSeen, [...DEFAULT_MARKERS], `log ${good.log}\n${(good.tail ?? []).join('\n')}`);
    assert.equal(good.exitCode, 0);
    assert.match(readFileSync(good.log!, 'utf8'), new RegExp(`XIP: kernel executes from flash \\[mem 0x${ctx.board.xipPhys.toString(16)}-`));

    // Negative control: had the toolkit swapped the whole file, the kernel would read scrambled data past 0x3e0000.
    const bad = join(tmp, 'swapped-all.bin');
    copyFileSync(ctx.imagePath, bad);
    const bytes = new Uint8Array(readFileSync(bad));
    const tail = bytes.subarray(b.loaderSwapBytes);
    swapWords(tail, tail.length);
    writeFileSync(bad, bytes);
    const r = await boot({ board: ctx.board, variant: 'xip', bios: bad, memMiB: 64, log: join(tmp, 'swapped-all.log'), timeoutMs: 30_000 });
    assert.equal(r.ok, false, `a kernel whose data past 0x3e0000 was scrambled booted: the test does not reach that data (log ${r.log})`);
  });
});

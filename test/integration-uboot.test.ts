import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Partition } from '../src/boards/board.ts';
import { kernelCmdline, kernelPartition } from '../src/boards/flashmap.ts';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type Toolchain } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { defaultUbootEnv, xipImagePath, type ImageReport } from '../src/image/index.ts';
import { swapWords } from '../src/image/layout.ts';
import { readImageReport } from '../src/image/stage.ts';
import { parseUbootEnv, parseUImageHeader, UIMAGE_HEADER_BYTES, ubootEnv, uImageHeader } from '../src/image/uboot-formats.ts';
import { verify } from '../src/verify/index.ts';
import { capture } from '../src/proc.ts';
import { xipLogged } from './fixtures/cli.ts';
import { DEFAULT_MARKERS, parseMemoryLine } from '../src/qemu/markers.ts';
import { boot } from '../src/qemu/runner.ts';

/**
 * Booting like a router, from the flash chip alone:
 *
 * - LOADER=uboot: U-Boot built from Debian's source runs from the CFI chip
 *   (-drive if=pflash, a copy of the image), loads the saved environment
 *   the image holds and, untouched, runs its bootcmd: bootm of the kernel
 *   partition, which must run the legacy uImage in place ("XIP Kernel
 *   Image": its load address is where the kernel lies in flash), at 8 and
 *   256 MiB. Another bootargs in that partition is what the kernel prints.
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

const cli = (args: string[], timeoutMs = 55 * 60 * 1000) => xipLogged(['--toolchain', toolchain, ...args], timeoutMs, 80);

/** The image as the chip holds it (QEMU's swap of the first 0x3e0000 bytes undone). */
function chipBytes(file: string, swapBytes: number): Uint8Array {
  const b = new Uint8Array(readFileSync(file));
  swapWords(b, swapBytes);
  return b;
}

/** The kernel's uImage and U-Boot's environment in a U-Boot image: checked as u-boot-tools and U-Boot read them. */
async function buildAndCheck(loader: 'uboot' | 'uboot-stock') {
  const ctx = makeContext({ toolchain, loader });
  for (const step of ['build', 'image', 'verify']) {
    const r = await cli(['--loader', loader, step]);
    assert.equal(r.code, 0, `${step}:\n${r.out}`);
  }
  const rep = readImageReport(ctx) as ImageReport;
  assert.equal(rep.loader, loader);
  const kp = kernelPartition(ctx.board);
  assert.equal(ctx.board.xipPhys, ctx.board.flashPhys + kp.offset + UIMAGE_HEADER_BYTES);
  const elf = readElf(ctx.vmlinux);
  assert.equal(elf.findSymbol('_text')!.value >>> 0, (0x80000000 + ctx.board.xipPhys) >>> 0, 'linked behind the header');
  const chip = chipBytes(ctx.imagePath, ctx.board.loaderSwapBytes);
  assert.equal(chip.length, ctx.board.flashSize);
  // u-boot.bin at 0, unchanged once unswapped.
  const ubootBin = readFileSync(rep.uboot!.bin);
  assert.deepEqual(Buffer.from(chip.subarray(0, ubootBin.length)), ubootBin);
  // The uImage as u-boot-tools reads it.
  const xip = readFileSync(xipImagePath(ctx));
  const uimage = join(tmp, `kernel-${loader}.uimage`);
  writeFileSync(uimage, chip.subarray(kp.offset, kp.offset + UIMAGE_HEADER_BYTES + xip.length));
  const listed = capture('dumpimage', ['-l', uimage]);
  assert.match(listed, /Image Type:\s+MIPS Linux Kernel Image \(uncompressed\)/);
  assert.match(listed, new RegExp(`Data Size:\\s+${xip.length} Bytes`));
  assert.match(listed, new RegExp(`Load Address:\\s+${(0x80000000 + ctx.board.xipPhys).toString(16)}`));
  assert.match(listed, new RegExp(`Entry Point:\\s+${(elf.findSymbol('kernel_entry')!.value >>> 0).toString(16)}`));
  assert.deepEqual(Buffer.from(chip.subarray(kp.offset + UIMAGE_HEADER_BYTES, kp.offset + UIMAGE_HEADER_BYTES + xip.length)), xip);
  // The environment partition lies beyond QEMU's swapped range, stored as is.
  const env = ctx.board.partitions.find((p) => p.content === 'uboot-env')!;
  assert.ok(env.offset >= ctx.board.loaderSwapBytes);
  return { ctx, rep, chip, env };
}

/** Index of each pattern in the log, in this order; fails naming the first missing or misplaced one. */
function inOrder(log: string, file: string, steps: RegExp[]): number[] {
  let last = -1;
  return steps.map((re) => {
    const m = re.exec(log);
    assert.ok(m, `${re} not in ${file}`);
    assert.ok(m.index > last, `${re} out of order in ${file}`);
    last = m.index;
    return m.index;
  });
}

const markerRes = DEFAULT_MARKERS.map((m) => new RegExp(m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

describe(`U-Boot from Debian's source, booting by itself (LOADER=uboot, ${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  let built: Awaited<ReturnType<typeof buildAndCheck>>;

  it('builds the kernel behind the uImage header; the image holds U-Boot, the uImage and a valid saved environment', async () => {
    built = await buildAndCheck('uboot');
    const { ctx, rep, chip, env } = built;
    assert.equal(rep.uboot!.from, 'source');
    const vars = parseUbootEnv(chip.subarray(env.offset, env.offset + env.size), ctx.board.endian);
    assert.equal(vars.bootcmd, 'bootm 0x9e050000');
    assert.equal(vars.bootargs, kernelCmdline(ctx.board));
    // xip verify fails, rule 5 naming why, on a broken uImage header, a load address that is not where the
    // data lies (bootm would copy the kernel), a bad environment CRC and a bootcmd that boots something else.
    const kp = kernelPartition(ctx.board);
    const broken = (what: string, edit: (chip: Uint8Array) => void, re: RegExp) => {
      const bad = chipBytes(ctx.imagePath, ctx.board.loaderSwapBytes);
      edit(bad);
      swapWords(bad, ctx.board.loaderSwapBytes);
      const f = join(tmp, `broken-${what}.bin`);
      writeFileSync(f, bad);
      const v = verify({ board: ctx.board, vmlinux: ctx.vmlinux, dotConfig: ctx.dotConfig, image: f });
      const r5 = v.rules.find((x) => x.id === 5)!;
      assert.equal(r5.ok, false, `${what}: rule 5 passed`);
      assert.match(r5.details.join('\n'), re, what);
    };
    broken('header', (c) => (c[kp.offset + 40]! ^= 1), /no valid uImage header at \+0x50000: header CRC does not match/);
    broken('load', (c) => {
      const h = c.subarray(kp.offset, kp.offset + UIMAGE_HEADER_BYTES);
      const data = c.subarray(kp.offset + UIMAGE_HEADER_BYTES);
      const hv = parseUImageHeader(h);
      c.set(uImageHeader(data.subarray(0, hv.size), { load: 0x80100000, entry: hv.entry, name: hv.name }), kp.offset);
    }, /uImage load address 0x80100000 is not where its data lies \(0x9e050040\)/);
    broken('env-crc', (c) => (c[env.offset + 8]! ^= 1), /U-Boot environment at \+0x3e0000: bad CRC/);
    broken('bootcmd', (c) => c.set(ubootEnv({ ...vars, bootcmd: 'bootm 0x9e060000' }, env.size, ctx.board.endian), env.offset), /bootcmd is 'bootm 0x9e060000', not 'bootm 0x9e050000'/);
  });

  for (const mem of [8, 256]) {
    it(`boots from the CFI chip at -m ${mem}M with no help: saved environment, autoboot, bootm runs the XIP Kernel Image in place`, async () => {
      const { ctx } = built;
      const r = await cli(['--loader', 'uboot', 'boot', '--mem', String(mem)], 5 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
      const log = readFileSync(ctx.bootLog, 'utf8');
      const [, , , , , , , , linux] = inOrder(log, ctx.bootLog, [
        /^U-Boot 20\d\d\.\d\d-xip/m,
        new RegExp(`^DRAM:\\s+${mem} MiB$`, 'm'),
        /^Loading Environment from Flash\.\.\. OK$/m,
        /Hit any key to stop autoboot/,
        /## Booting kernel from Legacy Image at 9e050000/,
        /Load Address: 9e050040/,
        /Verifying Checksum \.\.\. OK/,
        /XIP Kernel Image/,
        ...markerRes,
      ]);
      assert.doesNotMatch(log, /bad CRC|Cannot allocate|Loading Kernel Image|Uncompressing/);
      assert.ok(/^XIP: kernel executes from flash \[mem 0x1e050040-/m.exec(log)!.index > linux!);
      assert.match(log, new RegExp(`^Kernel command line: ${kernelCmdline(ctx.board).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
      // U-Boot passes memsize in bytes: the kernel sees all of it without mem=.
      const memLine = /^Memory: .*$/m.exec(log)?.[0] ?? '';
      assert.equal(parseMemoryLine(memLine)?.totalKiB, mem * 1024, memLine);
    });
  }

  it('changing bootargs in the environment partition changes the command line the kernel prints', async () => {
    const { ctx, env } = built;
    const vars = { ...defaultUbootEnv(ctx.board), bootargs: `${ctx.board.cmdline} xiptest.env=changed-${process.pid}` };
    const img = new Uint8Array(readFileSync(ctx.imagePath));
    img.set(ubootEnv(vars, env.size, ctx.board.endian), env.offset);
    const flash = join(tmp, 'env-changed.bin');
    writeFileSync(flash, img);
    const r = await boot({ board: ctx.board, variant: 'xip', pflash: flash, memMiB: 64, log: join(tmp, 'env-changed.log'), markers: ['Loading Environment from Flash... OK', 'XIP Kernel Image', ...DEFAULT_MARKERS] });
    assert.ok(r.ok, `${r.log}\n${(r.tail ?? []).join('\n')}`);
    assert.match(readFileSync(r.log!, 'utf8'), new RegExp(`^Kernel command line: console=ttyS0,115200 xiptest\\.env=changed-${process.pid}$`, 'm'));
  });
});

describe(`Debian's stock U-Boot binary, driven at its prompt (LOADER=uboot-stock, ${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  it('assembles the pinned stock binary, the uImage and an erased environment partition', async () => {
    const { ctx, rep, chip, env } = await buildAndCheck('uboot-stock');
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

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, REPO_ROOT, type BuildContext } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { run } from '../src/proc.ts';
import { DEFAULT_MARKERS, parseMemoryLine } from '../src/qemu/markers.ts';
import { samplePcs } from '../src/qemu/qmp.ts';
import { boot, qemuArgs, type BootOptions } from '../src/qemu/runner.ts';

/**
 * The XIP kernel boots from flash, and only from flash: QEMU malta gets the
 * flash image (-bios) and nothing else, at 8, 16, 32 and 256 MiB. Each boot
 * must show every marker in order, power off cleanly (QEMU exit 0) and have
 * the kernel report exactly the RAM QEMU was given (the boot shim finds it
 * out; nothing is hard-coded).
 *
 * Then the proof that it executes in place: the guest's program counter,
 * sampled through QMP while it boots, is in the flash copy of the kernel
 * text and never in the RAM part of the kernel image except the buffers for
 * generated code. The same sampler on the stock kernel (-kernel) sees kernel
 * code in RAM and none in flash, so the check tells the two apart.
 */
const env = mergeEnv({});
const toolchain = env.toolchain ?? 'clang';
const xip = makeContext({ variant: 'xip', toolchain });
const stock = makeContext({ variant: 'stock', toolchain });
const XIP_CLI = join(REPO_ROOT, 'bin', 'xip.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'xip-boot-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[], timeoutMs: number) {
  const r = await run(process.execPath, [XIP_CLI, ...args], {
    allowFailure: true,
    timeoutMs,
    tailLines: 60,
    onLine: (l) => process.stderr.write(`    ${l}\n`),
  });
  return { code: r.code, out: r.tail.join('\n') };
}

function sym(ctx: BuildContext, name: string): number {
  const s = readElf(ctx.vmlinux).findSymbol(name);
  assert.ok(s && s.shndx !== 0, `${name} in ${ctx.vmlinux}`);
  return s.value >>> 0;
}

/** Boot with a QMP socket and sample the PC for the whole boot. */
async function sampledBoot(o: Omit<BootOptions, 'extraArgs' | 'log'>, name: string) {
  const sock = join(tmp, `${name}.qmp`);
  const booting = boot({ ...o, log: join(tmp, `${name}.log`), extraArgs: ['-qmp', `unix:${sock},server=on,wait=off`] });
  const pcs = await samplePcs(sock);
  return { result: await booting, pcs };
}

describe(`XIP kernel from flash (${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  it('builds the XIP kernel and its flash image through the CLI, and verify passes', async () => {
    let r = await cli(['--variant', 'xip', '--toolchain', toolchain, 'build'], 55 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli(['--variant', 'xip', '--toolchain', toolchain, 'image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    assert.ok(existsSync(xip.imagePath));
    r = await cli(['--variant', 'xip', '--toolchain', toolchain, 'verify'], 60 * 1000);
    assert.equal(r.code, 0, `xip verify:\n${r.out}`);
    assert.match(readFileSync(xip.dotConfig, 'utf8'), /^CONFIG_XIP_KERNEL=y$/m);
  });

  for (const mem of [8, 16, 32, 256]) {
    it(`boots from the flash image alone at -m ${mem}M: markers, clean power-off, ${mem} MiB reported`, async () => {
      const o: BootOptions = { board: xip.board, variant: 'xip', bios: xip.imagePath, memMiB: mem, log: join(tmp, `boot-${mem}.log`) };
      const args = qemuArgs(o);
      assert.ok(args.includes('-bios'));
      for (const forbidden of ['-kernel', '-initrd', '-append']) assert.ok(!args.includes(forbidden), forbidden);
      const r = await boot(o);
      const tail = (r.tail ?? []).join('\n');
      assert.deepEqual(r.markersSeen, [...DEFAULT_MARKERS], `log ${r.log}\n${tail}`);
      assert.equal(r.failure, undefined, JSON.stringify(r.failure));
      assert.equal(r.exitCode, 0);
      const m = parseMemoryLine(r.memoryLine ?? '');
      assert.ok(m, `Memory: line in ${r.log}`);
      assert.equal(m.totalKiB, mem * 1024, r.memoryLine);
    });
  }

  it('executes its text in place: kernel PCs are in flash (text + init), none in the RAM image outside the code buffers', async () => {
    const flashText = [sym(xip, '_text'), sym(xip, '_exiprom')] as const; // text, rodata, init text
    const ramImage = [sym(xip, '_sdata'), sym(xip, '_end')] as const;
    const buffers = [sym(xip, '__xip_ramtext_start'), sym(xip, '__xip_ramtext_end')] as const;
    const { result, pcs } = await sampledBoot({ board: xip.board, variant: 'xip', bios: xip.imagePath, memMiB: 32 }, 'xip-pc');
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    const inFlash = pcs.filter((p) => p >= flashText[0] && p < flashText[1]).length;
    const inRamImage = pcs.filter((p) => p >= ramImage[0] && p < ramImage[1] && !(p >= buffers[0] && p < buffers[1]));
    assert.ok(pcs.length >= 50, `only ${pcs.length} PC samples`);
    assert.ok(inFlash >= pcs.length / 10, `only ${inFlash} of ${pcs.length} samples in the kernel's flash range`);
    assert.deepEqual(inRamImage.map((p) => p.toString(16)), [], 'kernel code executed from the RAM image');
  });

  it('the same sampler sees the stock kernel run from RAM (so the check above can fail)', async (t) => {
    if (!existsSync(stock.vmlinux)) {
      const r = await cli(['--variant', 'stock', '--toolchain', toolchain, 'build'], 55 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
    }
    const image = [sym(stock, '_text'), sym(stock, '_end')] as const; // text and init text, all in RAM
    const { result, pcs } = await sampledBoot({ board: stock.board, variant: 'stock', kernel: stock.vmlinux, memMiB: 32 }, 'stock-pc');
    assert.equal(result.ok, true, JSON.stringify(result.failure));
    const inRamText = pcs.filter((p) => p >= image[0] && p < image[1]).length;
    const inFlashWindow = pcs.filter((p) => p >= 0x9fc01000 && p < 0xa0000000).length;
    t.diagnostic(`stock: ${inRamText} of ${pcs.length} samples in the RAM kernel image, ${inFlashWindow} in the flash window`);
    assert.ok(inRamText >= pcs.length / 10, `only ${inRamText} of ${pcs.length} samples in the RAM kernel image`);
    assert.equal(inFlashWindow, 0);
  });
});

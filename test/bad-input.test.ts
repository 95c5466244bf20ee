import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext, REPO_ROOT } from '../src/context.ts';
import { readElf } from '../src/elf/elf32.ts';
import { EXIT, XipError } from '../src/errors.ts';
import { xipImagePath } from '../src/image/index.ts';
import { imageEnd, placeSegments } from '../src/image/layout.ts';
import { checkDefconfigText, configure } from '../src/kernel/kconfig.ts';
import { stampPath } from '../src/pipeline.ts';
import { run } from '../src/proc.ts';
import { buildElf, xipKernelSpec } from './fixtures/elf/synth.ts';

/**
 * Bad input the README's table lists that no other suite covers: a broken
 * defconfig (missing file, a line kconfig would misread, a bad value) and an
 * image too big for the flash, through the `xip` command. Each ends in one
 * error line, a non-zero exit, and no half-written output.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-badinput-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const XIP_CLI = join(REPO_ROOT, 'bin', 'xip.mjs');

async function cli(args: string[]) {
  const r = await run(process.execPath, [XIP_CLI, ...args], { allowFailure: true, timeoutMs: 5 * 60 * 1000, tailLines: 100 });
  const out = r.tail.join('\n');
  return { code: r.code, out, errors: r.tail.filter((l) => l.startsWith('xip: error:') || l.startsWith('xip: internal error:')) };
}

describe('broken defconfig', () => {
  it('a missing defconfig file: exit 2, one line naming kernel/configs/, nothing built', async () => {
    const b = join(tmp, 'missing');
    const r = await cli(['--build-dir', b, '--config', 'nosuch_defconfig', 'build']);
    assert.equal(r.code, EXIT.badInput, r.out);
    assert.equal(r.errors.length, 1, r.out);
    assert.match(r.errors[0]!, /defconfig 'nosuch_defconfig' not found in kernel\/configs\/: pick one/);
    assert.ok(!existsSync(join(b, 'malta')), 'no build directory for it');
  });

  const cases: [string, string, RegExp][] = [
    ['a line that is not Kconfig', 'CONFIG_MIPS_MALTA=y\nMIPS_MALTA y\n', /:2: 'MIPS_MALTA y' is not a defconfig line/],
    ['a bad value', 'CONFIG_MIPS_MALTA=y\nCONFIG_SLUB_TINY=maybe\n', /:2: CONFIG_SLUB_TINY=maybe is not a Kconfig value/],
    ['an unquoted string', 'CONFIG_CMDLINE=console=ttyS0\n', /:1: CONFIG_CMDLINE=console=ttyS0 is not a Kconfig value .*quoted string/],
    ['a mistyped "is not set"', '# CONFIG_SLUB_TINY is not sett\n', /:1: '# CONFIG_SLUB_TINY is not sett' is not a defconfig line/],
  ];
  for (const [what, text, re] of cases) {
    it(`${what}: one line with file and line number; .config is not written`, async () => {
      const ctx = makeContext({ buildDir: join(tmp, `cfg-${cases.findIndex((c) => c[0] === what)}`) });
      const def = join(tmp, `${what.replace(/\W+/g, '-')}_defconfig`);
      writeFileSync(def, text);
      mkdirSync(ctx.kbuildDir, { recursive: true });
      // No kernel tree is needed: the defconfig is refused before make runs.
      await assert.rejects(configure(ctx, join(tmp, 'no-tree'), def, join(tmp, 'initramfs.list')), (e: unknown) => {
        assert.ok(e instanceof XipError);
        assert.equal(e.exitCode, EXIT.badInput);
        assert.ok(!e.message.includes('\n'));
        assert.match(e.message, re);
        assert.ok(e.message.startsWith(def));
        return true;
      });
      assert.ok(!existsSync(ctx.dotConfig));
    });
  }

  it('the committed defconfigs pass the check', () => {
    for (const f of ['xip_qemu_malta_defconfig']) {
      const p = join(REPO_ROOT, 'kernel', 'configs', f);
      assert.doesNotThrow(() => checkDefconfigText(readFileSync(p, 'utf8'), p));
    }
  });
});

describe('image too big for the flash, through the CLI', () => {
  it('exit non-zero with one line saying by how much; no image, no stamp, nothing published', async () => {
    const ctx = makeContext({ buildDir: join(tmp, 'big') });
    // A synthetic XIP kernel whose data load image sits at the very end of the chip (0x400000).
    const spec = xipKernelSpec('little');
    // The kernel partition of malta's shim map ends at 0x3e0000, where the settings partition starts.
    const dataLoc = 0x9e000000 + 0x3e0000 - 0x400;
    spec.segments[1]!.paddr = dataLoc;
    for (const s of spec.symbols ?? []) {
      if (s.name === '__data_loc') s.value = dataLoc;
      if (s.name === '_edata_loc' || s.name === '_exiprom') s.value = dataLoc + 0x400 + 0x600;
    }
    mkdirSync(ctx.kbuildDir, { recursive: true });
    writeFileSync(ctx.vmlinux, buildElf(spec).bytes);
    // The kernel's own flash image (make xipImage): vmlinux's load segments as placed in flash.
    const elf = readElf(ctx.vmlinux);
    const placed = placeSegments(elf, ctx.board);
    const base = ctx.board.xipPhys - ctx.board.flashPhys;
    const xipImage = new Uint8Array(imageEnd(placed) - base);
    for (const p of placed) xipImage.set(elf.segmentData(p.segment), p.offset - base);
    mkdirSync(dirname(xipImagePath(ctx)), { recursive: true });
    writeFileSync(xipImagePath(ctx), xipImage);
    const r = await cli(['--build-dir', ctx.buildDir, 'image']);
    assert.notEqual(r.code, 0, r.out);
    assert.equal(r.errors.length, 1, r.out);
    assert.match(r.errors[0]!, /partition 'kernel' \(0x00001000\.\.0x003e0000, 3964\.0 KiB\) overflows by 1536 bytes/);
    assert.ok(!existsSync(ctx.imagePath), 'no image');
    assert.ok(!existsSync(stampPath(ctx, 'image')), 'no stamp');
    assert.ok(!existsSync(ctx.publishedImage), 'nothing published');
  });
});

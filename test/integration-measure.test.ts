import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext } from '../src/context.ts';
import { vmlinuzPath } from '../src/kernel/kbuild.ts';
import { measureBootCost } from '../src/measure/bootcost.ts';
import type { Results } from '../src/measure/index.ts';
import { runXip } from './fixtures/cli.ts';

/**
 * One quick measurement on the real builds of the default config (the XIP
 * kernel and image that make test builds first, and the stock kernel that
 * test/integration-stock.test.ts builds; built here when missing, a no-op
 * otherwise): both variants at one RAM size through `xip measure --json`,
 * and the deterministic instruction count to start_kernel of the XIP image.
 * The full bench (make bench) is not part of the suite.
 */
const env = mergeEnv({});
const base = { board: env.board, config: env.config, toolchain: env.toolchain };
const xip = makeContext({ ...base, variant: 'xip' });
const stock = makeContext({ ...base, variant: 'stock' });
const cli = (args: string[], timeoutMs: number) =>
  runXip(args, {
    timeoutMs,
    // Progress to the test log; stdout is the JSON.
    onLine: (l, stream) => {
      if (stream === 'stderr') process.stderr.write(`    ${l}\n`);
    },
  });

describe('xip measure on the real builds (one size, both variants)', { timeout: 60 * 60 * 1000 }, () => {
  it('has both builds (building what is missing)', async () => {
    for (const [v, extra] of [
      ['xip', ['image']],
      ['stock', []],
    ] as const) {
      const b = await cli(['--variant', v, 'build'], 55 * 60 * 1000);
      assert.equal(b.code, 0, b.out);
      for (const cmd of extra) {
        const r = await cli(['--variant', v, cmd], 5 * 60 * 1000);
        assert.equal(r.code, 0, r.out);
      }
    }
    assert.ok(existsSync(xip.imagePath), xip.imagePath);
    assert.ok(existsSync(vmlinuzPath(stock)), vmlinuzPath(stock));
  });

  it('16 MiB: every Memory: field of both, and XIP leaves at least text + rodata + init text more available', async () => {
    const r = await cli(['measure', '--sizes', '16', '--no-min-ram', '--no-boot-cost', '--json'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const res = JSON.parse(r.stdout) as Results;
    assert.equal(res.ram?.sizes.length, 1);
    const s = res.ram!.sizes[0]!;
    assert.equal(s.memMiB, 16);
    assert.equal(s.xip.totalKiB, 16384);
    assert.equal(s.stock.totalKiB, 16384);
    for (const k of ['kernelCodeKiB', 'rwdataKiB', 'rodataKiB', 'initKiB', 'bssKiB', 'reservedKiB'] as const) {
      assert.ok(s.xip[k] > 0 && s.stock[k] > 0, k);
    }
    // The XIP kernel's text is in flash: its reserved RAM is smaller by about that much.
    const ks = res.kernelSizes.xip;
    assert.equal(res.ram!.requiredGainKiB, Math.ceil((ks.text + ks.rodata + ks.initText) / 1024));
    assert.ok(
      s.diff.availableKiB >= res.ram!.requiredGainKiB,
      `XIP - stock available = ${s.diff.availableKiB} KiB, want >= ${res.ram!.requiredGainKiB} KiB`,
    );
    assert.equal(s.diff.availableKiB, s.xip.availableKiB - s.stock.availableKiB);
    assert.ok(res.flash && res.flash.imageBytes <= res.flash.budgetBytes);
    assert.equal(res.machine.kernelVersion.split('.')[0], '6');
  });

  it('guest instructions from reset to start_kernel: the same in two runs, fewer than the compressed stock kernel', async () => {
    const log = join(xip.variantDir, '..', 'measure', 'test-icount.log');
    const one = (what: 'xip' | 'vmlinuz') =>
      measureBootCost({
        board: xip.board,
        variant: what === 'xip' ? 'xip' : 'stock',
        bios: what === 'xip' ? xip.imagePath : undefined,
        kernel: what === 'vmlinuz' ? vmlinuzPath(stock) : undefined,
        symbols: what === 'xip' ? xip.vmlinux : stock.vmlinux,
        memMiB: 64,
        log,
        startKernelOnly: true,
        timeoutMs: 60_000,
      });
    const a = await one('xip');
    const b = await one('xip');
    const z = await one('vmlinuz');
    assert.ok(a.toStartKernel > 1000, `${a.toStartKernel}`);
    assert.equal(a.toStartKernel, b.toStartKernel);
    assert.ok(a.toStartKernel < z.toStartKernel, `xip ${a.toStartKernel} vs vmlinuz ${z.toStartKernel}`);
  });
});

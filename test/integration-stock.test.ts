import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext } from '../src/context.ts';
import { DEFAULT_MARKERS } from '../src/qemu/markers.ts';
import { boot, type BootResult } from '../src/qemu/runner.ts';
import { runXip } from './fixtures/cli.ts';

/**
 * End to end: build the stock baseline through the `xip` command (the
 * Debian kernel source, the committed defconfig, the real init), boot it in
 * QEMU malta with -kernel (allowed for stock only) and require every marker
 * in order and a clean power-off (QEMU exit 0). TOOLCHAIN from the
 * environment is honoured, as `make test TOOLCHAIN=gcc` expects.
 */
const env = mergeEnv({ variant: 'stock' });
const ctx = makeContext({ variant: 'stock', toolchain: env.toolchain, board: env.board, config: env.config });
const xip = (args: string[], timeoutMs: number) =>
  runXip(args, {
    timeoutMs,
    // Progress goes to the test log, so a slow CI build is visibly alive.
    onLine: (l) => process.stderr.write(`    ${l}\n`),
  });

describe('stock baseline (build + QEMU boot)', { timeout: 60 * 60 * 1000 }, () => {
  it('builds the stock kernel through the CLI', async () => {
    const r = await xip(['--variant', 'stock', 'build'], 55 * 60 * 1000);
    assert.equal(r.code, 0, `xip build failed:\n${r.out.split('\n').slice(-60).join('\n')}`);
    assert.ok(existsSync(ctx.vmlinux), ctx.vmlinux);
    assert.ok(existsSync(join(ctx.kbuildDir, 'vmlinuz')), 'stock vmlinuz for the size baseline');
    const cfg = readFileSync(ctx.dotConfig, 'utf8');
    assert.doesNotMatch(cfg, /^CONFIG_XIP_KERNEL=y$/m);
    assert.match(cfg, /^CONFIG_POWER_RESET_PIIX4_POWEROFF=y$/m);
    assert.match(cfg, /^CONFIG_INITRAMFS_SOURCE=".*initramfs\.list"$/m);
    const info = JSON.parse(readFileSync(join(ctx.variantDir, 'build-info.json'), 'utf8')) as { kernelVersion: string };
    assert.match(info.kernelVersion, /^6\.12\.\d+/);
  });

  it('a second build with nothing changed skips every stage', async () => {
    const r = await xip(['--variant', 'stock', 'build'], 10 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    for (const stage of ['source', `userspace stock-${ctx.toolchain}`, `kernel stock-${ctx.toolchain}`]) {
      assert.match(r.out, new RegExp(`^\\[${stage}\\] up to date`, 'm'), stage);
    }
  });

  it('boots with -kernel: every marker in order, then QEMU exits 0 through the PIIX4 power-off', async () => {
    const r = await boot({ board: ctx.board, kernel: ctx.vmlinux, variant: 'stock', memMiB: 256, log: ctx.bootLog });
    assert.deepEqual(r.markersSeen, [...DEFAULT_MARKERS], `boot log: ${ctx.bootLog}\n${(r.tail ?? []).join('\n')}`);
    assert.equal(r.failure, undefined, JSON.stringify(r.failure));
    assert.equal(r.exitCode, 0);
    assert.equal(r.ok, true);
    const log = readFileSync(ctx.bootLog, 'utf8');
    assert.doesNotMatch(log, /Unable to poweroff system/);
  });

  it('xip boot --variant stock passes through the CLI as well', async () => {
    const r = await xip(['--variant', 'stock', 'boot', '--mem', '64', '--json'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    const result = JSON.parse(r.stdout) as BootResult;
    assert.equal(result.ok, true, r.out);
  });
});

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { mergeEnv } from '../src/cli.ts';
import { makeContext, type BuildContext } from '../src/context.ts';
import { xipLogged } from './fixtures/cli.ts';
import { boot } from '../src/qemu/runner.ts';
import {
  comparableStressLines,
  parseStressLog,
  RAM_DEPENDENT_PART,
  STRESS_MARKERS,
  STRESS_PARTS,
} from '../src/userspace/stress.ts';

/**
 * The stress userspace (userspace/stress/, profile 'stress') as PID 1 on
 * the XIP kernel, booted from its flash image alone (-bios), and on the
 * stock kernel (-kernel), each at 8 and 256 MiB. Every part must pass and
 * print the same checksums on all four boots (the memory-pressure part's
 * counts depend on RAM; only its checksum is compared). The kernels are
 * built through the CLI; a stress build starts from the default profile's
 * build of the same variant when there is one (only a relink).
 */
const env = mergeEnv({});
const toolchain = (env.toolchain ?? 'clang') as 'clang' | 'gcc';
const ctxOf = (variant: 'xip' | 'stock') => makeContext({ variant, toolchain, userspace: 'stress' });

const cli = (args: string[], timeoutMs: number) => xipLogged(['--toolchain', toolchain, ...args], timeoutMs);

const runs = new Map<string, string[]>();

async function stressBoot(ctx: BuildContext, memMiB: number): Promise<void> {
  const log = join(ctx.variantDir, `boot-stress-${memMiB}.log`);
  const r = await boot({
    board: ctx.board,
    variant: ctx.variant,
    bios: ctx.variant === 'xip' ? ctx.imagePath : undefined,
    kernel: ctx.variant === 'stock' ? ctx.vmlinux : undefined,
    memMiB,
    log,
    markers: [...STRESS_MARKERS],
    timeoutMs: 240_000,
  });
  const text = readFileSync(log, 'utf8');
  const results = parseStressLog(text);
  const lines = [...results.values()].map((x) => x.line).join('\n');
  process.stderr.write(`    ${ctx.variant} ${memMiB} MiB:\n${lines.replace(/^/gm, '      ')}\n`);
  assert.equal(r.failure, undefined, `${JSON.stringify(r.failure)}\nlog ${log}\n${lines}`);
  assert.deepEqual(r.markersSeen, [...STRESS_MARKERS]);
  assert.equal(r.exitCode, 0);
  for (const p of STRESS_PARTS) {
    const x = results.get(p);
    assert.ok(x, `STRESS-${p} line missing (log ${log})`);
    assert.equal(x.ok, true, x.line);
  }
  assert.equal(results.get('TOTAL')?.counts.failed, '0');
  assert.match(text, /^STRESS-PASS/m);
  assert.doesNotMatch(text, /STRESS-FAIL/);
  // The child was refused or killed; PID 1 and the kernel went on.
  assert.match(results.get(RAM_DEPENDENT_PART)!.counts.end ?? '', /^(killed|refused)$/);
  runs.set(`${ctx.variant} ${memMiB} MiB`, comparableStressLines(results));
}

describe(`stress userspace on XIP and stock (${toolchain})`, { timeout: 60 * 60 * 1000 }, () => {
  const xip = ctxOf('xip');
  const stock = ctxOf('stock');

  it('builds the XIP kernel with the stress initramfs and its flash image', async () => {
    let r = await cli(['--variant', 'xip', '--userspace', 'stress', 'build'], 55 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    r = await cli(['--variant', 'xip', '--userspace', 'stress', 'image'], 5 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    assert.ok(existsSync(xip.imagePath));
    // Publishing is per `xip image`: put the default profile's image back in build/out.
    const def = makeContext({ variant: 'xip', toolchain });
    if (existsSync(def.imagePath)) {
      r = await cli(['--variant', 'xip', 'image'], 5 * 60 * 1000);
      assert.equal(r.code, 0, r.out);
    }
  });

  it('builds the stock kernel with the stress initramfs', async () => {
    const r = await cli(['--variant', 'stock', '--userspace', 'stress', 'build'], 55 * 60 * 1000);
    assert.equal(r.code, 0, r.out);
    assert.ok(existsSync(stock.vmlinux));
    assert.doesNotMatch(readFileSync(stock.dotConfig, 'utf8'), /^CONFIG_XIP_KERNEL=y$/m);
  });

  for (const mem of [8, 256]) {
    it(`XIP from flash (-bios only) at ${mem} MiB: every part passes`, async () => stressBoot(xip, mem));
    it(`stock (-kernel) at ${mem} MiB: every part passes`, async () => stressBoot(stock, mem));
  }

  it('all four runs print the same checksums', () => {
    assert.equal(runs.size, 4, `runs that passed: ${[...runs.keys()].join(', ')}`);
    const [first, ...rest] = [...runs.entries()];
    assert.equal(first![1].length, STRESS_PARTS.length + 1);
    for (const [name, lines] of rest) assert.deepEqual(lines, first![1], `${name} differs from ${first![0]}`);
  });
});

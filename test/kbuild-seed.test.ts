import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext } from '../src/context.ts';
import { seedKbuild, stampPath } from '../src/pipeline.ts';

/**
 * A kernel build starts from a finished build of the same config (the same
 * variant and toolchain first; src/pipeline.ts seedKbuild): a copy that keeps mtimes, so
 * make only rebuilds what the new initramfs and options change. Only a
 * finished build of the same kernel source is copied, never over an existing
 * build directory.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-seed-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function fakeDefaultBuild(buildDir: string, origin: string, userspace?: string, config?: string, variant?: string) {
  const base = makeContext({ buildDir, userspace, config, variant });
  mkdirSync(join(base.kbuildDir, 'kernel'), { recursive: true });
  writeFileSync(base.vmlinux, 'ELF');
  writeFileSync(join(base.kbuildDir, 'kernel', 'fork.o'), 'object');
  writeFileSync(join(base.kbuildDir, '.xip-origin'), `${origin}\n`);
  const old = new Date('2024-01-02T03:04:05Z');
  utimesSync(join(base.kbuildDir, 'kernel', 'fork.o'), old, old);
  mkdirSync(join(base.variantDir, 'stamps'), { recursive: true });
  writeFileSync(stampPath(base, 'kernel'), JSON.stringify({ stage: 'kernel', hash: 'h', inputs: [], outputs: [], written: 'then' }));
  return base;
}

describe('seedKbuild', () => {
  it('copies the default profile build with its mtimes into a new profile directory', async () => {
    const dir = join(tmp, 'a');
    const base = fakeDefaultBuild(dir, 'origin1');
    const ctx = makeContext({ buildDir: dir, userspace: 'stress' });
    assert.equal(await seedKbuild(ctx, 'origin1'), basename(base.variantDir));
    const o = join(ctx.kbuildDir, 'kernel', 'fork.o');
    assert.equal(readFileSync(o, 'utf8'), 'object');
    assert.equal(statSync(o).mtimeMs, statSync(join(base.kbuildDir, 'kernel', 'fork.o')).mtimeMs);
    assert.ok(!existsSync(`${ctx.kbuildDir}.seed.tmp`), 'no temporary copy left');
    // A second call never copies over an existing build.
    writeFileSync(o, 'mine');
    assert.equal(await seedKbuild(ctx, 'origin1'), undefined);
    assert.equal(readFileSync(o, 'utf8'), 'mine');
  });

  it('does not seed from another kernel source, an unfinished build, or into the default profile itself', async () => {
    const dir = join(tmp, 'b');
    const base = fakeDefaultBuild(dir, 'origin1');
    const ctx = makeContext({ buildDir: dir, userspace: 'stress' });
    assert.equal(await seedKbuild(ctx, 'origin2'), undefined);
    rmSync(stampPath(base, 'kernel'));
    assert.equal(await seedKbuild(ctx, 'origin1'), undefined);
    assert.ok(!existsSync(ctx.kbuildDir));
    assert.equal(await seedKbuild(makeContext({ buildDir: join(tmp, 'c') }), 'origin1'), undefined);
  });

  it('seeds the default profile from another profile build, and prefers a root-in-flash sibling for a root-in-flash profile', async () => {
    const dir = join(tmp, 'e');
    const stress = fakeDefaultBuild(dir, 'origin1', 'stress');
    const ctx = makeContext({ buildDir: dir });
    assert.equal(await seedKbuild(ctx, 'origin1'), basename(stress.variantDir));
    // The router config: the root-in-flash profile's sibling (same kernel config) before the default profile.
    const r = join(tmp, 'f');
    const router = 'lwrt_qemu_malta_defconfig';
    const def = fakeDefaultBuild(r, 'origin1', undefined, router);
    assert.equal(def.userspace, 'router', "the router config's default profile");
    const cramfs = makeContext({ buildDir: r, config: router, userspace: 'router-cramfs' });
    const sibling = fakeDefaultBuild(r, 'origin1', 'router-xip', router);
    assert.equal(await seedKbuild(cramfs, 'origin1'), basename(sibling.variantDir));
    // The default profile's build before any other's: router-unsafe adds a Kconfig line, so router-xip is no sibling of it.
    assert.equal(await seedKbuild(makeContext({ buildDir: r, config: router, userspace: 'router-unsafe' }), 'origin1'), basename(def.variantDir));
  });

  it('seeds across variants and between clang and LLVM=1, the same compiler; never across compilers', async () => {
    const dir = join(tmp, 'd');
    const xip = fakeDefaultBuild(dir, 'origin1');
    assert.equal(await seedKbuild(makeContext({ buildDir: dir, userspace: 'stress', variant: 'stock' }), 'origin1'), basename(xip.variantDir));
    assert.equal(await seedKbuild(makeContext({ buildDir: dir, toolchain: 'llvm' }), 'origin1'), basename(xip.variantDir));
    assert.equal(await seedKbuild(makeContext({ buildDir: dir, userspace: 'stress', toolchain: 'gcc' }), 'origin1'), undefined);
    // The same variant before the other one: a stock build of the same toolchain wins over the xip one.
    const g = join(tmp, 'g');
    fakeDefaultBuild(g, 'origin1');
    const stock = fakeDefaultBuild(g, 'origin1', 'stress', undefined, 'stock');
    assert.equal(await seedKbuild(makeContext({ buildDir: g, variant: 'stock' }), 'origin1'), basename(stock.variantDir));
  });
});

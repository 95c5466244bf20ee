import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { makeContext } from '../src/context.ts';
import { seedKbuild, stampPath } from '../src/pipeline.ts';

/**
 * A new userspace profile's kernel build starts from the default profile's
 * finished build (src/pipeline.ts seedKbuild): a copy that keeps mtimes, so
 * make only rebuilds what the new initramfs changes. Only a finished build of
 * the same kernel source is copied, never over an existing build directory.
 */
const tmp = mkdtempSync(join(tmpdir(), 'xip-seed-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function fakeDefaultBuild(buildDir: string, origin: string) {
  const base = makeContext({ buildDir });
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
    assert.equal(await seedKbuild(ctx, 'origin1'), true);
    const o = join(ctx.kbuildDir, 'kernel', 'fork.o');
    assert.equal(readFileSync(o, 'utf8'), 'object');
    assert.equal(statSync(o).mtimeMs, statSync(join(base.kbuildDir, 'kernel', 'fork.o')).mtimeMs);
    assert.ok(!existsSync(`${ctx.kbuildDir}.seed.tmp`), 'no temporary copy left');
    // A second call never copies over an existing build.
    writeFileSync(o, 'mine');
    assert.equal(await seedKbuild(ctx, 'origin1'), false);
    assert.equal(readFileSync(o, 'utf8'), 'mine');
  });

  it('does not seed from another kernel source, an unfinished build, or into the default profile itself', async () => {
    const dir = join(tmp, 'b');
    const base = fakeDefaultBuild(dir, 'origin1');
    const ctx = makeContext({ buildDir: dir, userspace: 'stress' });
    assert.equal(await seedKbuild(ctx, 'origin2'), false);
    rmSync(stampPath(base, 'kernel'));
    assert.equal(await seedKbuild(ctx, 'origin1'), false);
    assert.ok(!existsSync(ctx.kbuildDir));
    assert.equal(await seedKbuild(makeContext({ buildDir: join(tmp, 'c') }), 'origin1'), false);
  });

  it('seeds only from the same variant and toolchain', async () => {
    const dir = join(tmp, 'd');
    fakeDefaultBuild(dir, 'origin1');
    assert.equal(await seedKbuild(makeContext({ buildDir: dir, userspace: 'stress', variant: 'stock' }), 'origin1'), false);
    assert.equal(await seedKbuild(makeContext({ buildDir: dir, userspace: 'stress', toolchain: 'gcc' }), 'origin1'), false);
  });
});
